"""A generation model: GGUF file, tokenizer and forward pass, with generate()."""

import time

from llm import chat, omp
from llm.batching import Batcher, StepCancelled
from llm.errors import PromptError
from llm.generate import TextStream, check_count, check_stop
from llm.generate import sampler as make_sampler
from llm.gguf_file import GGUFFile, show
from llm.llama import ContextOverflowError, LlamaModel
from llm.prefix import DEFAULT_BYTES, PrefixCache
from llm.tokenizer import GENERATIVE
from llm.tokenizer import load as load_tokenizer


class Model:
    """Example:
    >>> model = llm.load("stories260K.gguf")  # doctest: +SKIP
    >>> model.generate("Once upon a time", max_tokens=16, temperature=0)  # doctest: +SKIP
    ', there was a little girl named Lily. She loved to play outside'
    """

    def __init__(self, path, n_ctx: int | None = None, prefix_cache_bytes: int = DEFAULT_BYTES):
        if n_ctx is not None and (type(n_ctx) is not int or n_ctx < 1):
            raise ContextOverflowError(f"n_ctx must be a positive integer, got {show(n_ctx)}")
        self.prefix_cache = PrefixCache(prefix_cache_bytes)
        self.file = GGUFFile(path)
        self.file_bytes = self.file.path.stat().st_size
        # every check of the file comes before a kernel reads a weight: the vocabulary here,
        # the hyper-parameters and tensor shapes first thing in LlamaModel
        self.tokenizer = load_tokenizer(self.file, GENERATIVE)
        self._template = self.file.text("tokenizer.chat_template", None)
        self.net = LlamaModel(self.file)
        self.config = self.net.config
        self.n_ctx = min(n_ctx or self.config.context_length, self.config.context_length)
        self.net.check_cache(self.n_ctx)
        self.batcher = Batcher(self.net)
        if not self.net.integer:  # float products of several rows sum in another order
            self.prefix_cache.budget = 0
        omp.release()  # the regrouping's team: the passes run on another thread (llm.batching)

    def tokenize(self, text: str, bos: bool | None = None, special: bool = False) -> list[int]:
        return self.tokenizer.encode(text, bos=bos, special=special)

    def detokenize(self, ids) -> str:
        return self.tokenizer.decode(ids)

    @property
    def chat_template(self) -> str | None:
        return self._template or None

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
        self,
        messages,
        max_tokens: int = 256,
        stop=(),
        stream: bool = False,
        cancel=None,
        prefill_chunk: int | None = None,
        **sampler,
    ):
        """Reply to messages ([{"role": "system" | "user" | "assistant", "content": ...}])
        as generate() continues a prompt; the same sampler settings, stop, stream, cancel."""
        text = self.chat_prompt(messages)
        tok = self.tokenizer
        bos_text = tok.tokens[tok.bos_id] if tok.bos_id is not None else None
        ids = tok.encode(text, bos=not (bos_text and text.startswith(bos_text)), special=True)
        stop = check_stop(stop)
        if not self.chat_template:
            stop = (*stop, *chat.PLAIN_STOP)
        return self.generate(ids, max_tokens, stop, stream, cancel, prefill_chunk, **sampler)

    def generate(
        self,
        prompt,
        max_tokens: int = 128,
        stop=(),
        stream: bool = False,
        cancel=None,
        prefill_chunk: int | None = None,
        **sampler,
    ):
        """Continue prompt (text or token ids). Sampler settings (llm.generate.Sampler):
        temperature, top_k, top_p, min_p, typical_p, tfs_z, repeat_penalty,
        frequency_penalty, presence_penalty, repeat_last_n, mirostat, mirostat_tau,
        mirostat_eta, logit_bias, seed. Stops at an end-of-generation token, a stop string,
        max_tokens, or once cancel (a threading.Event) is set. stream=True yields text pieces
        as they are produced (a Generation, which also tells why it finished); closing it stops
        the generation. prefill_chunk: prompt tokens per forward pass (None: all at once)."""
        settings = make_sampler(sampler)
        stop = check_stop(stop)
        check_count("max_tokens", max_tokens, 0)
        if prefill_chunk is not None:
            check_count("prefill_chunk", prefill_chunk, 1)
        ids = self.tokenize(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        if not ids:
            raise PromptError("the prompt is empty")
        if len(ids) + max_tokens > self.n_ctx:
            raise ContextOverflowError(
                f"{len(ids)} prompt tokens + {max_tokens} to generate exceed the context of "
                f"{self.n_ctx}"
            )
        sampling = settings.start(self.config.vocab_size)
        run = Generation(self, ids, max_tokens, stop, sampling, cancel, prefill_chunk)
        return run if stream else "".join(run)


class Generation:
    """A running generation, as generate(stream=True) returns it: iterate for the text pieces.
    Afterwards `finish_reason` is "stop" (an end-of-generation token or a stop string),
    "length" (max_tokens) or "cancelled", and `prompt_tokens` and `completion_tokens` count
    the tokens. close() stops it. Each generation has its own KV cache; the weights are only
    read, so generations may run at once from several threads, and the model's Batcher
    (llm.batching) runs their forward passes together, a step at a time.

    step() does one unit of work (a prefill chunk, or one token) and returns the text it
    released, possibly "". Generations stepped by one thread in turn work too, but each
    step then waits llm.batching.GATHER seconds for the others, which cannot ask meanwhile:
    give each its own thread.
    """

    def __init__(self, model, ids, max_tokens, stop, sampling, cancel=None, prefill_chunk=None):
        self.prompt_tokens = len(ids)
        self.completion_tokens = 0
        self.cached_tokens = 0  # prompt tokens whose keys and values came from the prefix cache
        self.finish_reason: str | None = None
        self._cancel = cancel
        self._arrived = time.monotonic()  # orders its prompt chunks among the others'
        self._steps = self._run(model, ids, max_tokens, stop, sampling, prefill_chunk)

    def __iter__(self) -> "Generation":
        return self

    def __next__(self) -> str:
        while True:
            piece = next(self._steps)
            if piece:
                return piece

    def step(self) -> str:
        """One prefill chunk or one token; StopIteration once finished."""
        return next(self._steps)

    def close(self) -> None:
        self._steps.close()
        if self.finish_reason is None:
            self.finish_reason = "cancelled"

    def _cancelled(self) -> bool:
        if self._cancel is not None and self._cancel.is_set():
            self.finish_reason = "cancelled"
            return True
        return False

    def _run(self, model, ids, max_tokens, stop, sampling, chunk):
        batcher = model.batcher
        batcher.join()
        try:
            yield from self._steps_of(model, ids, max_tokens, stop, sampling, chunk)
        except StepCancelled:
            self.finish_reason = "cancelled"
        finally:
            batcher.leave()

    def _forward(self, model, tokens, cache):
        stopped = self._cancel.is_set if self._cancel is not None else None
        return model.batcher.forward(tokens, cache, stopped, self._arrived)

    def _steps_of(self, model, ids, max_tokens, stop, sampling, chunk):
        net, tok = model.net, model.tokenizer
        cache = net.new_cache(model.n_ctx)
        self.cached_tokens = model.prefix_cache.restore(ids, cache)
        chunk = chunk or len(ids)
        for start in range(self.cached_tokens, len(ids), chunk):
            if self._cancelled():
                return
            logits = self._forward(model, ids[start : start + chunk], cache)
            if start + chunk < len(ids):
                yield ""
        model.prefix_cache.store(ids, cache)
        text = TextStream(stop)
        history = list(ids)
        if max_tokens == 0:
            self.finish_reason = "length"
            return
        while True:
            if self._cancelled():
                return
            token = sampling.pick(logits, history)
            if token in tok.end_ids:
                self.finish_reason = "stop"
                break
            history.append(token)
            self.completion_tokens += 1
            piece = text.push(tok.piece_bytes(token))
            if text.stopped:
                self.finish_reason = "stop"
                if piece:
                    yield piece
                return
            if self.completion_tokens == max_tokens:
                self.finish_reason = "length"
                yield piece + text.flush()
                return
            yield piece
            logits = self._forward(model, [token], cache)
        tail = text.flush()
        if tail:
            yield tail


def load(path, n_ctx: int | None = None, prefix_cache_bytes: int = DEFAULT_BYTES) -> Model:
    return Model(path, n_ctx, prefix_cache_bytes)
