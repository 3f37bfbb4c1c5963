"""Shared helpers: timing medians, the one-line summary format, and the benchmarks' data."""

import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The benchmarks' data sets are not in the repository: VDB_BENCH_DATA names their directory.
DATA = Path(os.environ.get("VDB_BENCH_DATA", ROOT.parent / "shared" / "data"))
SQUAD = "squad-v1.1-dev-part-a.json"
SIFT = "sift-5k.tsv"
DATA_SETS = {
    SQUAD: "SQuAD v1.1 dev part A: 24 articles, 913 paragraphs, 4,961 questions",
    SIFT: "5,000 SIFT descriptors, 128 integers and an id per row, tab-separated",
}


def data_file(name: str) -> Path:
    """A data set of the benchmarks, from DATA; when it is not there, one line saying which
    file is missing and where it goes, and exit status 2 (no traceback)."""
    path = DATA / name
    if not path.is_file():
        print(
            f"{sys.argv[0]}: {name} ({DATA_SETS[name]}) is missing: put it in {DATA}/ "
            "or set VDB_BENCH_DATA to the directory that holds it",
            file=sys.stderr,
        )
        sys.exit(2)
    return path


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


SETTLE = 0.5  # seconds of quiet before each engine is timed


def settled_time(fn, repeats: int) -> float:
    """median_time(fn) after a pause and one untimed call: OpenBLAS's threads spin for a while
    after numpy's matmul and would otherwise take the cores from the next engine timed."""
    time.sleep(SETTLE)
    fn()
    return median_time(fn, repeats)


def summary(
    name: str, ours: float, peer: float, peer_name: str, unit: str, higher_is_better: bool
) -> str:
    ratio = ours / peer if higher_is_better else peer / ours
    return f"{name}: ours {ours:,.2f} {unit} | {peer_name} {peer:,.2f} {unit} | ratio {ratio:.2f}x"


def llama_cpp_model(path, extra_bufts: bool = False, n_seq_max: int | None = None, **kwargs):
    """A llama_cpp.Llama on path, with the repacked weight buffers off unless extra_bufts:
    on CPUs with AMX, llama.cpp may crash on them (model params' use_extra_bufts, which
    llama-cpp-python does not expose: set here through the defaults Llama() reads), and
    room for n_seq_max sequences in its context when given (context params' n_seq_max,
    not exposed either)."""
    import llama_cpp
    import llama_cpp.llama

    bindings = llama_cpp.llama.llama_cpp  # the module Llama() reads its defaults from
    context = {} if n_seq_max is None else {"n_seq_max": n_seq_max}
    with (
        _defaults(bindings, "llama_model_default_params", use_extra_bufts=extra_bufts),
        _defaults(bindings, "llama_context_default_params", **context),
    ):
        return llama_cpp.Llama(model_path=str(path), verbose=False, **kwargs)


@contextlib.contextmanager
def _defaults(bindings, name: str, **fields):
    """bindings.<name>() gives its parameters with fields set, inside the block."""
    default = getattr(bindings, name)

    def params():
        p = default()
        for field, value in fields.items():
            setattr(p, field, value)
        return p

    setattr(bindings, name, params)
    try:
        yield
    finally:
        setattr(bindings, name, default)
