"""Retrieval quality on SQuAD v1.1 dev part A: each question's gold paragraph among 913.

    python bench/eval_retrieval.py            # all 4,961 questions
    python bench/eval_retrieval.py --quick    # 200 paragraphs, their questions

Dense is the default model's cosine; BM25 is vdb.text.bm25 (bm25s, English stop words,
Snowball stems); fusions combine the two ranked lists of the top 100 each: reciprocal rank
fusion (k = 60), and the convex combination of min-max normalized scores for several dense
weights, the one vdb.text.hybrid uses by default marked. Reports recall@1, @5, @10 and
MRR@10, and for the extractive answerers the fraction of questions whose gold answer text is
inside what they return: the best sentence of the top hit, and the best span (sentence, pair
of sentences, list item or row) of the top three, as `vdb ask` answers.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import embed  # noqa: E402
from bench.common import SQUAD, data_file  # noqa: E402
from vdb.text import bm25, hybrid  # noqa: E402

POOL = 100  # candidates per retriever before fusion


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
    sims = qvec @ pvec.T
    dense_top = np.argsort(-sims, axis=1)[:, :POOL]
    index = bm25.Bm25Index(paragraphs)
    sparse = [index.search(q, POOL) for q in questions]

    rows = {}
    rows["dense"] = metrics(dense_top.tolist(), gold)
    rows["bm25"] = metrics([[i for i, _ in s] for s in sparse], gold)
    for name, fuse in [("rrf", lambda d, s: hybrid.rrf(d, s))] + [
        (f"convex w={w:.2f}", lambda d, s, w=w: hybrid.convex(d, s, w))
        for w in (0.2, 0.3, 0.4, 0.5, 0.6)
    ]:
        ranked = []
        for qi in range(len(questions)):
            dense = [(int(i), float(sims[qi, i])) for i in dense_top[qi]]
            ranked.append([i for i, _ in fuse(dense, sparse[qi])])
        rows[name] = metrics(ranked, gold)
    default = f"convex w={hybrid.DENSE_WEIGHT:.2f}"
    print(f"{'method':18s}  r@1    r@5    r@10   mrr@10")
    for name, m in rows.items():
        mark = "  <- vdb default" if name == default else ""
        cells = "  ".join(f"{m[key]:.3f}" for key in ("r@1", "r@5", "r@10", "mrr@10"))
        print(f"{name:18s}  {cells}{mark}")

    from vdb.text.extract import SOURCES, best_sentence, best_span

    hits, span_hits, words, span_words = 0, 0, 0, 0
    cached = _Cached(model)  # the same candidates recur across questions of one paragraph
    for qi, q in enumerate(questions):
        dense = [(int(i), float(sims[qi, i])) for i in dense_top[qi]]
        fused = hybrid.convex(dense, sparse[qi], hybrid.DENSE_WEIGHT)
        sentence = best_sentence(q, paragraphs[fused[0][0]], model, index.tokenize)[0]
        hits += any(a in sentence for a in answers[qi])
        words += len(sentence.split())
        top = [paragraphs[i] for i, _ in fused[:SOURCES]]
        span = best_span(q, top, cached, index.tokenize)[1]
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


if __name__ == "__main__":
    main()
