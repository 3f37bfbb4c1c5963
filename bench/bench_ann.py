"""HNSW against hnswlib and faiss-cpu (IndexHNSWFlat) from one run: recall@10 and QPS across ef,
build time at 1 and 2 threads, and memory; then the same graph through the public API.

    python bench/bench_ann.py              # clustered 100,000 x 128 and SIFT 4,000 + 1,000
    python bench/bench_ann.py --quick      # clustered 20,000 x 128 only
    python bench/bench_ann.py --dataset clustered --public-only   # the public API rows only

Index level: HnswIndex.search (the index alone, no collection around it). Public API: a
collection built through col.upsert in batches of 10,000 (payload {"n": i, "tag": str},
200-byte documents) at 2 threads, timed until the graph holds every point (info()["buffered"]
is 0), beside HnswIndex.set and hnswlib at 2 threads; then col.search at one thread without
payloads, with payloads and documents (the call, and the call plus reading every hit's
payload), and vdb.connect(...).search against a local `vdb serve` (NUMBA_NUM_THREADS=1),
each with all 1,000 queries in one call; and single-query latency p50.

Datasets: (1) 1,000 Gaussian centres from N(0, I) in 128-d, each point a centre plus noise of
spread U(1.0, 1.6) per cluster, seed 0, 1,000 queries from the same mixture; (2) the real SIFT
descriptors in sift-5k.tsv (first 4,000 rows base, last 1,000 queries; not in the repository:
found in ../shared/data/ or the directory VDB_BENCH_DATA names, else left out). Exact
ground truth by brute force. Everyone uses M=16, ef_construction=200, l2. QPS: one thread,
all queries in one batch call.
"""

import argparse
import copy
import sys
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, SIFT, data_file  # noqa: E402
from vdb.index import FlatIndex  # noqa: E402
from vdb.index.hnsw import HnswConfig, HnswIndex  # noqa: E402

M, EFC, K = 16, 200, 10
EFS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536)


def clustered(n, nq, dim=128, centres=1000, seed=0):
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((centres, dim)).astype(np.float32)
    spread = rng.uniform(1.0, 1.6, centres).astype(np.float32)
    lab = rng.integers(0, centres, n + nq)
    P = C[lab] + rng.standard_normal((n + nq, dim)).astype(np.float32) * spread[lab, None]
    return np.ascontiguousarray(P[:n]), np.ascontiguousarray(P[n:])


def sift():
    rows = np.loadtxt(data_file(SIFT), dtype=np.float32, delimiter="\t")
    P = rows[:, :128]  # the last column is an id
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
        return self.index.search(Q, K, None, ef=max(ef, K))[1]

    def memory(self):
        ix = self.index
        arrays = (
            ix.vectors[: ix.size],
            ix.codes[: ix.size],
            ix.code_norms[: ix.size],
            ix.links0[: ix.size],
            ix.counts0[: ix.size],
            ix.levels[: ix.size],
            ix.upper_row[: ix.size],
            ix.links_up[:, : ix.n_upper],
            ix.counts_up[:, : ix.n_upper],
        )
        return sum(a.nbytes for a in arrays)


class OursFloat(Ours):
    """The same graph as Ours, walked on the float32 vectors instead of the int8 codes."""

    name = "vdb-float32-walk"

    def __init__(self, ours: Ours):
        self.ours = ours

    def build(self, X, threads):
        self.index = self.ours.index

    def query(self, Q, ef):
        numba.set_num_threads(1)
        saved = self.index.config
        self.index.config = replace(saved, int8=False)
        try:
            return self.index.search(Q, K, None, ef=max(ef, K))[1]
        finally:
            self.index.config = saved


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
                if isinstance(system, OursFloat):
                    break
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
        if isinstance(system, OursFloat):
            print(f"{system.name}: the same graph as vdb, walked on float32 vectors")
        else:
            print(
                f"{system.name}: build {builds[1]:.2f} s (1 thread), {builds[2]:.2f} s "
                f"(2 threads); memory {system.memory() / 2**20:.1f} MiB"
            )
        print("  ef      " + " ".join(f"{ef:>7d}" for ef in EFS))
        print("  recall  " + " ".join(f"{r:7.4f}" for r, _ in curve))
        print("  QPS     " + " ".join(f"{q:7.0f}" for _, q in curve))
    ours = results.get("vdb")
    if ours and "vdb-float32-walk" in results:
        fc = results["vdb-float32-walk"][1]
        for target in (0.9, 0.95):
            q, fq = qps_at(ours[1], target), qps_at(fc, target)
            print(
                f"{name}: default walk vs float32 walk, QPS at recall@10={target}: {q:,.0f} | "
                f"{fq:,.0f} | ratio {q / fq:.2f}x"
            )
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
    ef95 = next((ef for ef, (r, _) in zip(EFS, ours[1], strict=True) if r >= 0.95), EFS[-1])
    filtered(name, systems[0].index, X, Q, ef95)
    return systems[0].index, gt, results


def filtered(name, index, X, Q, ef) -> None:
    """Recall@10 and QPS of filtered searches at the smallest ef whose unfiltered recall@10 is
    at least 0.95, against the exact answer over the matching rows."""
    numba.set_num_threads(1)
    rng = np.random.default_rng(1)
    flat = FlatIndex(X.shape[1], "l2")
    flat.set(np.arange(len(X), dtype=np.int64), X)
    for share in (0.5, 0.1, 0.01):
        mask = rng.random(len(X)) < share
        gt = flat.search(Q, K, mask)[1]
        index.search(Q[:5], K, mask, ef=ef)
        start = time.perf_counter()
        ids = index.search(Q, K, mask, ef=ef)[1]
        qps = len(Q) / (time.perf_counter() - start)
        full = float(np.mean((ids >= 0).sum(axis=1) == K))
        print(
            f"{name}: filtered search at ef={ef}, {share:.0%} of points match: recall@10 "
            f"{recall(ids, gt):.4f}, {qps:,.0f} QPS, share of queries with k hits {full:.2f}"
        )


def public(name, X, Q, gt, results, repeats, systems) -> None:
    """The public API on the same data: built through col.upsert, searched through col.search
    and through vdb.connect(...).search against a local server."""
    import os
    import shutil
    import tempfile

    import vdb
    from bench.bench_grpc import start_server

    n, dim = X.shape
    tmp = Path(tempfile.mkdtemp(prefix="vdb-bench-ann-"))
    payloads = [{"n": i, "tag": f"t{i % 10}"} for i in range(n)]
    documents = [f"document {i} ".ljust(200, "x") for i in range(n)]
    print(f"\n== {name} through the public API")
    try:
        numba.set_num_threads(2)
        db = vdb.open(tmp / "db")
        col = db.create_collection(
            "ann", dim=dim, metric="l2", index={"kind": "hnsw", "M": M, "ef_construction": EFC}
        )
        start = time.perf_counter()
        for s in range(0, n, 10_000):
            part = slice(s, s + 10_000)
            col.upsert(list(range(s, min(n, s + 10_000))), X[part], payloads[part], documents[part])
        acked = time.perf_counter() - start
        while col.info()["buffered"]:
            time.sleep(0.005)
        built = time.perf_counter() - start
        line = (
            f"{name}: build through col.upsert in batches of 10,000 at 2 threads: {built:.2f} s "
            f"until the graph holds every point (writes acknowledged after {acked:.2f} s)"
        )
        for peer in ("vdb", "hnswlib"):
            if peer in results:
                t = results[peer][0][2]  # build seconds at 2 threads
                label = "HnswIndex.set" if peer == "vdb" else peer
                line += f" | {label} {t:.2f} s (time ratio {built / t:.2f})"
        print(line)

        numba.set_num_threads(1)
        curves = {"col.search, no payloads": [], "col.search, payloads + documents": []}
        curves["the same, every hit's payload read"] = []
        bare = dict(with_payload=False, with_document=False)
        col.search(Q[:5], k=K, **bare)
        for ef in EFS:
            ids = col.search(Q, k=K, ef=ef, **bare).ids
            r = recall(ids, gt)
            calls = (
                lambda ef=ef: col.search(Q, k=K, ef=ef, **bare),
                lambda ef=ef: col.search(Q, k=K, ef=ef),
                lambda ef=ef: [h.payload for hits in col.search(Q, k=K, ef=ef) for h in hits],
            )
            for curve, call in zip(curves.values(), calls, strict=True):
                curve.append((r, len(Q) / min(_timed(call) for _ in range(repeats))))
        ef95 = next(
            (
                ef
                for ef, (r, _) in zip(EFS, curves["col.search, no payloads"], strict=True)
                if r >= 0.95
            ),
            EFS[-1],
        )
        peer = next((s for s in systems if isinstance(s, Hnswlib) and s.name in results), None)
        single = latency_p50(col, Q, ef95, peer)
        db.close()

        os.environ["NUMBA_NUM_THREADS"] = "1"
        try:
            proc, address = start_server(tmp / "db", cache=False)  # repeats must miss
        finally:
            del os.environ["NUMBA_NUM_THREADS"]
        try:
            rcol = vdb.connect(address).get_collection("ann")
            rcol.search(Q[:5], k=K, **bare)
            curve = curves["vdb.connect search, no payloads"] = []
            for ef in EFS:
                ids = rcol.search(Q, k=K, ef=ef, **bare).ids
                best = min(
                    _timed(lambda ef=ef: rcol.search(Q, k=K, ef=ef, **bare)) for _ in range(repeats)
                )
                curve.append((recall(ids, gt), len(Q) / best))
        finally:
            proc.terminate()
            proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for label, curve in curves.items():
        print(f"  {label}")
        print("    recall  " + " ".join(f"{r:7.4f}" for r, _ in curve))
        print("    QPS     " + " ".join(f"{q:7.0f}" for _, q in curve))
    index = results.get("vdb")
    for target in (0.9, 0.95, 0.99):
        for label, curve in curves.items():
            q = qps_at(curve, target)
            parts = [f"{name}: QPS at recall@10={target}, {label}: {q:,.0f}"]
            for peer in ("hnswlib", "faiss"):
                if peer in results:
                    pq = qps_at(results[peer][1], target)
                    parts.append(f"{peer} {pq:,.0f} (ratio {q / pq:.2f}x)")
            if index is not None:
                iq = qps_at(index[1], target)
                parts.append(f"index alone {iq:,.0f} (ratio {q / iq:.2f}x)")
            print(" | ".join(parts))
    print(
        f"{name}: one query at ef={ef95}, p50: "
        + " | ".join(f"{label} {us:.1f} us" for label, us in single.items())
    )


def latency_p50(col, Q, ef, hnsw_peer) -> dict:
    """Median microseconds of one-query calls (each of the 1,000 queries once, three passes),
    hnswlib's knn_query beside when given. The calls take turns, so a drift of the machine's
    speed during the passes weighs on each alike; each walks another query than the call before
    it (a query walked again finds its nodes in the caches), and the order of the turns
    rotates, so each path follows each other path (whose walk leaves the caches cold) as
    often."""
    index = col._index
    Qn = np.ascontiguousarray(Q, dtype=np.float32)
    calls = {
        "HnswIndex.search (index alone)": lambda q: index.search(Qn[q : q + 1], K, None, ef=ef),
        "col.search, no payloads": lambda q: col.search(
            Q[q], k=K, ef=ef, with_payload=False, with_document=False
        ),
        "col.search, payloads + documents": lambda q: col.search(Q[q], k=K, ef=ef),
    }
    if hnsw_peer is not None:
        hnsw_peer.index.set_ef(ef)
        hnsw_peer.index.set_num_threads(1)
        calls["hnswlib knn_query"] = lambda q: hnsw_peer.index.knn_query(Qn[q : q + 1], k=K)
    times = {label: [] for label in calls}
    items = list(calls.items())
    n, step = len(Q), len(Q) // len(items)
    for _ in range(3):
        for q in range(n):
            first = q % len(items)  # each path follows each other path as often
            for j in range(len(items)):
                label, call = items[(first + j) % len(items)]
                start = time.perf_counter()
                call((q + j * step) % n)
                times[label].append(time.perf_counter() - start)
    return {label: 1e6 * float(np.median(t)) for label, t in times.items()}


def renumber_experiment(index, Q, gt) -> None:
    """QPS of the built graph against a copy renumbered in BFS order over level 0, so that
    graph neighbours sit near each other in memory."""
    n = index.size
    seen = np.zeros(n, bool)
    order = []
    for start in [index.entry, *range(n)]:
        if seen[start]:
            continue
        seen[start] = True
        todo = deque([start])
        while todo:
            u = todo.popleft()
            order.append(u)
            for v in index.links0[u, : index.counts0[u]]:
                if not seen[v]:
                    seen[v] = True
                    todo.append(v)
    order = np.array(order)
    new_of = np.empty(n, np.int64)
    new_of[order] = np.arange(n)
    r = copy.copy(index)
    r._scratch = type(index._scratch)()
    r.vectors, r.codes, r.alive = index.vectors[order], index.codes[order], index.alive[order]
    r.code_norms = index.code_norms[order]
    r.links0 = new_of[index.links0[order]].astype(np.int32)
    r.counts0, r.levels = index.counts0[order], index.levels[order]
    r.upper_row = index.upper_row[order]
    r.links_up = index.links_up.copy()
    r.links_up[:, : index.n_upper] = new_of[index.links_up[:, : index.n_upper]]
    r.entry = int(new_of[index.entry])
    numba.set_num_threads(1)
    for ef in (64, 128, 256):
        row = []
        for ix, back in ((index, None), (r, order)):
            ix._graph_search(Q[:5], K, ef, None)
            best = min(
                _timed(lambda ix=ix, ef=ef: ix._graph_search(Q, K, ef, None)) for _ in range(3)
            )
            ids = ix._graph_search(Q, K, ef, None)[1]
            row.append((recall(ids if back is None else back[ids], gt), len(Q) / best))
        print(
            f"renumbering, ef={ef}: as built {row[0][1]:,.0f} QPS (recall {row[0][0]:.4f}) | "
            f"BFS-renumbered {row[1][1]:,.0f} QPS (recall {row[1][0]:.4f}) | "
            f"ratio {row[1][1] / row[0][1]:.2f}x"
        )


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller clustered set only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset", choices=("all", "clustered", "sift"), default="all")
    parser.add_argument(
        "--public-only",
        action="store_true",
        help="only the public-API rows (with hnswlib and the index alone beside them)",
    )
    parser.add_argument(
        "--renumber",
        action="store_true",
        help="also measure a BFS renumbering of the clustered graph",
    )
    args = parser.parse_args()
    with_sift = args.dataset in ("all", "sift") and not args.quick
    if args.dataset == "sift":
        data_file(SIFT)  # or one line saying where it goes, before anything runs
    elif with_sift and not (DATA / SIFT).is_file():
        print(f"{SIFT} is not in {DATA}/ (VDB_BENCH_DATA names its directory): no SIFT rows")
        with_sift = False
    ours = Ours()
    systems = [ours, Hnswlib()] if args.public_only else [ours, OursFloat(ours), Hnswlib(), Faiss()]
    n = 20_000 if args.quick else 100_000
    if args.dataset in ("all", "clustered"):
        X, Q = clustered(n, 1000)
        index, gt, results = run("clustered", X, Q, systems, args.repeats)
        public("clustered", X, Q, gt, results, args.repeats, systems)
        if args.renumber:
            renumber_experiment(index, Q, gt)
    if with_sift:
        _, gt, results = run("sift", *sift(), systems, args.repeats)
        if not args.public_only:
            public("sift", *sift(), gt, results, args.repeats, systems)


if __name__ == "__main__":
    main()
