"""Exact search and upsert throughput of the embedded store, each beside a peer from one run.

    python bench/bench_flat.py            # 200,000 x 384 search, 100,000 x 384 upserts
    python bench/bench_flat.py --quick    # smaller sizes

Search: a batch of 100 cosine queries, k=10, against numpy (rows normalized beforehand; per batch
normalize the queries, matmul, argpartition, sort the k), unfiltered and with a 10% filter (numpy
gets the boolean mask precomputed), on a flat collection. Upsert: batches of 1,000 with small
payloads into a collection with the default index (auto: HNSW from 20,000 points) and into a
flat one, against chromadb's PersistentClient add with its default settings. Ratios > 1 mean
we are faster.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import vdb  # noqa: E402
from bench.common import median_time, summary  # noqa: E402

DIM, NQ, K, BATCH = 384, 100, 10, 1000


def numpy_search(Xn, Q, k, mask=None):
    X = Xn if mask is None else Xn[mask]
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)  # (nq, dim)
    S = Qn @ X.T  # (nq, n)
    top = np.argpartition(-S, k, axis=1)[:, :k]  # (nq, k) unordered
    order = np.argsort(-np.take_along_axis(S, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def upsert_ours(path, X, payloads, index) -> float:
    def run():
        with vdb.open(path) as db:
            col = db.create_collection("bench", dim=DIM, index=index)
            for s in range(0, len(X), BATCH):
                col.upsert(list(range(s, s + BATCH)), X[s : s + BATCH], payloads[s : s + BATCH])

    return median_time(run, 1)


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
        ours = median_time(lambda: col.search(Q, k=K), args.repeats)
        peer = median_time(lambda: numpy_search(Xn, Q, K), args.repeats)
        lines.append(
            summary(
                f"exact search {n_search}x{DIM}, {NQ} queries, k={K}, queries/s",
                NQ / ours,
                NQ / peer,
                "numpy",
                "q/s",
                True,
            )
        )
        mask = bucket == 3
        flt = {"bucket": 3}
        ours = median_time(lambda: col.search(Q, k=K, filter=flt), args.repeats)
        peer = median_time(lambda: numpy_search(Xn, Q, K, mask), args.repeats)
        lines.append(
            summary(
                "exact search with 10% filter, queries/s",
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
        # the default index (auto: HNSW past 20,000 points, linked as each batch is written)
        # and a flat collection (records and payload columns only)
        for index in ("auto", "flat"):
            ours = n_upsert / upsert_ours(tmp / f"upsert-{index}", Xu, pu, index)
            what = f"upsert {n_upsert}x{DIM} in batches of {BATCH}, index={index}, points/s"
            if peer is None:
                lines.append(f"{what}: ours {ours:,.0f} | chromadb not installed")
            else:
                lines.append(summary(what, ours, peer, "chromadb", "pts/s", True))
        print("\n".join(lines))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
