"""Write tests/golden/synthetic.npz: llama.cpp's logits for a small synthetic model of every
architecture and weight type (llm.synthetic, seeded), on one prompt.

Needs llama-cpp-python (pip install llama-cpp-python); the models use the vocabulary of
tests/fixtures/models/stories260K.gguf. Run from the repository root:
    python tests/golden/make_synthetic.py [ARCH ...]
With architectures named, only their cases are computed and merged into the existing file.
"""

import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from llm import quants, synthetic  # noqa: E402

VOCAB = ROOT / "tests" / "fixtures" / "models" / "stories260K.gguf"
OUT = ROOT / "tests" / "golden" / "synthetic.npz"
PROMPT = [1, 403, 68, 297, 30, 416, 261, 45, 365, 278, 13, 320]
POSITIONS = [0, 9, 10, 11]  # our engine: 10 tokens of prefill, then two single steps
# phi3 needs its own vocabulary (llama.cpp looks its special tokens up): 32,064 rows of
# embeddings, so only the types of a K-quant mix and F32
PHI3_TYPES = ("F32", "Q8_0", "Q5_0", "Q4_K", "Q6_K")
CASES = [
    (arch, q.name)
    for arch in synthetic.ARCHITECTURES
    for q in quants.SUPPORTED
    if arch != "phi3" or q.name in PHI3_TYPES
]


def model_path(directory, arch, qtype, vocab=VOCAB) -> Path:
    """The seeded synthetic model of arch in qtype; vocab: stories260K.gguf, beside which
    vocab/ holds the phi-3 vocabulary."""
    if arch == "phi3":
        vocab = Path(vocab).parent / "vocab" / "ggml-vocab-phi-3.gguf"
    return synthetic.write(
        Path(directory) / f"{arch}-{qtype}.gguf", vocab, arch=arch, qtype=qtype, seed=1
    )


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def our_logits(model) -> np.ndarray:
    """Our engine's logits at POSITIONS: a batched prefill, then single decode steps."""
    prefill = 10
    cache = model.net.new_cache(64)
    first = model.net.forward(PROMPT[:prefill], cache, all_logits=True)
    steps = [model.net.forward([t], cache) for t in PROMPT[prefill:]]
    return np.vstack([first, steps])[POSITIONS]


def llama_cpp_logits(path) -> np.ndarray:
    from bench.common import llama_cpp_model

    model = llama_cpp_model(path, n_ctx=64, logits_all=True, n_threads=2)
    model.eval(PROMPT)
    return np.array(model.scores[: len(PROMPT)], dtype=np.float32)[POSITIONS]


def main():
    only = sys.argv[1:]
    golden = {"prompt": np.array(PROMPT), "positions": np.array(POSITIONS)}
    if only:
        golden.update(np.load(OUT))
    with tempfile.TemporaryDirectory() as tmp:
        for arch, qtype in CASES:
            if only and arch not in only:
                continue
            path = model_path(tmp, arch, qtype)
            golden[f"{arch}-{qtype}"] = llama_cpp_logits(path)
            golden[f"{arch}-{qtype}-sha256"] = np.array(digest(path))
            print(arch, qtype, golden[f"{arch}-{qtype}"][-1, :3])
    np.savez_compressed(OUT, **golden)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
