"""Fuzz the GGUF loaders: seeded mutants of small real and synthetic model files, each loaded
and exercised (tokenize, generate, chat, embed) in a worker subprocess with bounds-checked
kernels, an address-space limit and a timeout. Every mutant must load and run, or fail with
an error of the documented LlmError family; a crash, any other exception or a hang fails.

    python -m tests.fuzz.fuzz_gguf --count 3000 --seed 1
prints the count of each outcome and error class and every failure (with the base, index and
mutation, replayable with --only BASE:INDEX), and exits 1 if there was any.
"""

import argparse
import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.gguf_mutants import Base, mutant
from tests.fuzz.runner import Runner, worker_env

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
FAILURES = ("undocumented", "crash", "hang", "slow")
# (base name, workload, share of the mutants)
PLAN = [
    ("stories260K", "llm", 5),
    ("qwen2-Q8_0", "llm", 2),
    ("bitnet-TQ2_0", "llm", 1),
    ("llama-Q4_K", "llm", 1),
    ("bert-F32", "bert", 2),
    ("llama-spm", "vocab", 2),
    ("bert-bge", "vocab", 1),
    ("gpt2-2k", "vocab", 1),
]


def make_bases(directory: Path, names=None) -> list[Base]:
    """The well-formed files to mutate: fixtures as they are, synthetic models written
    (seeded) into directory."""
    from llm import synthetic

    stories = FIXTURES / "stories260K.gguf"
    vocab = FIXTURES / "vocab"
    small = dict(n_layers=2, d_model=256, n_heads=4, n_kv_heads=2, d_ff=256, context_length=64)

    def llama(arch, qtype):
        path = directory / f"{arch}-{qtype}.gguf"
        return synthetic.write(path, stories, arch=arch, qtype=qtype, shape=small, seed=3)

    makers = {
        "stories260K": lambda: stories,
        "qwen2-Q8_0": lambda: llama("qwen2", "Q8_0"),
        "bitnet-TQ2_0": lambda: llama("bitnet", "TQ2_0"),
        "llama-Q4_K": lambda: llama("llama", "Q4_K"),
        "bert-F32": lambda: synthetic.write_bert(
            directory / "bert-F32.gguf", vocab / "ggml-vocab-bert-bge.gguf", n_vocab=2048, seed=3
        ),
        "llama-spm": lambda: vocab / "ggml-vocab-llama-spm.gguf",
        "bert-bge": lambda: vocab / "ggml-vocab-bert-bge.gguf",
        "gpt2-2k": lambda: vocab / "gpt2-2k.gguf",
    }
    return [
        Base.load(makers[name](), kind, name)
        for name, kind, _ in PLAN
        if names is None or name in names
    ]


def schedule(bases: list[Base], count: int, only=None) -> list[tuple[Base, int]]:
    """(base, index) of each mutant: count shared among the bases by PLAN's weights."""
    if only:
        by_name = {b.name: b for b in bases}
        return [(by_name[name], int(i)) for name, i in (o.rsplit(":", 1) for o in only)]
    weights = {name: w for name, _, w in PLAN}
    total = sum(weights[b.name] for b in bases)
    jobs = []
    for b in bases:
        n = max(1, round(count * weights[b.name] / total))
        jobs += [(b, i) for i in range(n)]
    return jobs


def fuzz(bases, jobs, seed: int, runner: Runner, directory: Path, keep: Path | None = None):
    """Runs the unmutated bases, then each mutant; yields (base, index, what, result);
    index -1 is the unmutated base."""
    for base in bases:
        path = directory / f"{base.name}.base.gguf"
        path.write_bytes(base.raw)
        yield base, -1, "unmutated", runner.run({"kind": base.kind, "path": str(path)})
    for base, index in jobs:
        what, data = mutant(base, seed, index)
        path = directory / f"{base.name}-{index}.gguf"
        path.write_bytes(data)
        result = runner.run({"kind": base.kind, "path": str(path)})
        if keep is not None and result["outcome"] in FAILURES:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, keep / path.name)
        path.unlink()
        yield base, index, what, result


def report(results, seconds: float, runner: Runner, examples: int = 0, out=sys.stdout) -> list:
    """Prints the counts by outcome and class and the failures; returns the failures."""
    outcomes = collections.Counter(r["outcome"] for *_, r in results)
    classes = collections.Counter(
        f"{r['outcome']}: {r['class']}" for *_, r in results if r["class"] is not None
    )
    failures = [x for x in results if x[3]["outcome"] in FAILURES or (x[1] < 0 and x[3]["class"])]
    work = [r["seconds"] - r["compile"] for *_, r in results if "seconds" in r] or [0.0]
    print(
        f"{len(results)} files in {seconds:.0f} s ({runner.restarts} worker restarts, "
        f"worker peak RSS {runner.peak_rss / 2**20:.0f} MiB, slowest run "
        f"{max(work):.2f} s without compiling)",
        file=out,
    )
    for outcome, n in outcomes.most_common():
        print(f"  {outcome:13s} {n:6d}", file=out)
    for name, n in classes.most_common():
        print(f"    {name:40s} {n:6d}", file=out)
    by_operator = collections.defaultdict(collections.Counter)
    for _, index, what, r in results:
        if index >= 0:
            by_operator[what.split(":")[0]][r["outcome"]] += 1
    print(
        "  by mutation: "
        + ", ".join(
            f"{op} {sum(c.values())} ({c['ok']} ok)" for op, c in sorted(by_operator.items())
        ),
        file=out,
    )
    if examples:
        shown = collections.Counter()
        for base, index, what, r in results:
            if r["class"] and shown[r["class"]] < examples:
                shown[r["class"]] += 1
                print(
                    f"  e.g. {base.name}:{index} ({what}): {r['class']}: {r['message'][:200]}",
                    file=out,
                )
    for base, index, what, r in failures:
        print(
            f"FAILED {base.name}:{index} ({what}): {r['outcome']} {r['class']}: "
            f"{r['message'][:500]}",
            file=out,
        )
        if r.get("traceback"):
            print(r["traceback"], file=out)
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="mutants in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bases", nargs="*", help="only these bases (names in PLAN)")
    parser.add_argument("--only", nargs="*", help="replay these mutants (BASE:INDEX)")
    parser.add_argument("--keep", type=Path, help="copy failing mutants into this directory")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per file")
    parser.add_argument("--examples", type=int, default=0, help="messages shown per class")
    parser.add_argument(
        "--unchecked", action="store_true", help="run the ordinary kernels, not the bounds-checked"
    )
    args = parser.parse_args(argv)
    start = time.monotonic()
    env = worker_env(boundscheck=not args.unchecked)
    with tempfile.TemporaryDirectory() as tmp, Runner(env=env, timeout=args.timeout) as runner:
        directory = Path(tmp)
        bases = make_bases(directory, args.bases)
        jobs = schedule(bases, args.count, args.only)
        results = []
        for item in fuzz(bases, jobs, args.seed, runner, directory, args.keep):
            results.append(item)
            if len(results) % 100 == 0:
                print(f"... {len(results)} files", file=sys.stderr, flush=True)
        failures = report(results, time.monotonic() - start, runner, args.examples)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
