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

    def _start(self, handle):
        """The streamed run of handle's model this generation steps through."""
        method, first, max_tokens, stop, settings, chunk = self.args
        return getattr(handle.model, method)(
            first,
            max_tokens,
            stop,
            stream=True,
            cancel=Stopped(self.cancelled, handle.aborted),
            prefill_chunk=chunk,
            **settings,
        )

    def __iter__(self):
        host, cancel = self.host, self.cancelled
        try:
            with host.stream(cancel.is_set) as handle:
                self.model = handle.name
                run = self._start(handle)
                yield from stepped(handle, run, cancel, self._alive)
                self.finish_reason = "length" if run.finish_reason == "length" else "stop"
                self.prompt_tokens = run.prompt_tokens
                self.completion_tokens = run.completion_tokens
        except TurnCancelled:
            return


class AskRun(Run):
    """The generated answer to a question from numbered sources (vdb.rag's prompt, fitted to
    the server's model); used holds the sources that went into the prompt."""

    def __init__(self, core, host, question, sources, max_tokens, settings, chunk):
        super().__init__(core, host, "", None, max_tokens, (), settings, chunk)
        self.question, self.sources, self.used = question, sources, []

    def _start(self, handle):
        from vdb import rag

        _, _, max_tokens, _, settings, chunk = self.args
        self.used, stream = rag.start_answer(
            handle.model,
            self.question,
            self.sources,
            max_tokens,
            None,
            cancel=Stopped(self.cancelled, handle.aborted),
            prefill_chunk=chunk,
            **settings,
        )
        return stream
