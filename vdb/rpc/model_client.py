"""The server's generation model, used like an llm model: generate, chat, tokenize."""

import grpc

from llm.chat import check_messages
from llm.errors import PromptError, SamplerError
from llm.generate import check_count, check_stop, sampler
from vdb.rpc import convert, status
from vdb.rpc._gen import generation_pb2 as gpb
from vdb.rpc._gen import generation_pb2_grpc as ggrpc
from vdb.rpc.client import Connection


class RemoteModel(Connection):
    """Example:
    >>> model = vdb.connect_model("127.0.0.1:50051")  # doctest: +SKIP
    >>> for piece in model.generate("Once upon a time", max_tokens=32, stream=True):
    ...     print(piece, end="")  # doctest: +SKIP
    """

    def __init__(self, address: str, api_key=None, tls=None, timeout=None):
        super().__init__(address, api_key, tls, timeout)
        self._stub = ggrpc.GenerationStub(self._channel)

    def __repr__(self) -> str:
        return f"RemoteModel({self.address!r})"

    def info(self) -> dict:
        """The server's model: loaded, name, architecture, context_length, vocab_size,
        file_bytes, chat_template, swaps, active_streams, queued_streams, prefix_cache (bytes,
        budget, entries, hits) and batched_steps / batched_tokens (the batcher's passes and
        the tokens decoded in them)."""
        msg = self._call(self._stub.ModelInfo, gpb.ModelInfoRequest())
        return {
            "loaded": msg.loaded,
            "name": msg.name,
            "architecture": msg.architecture,
            "context_length": msg.context_length,
            "vocab_size": msg.vocab_size,
            "file_bytes": msg.file_bytes,
            "chat_template": msg.chat_template,
            "swaps": msg.swaps,
            "active_streams": msg.active_streams,
            "queued_streams": msg.queued_streams,
            "prefix_cache": {
                "bytes": msg.prefix_cache_bytes,
                "budget": msg.prefix_cache_budget,
                "entries": msg.prefix_cache_entries,
                "hits": msg.prefix_cache_hits,
            },
            "batched_steps": msg.batched_steps,
            "batched_tokens": msg.batched_tokens,
        }

    def tokenize(self, text: str, bos: bool | None = None, special: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise SamplerError(f"text must be a str, got {type(text).__name__}")
        request = gpb.TokenizeRequest(text=text, special=special)
        if bos is not None:
            request.bos = bos
        return list(self._call(self._stub.Tokenize, request).ids)

    def generate(self, prompt, max_tokens: int = 128, stop=(), stream: bool = False, **sampler):
        """As llm Model.generate: the continuation of prompt (text or token ids), or with
        stream=True a RemoteGeneration yielding its pieces; closing it cancels the call."""
        request = gpb.GenerateRequest(max_tokens=_max_tokens(max_tokens), stop=check_stop(stop))
        if isinstance(prompt, str):
            request.prompt = prompt
        else:
            request.prompt_ids.extend(_ids(prompt))
        check_sampler(request.sampler, sampler)
        run = RemoteGeneration(self._start(self._stub.Generate, request))
        return run if stream else "".join(run)

    def chat(self, messages, max_tokens: int = 256, stop=(), stream: bool = False, **sampler):
        """As llm Model.chat, rendered with the server model's chat template."""
        request = gpb.ChatRequest(max_tokens=_max_tokens(max_tokens), stop=check_stop(stop))
        for m in check_messages(messages):
            request.messages.add(role=m["role"], content=m["content"])
        check_sampler(request.sampler, sampler)
        run = RemoteGeneration(self._start(self._stub.Chat, request))
        return run if stream else "".join(run)

    def swap(self, name: str, drain_timeout: float | None = None) -> dict:
        """Replace the server's model with the file `name` in its model directory (an admin
        key when the server has keys); returns the new info(). The old model keeps serving
        when the new one fails to load."""
        request = gpb.SwapModelRequest(name=name)
        if drain_timeout is not None:
            request.drain_timeout = drain_timeout
        self._call(self._stub.SwapModel, request)
        return self.info()


class RemoteGeneration:
    """The text pieces of a remote generation; afterwards finish_reason, prompt_tokens,
    completion_tokens and model, as the server reported them. close() cancels the call and
    may be called from any thread."""

    def __init__(self, call):
        self._call = call
        self._closed = False
        self.finish_reason = None
        self.prompt_tokens = self.completion_tokens = 0
        self.model = ""

    def __iter__(self) -> "RemoteGeneration":
        return self

    def __next__(self) -> str:
        try:
            for msg in self._call:
                if msg.HasField("finished"):
                    f = msg.finished
                    self.finish_reason = f.reason
                    self.prompt_tokens = f.prompt_tokens
                    self.completion_tokens = f.completion_tokens
                    self.model = f.model
                if msg.text:
                    return msg.text
        except grpc.RpcError as exc:
            if self._closed:
                raise StopIteration from None
            raise status.error_from(exc) from None
        raise StopIteration

    def close(self) -> None:
        """Cancel the call (the server stops generating)."""
        self._closed = True
        self._call.cancel()
        if self.finish_reason is None:
            self.finish_reason = "cancelled"

    def __del__(self):
        if not self._closed and self.finish_reason is None:
            self._call.cancel()


def _max_tokens(value) -> int:
    check_count("max_tokens", value, 0)
    if value >= 1 << 32:
        raise SamplerError(f"max_tokens must be below 2**32, got {value}")
    return value


def _ids(prompt) -> list[int]:
    try:
        ids = [int(i) for i in prompt]
    except (TypeError, ValueError):
        raise SamplerError("prompt must be a str or a list of token ids") from None
    if not ids:
        raise PromptError("the prompt is empty")
    if any(i < 0 or i >= 1 << 32 for i in ids):
        raise PromptError("token ids must be in [0, 2**32)")
    return ids


def check_sampler(msg, settings: dict) -> None:
    """Check settings as the server will (the same exceptions before anything is sent)."""
    sampler(settings)
    convert.set_sampler(msg, settings)
