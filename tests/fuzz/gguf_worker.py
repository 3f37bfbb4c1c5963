"""The fuzzer's worker process: loads and exercises GGUF files, one per request.

Usage: python -m tests.fuzz.gguf_worker RESULT_FD
Requests come on stdin, one JSON object per line ({"kind": "llm" | "vocab" | "bert", "path"});
after its imports the worker writes {"ready": true}, then one JSON object per request on the
file descriptor RESULT_FD (stdout is left to the libraries): the outcome ("ok", "error" for an
error of the documented LlmError family, "undocumented" for any other exception), the class,
a bounded message, the seconds taken and the seconds of those numba spent compiling.

The parent runs it with NUMBA_BOUNDSCHECK=1 and its own NUMBA_CACHE_DIR (the kernels' bounds-
checked twins: an index out of bounds raises IndexError instead of writing past an array)
and an address-space limit.
"""

import json
import os
import sys
import time
import traceback

TEXT = "Once upon a time, a little girl named Lily went to the park."
TEXTS = [TEXT, "Hello world! ¿Qué tal? 你好 🙂", "<s>[CLS] <|endoftext|> \n\t  x"]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


class _CompileClock:
    """Seconds numba has spent compiling (top-level numba:compile events)."""

    def __init__(self):
        from numba.core import event

        self.seconds, self._depth, self._start = 0.0, 0, 0.0
        clock = self

        class Listener(event.Listener):
            def on_start(self, ev):
                if clock._depth == 0:
                    clock._start = time.perf_counter()
                clock._depth += 1

            def on_end(self, ev):
                clock._depth -= 1
                if clock._depth == 0:
                    clock.seconds += time.perf_counter() - clock._start

        event.register("numba:compile", Listener())


def exercise(kind: str, path: str) -> None:
    """Everything a user would do first with such a file."""
    if kind == "llm":
        import llm

        model = llm.load(path)
        ids = model.tokenize(TEXT)
        model.detokenize(ids)
        model.generate(TEXT, max_tokens=4, temperature=0)
        model.generate(ids[:3] or [0], max_tokens=2, seed=1, top_k=5)
        model.chat(MESSAGES, max_tokens=2, temperature=0)
    elif kind == "vocab":
        from llm.gguf_file import GGUFFile
        from llm.tokenizer import WordPieceTokenizer, load

        tok = load(GGUFFile(path))
        if isinstance(tok, WordPieceTokenizer):
            ids = tok.encode_batch(TEXTS, max_tokens=16)
            _ = [tok.decode(x) for x in ids]
            return
        for text in TEXTS:
            for special in (False, True):
                ids = tok.encode(text, special=special)
                tok.decode(ids)
                b"".join(tok.piece_bytes(i) for i in ids)
    elif kind == "bert":
        import embed

        model = embed.Embedder(path)
        model.embed(TEXTS, batch_size=2)
        model.count_tokens(TEXT)
    else:
        _selftest(kind, path)


def _selftest(kind: str, arg: str) -> None:
    """Jobs that check the runner and the worker themselves: a crash, a hang, and an index
    out of bounds inside a kernel (an IndexError only when the bounds-checked builds run)."""
    if kind == "abort":
        os.abort()
    elif kind == "sleep":
        time.sleep(float(arg))
    elif kind == "out-of-bounds":
        import numpy as np

        from llm import ops

        x = np.zeros((1, 2, 8), np.float32)  # (n, heads, head_dim)
        wide = np.ones((1, 32), np.float32)  # 32 rotated pairs in a head of 8: past its end
        ops.rope(x, wide, wide, False)
    else:
        raise SystemExit(f"unknown kind {kind!r}")


def run(job: dict, clock: _CompileClock) -> dict:
    from llm.errors import LlmError

    start, compiled = time.perf_counter(), clock.seconds
    try:
        exercise(job["kind"], job["path"])
        result = {"outcome": "ok", "class": None, "message": ""}
    except LlmError as exc:
        result = {"outcome": "error", "class": type(exc).__name__, "message": str(exc)[:400]}
    except Exception as exc:  # what the fuzzer looks for: anything outside the contract
        frames = traceback.format_exception(exc)
        result = {
            "outcome": "undocumented",
            "class": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": str(exc)[:400],
            "traceback": "".join(frames)[-3000:],
        }
    result["seconds"] = time.perf_counter() - start
    result["compile"] = clock.seconds - compiled
    return result


def main() -> None:
    out = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
    import warnings

    warnings.simplefilter("ignore")  # numpy's overflow warnings on random weights
    clock = _CompileClock()
    import embed  # noqa: F401
    import llm  # noqa: F401

    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        result = run(json.loads(line), clock)
        out.write(json.dumps(result) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
