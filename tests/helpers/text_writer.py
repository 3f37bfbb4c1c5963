"""A writer process for the keyword index crash tests: upserts batches of documents and prints
each acknowledged one.

Usage: python -m tests.helpers.text_writer DB_PATH START_BATCH [CHECKPOINT_EVERY [STOP_AFTER]]
With STOP_AFTER, the writer waits for a line on stdin before it writes, writes that many
batches, prints DONE and waits for stdin to close.
Batch b holds BATCH points with ids "b-i", payload {"batch": b} and documents from
batch_docs(b), each with the word tag_word(b); it also replaces the documents of the first
REPLACED points of batch b - 1 (in the same upsert, so both are written or neither). Every
third batch also deletes the points of batch b - 2 by filter, acknowledged as "DEL b-2".
"""

import random
import sys

import numpy as np

import vdb

BATCH = 30
REPLACED = 5
DIM = 8
WORDS = (
    "river stone bridge forest cloud engine signal harbor market winter garden silver "
    "lantern orbit canyon meadow pilot copper thunder valley"
).split()


def tag_word(b: int) -> str:
    return f"tag{b}x"


def batch_docs(b: int, version: int = 1) -> list[str]:
    rnd = random.Random(b * 7 + version)
    out = []
    for _ in range(BATCH):
        words = [rnd.choice(WORDS[: rnd.randint(2, len(WORDS))]) for _ in range(rnd.randint(3, 12))]
        out.append(" ".join(["the", tag_word(b), *words]))
    return out


def batch_ids(b: int) -> list[str]:
    return [f"{b}-{i}" for i in range(BATCH)]


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    stop = int(sys.argv[4]) if len(sys.argv) > 4 else None
    db = vdb.open(path, checkpoint_every=every)
    col = db.get_or_create_collection("t", DIM, "cosine", index="flat", text="en")
    rng = np.random.default_rng(start)
    print("READY", flush=True)
    if stop is not None:
        sys.stdin.readline()
    b = start
    while stop is None or b < start + stop:
        ids, docs = batch_ids(b), batch_docs(b)
        pays = [{"batch": b}] * BATCH
        if b > start:  # new documents for a few points of the batch before
            ids += batch_ids(b - 1)[:REPLACED]
            docs += batch_docs(b - 1, version=2)[:REPLACED]
            pays += [{"batch": b - 1}] * REPLACED
        vectors = rng.standard_normal((len(ids), DIM)).astype(np.float32)
        col.upsert(ids, vectors, payloads=pays, documents=docs)
        print(f"ACK {b}", flush=True)
        if b % 3 == 0 and b - 2 >= start:
            col.delete(filter={"batch": b - 2})
            print(f"DEL {b - 2}", flush=True)
        b += 1
    print("DONE", flush=True)
    sys.stdin.read()
    db.close()


if __name__ == "__main__":
    main()
