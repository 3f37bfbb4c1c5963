"""HNSW against hnswlib and faiss-cpu (IndexHNSWFlat) from one run: recall@10 and QPS across ef,
build time at 1 and 2 threads, and memory.

    python bench/bench_ann.py              # clustered 100,000 x 128 and SIFT 4,000 + 1,000
    python bench/bench_ann.py --quick      # clustered 20,000 x 128 only

Datasets: (1) 1,000 Gaussian centres from N(0, I) in 128-d, each point a centre plus noise of
spread U(1.0, 1.6) per cluster, seed 0, 1,000 queries from the same mixture; (2) the real SIFT
descriptors in ../shared/data/sift-5k.tsv (first 4,000 rows base, last 1,000 queries). Exact
ground truth by brute force. Everyone uses M=16, ef_construction=200, l2. QPS: one thread,
all queries in one batch call.
"""

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vdb.index import FlatIndex  # noqa: E402
from vdb.index.hnsw import HnswConfig, HnswIndex  # noqa: E402

M, EFC, K = 16, 200, 10
EFS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384)
SIFT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "sift-5k.tsv"


def clustered(n, nq, dim=128, centres=1000, seed=0):
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((centres, dim)).astype(np.float32)
    spread = rng.uniform(1.0, 1.6, centres).astype(np.float32)
    lab = rng.integers(0, centres, n + nq)
    P = C[lab] + rng.standard_normal((n + nq, dim)).astype(np.float32) * spread[lab, None]
    return np.ascontiguousarray(P[:n]), np.ascontiguousarray(P[n:])


def sift():
    P = np.loadtxt(SIFT, dtype=np.float32, delimiter="\t")
    return np.ascontiguousarray(P[:4000]), np.ascontiguousarray(P[4000:])


def truth(X, Q):
    flat = FlatIndex(X.shape[1], "l2")
    flat.set(np.arange(len(X), dtype=np.int64), X)
    return flat.search(Q, K)[1]


def recall(ids, gt) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, gt, strict=True)]))


class Ours:
    name = "vdb"

    def build(self, X, threads):
        numba.set_num_threads(threads)
        self.index = HnswIndex(X.shape[1], "l2", HnswConfig(M=M, ef_construction=EFC))
        self.index.set(np.arange(len(X), dtype=np.int64), X)

    def query(self, Q, ef):
        numba.set_num_threads(1)
        return self.index._graph_search(Q, K, max(ef, K), None)[1]

    def memory(self):
        ix = self.index
        arrays = (
            ix.vectors[: ix.size],
            ix.links0[: ix.size],
            ix.counts0[: ix.size],
            ix.levels[: ix.size],
            ix.upper_row[: ix.size],
            ix.links_up[:, : ix.n_upper],
            ix.counts_up[:, : ix.n_upper],
        )
        return sum(a.nbytes for a in arrays)


class Hnswlib:
    name = "hnswlib"

    def build(self, X, threads):
        import hnswlib

        self.index = hnswlib.Index(space="l2", dim=X.shape[1])
        self.index.init_index(max_elements=len(X), M=M, ef_construction=EFC, random_seed=0)
        self.index.set_num_threads(threads)
        self.index.add_items(X, np.arange(len(X)))

    def query(self, Q, ef):
        self.index.set_num_threads(1)
        self.index.set_ef(max(ef, K))
        return self.index.knn_query(Q, k=K)[0]

    def memory(self):
        return self.index.index_file_size()


class Faiss:
    name = "faiss"

    def build(self, X, threads):
        import faiss

        faiss.omp_set_num_threads(threads)
        self.index = faiss.IndexHNSWFlat(X.shape[1], M)
        self.index.hnsw.efConstruction = EFC
        self.index.add(X)

    def query(self, Q, ef):
        import faiss

        faiss.omp_set_num_threads(1)
        self.index.hnsw.efSearch = max(ef, K)
        return self.index.search(Q, K)[1]

    def memory(self):
        import faiss

        return len(faiss.serialize_index(self.index))


def qps_at(curve, target):
    """QPS at a recall level, interpolated linearly between the ef points around it."""
    pts = sorted(curve)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:], strict=False):
        if r0 <= target <= r1:
            return q0 if r1 == r0 else q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    return float("nan")


def run(name, X, Q, systems, repeats):
    gt = truth(X, Q)
    print(f"\n== {name}: {len(X)} x {X.shape[1]}, {len(Q)} queries, k={K}")
    results = {}
    for system in systems:
        try:
            builds = {}
            for threads in (1, 2):
                start = time.perf_counter()
                system.build(X, threads)
                builds[threads] = time.perf_counter() - start
        except ImportError:
            print(f"{system.name}: not installed (pip install -e '.[bench]')")
            continue
        system.query(Q[:5], 16)  # warm up
        curve = []
        for ef in EFS:
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                ids = system.query(Q, ef)
                best = min(best, time.perf_counter() - start)
            curve.append((recall(ids, gt), len(Q) / best))
        results[system.name] = (builds, curve, system.memory())
        print(
            f"{system.name}: build {builds[1]:.2f} s (1 thread), {builds[2]:.2f} s (2 threads); "
            f"memory {system.memory() / 2**20:.1f} MiB"
        )
        print("  ef      " + " ".join(f"{ef:>7d}" for ef in EFS))
        print("  recall  " + " ".join(f"{r:7.4f}" for r, _ in curve))
        print("  QPS     " + " ".join(f"{q:7.0f}" for _, q in curve))
    ours = results.get("vdb")
    for peer in ("hnswlib", "faiss"):
        if ours is None or peer not in results:
            continue
        pb, pc, pm = results[peer]
        for threads in (1, 2):
            rate = len(X) / ours[0][threads]
            prate = len(X) / pb[threads]
            print(
                f"{name}: build throughput at {threads} thread(s): ours {rate:,.0f} pts/s | "
                f"{peer} {prate:,.0f} pts/s | ratio {rate / prate:.2f}x"
            )
        for target in (0.9, 0.95, 0.99):
            q, pq = qps_at(ours[1], target), qps_at(pc, target)
            print(
                f"{name}: QPS at recall@10={target}: ours {q:,.0f} | {peer} {pq:,.0f} | "
                f"ratio {q / pq:.2f}x"
            )
        print(f"{name}: memory: ours {ours[2] / 2**20:.1f} MiB | {peer} {pm / 2**20:.1f} MiB")
    print(f"{name}: best recall@10 reached by vdb: {max(r for r, _ in ours[1]):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller clustered set only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    systems = [Ours(), Hnswlib(), Faiss()]
    n = 20_000 if args.quick else 100_000
    run("clustered", *clustered(n, 1000), systems, args.repeats)
    if not args.quick and SIFT.exists():
        run("sift", *sift(), systems, args.repeats)


if __name__ == "__main__":
    main()
