"""Model preparation before a server listens: every embedder it will need (the default model,
agent memory's, each collection's, and any named with --prepare) is converted into the model
cache at start, so that no request ever converts one; afterwards a model that was not prepared
is refused at once (ModelNotFoundError) instead of being converted inside a client's call."""

import logging
import time

from llm.errors import LlmError

log = logging.getLogger("vdb.server")


def needed(db, extra=()) -> list[str]:
    """Names (or .gguf paths) of the embedders a server over db will need, each once."""
    from vdb.database import DEFAULT_EMBEDDER, MEMORY_EMBEDDER

    return list(dict.fromkeys([DEFAULT_EMBEDDER, MEMORY_EMBEDDER, *db.embedders(), *extra]))


def prepare(db, extra=()) -> dict:
    """Convert what needed() names and is not in the model cache; then turn conversion on use
    off for this process. Returns {name: path} of the models ready; one that cannot be had (its
    package missing, say) is logged and left out: requests that need it get
    ModelNotFoundError, the rest of the server works."""
    from embed import models

    ready = {}
    for name in needed(db, extra):
        cached = set(models.models_dir().glob("*.gguf"))
        try:
            started = time.monotonic()
            ready[name] = path = models.resolve(name)
        except (LlmError, OSError) as exc:
            log.warning("model %s is not available: %s", name, exc)
            continue
        if path not in cached and path.parent == models.models_dir():
            took = time.monotonic() - started
            log.info("prepared model %s in %.1f s: %s", name, took, path)
    models.convert_on_use(False)
    return ready
