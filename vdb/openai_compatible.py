"""Any OpenAI-compatible server (llama.cpp's server, ollama, vLLM, `vdb serve --http-port`)
as the generator of vdb.rag's answers, through the official `openai` package.

It offers what rag.start_answer asks of a model: a context length, a token count to fit the
sources into it, and streamed chat or text completions."""

import math

from vdb.errors import (
    AuthenticationError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnavailableError,
)

INSTALL = "an OpenAI-compatible generator needs the openai package: pip install 'vdb[http]'"
DEFAULT_CONTEXT = 4096  # tokens, when the server does not say
BYTES_PER_TOKEN = 3  # a low estimate (tokenizers average 4 or more on English): prompts fit
# Where servers report a model's context length in their /v1/models entries.
CONTEXT_KEYS = ("context_length", "max_model_len", "n_ctx")


def _client(url: str, api_key: str | None, timeout: float):
    try:
        import openai
    except ImportError:
        raise ImportError(INSTALL) from None
    return openai.OpenAI(base_url=url, api_key=api_key or "none", timeout=timeout, max_retries=1)


class OpenAICompatible:
    """A generator served over the OpenAI API at url (its base, such as
    "http://127.0.0.1:8080/v1"). model: the model to ask for (default: the server's first).
    chat: answer through /v1/chat/completions with vdb.rag's system and user messages (the
    server applies its chat template); False: through /v1/completions with the few-shot
    document a base model continues. context_length: the model's context in tokens (default:
    what the server's /v1/models entry says, else 4096). Token counts are estimated (the
    API has no tokenizer), low enough that fitted prompts fit.

    Example: rag.ask(col, "How long are backups kept?",
                     llm=OpenAICompatible("http://127.0.0.1:8080/v1"))
    """

    def __init__(
        self,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        chat: bool = True,
        context_length: int | None = None,
        timeout: float = 600.0,
    ):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidArgumentError(f"the LLM URL must be an http(s) URL, got {url!r}")
        self.url, self.chat_template = url.rstrip("/"), bool(chat)
        self.client = _client(self.url, api_key, timeout)
        entry = None
        if model is None or context_length is None:
            entry = self._entry(model)
        self.model = model if model is not None else entry.get("id", "")
        self.n_ctx = context_length or _context_of(entry) or DEFAULT_CONTEXT

    def __repr__(self) -> str:
        return f"OpenAICompatible({self.url!r}, model={self.model!r})"

    def _entry(self, model) -> dict:
        """The server's /v1/models entry for model (its first when model is None), or {}."""
        with _errors():
            found = [m.model_dump() for m in self.client.models.list().data]
        for entry in found:
            if model is None or entry.get("id") == model:
                return entry
        return {}

    def info(self) -> dict:
        return {"chat_template": self.chat_template, "context_length": self.n_ctx}

    def count_tokens(self, text: str) -> int:
        """An estimate of text's tokens (one per BYTES_PER_TOKEN bytes)."""
        return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)

    def chat(self, messages, max_tokens: int = 256, stream: bool = False, **kwargs):
        """The answer to messages: its text pieces as they come (stream), or the text."""
        pieces = self._pieces(True, messages, max_tokens, (), **kwargs)
        return pieces if stream else "".join(pieces)

    def generate(self, prompt: str, max_tokens: int = 256, stop=(), stream=False, **kwargs):
        """The continuation of prompt: its text pieces as they come (stream), or the text."""
        pieces = self._pieces(False, prompt, max_tokens, stop, **kwargs)
        return pieces if stream else "".join(pieces)

    def _pieces(self, chat, first, max_tokens, stop, cancel=None, prefill_chunk=None, **sampler):
        args = _sampler(sampler)
        if stop:
            args["stop"] = list(stop)
        with _errors():
            if chat:
                made = self.client.chat.completions.create(
                    model=self.model, messages=first, max_tokens=max_tokens, stream=True, **args
                )
            else:
                made = self.client.completions.create(
                    model=self.model, prompt=first, max_tokens=max_tokens, stream=True, **args
                )
            with made as chunks:
                for chunk in chunks:
                    if cancel is not None and cancel.is_set():
                        return
                    if not chunk.choices:
                        continue
                    c = chunk.choices[0]
                    text = (c.delta.content if chat else c.text) or ""
                    if text:
                        yield text


OPENAI_SAMPLER = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")


def _sampler(settings: dict) -> dict:
    """OpenAI's sampler arguments from ours; the settings OpenAI lacks (top_k, min_p,
    repeat_penalty, mirostat...) go in the body under their names, as llama.cpp's server and
    vdb take them."""
    args, extra = {}, {}
    for key, value in settings.items():
        if value is None:
            continue
        if key == "logit_bias":
            if value:
                args[key] = {str(token): bias for token, bias in value.items()}
        elif key in OPENAI_SAMPLER:
            args[key] = value
        else:
            extra[key] = value
    if extra:
        args["extra_body"] = extra
    return args


def _context_of(entry) -> int | None:
    entry = entry or {}
    for source in (entry, entry.get("meta") or {}):
        for key in CONTEXT_KEYS + ("n_ctx_train",):
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


class _errors:
    """openai's exceptions as vdb's (the classes the embedded and gRPC paths raise)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None:
            return False
        import openai

        pairs = (
            (openai.AuthenticationError, AuthenticationError),
            (openai.PermissionDeniedError, PermissionDeniedError),
            (openai.NotFoundError, NotFoundError),
            (openai.RateLimitError, ResourceExhaustedError),
            (openai.BadRequestError, InvalidArgumentError),
            (openai.UnprocessableEntityError, InvalidArgumentError),
            (openai.APIConnectionError, UnavailableError),
            (openai.APIStatusError, UnavailableError),
        )
        for theirs, ours in pairs:
            if isinstance(exc, theirs):
                raise ours(f"the LLM server at {_url(exc)}: {_message(exc)}") from exc
        return False


def _url(exc) -> str:
    request = getattr(exc, "request", None)
    return str(request.url) if request is not None else "?"


def _message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(exc)
