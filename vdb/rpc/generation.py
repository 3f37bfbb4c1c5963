"""The Generation service: one GGUF model shared by every client, its concurrent streams
decoded together (llm.batching: one forward pass per step takes every stream's next token,
and prompt chunks in arrival order beside them), cancellation, and replacing the model while
the server runs."""

import threading
import time
from contextlib import contextmanager
from pathlib import Path

from llm.errors import ModelNotFoundError
from vdb.errors import (
    AbortedError,
    InvalidArgumentError,
    ModelNotLoadedError,
    ResourceExhaustedError,
    UnavailableError,
    shown,
)
from vdb.rpc import convert
from vdb.rpc._gen import generation_pb2 as gpb
from vdb.rpc._gen import generation_pb2_grpc as ggrpc
from vdb.rpc.handler import rpc

DEFAULT_DRAIN = 30.0  # seconds in-flight streams get when the model is replaced
MAX_DRAIN = 3600.0
ABORT_WAIT = 30.0  # seconds aborted streams get to leave before the switch goes ahead
POLL = 0.05  # seconds between checks for cancellation while waiting
NO_MODEL = "this server has no generation model: start it with --model FILE.gguf"


class TurnCancelled(Exception):
    """The stream stopped waiting for its step (cancelled, or its model is being replaced)."""


def stepped(handle, run, cancel, alive):
    """The text pieces of a streamed generation run on handle's model, one step at a time
    (its passes batched with the other streams' by the model's Batcher); alive() before each
    step (it raises to end the stream). Closes run. TurnCancelled once cancel is set or the
    model is being replaced, AbortedError once it was replaced."""
    try:
        while True:
            alive()
            if cancel.is_set() or handle.aborted.is_set():
                raise TurnCancelled
            try:
                piece = run.step()
            except StopIteration:
                if run.finish_reason == "cancelled" and handle.aborted.is_set():
                    raise TurnCancelled from None
                return
            if piece:
                yield piece
    except TurnCancelled:
        if handle.aborted.is_set() and not cancel.is_set():
            raise AbortedError(
                "the server's model was replaced before this stream finished"
            ) from None
        raise
    finally:
        run.close()


class Stopped:
    """is_set() once any of the events is: a stream's cancellation or its model's
    replacement (given to a generation as its cancel, so that either ends a wait for its
    step)."""

    def __init__(self, *events):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class _Stream:
    def __init__(self, model, name: str):
        self.model, self.name = model, name
        self.aborted = threading.Event()


class ModelHost:
    """The server's generation model: loaded once, used by every stream, and replaced by
    swap() after the streams in flight drain."""

    def __init__(self, path=None, model_dir=None, n_ctx=None, max_streams=4, prefix_bytes=None):
        from llm.prefix import DEFAULT_BYTES

        self.n_ctx = n_ctx
        self.prefix_bytes = DEFAULT_BYTES if prefix_bytes is None else prefix_bytes
        self.max_streams = max_streams
        self.model, self.name = None, ""
        self.model_dir = Path(model_dir) if model_dir else None
        if path is not None:
            path = Path(path)
            self.model, self.name = self._load(path), path.name
            self.model_dir = self.model_dir or path.parent
        self.swaps = 0
        self._cond = threading.Condition()
        self._streams: set[_Stream] = set()
        self._swapping = False
        self._held = 0  # streams waiting for a swap to finish
        self._swap_lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        """At shutdown: refuse new streams, abort the running ones at their next step, and
        end a swap's wait for them."""
        with self._cond:
            self.closed = True
            for handle in self._streams:
                handle.aborted.set()
            self._cond.notify_all()

    def _check_open(self) -> None:
        if self.closed:
            raise UnavailableError("the server is shutting down")

    def _load(self, path: Path):
        import llm

        return llm.load(path, self.n_ctx, self.prefix_bytes)

    @property
    def active(self) -> int:
        return len(self._streams)

    @property
    def queued(self) -> int:
        """Streams waiting for the model's next step."""
        model = self.model
        return model.batcher.waiting if model is not None else 0

    def _check_room(self, waiting: int) -> None:
        if len(self._streams) + waiting >= self.max_streams:
            raise ResourceExhaustedError(
                f"the server already runs its limit of {self.max_streams} generation "
                "streams; retry later"
            )

    @contextmanager
    def stream(self, cancelled):
        """Admit one stream: its model stays the same until it ends."""
        with self._cond:
            self._check_open()
            self._check_room(self._held)
            self._held += 1  # waiting for a swap holds a place (and a worker thread)
            try:
                while self._swapping:
                    if cancelled():
                        raise TurnCancelled
                    self._cond.wait(POLL)
                    self._check_open()
            finally:
                self._held -= 1
            if self.model is None:
                raise ModelNotLoadedError(NO_MODEL)
            self._check_room(0)
            handle = _Stream(self.model, self.name)
            self._streams.add(handle)
        try:
            yield handle
        finally:
            with self._cond:
                self._streams.discard(handle)
                self._cond.notify_all()

    def resolve(self, name: str) -> Path:
        if self.model_dir is None:
            raise InvalidArgumentError(
                "this server has no model directory: start it with --model or --model-dir"
            )
        if not name or name != Path(name).name or name.startswith(".") or "\0" in name:
            raise InvalidArgumentError(
                f"{shown(name)}: name a file in the server's model directory, not a path"
            )
        if not name.endswith(".gguf"):
            raise InvalidArgumentError(f"{shown(name)}: a model file name ends with .gguf")
        path = self.model_dir / name
        try:
            found = path.is_file() and path.resolve().is_relative_to(self.model_dir.resolve())
        except OSError as exc:
            raise InvalidArgumentError(f"{shown(name)}: {exc.strerror or exc}") from None
        if not found:
            raise ModelNotFoundError(f"no model file {shown(name)} in the server's model directory")
        return path

    def swap(self, name: str, drain_timeout: float = DEFAULT_DRAIN) -> None:
        """Load name, wait for the streams in flight (up to drain_timeout seconds, then abort
        the rest at their next step), and switch. New streams wait for the switch. A model
        that fails to load leaves the old one serving."""
        path = self.resolve(name)
        with self._swap_lock:
            new = self._load(path)
            with self._cond:
                self._swapping = True
                try:
                    deadline = time.monotonic() + drain_timeout
                    while self._streams and (left := deadline - time.monotonic()) > 0:
                        self._check_open()
                        self._cond.wait(left)
                    for handle in self._streams:
                        handle.aborted.set()
                    # aborted streams leave at their next step; one stuck in a write to a
                    # client that stopped reading keeps its own reference to the old model
                    deadline = time.monotonic() + ABORT_WAIT
                    while self._streams and time.monotonic() < deadline:
                        self._check_open()
                        self._cond.wait(POLL)
                    self._check_open()
                    self.model, self.name = new, path.name
                    self.swaps += 1
                finally:
                    self._swapping = False
                    self._cond.notify_all()


class GenerationService(ggrpc.GenerationServicer):
    def __init__(self, core, host: ModelHost, prefill_chunk: int = 256):
        self.core, self.host, self.prefill_chunk = core, host, prefill_chunk

    def _serve(self, context, start):
        """Stream the pieces of the generation start(model, cancel) makes, a step at a time."""
        cancel = threading.Event()
        context.add_callback(cancel.set)
        host = self.host
        try:
            with host.stream(cancel.is_set) as handle:
                run = start(handle.model, Stopped(cancel, handle.aborted))
                alive = lambda: self.core.check_alive(context)  # noqa: E731
                for piece in stepped(handle, run, cancel, alive):
                    yield gpb.GenerateResponse(text=piece)
                if run.finish_reason == "cancelled":
                    return
                yield gpb.GenerateResponse(
                    finished=gpb.Finished(
                        reason=run.finish_reason,
                        prompt_tokens=run.prompt_tokens,
                        completion_tokens=run.completion_tokens,
                        model=handle.name,
                    )
                )
        except TurnCancelled:
            return

    def _stream(self, context, request, method: str, first, default_max: int):
        """Stream model.<method>(first, ...) with the request's length, stops and sampler."""
        settings = convert.sampler_from(request.sampler)
        max_tokens = request.max_tokens if request.HasField("max_tokens") else default_max

        def start(model, cancel):
            return getattr(model, method)(
                first,
                max_tokens,
                tuple(request.stop),
                stream=True,
                cancel=cancel,
                prefill_chunk=self.prefill_chunk,
                **settings,
            )

        return self._serve(context, start)

    @rpc()
    def Generate(self, request, context):
        if request.prompt and request.prompt_ids:
            raise InvalidArgumentError("give either prompt or prompt_ids, not both")
        self.core.limits.text(request.prompt, "prompt")
        prompt = list(request.prompt_ids) or request.prompt
        yield from self._stream(context, request, "generate", prompt, 128)

    @rpc()
    def Chat(self, request, context):
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        self.core.limits.text("".join(m["content"] for m in messages), "chat")
        yield from self._stream(context, request, "chat", messages, 256)

    def _model(self):
        if self.host.model is None:
            raise ModelNotLoadedError(NO_MODEL)
        return self.host.model

    @rpc()
    def Tokenize(self, request, context):
        self.core.limits.text(request.text)
        bos = request.bos if request.HasField("bos") else None
        ids = self._model().tokenize(request.text, bos=bos, special=request.special)
        return gpb.TokenizeResponse(ids=ids)

    def _info(self) -> gpb.ModelInfoResponse:
        host = self.host
        model, name = host.model, host.name
        msg = gpb.ModelInfoResponse(
            loaded=model is not None,
            swaps=host.swaps,
            active_streams=host.active,
            queued_streams=host.queued,
        )
        if model is not None:
            cached = model.prefix_cache.stats()
            msg.prefix_cache_bytes = cached["bytes"]
            msg.prefix_cache_budget = cached["budget"]
            msg.prefix_cache_entries = cached["entries"]
            msg.prefix_cache_hits = cached["hits"]
            msg.batched_steps = model.batcher.steps
            msg.batched_tokens = model.batcher.decoded
            msg.name = name
            msg.architecture = model.config.architecture
            msg.context_length = model.n_ctx
            msg.vocab_size = model.config.vocab_size
            msg.file_bytes = model.file_bytes
            msg.chat_template = bool(model.chat_template)
        return msg

    @rpc()
    def ModelInfo(self, request, context):
        return self._info()

    @rpc(write=True, admin=True)
    def SwapModel(self, request, context):
        timeout = request.drain_timeout if request.HasField("drain_timeout") else DEFAULT_DRAIN
        if not 0 <= timeout <= MAX_DRAIN:
            raise InvalidArgumentError(
                f"drain_timeout must be between 0 and {MAX_DRAIN:.0f} seconds, got {timeout}"
            )
        self.host.swap(request.name, timeout)
        return self._info()
