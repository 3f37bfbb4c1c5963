"""Answer quality on SQuAD v1.1 dev part A: generated answers (Gemma 3 270M Q4_K_M, from the
hybrid search's top sources) beside the extractive answer (the best sentence of the top
source), through the public rag.ask.

    python bench/eval_answers.py              # 500 questions (every 9th of 4,961)
    python bench/eval_answers.py --n 50       # fewer

The 913 paragraphs are ingested into an embedded collection (the default embedder). Each
answer is scored against the question's gold answers with SQuAD's own measures: exact match
and token F1 after lowercasing and dropping punctuation and articles ([n] citations are
dropped first); "contains" is the share of answers holding a gold answer. Gold answers are
short spans; an extractive answer is a whole sentence, which caps its exact match near 0.
Times are wall-clock seconds per answer on this machine, 2 threads.
"""

import argparse
import collections
import re
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval_retrieval import load  # noqa: E402


def normalize(text: str) -> str:
    text = re.sub(r"\[\d+\]", " ", text).lower()
    text = "".join(c for c in text if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1(prediction: str, gold: str) -> float:
    p, g = normalize(prediction).split(), normalize(gold).split()
    common = sum((collections.Counter(p) & collections.Counter(g)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def score(prediction: str, golds: list[str]) -> tuple[float, float, float]:
    """(exact match, F1, contains) against the best of the gold answers."""
    em = max(float(normalize(prediction) == normalize(g)) for g in golds)
    best = max(f1(prediction, g) for g in golds)
    inside = max(float(normalize(g) in normalize(prediction)) for g in golds)
    return em, best, inside


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500, help="questions (spread over the set)")
    ap.add_argument("--k", type=int, default=2, help="sources per generated answer")
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()

    import llm
    import vdb
    from vdb import models, rag

    paragraphs, questions, _, answers = load(quick=False)
    step = max(1, len(questions) // args.n)
    picked = list(range(0, len(questions), step))[: args.n]
    model = llm.load(models.pull("gemma3-270m", progress=False), n_ctx=2048)
    with tempfile.TemporaryDirectory() as tmp, vdb.open(Path(tmp) / "db") as db:
        col = db.create_collection("squad", embedder="all-MiniLM-L6-v2")
        start = time.perf_counter()
        col.upsert(list(range(len(paragraphs))), documents=paragraphs)
        print(f"{len(paragraphs)} paragraphs ingested in {time.perf_counter() - start:.1f} s")
        rag.ask(col, questions[0], model, k=args.k, max_tokens=4, temperature=0)  # warm up
        rows = {"extractive": [], "generated (gemma3-270m)": []}
        times = {name: [] for name in rows}
        for n, i in enumerate(picked, 1):
            for name in rows:
                gen = name != "extractive"
                t = time.perf_counter()
                answer = rag.ask(
                    col,
                    questions[i],
                    model if gen else None,
                    k=args.k if gen else 5,
                    max_tokens=args.max_tokens,
                    temperature=0,
                )
                times[name].append(time.perf_counter() - t)
                rows[name].append(score(answer.text, answers[i]))
            if n % 50 == 0:
                print(f"  {n} questions", flush=True)
    print(f"SQuAD v1.1 dev part A, {len(picked)} questions, hybrid search top sources")
    for name, scores in rows.items():
        em, f, inside = (100 * statistics.fmean(s[j] for s in scores) for j in range(3))
        t = times[name]
        print(
            f"{name}: exact match {em:.1f} | F1 {f:.1f} | contains a gold answer {inside:.1f}% "
            f"| {statistics.fmean(t):.2f} s per answer (p50 {statistics.median(t):.2f} s)"
        )


if __name__ == "__main__":
    main()
