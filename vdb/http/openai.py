"""OpenAI-compatible routes: /v1/models, /v1/embeddings, /v1/chat/completions,
/v1/completions."""

import base64
import time
import uuid

import anyio
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from vdb import embedding
from vdb.http import auth
from vdb.http.errors import ApiError
from vdb.http.generate import Run


class Json(Response):
    """A JSON response by orjson (numpy arrays as lists, float32 as the shortest float32)."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY, default=str)


SAMPLER = {"temperature": (int, float), "top_p": (int, float), "top_k": int, "seed": int}


async def read_json(request, limit: int) -> dict:
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > limit:
        raise ApiError(413, f"the request body is larger than {limit} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes")
    try:
        value = orjson.loads(bytes(data))
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return value


def field(req: dict, name: str, types, default=None, required: bool = False):
    if name not in req or req[name] is None:
        if required:
            raise ApiError(400, f"missing required field {name!r}", param=name)
        return default
    value = req[name]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ApiError(400, f"{name!r} has the wrong type", param=name)
    if not isinstance(value, types):
        raise ApiError(400, f"{name!r} has the wrong type", param=name)
    return value


def _ints(value) -> bool:
    return isinstance(value, list) and all(type(v) is int for v in value)


class OpenAIRoutes:
    def __init__(self, server):
        self.server, self.core, self.host = server, server.core, server.models
        self.limit = server.options.max_message_bytes

    async def models(self, request):
        auth.admit(self.core, request)
        from vdb.database import DEFAULT_EMBEDDER

        now = int(self.core.started)
        names = ([self.host.name] if self.host.model is not None else []) + [DEFAULT_EMBEDDER]
        data = [{"id": n, "object": "model", "created": now, "owned_by": "vdb"} for n in names]
        model = self.host.model
        if model is not None:  # what OpenAICompatible reads to fit prompts
            data[0]["context_length"] = getattr(model, "n_ctx", None)
        return JSONResponse({"object": "list", "data": data})

    async def embeddings(self, request):
        from vdb.database import DEFAULT_EMBEDDER
        from vdb.rpc.server import _model_name

        auth.admit(self.core, request)
        req = await read_json(request, self.limit)
        texts = field(req, "input", (str, list), required=True)
        model = field(req, "model", str) or DEFAULT_EMBEDDER
        fmt = field(req, "encoding_format", str, "float")
        if fmt not in ("float", "base64"):
            raise ApiError(400, "encoding_format must be 'float' or 'base64'", "encoding_format")
        if isinstance(texts, str) or _ints(texts) and texts:
            texts = [texts]
        if not texts or not all(isinstance(t, str) or _ints(t) for t in texts):
            raise ApiError(400, "input must be a string, strings or token arrays", "input")
        self.core.limits.texts(len(texts))
        embedder = await run_in_threadpool(embedding.load, _model_name(model))
        vectors, used = await run_in_threadpool(self._embed, embedder, texts)
        data = []
        for i, v in enumerate(vectors):
            out = base64.b64encode(v.tobytes()).decode() if fmt == "base64" else v
            data.append({"object": "embedding", "index": i, "embedding": out})
        usage = {"prompt_tokens": used, "total_tokens": used}
        return Json({"object": "list", "data": data, "model": model, "usage": usage})

    def _embed(self, embedder, texts):
        tok = getattr(embedder, "tokenizer", None)
        if any(not isinstance(t, str) for t in texts):
            if tok is None or not hasattr(tok, "decode"):
                raise ApiError(400, "this embedder does not take token arrays", "input")
            texts = [t if isinstance(t, str) else tok.decode(t) for t in texts]
        used = 0
        if tok is not None and hasattr(tok, "encode"):
            try:
                used = sum(len(tok.encode(t)) for t in texts)
            except Exception:
                used = 0
        return self.core.embed(embedder, texts, auth.CALL), used  # the server's embed slots

    def _sampler(self, req: dict) -> dict:
        settings = {k: field(req, k, t) for k, t in SAMPLER.items()}
        settings = {k: v for k, v in settings.items() if v is not None}
        if field(req, "n", int, 1) != 1:
            raise ApiError(400, "only n=1 is supported", "n")
        return settings

    def _stop(self, req: dict) -> tuple:
        stop = field(req, "stop", (str, list), ())
        stop = (stop,) if isinstance(stop, str) else tuple(stop)
        if not all(isinstance(s, str) for s in stop):
            raise ApiError(400, "stop must be a string or a list of strings", "stop")
        return stop

    async def chat(self, request):
        auth.admit(self.core, request)
        req = await read_json(request, self.limit)
        messages = field(req, "messages", list, required=True)
        if not messages or not all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise ApiError(
                400, "messages must be objects with a string role and content", "messages"
            )
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        self.core.limits.text("".join(m["content"] for m in messages), "chat")
        return await self._generate(request, req, "chat", messages, 256, chat=True)

    async def completions(self, request):
        auth.admit(self.core, request)
        req = await read_json(request, self.limit)
        prompt = field(req, "prompt", (str, list), required=True)
        if isinstance(prompt, list):
            if len(prompt) == 1 and isinstance(prompt[0], str | list):
                prompt = prompt[0]
            if not (isinstance(prompt, str) or _ints(prompt) and prompt):
                raise ApiError(400, "prompt must be a string or one token array", "prompt")
        if isinstance(prompt, str):
            self.core.limits.text(prompt, "prompt")
        return await self._generate(request, req, "generate", prompt, 16, chat=False)

    async def _generate(self, request, req, method, first, default_max, chat: bool):
        model = field(req, "model", str, "")
        if self.host.model is not None and model and model != self.host.name:
            raise ApiError(404, f"the model {model!r} does not exist", "model", "model_not_found")
        max_tokens = field(req, "max_completion_tokens", int) or field(req, "max_tokens", int)
        if max_tokens is not None and max_tokens < 1:
            raise ApiError(400, "max_tokens must be at least 1", "max_tokens")
        settings, stop = self._sampler(req), self._stop(req)
        stream = field(req, "stream", bool, False)
        options = field(req, "stream_options", dict, {})
        usage = bool(options.get("include_usage"))
        run = Run(
            self.core,
            self.host,
            method,
            first,
            max_tokens or default_max,
            stop,
            settings,
            self.server.options.prefill_chunk,
        )
        pieces = iter(run)
        first_piece = await _next(pieces, run)  # errors (429, 503) before the first byte
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        meta = {"id": ident, "created": int(time.time()), "model": run.model or model}
        meta["object"] = "chat.completion" if chat else "text_completion"
        self.server.http_metrics.streams(+1)
        if not stream:
            try:
                text = await gathered(request, pieces, run, first_piece)
            finally:
                self.server.http_metrics.streams(-1)
                run.cancel()
            text = "".join(text)
            choice = {"index": 0, "finish_reason": run.finish_reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice.update(text=text, logprobs=None)
            self.server.http_metrics.tokens(run.completion_tokens)
            return JSONResponse({**meta, "choices": [choice], "usage": _usage(run)})
        meta["object"] = "chat.completion.chunk" if chat else "text_completion"
        return StreamingResponse(
            self._events(run, pieces, first_piece, meta, chat, usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    async def _events(self, run, pieces, piece, meta, chat, usage):
        def chunk(text, finish=None, first=False):
            if chat:
                delta = {"role": "assistant", "content": text} if first else {"content": text}
                choice = {"index": 0, "delta": delta if text or first else {}}
            else:
                choice = {"index": 0, "text": text, "logprobs": None}
            choice["finish_reason"] = finish
            extra = {"usage": None} if usage else {}
            return _event({**meta, "choices": [choice], **extra})

        try:
            first = True
            while piece is not None:
                yield chunk(piece, first=first)
                first = False
                piece = await _next(pieces, run)
            yield chunk("", run.finish_reason)
            if usage:
                yield _event({**meta, "choices": [], "usage": _usage(run)})
            yield b"data: [DONE]\n\n"
            self.server.http_metrics.tokens(run.completion_tokens)
        except Exception as exc:
            from vdb.http.errors import response

            yield b"data: " + response(exc).body + b"\n\n"
        finally:
            run.cancel()
            self.server.http_metrics.streams(-1)
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(_close, pieces)


async def _next(pieces, run):
    try:
        return await run_in_threadpool(next, pieces, None)
    except BaseException:
        run.cancel()
        raise


async def gathered(request, pieces, run, first) -> list[str]:
    """The pieces of a run not streamed, the first one already taken; the run is cancelled at
    its next step once the client disconnects."""
    text = [first] if first else []
    while (piece := await _next(pieces, run)) is not None:
        text.append(piece)
        if await request.is_disconnected():
            run.cancel()
    return text


def _close(pieces) -> None:
    try:
        pieces.close()
    except ValueError:  # still running in another thread: it stops at its next step
        pass


def _event(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _usage(run) -> dict:
    p, c = run.prompt_tokens, run.completion_tokens
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
