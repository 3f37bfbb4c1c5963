"""Time to open a persisted HNSW collection, beside hnswlib's load_index, from one run.

    python bench/bench_open.py            # 1,000,000 x 128
    python bench/bench_open.py --quick    # 200,000 x 128

Ours: a collection built with index="hnsw" (M=16, ef_construction=200) is closed, which writes
its checkpoint; opening maps the checkpoint, verifies it whole (checksums, stamps, shapes, graph
bounds) and replays the op log.
hnswlib: the same data, saved with save_index and read back with load_index.
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
from bench.bench_ann import clustered  # noqa: E402

DIM, BATCH = 128, 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 points instead of 1M")
    args = parser.parse_args()
    n = 200_000 if args.quick else 1_000_000
    X, Q = clustered(n, 100)
    tmp = Path(tempfile.mkdtemp(prefix="vdb-open-"))
    try:
        start = time.perf_counter()
        with vdb.open(tmp / "db", checkpoint_every=10 * n) as db:
            col = db.create_collection("c", dim=DIM, metric="l2", index="hnsw")
            for s in range(0, n, BATCH):
                col.upsert(list(range(s, s + BATCH)), X[s : s + BATCH])
            built = time.perf_counter() - start
            start = time.perf_counter()
        closed = time.perf_counter() - start
        print(f"built {n} x {DIM} in {built:.1f} s; close with checkpoint {closed:.1f} s")
        start = time.perf_counter()
        db = vdb.open(tmp / "db")
        col = db.get_collection("c")
        opened = time.perf_counter() - start
        assert col.info()["loaded_from"] == "checkpoint"
        hits = col.search(Q[:10], k=10)
        assert all(len(h) == 10 for h in hits)
        db.close()
        try:
            import hnswlib
        except ImportError:
            print(f"open {n} x {DIM} HNSW collection: ours {opened:.2f} s | hnswlib not installed")
            return
        index = hnswlib.Index(space="l2", dim=DIM)
        index.init_index(max_elements=n, M=16, ef_construction=200)
        index.set_num_threads(2)
        index.add_items(X, np.arange(n))
        index.save_index(str(tmp / "hnswlib.bin"))
        del index
        start = time.perf_counter()
        index = hnswlib.Index(space="l2", dim=DIM)
        index.load_index(str(tmp / "hnswlib.bin"))
        peer = time.perf_counter() - start
        print(
            f"open {n} x {DIM} HNSW index: ours {opened:.2f} s | hnswlib load_index "
            f"{peer:.2f} s | ratio {peer / opened:.2f}x"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
