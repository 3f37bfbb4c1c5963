"""Sharded serving simulated on one machine: N `vdb serve` shards and a scatter-gather client.

    python bench/sim_shards.py            # 50,000 x 128 clustered, N = 1, 2, 4, 8, 400 queries
    python bench/sim_shards.py --quick    # 10,000 points, 100 queries

The points (bench_ann's clustered set: 1,000 Gaussian centres in 128-d, l2) are split by
a hash of their id (blake2b, 8 bytes, modulo N) into N collections, each built in its own
directory (HNSW, M=16, ef_construction=200, checkpointed) and served by its own `vdb serve`
process (one numba thread, query cache off). N = 1 is the unsharded collection. A client
sends each query to every shard at once (a thread and a connection per shard), asks each for
its best shard_k hits at the per-shard ef, and merges them by score into the global top 10.
It measures, per (N, ef, shard_k): recall@10 against exact ground truth (brute force) and
against the unsharded collection's answer at the same ef, and the latency of the whole
scatter-gather, p50 and p99, one query at a time. All N servers share this machine's 2 cores,
so the latencies hold the fan-out's cost (N calls, the slowest shard) but not the speed-up
of N machines each searching 1/N of the points.
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import vdb  # noqa: E402
from bench.bench_ann import EFC, K, M, clustered, recall, truth  # noqa: E402

SHARDS = (1, 2, 4, 8)
EFS = (16, 32, 64, 128)


def shard_of(ids: np.ndarray, n: int) -> np.ndarray:
    """The shard of each id: the first 8 bytes of blake2b(id) as an integer, modulo n."""
    digest = [hashlib.blake2b(int(i).to_bytes(8, "little"), digest_size=8).digest() for i in ids]
    return np.array([int.from_bytes(d, "little") % n for d in digest], dtype=np.int64)


def build(path: Path, ids: np.ndarray, X: np.ndarray) -> None:
    """A collection of the points in its own directory, its graph whole and checkpointed."""
    with vdb.open(path) as db:
        col = db.create_collection(
            "points",
            dim=X.shape[1],
            metric="l2",
            index={"kind": "hnsw", "M": M, "ef_construction": EFC},
        )
        for s in range(0, len(ids), 10_000):
            col.upsert(ids[s : s + 10_000].tolist(), X[s : s + 10_000])
        while col.info()["buffered"]:
            time.sleep(0.01)
        col.checkpoint()


def serve(path: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdb", "--data", str(path), "serve", "--port", "0", "--no-cache"]
        + ["--no-prepare-models"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    match = re.search(r" on (\S+:\d+) ", proc.stdout.readline())
    if not match:
        proc.kill()
        raise SystemExit("a shard server did not start")
    return proc, match.group(1)


class Router:
    """Scatter-gather over shard servers: each query to every shard at once, merged by
    score (l2: lower is better)."""

    def __init__(self, addresses: list[str]):
        self.dbs = [vdb.connect(a) for a in addresses]
        self.cols = [db.get_collection("points") for db in self.dbs]
        self.pool = ThreadPoolExecutor(max_workers=len(self.cols))

    def search(self, q: np.ndarray, k: int, shard_k: int, ef: int) -> list:
        def one(col):
            return col.search(q, k=shard_k, ef=ef, with_payload=False, with_document=False)

        hits = [h for part in self.pool.map(one, self.cols) for h in part]
        hits.sort(key=lambda h: h.score)
        return [h.id for h in hits[:k]]

    def close(self) -> None:
        self.pool.shutdown()
        for db in self.dbs:
            db.close()


def measure(router: Router, Q, shard_k: int, ef: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids (nq, K), latencies in ms) of the queries one at a time, after a warm-up."""
    for q in Q[:20]:
        router.search(q, K, shard_k, ef)
    ids, times = [], []
    for q in Q:
        start = time.perf_counter()
        ids.append(router.search(q, K, shard_k, ef))
        times.append((time.perf_counter() - start) * 1e3)
    return np.array(ids), np.array(times)


def shard_ks(shards: int) -> list[int]:
    """Hits asked of each shard: k, and (with several shards) ceil(2k / shards)."""
    return [K] if shards == 1 else sorted({K, -(-2 * K // shards)}, reverse=True)


def run(shards: int, tmp: Path, ids, X, Q, gt, unsharded: dict) -> None:
    """Build, serve and query one shard count; print its rows."""
    where = shard_of(ids, shards)
    started = time.perf_counter()
    for s in range(shards):
        build(tmp / f"s{s}", ids[where == s], X[where == s])
    built = time.perf_counter() - started
    sizes = np.bincount(where, minlength=shards)
    print(f"-- {shards} shard(s) of {sizes.min():,}-{sizes.max():,} points, built in {built:.1f} s")
    procs = []
    try:
        for s in range(shards):
            procs.append(serve(tmp / f"s{s}"))
        router = Router([address for _, address in procs])
        for ef in EFS:
            for shard_k in (k for k in shard_ks(shards) if k <= ef):
                got, ms = measure(router, Q, shard_k, ef)
                if shards == 1:
                    unsharded[ef] = got
                p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
                print(
                    f"{shards:6d} {ef:3d} {shard_k:8d} {recall(got, gt):18.3f} "
                    f"{recall(got, unsharded[ef]):25.3f} {p50:7.2f} {p99:7.2f}"
                )
        router.close()
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            proc.wait(60)
            proc.stdout.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10,000 points and 100 queries")
    ap.add_argument("--points", type=int)
    ap.add_argument("--queries", type=int)
    args = ap.parse_args()
    n = args.points or (10_000 if args.quick else 50_000)
    nq = args.queries or (100 if args.quick else 400)
    X, Q = clustered(n, nq)
    ids = np.arange(n, dtype=np.int64)
    gt = truth(X, Q)
    unsharded: dict[int, np.ndarray] = {}
    print(f"{n:,} x {X.shape[1]} clustered points, l2, {nq} queries, k={K}; latency of the whole")
    print("scatter-gather, one query at a time, all shards on this machine's 2 cores")
    print("shards  ef  shard_k  recall@10 (exact)  recall@10 (vs unsharded)  p50 ms  p99 ms")
    for shards in SHARDS:
        tmp = Path(tempfile.mkdtemp(prefix="vdb-sim-shards-"))
        try:
            run(shards, tmp, ids, X, Q, gt, unsharded)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
