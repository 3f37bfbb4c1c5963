"""A generation model: GGUF file, tokenizer and forward pass, with generate()."""

from llm import chat
from llm.errors import PromptError, SamplerError
from llm.generate import Sampler, TextStream
from llm.gguf_file import GGUFFile
from llm.llama import ContextOverflowError, LlamaModel
from llm.tokenizer import load as load_tokenizer


class Model:
    """Example:
    >>> model = llm.load("stories260K.gguf")  # doctest: +SKIP
    >>> model.generate("Once upon a time", max_tokens=16, temperature=0)  # doctest: +SKIP
    ', there was a little girl named Lily. She loved to play outside'
    """

    def __init__(self, path, n_ctx: int | None = None):
        self.file = GGUFFile(path)
        self.net = LlamaModel(self.file)
        self.tokenizer = load_tokenizer(self.file)
        self.config = self.net.config
        self.n_ctx = min(n_ctx or self.config.context_length, self.config.context_length)

    def tokenize(self, text: str, bos: bool | None = None, special: bool = False) -> list[int]:
        return self.tokenizer.encode(text, bos=bos, special=special)

    def detokenize(self, ids) -> str:
        return self.tokenizer.decode(ids)

    @property
    def chat_template(self) -> str | None:
        return self.file.metadata.get("tokenizer.chat_template") or None

    def chat_prompt(self, messages, add_generation_prompt: bool = True) -> str:
        """The text the model's chat template (or the plain fallback) makes of messages."""
        tok = self.tokenizer
        return chat.render(
            self.chat_template,
            messages,
            bos_token=tok.tokens[tok.bos_id] if tok.bos_id is not None else "",
            eos_token=tok.tokens[tok.eos_id] if tok.eos_id is not None else "",
            add_generation_prompt=add_generation_prompt,
        )

    def chat(
        self, messages, max_tokens: int = 256, stop=(), stream: bool = False, cancel=None, **sampler
    ):
        """Reply to messages ([{"role": "system" | "user" | "assistant", "content": ...}])
        as generate() continues a prompt; the same sampler settings, stop, stream, cancel."""
        text = self.chat_prompt(messages)
        tok = self.tokenizer
        bos_text = tok.tokens[tok.bos_id] if tok.bos_id is not None else None
        ids = tok.encode(text, bos=not (bos_text and text.startswith(bos_text)), special=True)
        stop = (stop,) if isinstance(stop, str) else tuple(stop)
        if not self.chat_template:
            stop = (*stop, *chat.PLAIN_STOP)
        return self.generate(ids, max_tokens, stop, stream, cancel, **sampler)

    def generate(
        self, prompt, max_tokens: int = 128, stop=(), stream: bool = False, cancel=None, **sampler
    ):
        """Continue prompt (text or token ids). Sampler settings (llm.generate.Sampler):
        temperature, top_k, top_p, min_p, typical_p, tfs_z, repeat_penalty,
        frequency_penalty, presence_penalty, repeat_last_n, mirostat, mirostat_tau,
        mirostat_eta, logit_bias, seed. Stops at an end-of-generation token, a stop string,
        max_tokens, or once cancel (a threading.Event) is set. stream=True yields text pieces
        as they are produced; closing that generator also stops the generation."""
        settings = _sampler(sampler)
        if isinstance(stop, str):
            stop = (stop,)
        ids = self.tokenize(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        if not ids:
            raise PromptError("the prompt is empty")
        if len(ids) + max_tokens > self.n_ctx:
            raise ContextOverflowError(
                f"{len(ids)} prompt tokens + {max_tokens} to generate exceed the context of "
                f"{self.n_ctx}"
            )
        sampling = settings.start(self.config.vocab_size)
        pieces = self._run(ids, max_tokens, tuple(stop), sampling, cancel)
        return pieces if stream else "".join(pieces)

    def _run(self, ids, max_tokens, stop, sampling, cancel):
        """Each call has its own KV cache and generator; the weights are only read, so calls
        may run at once from several threads."""
        cache = self.net.new_cache(self.n_ctx)
        text = TextStream(stop)
        history = list(ids)
        logits = self.net.forward(ids, cache)
        for _ in range(max_tokens):
            if cancel is not None and cancel.is_set():
                return
            token = sampling.pick(logits, history)
            if token in self.tokenizer.end_ids:
                break
            history.append(token)
            piece = text.push(self.tokenizer.piece_bytes(token))
            if piece:
                yield piece
            if text.stopped:
                return
            logits = self.net.forward([token], cache)
        tail = text.flush()
        if tail:
            yield tail


def _sampler(settings: dict) -> Sampler:
    try:
        return Sampler(**settings)
    except TypeError as exc:
        raise SamplerError(f"unknown sampler setting: {exc}") from None


def load(path, n_ctx: int | None = None) -> Model:
    return Model(path, n_ctx)
