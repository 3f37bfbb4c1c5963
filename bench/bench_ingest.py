"""Ingestion of the SQuAD paragraphs as documents beside bare embedding of the same texts.

    python bench/bench_ingest.py            # 913 paragraphs, one .txt file each
    python bench/bench_ingest.py --quick    # 200 paragraphs

Both sides use the default model on 2 threads in this process. Ingestion is `vdb.ingest`
end to end on a fresh embedded database: discovering and reading the files, chunking by
token counts, hashing, embedding, and the durable upserts; the peer figure is
Embedder.embed() of the same chunk texts alone (what any pipeline must spend). Most
paragraphs are one chunk; the few over the model's 254 tokens are two.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import embed  # noqa: E402
import vdb  # noqa: E402
from bench.bench_embed import load_squad  # noqa: E402
from vdb.ingest import ingest  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    paragraphs = load_squad(args.quick)[0]
    model = embed.load()
    model.embed(paragraphs[:8])  # compile and warm up
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for i, text in enumerate(paragraphs):
            (docs / f"p{i:04d}.txt").write_text(text, encoding="utf-8")
        bare, ours, chunks = [], [], None
        for run in range(args.runs):
            with vdb.open(Path(tmp) / f"db{run}") as db:
                report = ingest(db, [docs], "squad", batch_size=256)
                if chunks is None:
                    chunks = [r.document for r in db.get_collection("squad").scroll(limit=10**6)[0]]
            assert report.embedded == len(chunks), report
            ours.append(report.chunks_per_second)
            start = time.perf_counter()
            model.embed(chunks)
            bare.append(len(chunks) / (time.perf_counter() - start))
    bare.sort()
    ours.sort()
    b, o = bare[len(bare) // 2], ours[len(ours) // 2]
    print(f"{len(paragraphs)} paragraphs, {len(chunks)} chunks, median of {args.runs} runs")
    print(f"  bare embedding: {b:.1f} chunks/s")
    print(f"  vdb ingest:     {o:.1f} chunks/s")
    print(f"ingest: {o:.1f} chunks/s | bare embedding {b:.1f} | ratio {o / b:.2f}x")


if __name__ == "__main__":
    main()
