"""Speed of a generation model on this machine: prompt processing and generation tokens/s,
time to first token and inter-token latency percentiles. Used by `vdb llm bench` and
bench/bench_generate.py."""

import resource
import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BenchResult:
    prompt_tokens: int
    gen_tokens: int
    prompt_tps: float  # prompt tokens per second (one batched prefill)
    gen_tps: float  # generated tokens per second
    ttft_ms: float  # prefill plus the first token's pick
    itl_p50_ms: float  # inter-token latency percentiles
    itl_p90_ms: float
    itl_p99_ms: float
    peak_rss_mib: float  # of this process, so far

    def as_dict(self) -> dict:
        return asdict(self)


def prompt_ids(vocab_size: int, n: int, seed: int = 0) -> list[int]:
    """n token ids drawn from the ordinary part of the vocabulary, seeded."""
    rng = np.random.default_rng(seed)
    low = min(100, vocab_size // 2)
    return rng.integers(low, vocab_size, size=n).tolist()


def run(model, prompt_tokens: int = 512, gen_tokens: int = 128, seed: int = 0) -> BenchResult:
    """Prefill a random prompt of prompt_tokens, then generate gen_tokens greedily, through
    model.generate as a user calls it (end-of-generation tokens banned, so that every run
    measures the same number of steps; the prefix cache cleared first)."""
    vocab = model.config.vocab_size  # (generate refuses a prompt and tokens past n_ctx)
    ban = {t: float("-inf") for t in model.tokenizer.end_ids}
    _warm(model)
    model.prefix_cache.clear()
    run = model.generate(
        prompt_ids(vocab, prompt_tokens, seed), gen_tokens, stream=True, temperature=0,
        logit_bias=ban,
    )  # fmt: skip
    start = time.perf_counter()
    stamps = []
    for _ in iter(run.step, None):
        if run.completion_tokens > len(stamps):
            stamps.append(time.perf_counter())
    first = stamps[0]
    steps = np.diff(stamps)
    gaps = (steps if len(steps) else np.zeros(1)) * 1e3
    return BenchResult(
        prompt_tokens=prompt_tokens,
        gen_tokens=gen_tokens,
        prompt_tps=prompt_tokens / (first - start),
        gen_tps=len(steps) / max(float(steps.sum()), 1e-9),
        ttft_ms=(first - start) * 1e3,
        itl_p50_ms=float(np.percentile(gaps, 50)),
        itl_p90_ms=float(np.percentile(gaps, 90)),
        itl_p99_ms=float(np.percentile(gaps, 99)),
        peak_rss_mib=peak_rss_mib(),
    )


def _warm(model, streams: int = 1) -> None:
    """A short generation of streams at once (loads the kernels numba has compiled before,
    or compiles them), through model.generate as the measured runs go."""
    import threading

    vocab = model.config.vocab_size
    n = max(1, min(9, model.n_ctx - 2))  # a prompt and a token or two that fit the context
    threads = [
        threading.Thread(
            target=model.generate,
            args=(prompt_ids(vocab, n, seed=1000 + i), min(2, model.n_ctx - n)),
            kwargs={"temperature": 0},
        )  # fmt: skip
        for i in range(streams)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: VmHWM, the high-water mark of its own
    memory map. getrusage's maxrss also counts the process it was forked from (Linux keeps
    the larger across exec), which made a benchmark's workers report their parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class ParallelResult:
    streams: int
    prompt_tokens: int
    gen_tokens: int
    aggregate_tps: float  # tokens decoded per second while every stream was decoding
    overall_tps: float  # tokens decoded by all streams per second, first token to last
    stream_tps: list  # each stream's tokens per second after its first token
    ttft_ms: list  # the streams' times to first token, shortest first
    steps: int  # forward passes the batcher ran
    widest: int  # most streams decoded in one of them
    wall_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def run_parallel(
    model, streams: int, prompt_tokens: int = 512, gen_tokens: int = 128, prefill_chunk=None
) -> ParallelResult:
    """streams generations started together from threads (random prompts of prompt_tokens,
    each its own), each generating gen_tokens greedily through
    model.generate (end-of-generation tokens banned, so every stream runs its length); their
    forward passes are batched by the model's Batcher."""
    import threading

    vocab = model.config.vocab_size
    _warm(model, min(streams, 2))
    model.prefix_cache.clear()  # every stream's prompt computed, as on its first arrival
    ban = {t: float("-inf") for t in model.tokenizer.end_ids}
    steps0 = model.batcher.steps
    model.batcher.widest = 0
    first = [0.0] * streams
    end = [0.0] * streams
    made = [0] * streams
    stamps: list[list[float]] = [[] for _ in range(streams)]  # when each token came
    start = time.perf_counter()

    def one(i):
        run = model.generate(
            prompt_ids(vocab, prompt_tokens, seed=i),
            gen_tokens,
            stream=True,
            temperature=0,
            logit_bias=ban,
            prefill_chunk=prefill_chunk,
        )
        seen = 0
        for _ in iter(run.step, None):  # a step: a prompt chunk or a token
            if run.completion_tokens > seen:
                seen = run.completion_tokens
                stamps[i].append(time.perf_counter())
                first[i] = first[i] or stamps[i][-1]
        end[i] = time.perf_counter()
        made[i] = run.completion_tokens

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    decode = sum(m - 1 for m in made)
    a, b = max(first), min(end)  # every stream decoding
    inside = sum(a < t <= b for ts in stamps for t in ts)
    return ParallelResult(
        streams=streams,
        prompt_tokens=prompt_tokens,
        gen_tokens=gen_tokens,
        aggregate_tps=inside / (b - a) if b > a else decode / max(max(end) - min(first), 1e-9),
        overall_tps=decode / max(max(end) - min(first), 1e-9),
        stream_tps=[(m - 1) / max(e - f, 1e-9) for m, f, e in zip(made, first, end, strict=True)],
        ttft_ms=sorted((f - start) * 1e3 for f in first),
        steps=model.batcher.steps - steps0,
        widest=model.batcher.widest,
        wall_s=max(end) - start,
    )
