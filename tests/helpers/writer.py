"""A writer process for the crash test: upserts batches and prints each acknowledged one.

Usage: python -m tests.helpers.writer DB_PATH START_BATCH [INDEX_KIND CHECKPOINT_EVERY]
Batch b holds BATCH points with ids "b-i", payload {"batch": b}, vectors from batch_vectors(b).
Every third batch also deletes the points of batch b - 2 by filter, acknowledged as "DEL b-2";
an HNSW collection is also compacted every fifth batch, so kills land inside compactions too.
"""

import sys

import numpy as np

import vdb

BATCH = 40
DIM = 16


def batch_vectors(b: int) -> np.ndarray:
    return np.random.default_rng(b).standard_normal((BATCH, DIM)).astype(np.float32)


def batch_ids(b: int) -> list[str]:
    return [f"{b}-{i}" for i in range(BATCH)]


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    kind = sys.argv[3] if len(sys.argv) > 3 else "auto"
    every = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
    db = vdb.open(path, checkpoint_every=every)
    col = db.get_or_create_collection("c", DIM, "l2", index=kind)
    print("READY", flush=True)
    b = start
    while True:
        col.upsert(batch_ids(b), batch_vectors(b), payloads=[{"batch": b}] * BATCH)
        print(f"ACK {b}", flush=True)
        if b % 3 == 0 and b - 2 >= start:
            col.delete(filter={"batch": b - 2})
            print(f"DEL {b - 2}", flush=True)
        if kind == "hnsw" and b % 5 == 0:
            col.compact()
        b += 1


if __name__ == "__main__":
    main()
