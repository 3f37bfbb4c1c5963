"""A generation model: GGUF file, tokenizer and forward pass, with generate()."""

import numpy as np

from llm.errors import PromptError
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

    def generate(self, prompt, max_tokens: int = 128, stop=(), stream: bool = False, **sampler):
        """Continue prompt (text or token ids). Sampler settings: temperature, top_k, top_p,
        min_p, repeat_penalty, repeat_last_n, seed. Stops at EOS, a stop string or
        max_tokens. stream=True yields text pieces as they are produced."""
        settings = Sampler(**sampler)
        ids = self.tokenize(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        if not ids:
            raise PromptError("the prompt is empty")
        if len(ids) + max_tokens > self.n_ctx:
            raise ContextOverflowError(
                f"{len(ids)} prompt tokens + {max_tokens} to generate exceed the context of "
                f"{self.n_ctx}"
            )
        pieces = self._run(ids, max_tokens, tuple(stop), settings)
        return pieces if stream else "".join(pieces)

    def _run(self, ids, max_tokens, stop, settings):
        """Each call has its own KV cache and generator; the weights are only read, so calls
        may run at once from several threads."""
        cache = self.net.new_cache(self.n_ctx)
        rng = np.random.default_rng(settings.seed)
        text = TextStream(stop)
        history = list(ids)
        logits = self.net.forward(ids, cache)
        for _ in range(max_tokens):
            token = settings.pick(logits, history, rng)
            if token == self.tokenizer.eos_id:
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


def load(path, n_ctx: int | None = None) -> Model:
    return Model(path, n_ctx)
