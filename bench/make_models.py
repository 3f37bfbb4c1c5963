"""Write synthetic generation models at TinyLlama-1.1B shapes (22 layers, 2048 wide, 32 heads
over 4 KV heads, 5632 feed-forward, 32,000-token vocabulary): seeded random weights with the
real llama SentencePiece vocabulary, one file per weight type, for speed measurements.

    python bench/make_models.py                       # Q8_0, Q4_0, TQ2_0 into bench/models/
    python bench/make_models.py --types Q4_K --out /tmp/models
    python bench/make_models.py --types Q4_K_M        # needs llama-cpp-python

The token embedding and output matrix of ternary models are Q8_0, as ternary model files keep
them in a wider type. Q4_K_M is the mix people download (Q4_K, Q6_K for some matrices and the
output): llama.cpp's own quantizer makes it from the F16 model.
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm import synthetic  # noqa: E402

VOCAB = ROOT / "tests" / "fixtures" / "models" / "vocab" / "ggml-vocab-llama-spm.gguf"
DEFAULT_TYPES = ("Q8_0", "Q4_0", "TQ2_0")


def model_file(out: Path, qtype: str) -> Path:
    return out / f"tinyllama-synthetic.{qtype}.gguf"


LLAMA_FTYPES = {"Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}  # llama.cpp's LLAMA_FTYPE_MOSTLY_*


def make(out: Path, qtype: str, force: bool = False) -> Path:
    path = model_file(out, qtype)
    if path.exists() and not force:
        return path
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if qtype in LLAMA_FTYPES:  # a real mix, made by llama.cpp's quantizer from the F16 model
        quantize(make(out, "F16"), path, LLAMA_FTYPES[qtype])
        size = path.stat().st_size / 2**20
        print(f"{path}: {size:,.0f} MiB in {time.perf_counter() - start:.0f} s (llama.cpp)")
        return path
    embd = "Q8_0" if qtype.upper().startswith("TQ") else None
    tmp = path.with_suffix(".partial")
    synthetic.write(tmp, VOCAB, qtype=qtype, shape="tinyllama", embd_qtype=embd)
    tmp.replace(path)
    size = path.stat().st_size / 2**20
    print(f"{path}: {size:,.0f} MiB in {time.perf_counter() - start:.0f} s")
    return path


def quantize(src: Path, dst: Path, ftype: int) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    tmp = dst.with_suffix(".partial")
    if llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not quantize {src}")
    tmp.replace(dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--types", nargs="+", default=list(DEFAULT_TYPES))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "models")
    ap.add_argument("--force", action="store_true", help="rewrite files that exist")
    args = ap.parse_args()
    mixes = [q for q in args.types if q in LLAMA_FTYPES]
    if mixes and importlib.util.find_spec("llama_cpp") is None:
        sys.exit(f"{', '.join(mixes)}: made by llama.cpp's quantizer, pip install llama-cpp-python")
    for qtype in args.types:
        make(args.out, qtype, args.force)


if __name__ == "__main__":
    main()
