"""Index-level exact search, filtered and unfiltered, beside numpy on the pre-masked rows.

    python bench/bench_scan.py                  # 50,000 and 200,000 x 384
    python bench/bench_scan.py --sizes 20000    # a quick run

Times FlatIndex.search (the numba scan, plus the filter's mask evaluated by PayloadIndex.mask
for an equality filter on an int field) for a batch of 100 cosine queries, k=10, with no
filter and with equality filters that 10% and 1% of the rows pass. numpy gets the boolean mask
precomputed and its time includes the gather Xn[mask] (as in bench_flat.py): normalize the
queries, matmul, argpartition, sort the k. This is the index-level figure: col.search adds
reading records and building hits on top. Each engine is timed after a pause (see
settled_time), in --rounds alternating rounds; the figures are medians over rounds, and
the ratio of each round is shown. Ratios > 1 mean we are faster.
"""

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_flat import numpy_search  # noqa: E402
from bench.common import settled_time, summary  # noqa: E402
from vdb.filters import PayloadIndex, parse  # noqa: E402
from vdb.index import FlatIndex  # noqa: E402

DIM, NQ, K = 384, 100, 10


def setup(n: int, rng):
    """(index, payload index, Xn, queries, bucket (n,), shard (n,)) over n random rows."""
    X = rng.standard_normal((n, DIM), dtype=np.float32)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)  # (n, DIM)
    Q = rng.standard_normal((NQ, DIM), dtype=np.float32)
    bucket = rng.integers(0, 10, n)  # bucket == 3: 10% of the rows
    shard = rng.integers(0, 100, n)  # shard == 7: 1%
    index = FlatIndex(DIM, "cosine")
    index.set(np.arange(n, dtype=np.int64), Xn)
    payloads = PayloadIndex()
    payloads.reserve(n)
    payloads.set(
        range(n), [{"bucket": int(b), "shard": int(s)} for b, s in zip(bucket, shard, strict=True)]
    )
    return index, payloads, Xn, Q, bucket, shard


def ours(index, payloads, Q, node, n):
    """What col.search does below the collection: normalize, mask, scan."""
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    mask = None if node is None else payloads.mask(node, n)
    return index.search(Qn, K, mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=3, help="ratios are medians of rounds")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n in args.sizes:
        index, payloads, Xn, Q, bucket, shard = setup(n, rng)
        cases = [
            ("no filter", None, None),
            ("10% filter", {"bucket": 3}, bucket == 3),
            ("1% filter", {"shard": 7}, shard == 7),
        ]
        for label, flt, mask in cases:
            node = None if flt is None else parse(flt)
            runs = []
            for _ in range(args.rounds):
                t_ours = settled_time(lambda: ours(index, payloads, Q, node, n), args.repeats)  # noqa: B023
                t_peer = settled_time(lambda: numpy_search(Xn, Q, K, mask), args.repeats)  # noqa: B023
                runs.append((t_ours, t_peer))
            t_ours, t_peer = (statistics.median(t) for t in zip(*runs, strict=True))
            what = f"index-level exact search {n}x{DIM}, {label}, {NQ} queries, k={K}, queries/s"
            line = summary(what, NQ / t_ours, NQ / t_peer, "numpy", "q/s", True)
            rounds = ", ".join(f"{p / o:.2f}x" for o, p in runs)
            print(f"{line} (rounds: {rounds})", flush=True)


if __name__ == "__main__":
    main()
