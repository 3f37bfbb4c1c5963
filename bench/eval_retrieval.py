"""Retrieval quality on SQuAD v1.1 dev part A: each question's gold paragraph among 913.

    python bench/eval_retrieval.py            # all 4,961 questions
    python bench/eval_retrieval.py --quick    # 200 paragraphs, their questions

The paragraphs go into a collection with a keyword index (text="en"), their vectors from the
default model. Every figure but the peer's is the store's own query: dense (cosine), keyword
(BM25 over the collection's keyword index), and the hybrid query col.search(vector,
text=question, fusion=...) fusing the top 100 of each half: convex combination of min-max
normalized scores for several dense weights (vdb.text.hybrid's default marked), reciprocal
rank fusion (k = 60) and distribution-based score fusion (Qdrant's DBSF). The peer is bm25s
(vdb.text.bm25: English stop words, Snowball stems) indexing the same paragraphs. Reports
recall@1, @5, @10 and MRR@10, the floor of the default hybrid query (recall@1 >= 0.810,
recall@5 >= 0.960, MRR@10 >= 0.876), and for the extractive answerers the fraction of
questions whose gold answer text is inside what they return: the best sentence of the top
hit, and the best span (sentence, pair of sentences, list item or row) of the top three, as
`vdb ask` answers.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import embed  # noqa: E402
import vdb  # noqa: E402
from bench.common import SQUAD, data_file  # noqa: E402
from vdb.text import analyzer, bm25, hybrid  # noqa: E402

FLOOR = {"r@1": 0.810, "r@5": 0.960, "mrr@10": 0.876}  # the default hybrid query


def load(quick: bool):
    data = json.loads(data_file(SQUAD).read_text(encoding="utf-8"))["data"]
    paragraphs, questions, gold, answers = [], [], [], []
    for article in data:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                questions.append(qa["question"])
                gold.append(len(paragraphs))
                answers.append([a["text"] for a in qa["answers"]])
            paragraphs.append(para["context"])
    if quick:
        keep = [i for i, g in enumerate(gold) if g < 200]
        paragraphs = paragraphs[:200]
        questions = [questions[i] for i in keep]
        answers = [answers[i] for i in keep]
        gold = [gold[i] for i in keep]
    return paragraphs, questions, np.array(gold), answers


class _Cached:
    """model.embed with each text's vector kept (the question, first, is new each time)."""

    def __init__(self, model):
        self.model, self.vectors = model, {}

    def embed(self, texts):
        todo = [t for t in dict.fromkeys(texts[1:]) if t not in self.vectors]
        fresh = self.model.embed([texts[0], *todo])
        self.vectors.update(zip(todo, fresh[1:], strict=True))
        return np.stack([fresh[0], *(self.vectors[t] for t in texts[1:])])


def metrics(ranked: list[list[int]], gold: np.ndarray) -> dict:
    ranks = []
    for row, g in zip(ranked, gold, strict=True):
        row = list(row[:10])
        ranks.append(row.index(g) + 1 if g in row else 0)
    ranks = np.array(ranks)
    return {
        "r@1": float(np.mean(ranks == 1)),
        "r@5": float(np.mean((ranks >= 1) & (ranks <= 5))),
        "r@10": float(np.mean(ranks >= 1)),
        "mrr@10": float(np.mean(np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0))),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    paragraphs, questions, gold, answers = load(args.quick)
    model = embed.load()
    start = time.perf_counter()
    pvec = model.embed(paragraphs)
    qvec = model.embed(questions)
    print(
        f"embedded {len(paragraphs)} paragraphs, {len(questions)} questions in "
        f"{time.perf_counter() - start:.0f} s"
    )
    tmp = tempfile.TemporaryDirectory(prefix="vdb-eval-retrieval-")
    db = vdb.open(Path(tmp.name) / "db")
    col = db.create_collection("squad", pvec.shape[1], index="flat", text="en")
    col.upsert(list(range(len(paragraphs))), pvec, documents=paragraphs)
    start = time.perf_counter()
    peer = bm25.Bm25Index(paragraphs)
    t_peer = time.perf_counter() - start
    print(f"bm25s indexed the paragraphs in {t_peer:.2f} s")

    def ranked(**kwargs) -> list[list[int]]:
        found = col.search(k=10, with_payload=False, with_document=False, **kwargs)
        return [[int(i) for i in ids[:n]] for ids, n in zip(found.ids, found.counts, strict=True)]

    rows = {}
    rows["dense"] = metrics(ranked(queries=qvec), gold)
    rows["keyword (BM25)"] = metrics(ranked(text=questions), gold)
    rows["bm25s (peer)"] = metrics([[i for i, _ in peer.search(q, 10)] for q in questions], gold)
    fusions = [(f"convex w={w:.2f}", "convex", w) for w in (0.2, 0.3, 0.4, 0.5, 0.6)]
    fusions += [("rrf", "rrf", None), ("dbsf", "dbsf", None)]
    times = {}
    for name, fusion, w in fusions:
        start = time.perf_counter()
        rows[name] = metrics(
            ranked(queries=qvec, text=questions, fusion=fusion, dense_weight=w), gold
        )
        times[name] = (time.perf_counter() - start) / len(questions) * 1000
    default = f"convex w={hybrid.DENSE_WEIGHT:.2f}"
    print(f"{'method':18s}  r@1    r@5    r@10   mrr@10  ms/query")
    for name, m in rows.items():
        mark = "  <- vdb default" if name == default else ""
        cells = "  ".join(f"{m[key]:.3f}" for key in ("r@1", "r@5", "r@10", "mrr@10"))
        ms = f"  {times[name]:6.2f}" if name in times else "       -"
        print(f"{name:18s}  {cells}{ms}{mark}")
    terms = analyzer.get("en").terms

    from vdb.text.extract import SOURCES, best_sentence, best_span

    hits, span_hits, words, span_words = 0, 0, 0, 0
    cached = _Cached(model)  # the same candidates recur across questions of one paragraph
    fused = ranked(queries=qvec, text=questions)  # the default hybrid query
    for qi, q in enumerate(questions):
        sentence = best_sentence(q, paragraphs[fused[qi][0]], model, terms)[0]
        hits += any(a in sentence for a in answers[qi])
        words += len(sentence.split())
        top = [paragraphs[i] for i in fused[qi][:SOURCES]]
        span = best_span(q, top, cached, terms)[1]
        span_hits += any(a in span for a in answers[qi])
        span_words += len(span.split())
    n = len(questions)
    print(
        f"extractive, best sentence of the top hit: gold answer inside for {hits / n:.3f} of "
        f"questions ({words / n:.1f} words on average)"
    )
    print(
        f"extractive, best span of the top {SOURCES} (vdb ask): gold answer inside for "
        f"{span_hits / n:.3f} of questions ({span_words / n:.1f} words on average)"
    )
    best = rows[default]
    print(
        f"hybrid: r@1 {best['r@1']:.3f} r@5 {best['r@5']:.3f} r@10 {best['r@10']:.3f} "
        f"mrr@10 {best['mrr@10']:.3f}"
    )
    if not args.quick:
        for key, floor in FLOOR.items():
            got = best[key]
            print(f"floor: {key} >= {floor:.3f}: {'PASS' if got >= floor else 'FAIL'} ({got:.3f})")
    db.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
