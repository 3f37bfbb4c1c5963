"""The keyword index at scale: 1,000,000 chunks made by recombining SQuAD v1.1 dev part A
sentences, beside bm25s indexing the same chunks, from one run.

    python bench/bench_sparse.py                     # 1,000,000 chunks
    python bench/bench_sparse.py --chunks 50000      # a smoke run
    python bench/bench_sparse.py --no-peer

Each chunk joins 3 to 6 sentences drawn at random (seeded) from all the sentences of part A;
its vector is the normalized mean of its sentences' embeddings (the memory default model,
all-MiniLM-L6-v2:q8_0; the sentences are embedded once and cached in bench/.cache/), so the
dense half of a hybrid query has real neighbours without embedding a million texts. The
chunks go into one collection with a keyword index (text="en") in upserts of 10,000; the
HNSW graph is then linked in full before anything is timed.

Reported:
- the keyword index's share of a 1,000-chunk upsert into the full collection: the time spent
  analyzing the chunks and updating the index (Collection._text_terms and _text_set, timed
  inside real upserts of new chunks, each after the HNSW linker has linked the one before),
  p50 and max over the upserts (the max includes merges of segments), beside the whole
  upsert's time (the floor: p50 <= 50 ms);
- keyword search p50 / p99 (col.search(text=question, k=10), payloads and documents
  returned; the floor: p50 <= 20 ms) and hybrid p50 / p99 (col.search(vector, text=question,
  k=10), the question embedded beforehand; the floor: p50 <= 30 ms), over the SQuAD questions;
- the keyword index's size on disk (its checkpoint file) and in memory (its arrays and
  term dictionary);
- the peer, bm25s (vdb.text.bm25: the same stop words and stemmer, the same scoring): its full
  index build over the same chunks (what every write cost before the keyword index was the
  store's) and its query time, tokenizing included.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import vdb  # noqa: E402
from bench.bench_memory import embed_cached, load_squad  # noqa: E402
from vdb.collection_text import TextIndexed  # noqa: E402

BATCH = 10_000  # chunks per upsert while building
UPSERT = 1_000  # chunks per timed upsert
UPSERTS = 20
QUERIES = 1_000
WARMUP = 30
FLOORS_MS = {"upsert": 50.0, "keyword": 20.0, "hybrid": 30.0}


def make_chunks(sentences: list[str], svecs: np.ndarray, n: int, seed: int):
    """n chunks (texts, vectors): 3 to 6 random sentences each."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 7, n)
    picks = rng.integers(0, len(sentences), int(sizes.sum()))
    ends = np.cumsum(sizes)
    starts = ends - sizes
    texts = [" ".join(sentences[j] for j in picks[a:b]) for a, b in zip(starts, ends, strict=True)]
    vecs = np.add.reduceat(svecs[picks], starts, axis=0)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return texts, vecs.astype(np.float32)


def pct(times: list[float]) -> tuple[float, float]:
    ms = np.asarray(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def timed(fn, args: list) -> list[float]:
    for a in args[:WARMUP]:
        fn(a)
    out = []
    for a in args:
        start = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - start)
    return out


class TextTimer:
    """Adds up the time a collection spends in its keyword index's part of upserts."""

    def __init__(self, col):
        self.spent = 0.0
        for name in ("_text_terms", "_text_set"):
            method = getattr(TextIndexed, name)

            def wrapper(*a, _method=method, **kw):
                start = time.perf_counter()
                try:
                    return _method(col, *a, **kw)
                finally:
                    self.spent += time.perf_counter() - start

            setattr(col, name, wrapper)


def text_index_bytes(col) -> int:
    """Bytes of the keyword index in memory: its arrays, and its term dictionary and list."""
    index = col._text
    total = index.stats()["array_bytes"]
    total += sys.getsizeof(index.terms) + sys.getsizeof(index.term_list)
    total += sum(sys.getsizeof(t) for t in index.term_list)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peer", action="store_true", help="skip bm25s")
    args = parser.parse_args()

    rows, questions, _, spans_of = load_squad()
    sentences = [r[2] for r in rows]
    asked = [q[0] for q in questions][:QUERIES]
    tmp = Path(tempfile.mkdtemp(prefix="vdb-bench-sparse-"))
    db = vdb.open(tmp / "db")
    try:
        import embed
        from vdb.database import MEMORY_EMBEDDER

        embedder = embed.load(MEMORY_EMBEDDER)
        svecs = embed_cached(embedder, sentences, "sentences")
        qvecs = embed_cached(embedder, asked, "questions")
        total = args.chunks + UPSERT * UPSERTS
        texts, vecs = make_chunks(sentences, svecs, total, args.seed)
        words = sum(len(t.split()) for t in texts[: args.chunks]) / args.chunks
        print(
            f"{args.chunks:,} chunks of {words:.0f} words on average from {len(sentences):,} "
            f"sentences; {len(asked):,} questions",
            flush=True,
        )

        col = db.create_collection("chunks", vecs.shape[1], text="en")
        start = time.perf_counter()
        for s in range(0, args.chunks, BATCH):
            e = min(s + BATCH, args.chunks)
            col.upsert(list(range(s, e)), vecs[s:e], documents=texts[s:e])
            if (e // BATCH) % 10 == 0 or e == args.chunks:
                print(f"  upserted {e:,} ({time.perf_counter() - start:.0f} s)", flush=True)
        t_load = time.perf_counter() - start
        while col.info()["buffered"]:
            time.sleep(1.0)
        t_linked = time.perf_counter() - start
        print(
            f"loaded in {t_load:.0f} s (keyword index built along), HNSW graph linked after "
            f"{t_linked:.0f} s",
            flush=True,
        )

        # a 1,000-chunk upsert into the full collection
        timer = TextTimer(col)
        spent, whole = [], []
        for u in range(UPSERTS):
            s = args.chunks + u * UPSERT
            timer.spent = 0.0
            t0 = time.perf_counter()
            col.upsert(
                list(range(s, s + UPSERT)), vecs[s : s + UPSERT], documents=texts[s : s + UPSERT]
            )
            whole.append(time.perf_counter() - t0)
            spent.append(timer.spent)
            while col.info()["buffered"]:  # the linker done before the next one is timed
                time.sleep(0.05)
        up_p50 = statistics.median(spent) * 1000
        print(
            f"\n1,000-chunk upsert into {args.chunks:,}: keyword index p50 {up_p50:.1f} ms, max "
            f"{max(spent) * 1000:.1f} ms (the whole upsert p50 "
            f"{statistics.median(whole) * 1000:.1f} ms, max {max(whole) * 1000:.1f} ms)"
        )

        # queries
        def keyword(q):
            return col.search(text=q, k=10)

        def hybrid(i):
            return col.search(qvecs[i], text=asked[i], k=10)

        def dense(i):
            return col.search(qvecs[i], k=10)

        kw = pct(timed(keyword, asked))
        hy = pct(timed(hybrid, list(range(len(asked)))))
        de = pct(timed(dense, list(range(len(asked)))))
        print(f"keyword search: p50 {kw[0]:.2f} ms, p99 {kw[1]:.2f} ms")
        print(f"hybrid search (convex): p50 {hy[0]:.2f} ms, p99 {hy[1]:.2f} ms")
        print(f"dense search alone: p50 {de[0]:.2f} ms, p99 {de[1]:.2f} ms")

        col.checkpoint()
        disk = sum(p.stat().st_size for p in (tmp / "db" / "index").glob("*.ckpt-text"))
        mem_bytes = text_index_bytes(col)
        st = col._text.stats()
        print(
            f"keyword index: {st['documents']:,} texts, {st['terms']:,} terms, "
            f"{st['postings']:,} postings in {st['segments']} segment(s); "
            f"{disk / 2**20:,.1f} MiB on disk, {mem_bytes / 2**20:,.1f} MiB in memory"
        )

        peer = None
        if not args.no_peer:
            from vdb.text import bm25

            n = args.chunks + UPSERT * UPSERTS
            start = time.perf_counter()
            index = bm25.Bm25Index(texts[:n])
            t_build = time.perf_counter() - start
            pq = pct(timed(lambda q: index.search(q, 10), asked))
            peer = (t_build, pq)
            print(
                f"\nbm25s (peer): full index build over the same {n:,} chunks {t_build:.1f} s; "
                f"query (tokenizing included) p50 {pq[0]:.2f} ms, p99 {pq[1]:.2f} ms"
            )

        print(f"\n{'':38s}{'ours':>12s}{'bm25s':>14s}")
        cells = [
            ("update after a 1,000-chunk upsert", f"{up_p50:.1f} ms", peer and f"{peer[0]:.1f} s"),
            ("keyword query p50", f"{kw[0]:.2f} ms", peer and f"{peer[1][0]:.2f} ms"),
            ("keyword query p99", f"{kw[1]:.2f} ms", peer and f"{peer[1][1]:.2f} ms"),
            ("hybrid query p50", f"{hy[0]:.2f} ms", None),
            ("index on disk", f"{disk / 2**20:,.0f} MiB", None),
            ("index in memory", f"{mem_bytes / 2**20:,.0f} MiB", None),
        ]
        for name, ours, theirs in cells:
            print(f"{name:38s}{ours:>12s}{(theirs or '-'):>14s}")
        print()
        for name, got in (("upsert", up_p50), ("keyword", kw[0]), ("hybrid", hy[0])):
            floor = FLOORS_MS[name]
            print(
                f"floor: {name} p50 <= {floor:g} ms at {args.chunks:,} chunks: "
                f"{'PASS' if got <= floor else 'FAIL'} ({got:.2f} ms)"
            )
    finally:
        db.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
