"""Ingestion of the SQuAD paragraphs as documents beside bare embedding of the same texts.

    python bench/bench_ingest.py            # 913 paragraphs, one .txt file each
    python bench/bench_ingest.py --quick    # 200 paragraphs
    python bench/bench_ingest.py --ray      # also through Ray Data with 1 and 2 embedding actors

Both sides use the default model on 2 threads in this process. Ingestion is `vdb.ingest`
end to end on a fresh embedded database: discovering and reading the files, chunking by
token counts, hashing, embedding, and the durable upserts; the peer figure is
Embedder.embed() of the same chunk texts alone (what any pipeline must spend). Most
paragraphs are one chunk; the few over the model's 254 tokens are two.

With --ray (pip install -e '.[ray]'), the same files go through vdb.ingest.ray_ingest on a
local Ray cluster of this machine's 2 CPUs (started once, before the timed runs), with 1 and
2 embedding actors (one CPU and one BLAS thread each, batches of 64 chunks), each into a
fresh directory: what the engine costs beside the local executor. From the 1-actor run's
embedding stage it takes the rate of one actor, and from a bulk_upsert of the same chunks
with their vectors the rate of the driver's writes; then it prints a model of N machines
of 2 cores: the fixed part (collection and model) once, planning spread over the cores,
and the embedding at 2N actors until the driver's writes bound it.
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
    ap.add_argument("--ray", action="store_true", help="also through Ray with 1 and 2 actors")
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
    if args.ray:
        with tempfile.TemporaryDirectory() as tmp:
            docs = Path(tmp) / "docs"
            docs.mkdir()
            for i, text in enumerate(paragraphs):
                (docs / f"p{i:04d}.txt").write_text(text, encoding="utf-8")
            on_ray(docs, Path(tmp), args.runs, len(chunks), o)


def median(values):
    return sorted(values)[len(values) // 2]


def on_ray(docs: Path, tmp: Path, runs: int, chunks: int, local_rate: float) -> None:
    import ray

    from vdb.ingest_ray import quiet, ray_ingest

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    quiet(ray)
    rates, phases = {}, {}
    try:
        for actors in (1, 2):
            reports = []
            for run in range(runs):
                with vdb.open(tmp / f"ray{actors}-{run}") as db:
                    reports.append(ray_ingest(db, [docs], "squad", actors=actors))
                assert reports[-1].embedded == chunks, reports[-1]
            rates[actors] = median([r.chunks_per_second for r in reports])
            phases[actors] = {k: median([r.phases[k] for r in reports]) for k in reports[0].phases}
    finally:
        ray.shutdown()
    write = write_rate(tmp / "ray1-0", tmp / "writes")
    print(f"Ray Data, local cluster of 2 CPUs, batches of 64, median of {runs} runs")
    for actors in (1, 2):
        p = phases[actors]
        print(
            f"  {actors} actor(s): {rates[actors]:.1f} chunks/s ({rates[actors] / local_rate:.2f}x "
            f"the local executor); prepare {p['prepare']:.1f} s, plan {p['plan']:.1f} s, "
            f"embed and write {p['embed']:.1f} s"
        )
        print(
            f"ingest --ray ({actors} actor(s)): {rates[actors]:.1f} chunks/s | local executor "
            f"{local_rate:.1f} | ratio {rates[actors] / local_rate:.2f}x"
        )
    per_actor = chunks / phases[1]["embed"]
    fixed, plan = phases[1]["prepare"], phases[1]["plan"] * 2  # planning on 2 CPUs: CPU-s
    print(f"  one actor embeds {per_actor:.1f} chunks/s; the driver writes {write:,.0f} chunks/s")
    job = 1_000_000
    print(f"model: a {job:,}-chunk job on N machines of 2 cores (2 actors each)")
    for n in (1, 2, 4, 16, 64, 256, 1024):
        seconds = fixed + plan * (job / chunks) / (2 * n) + job / min(2 * n * per_actor, write)
        bound = "the driver's writes" if 2 * n * per_actor > write else "embedding"
        print(f"  N={n:3d}: {job / seconds:9,.0f} chunks/s, {seconds / 60:7.1f} min ({bound})")


def write_rate(source: Path, target: Path) -> float:
    """Chunks per second that bulk_upsert writes with their vectors (the driver's work), into
    a collection made as ingestion makes one."""
    with vdb.open(source) as db:
        records = db.get_collection("squad").scroll(limit=10**6, with_vectors=True)[0]
    with vdb.open(target) as db:
        col = db.create_collection("squad", embedder=embed.DEFAULT_MODEL, text="en")
        batches = [
            {
                "ids": [r.id for r in records[s : s + 64]],
                "vectors": [r.vector for r in records[s : s + 64]],
                "payloads": [r.payload for r in records[s : s + 64]],
                "documents": [r.document for r in records[s : s + 64]],
            }
            for s in range(0, len(records), 64)
        ]
        start = time.perf_counter()
        col.bulk_upsert(batches)
        return len(records) / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
