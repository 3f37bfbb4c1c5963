"""Generation over HTTP through the server's ModelHost: the same stream limit, batched steps and
cancellation as the gRPC Generation service."""

import threading

from vdb.errors import UnavailableError
from vdb.rpc.generation import Stopped, TurnCancelled, stepped


class Run:
    """One generation: iterate for the text pieces; finish_reason, prompt_tokens and
    completion_tokens are set once it ends. cancel() stops it at its next step."""

    def __init__(self, core, host, method: str, first, max_tokens, stop, settings, chunk):
        self.core, self.host = core, host
        self.args = (method, first, max_tokens, stop, settings, chunk)
        self.cancelled = threading.Event()
        self.finish_reason, self.prompt_tokens, self.completion_tokens = None, 0, 0
        self.model = ""

    def cancel(self) -> None:
        self.cancelled.set()

    def _alive(self) -> None:
        if self.core.stopping.is_set():
            raise UnavailableError("the server is shutting down")

    def __iter__(self):
        method, first, max_tokens, stop, settings, chunk = self.args
        host, cancel = self.host, self.cancelled
        try:
            with host.stream(cancel.is_set) as handle:
                self.model = handle.name
                run = getattr(handle.model, method)(
                    first,
                    max_tokens,
                    stop,
                    stream=True,
                    cancel=Stopped(cancel, handle.aborted),
                    prefill_chunk=chunk,
                    **settings,
                )
                yield from stepped(host, handle, run, cancel, self._alive)
                self.finish_reason = "length" if run.finish_reason == "length" else "stop"
                self.prompt_tokens = run.prompt_tokens
                self.completion_tokens = run.completion_tokens
        except TurnCancelled:
            return
