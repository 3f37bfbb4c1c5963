"""An embedding actor for the Ray tests that dies (its process exits) on its first batch, once
per marker file: Ray must restart it and run the batch again."""

import os

from vdb.ingest_ray import EmbedBatches


class DyingEmbed(EmbedBatches):
    marker: str = ""  # a file that exists once an actor has died

    def __call__(self, batch):
        if self.marker and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os._exit(1)
        return super().__call__(batch)
