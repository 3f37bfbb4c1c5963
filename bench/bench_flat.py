"""Exact search and upsert throughput of the embedded store, each beside a peer from one run.

    python bench/bench_flat.py            # 200,000 x 384 search, 100,000 x 384 upserts
    python bench/bench_flat.py --quick    # smaller sizes

Search: a batch of 100 cosine queries, k=10, against numpy (rows normalized beforehand; per batch
normalize the queries, matmul, argpartition, sort the k), unfiltered and with a 10% filter (numpy
gets the boolean mask precomputed and gathers the rows in the timed call), on a flat collection,
through col.search returning ids and scores only (as numpy does) and with payloads (the
default). Upsert: batches of 1,000 with small payloads into a collection with the default index
(auto: HNSW from 20,000 points, linked by the background linker) and into a flat one, against
chromadb's PersistentClient add with its default settings; for the default index also the time
until the graph holds every point, beside hnswlib building the same points at 2 threads.
Ratios > 1 mean we are faster.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import vdb  # noqa: E402
from bench.common import median_time, settled_time, summary  # noqa: E402

DIM, NQ, K, BATCH = 384, 100, 10, 1000


def numpy_search(Xn, Q, k, mask=None):
    X = Xn if mask is None else Xn[mask]
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)  # (nq, dim)
    S = Qn @ X.T  # (nq, n)
    top = np.argpartition(-S, k, axis=1)[:, :k]  # (nq, k) unordered
    order = np.argsort(-np.take_along_axis(S, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def upsert_ours(path, X, payloads, index) -> tuple[float, float]:
    """(seconds until the last batch is acknowledged, seconds until the graph holds every
    point)."""
    with vdb.open(path) as db:
        col = db.create_collection("bench", dim=DIM, index=index)
        start = time.perf_counter()
        for s in range(0, len(X), BATCH):
            col.upsert(list(range(s, s + BATCH)), X[s : s + BATCH], payloads[s : s + BATCH])
        acked = time.perf_counter() - start
        while col.info()["buffered"]:
            time.sleep(0.005)
        return acked, time.perf_counter() - start


def build_hnswlib(X) -> float | None:
    try:
        import hnswlib
    except ImportError:
        return None
    index = hnswlib.Index(space="cosine", dim=DIM)
    index.init_index(max_elements=len(X), M=16, ef_construction=200, random_seed=0)
    index.set_num_threads(2)
    start = time.perf_counter()
    index.add_items(X, np.arange(len(X)))
    return time.perf_counter() - start


def upsert_chroma(path, X, payloads) -> float:
    import chromadb

    def run():
        client = chromadb.PersistentClient(path=str(path))
        col = client.create_collection("bench")
        for s in range(0, len(X), BATCH):
            col.add(
                ids=[str(i) for i in range(s, s + BATCH)],
                embeddings=X[s : s + BATCH],
                metadatas=payloads[s : s + BATCH],
            )

    return median_time(run, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n_search = 50_000 if args.quick else 200_000
    n_upsert = 20_000 if args.quick else 100_000
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_search, DIM), dtype=np.float32)
    Q = rng.standard_normal((NQ, DIM), dtype=np.float32)
    bucket = rng.integers(0, 10, n_search)
    payloads = [{"bucket": int(b), "tag": f"t{b}"} for b in bucket]
    tmp = Path(tempfile.mkdtemp(prefix="vdb-bench-"))
    try:
        lines = []
        db = vdb.open(tmp / "search")
        col = db.create_collection("bench", dim=DIM, index="flat")  # exact search throughout
        for s in range(0, n_search, 10_000):
            col.upsert(list(range(s, s + 10_000)), X[s : s + 10_000], payloads[s : s + 10_000])
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        col.search(Q[:2], k=K)  # compile / warm
        bare = dict(with_payload=False, with_document=False)
        mask = bucket == 3
        for what, flt, m in (("", None, None), (" with 10% filter", {"bucket": 3}, mask)):
            peer = settled_time(lambda flt=flt, m=m: numpy_search(Xn, Q, K, m), args.repeats)
            for how, kw in (("ids and scores", bare), ("with payloads", {})):
                ours = settled_time(
                    lambda flt=flt, kw=kw: col.search(Q, k=K, filter=flt, **kw), args.repeats
                )
                lines.append(
                    summary(
                        f"exact search{what} {n_search}x{DIM}, {NQ} queries, k={K}, {how}, "
                        "queries/s",
                        NQ / ours,
                        NQ / peer,
                        "numpy",
                        "q/s",
                        True,
                    )
                )
        db.close()

        Xu, pu = X[:n_upsert], payloads[:n_upsert]
        try:
            peer = n_upsert / upsert_chroma(tmp / "chroma", Xu, pu)
        except ImportError:
            peer = None
        # the default index (auto: HNSW past 20,000 points, linked by the background linker)
        # and a flat collection (records and payload columns only)
        for index in ("auto", "flat"):
            acked, linked = upsert_ours(tmp / f"upsert-{index}", Xu, pu, index)
            what = f"upsert {n_upsert}x{DIM} in batches of {BATCH}, index={index}, points/s"
            if peer is None:
                lines.append(f"{what}: ours {n_upsert / acked:,.0f} | chromadb not installed")
            else:
                lines.append(summary(what, n_upsert / acked, peer, "chromadb", "pts/s", True))
            if index == "auto":
                built = build_hnswlib(Xu)
                line = f"  graph complete {linked:.1f} s after the first upsert"
                if built is not None:
                    line += f" | hnswlib builds the same points in {built:.1f} s (2 threads)"
                lines.append(line)
        print("\n".join(lines))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
