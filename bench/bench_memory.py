"""Agent memory on SQuAD v1.1 dev part A: recall of the current version of a fact among
100,000 memories, beside chromadb holding the same memories, from one run.

    python bench/bench_memory.py                                    # 100,000 memories
    python bench/bench_memory.py --memories 10000 --questions 500   # a smoke run
    python bench/bench_memory.py --no-peer
    python bench/bench_memory.py --no-peer --embedder all-MiniLM-L6-v2   # float32 weights

Every sentence of every paragraph is one memory (kind fact, user "reader", one session per
paragraph); then a seeded tenth of them is superseded through Memory.update() by a version
missing one word outside every answer span of its paragraph. Each question is a recall
query whose target is the current version of the sentence holding its first answer; the
questions whose answer crosses a sentence boundary are skipped (and counted). Distractors
pad the store to --memories current memories: the first part of one sentence joined to the
last part of a sentence from another article, cut at a random word, in sessions of 100
(near-duplicates merged by remember_many do not count towards the total).

Reported with the SQuAD sentences alone and again at full size: recall@5 of the target;
superseded versions among everything returned (the floor: none), checked against the ids
update() closed; recall latency p50 / p99 for a query vector embedded beforehand (the
store's own cost, the floor: p50 <= 5 ms at 100,000 memories) and for the question text
(embedding one question included: 1.8-2.8 ms with the memory default all-MiniLM-L6-v2:q8_0,
whose products run in integers, 4.2-6 ms with --embedder all-MiniLM-L6-v2 in the runs
measured). The peer is chromadb (PersistentClient, cosine space) in this process with the
same vectors, documents and metadata, a superseded version marked current False, queried by
vector with the same scope filter (user and current); it ranks by cosine alone, where ours
re-ranks 64 candidates by relevance, recency and importance.
Embeddings are cached in bench/.cache/, keyed by the model and the texts.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import vdb  # noqa: E402
from bench.common import SQUAD, data_file, summary  # noqa: E402
from llm.tokenizer import TruncationWarning  # noqa: E402
from vdb.memory import Memory, reading  # noqa: E402
from vdb.text.extract import sentence_spans  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
CACHE_CHUNK = 8192  # texts per cached embedding file
USER = "reader"
K = 5
DISTRACTOR_SESSION = 100  # distractors per session
INSERT_CHUNK = 5000  # memories per remember_many call and per chromadb add
WARMUP = 50
FLOOR_MS = 5.0
FLOOR_RECALL = {"sentences": 0.90, "full": 0.65}  # recall@5 by question text (hybrid)

warnings.filterwarnings("ignore", category=TruncationWarning)


# ---------------------------------------------------------------------- workload


def load_squad():
    """Sentences [(article, paragraph, text, start)] and questions
    [(question, paragraph, answer_start, answer_end)], plus each paragraph's answer spans."""
    data = json.loads(data_file(SQUAD).read_text(encoding="utf-8"))["data"]
    sentences, questions, answer_spans, spans_of = [], [], [], []
    for ai, article in enumerate(data):
        for para in article["paragraphs"]:
            pi = len(spans_of)
            context = para["context"]
            spans = sentence_spans(context)
            spans_of.append([(a, b, len(sentences) + j) for j, (a, b) in enumerate(spans)])
            sentences += [(ai, pi, context[a:b], a) for a, b in spans]
            marked = []
            for qa in para["qas"]:
                first = qa["answers"][0]
                start = first["answer_start"]
                questions.append((qa["question"], pi, start, start + len(first["text"])))
                marked += [
                    (a["answer_start"], a["answer_start"] + len(a["text"])) for a in qa["answers"]
                ]
            answer_spans.append(marked)
    return sentences, questions, answer_spans, spans_of


def edited(text: str, offset: int, answers, rng) -> str | None:
    """text without one word lying outside every answer span (offsets in the paragraph), or
    None when every word touches an answer."""
    words = [
        m
        for m in re.finditer(r"\S+", text)
        if re.search(r"\w", m.group())
        and not any(offset + m.start() < b and a < offset + m.end() for a, b in answers)
    ]
    if len(words) < 2:
        return None
    m = words[int(rng.integers(len(words)))]
    out = (text[: m.start()].rstrip() + " " + text[m.end() :].lstrip()).strip()
    return out if out and out != text else None


def distractors(sentences, count: int, seed: int) -> list[str]:
    """count distinct texts, each the first part of one sentence and the last part of a
    sentence from another article, cut at a random word; the same seed gives the same
    sequence whatever count, so a smaller run's texts are a prefix of a larger one's."""
    rng = np.random.default_rng([seed, 1])
    split = [(s[0], s[2].split()) for s in sentences]
    usable = [i for i, (_, w) in enumerate(split) if len(w) >= 4]
    seen = {s[2] for s in sentences}
    out = []
    while len(out) < count:
        a, b = rng.choice(usable, 2)
        (art_a, wa), (art_b, wb) = split[a], split[b]
        if art_a == art_b:
            continue
        ca = int(rng.integers(len(wa) // 3, 2 * len(wa) // 3 + 1))
        cb = int(rng.integers(len(wb) // 3, 2 * len(wb) // 3 + 1))
        text = " ".join(wa[: max(ca, 1)] + wb[max(cb, 1) :])
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def embed_cached(embedder, texts: list[str], what: str) -> np.ndarray:
    """Embeddings of texts, read from bench/.cache/ where an earlier run stored them."""
    CACHE.mkdir(exist_ok=True)
    ignore = CACHE / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    model = f"{embedder.name}:{Path(embedder.path).stat().st_size}"
    parts, done, start = [], 0, time.perf_counter()
    for s in range(0, len(texts), CACHE_CHUNK):
        chunk = texts[s : s + CACHE_CHUNK]
        h = hashlib.sha256(model.encode())
        for t in chunk:
            h.update(b"\0" + t.encode("utf-8"))
        path = CACHE / f"memory-{h.hexdigest()[:24]}.npy"
        if path.exists():
            vecs = np.load(path)
        else:
            vecs = embedder.embed(chunk)
            np.save(path.with_suffix(".tmp.npy"), vecs)
            os.replace(path.with_suffix(".tmp.npy"), path)
            done += len(chunk)
            print(
                f"  embedded {s + len(chunk):,} / {len(texts):,} {what} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
        parts.append(vecs)
    if done == 0:
        print(f"  {len(texts):,} {what}: embeddings from {CACHE.relative_to(ROOT)}")
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)


# ---------------------------------------------------------------------- the peer


class Chroma:
    def __init__(self, path: Path):
        import chromadb
        from chromadb.config import Settings

        self.client = chromadb.PersistentClient(
            path=str(path), settings=Settings(anonymized_telemetry=False)
        )
        self.col = self.client.create_collection(
            "memory", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        self.max_batch = self.client.get_max_batch_size()
        self.where = {"$and": [{"user_id": USER}, {"current": True}]}

    def add(self, ids, vectors, sessions, documents) -> None:
        for s in range(0, len(ids), self.max_batch):
            e = s + self.max_batch
            self.col.add(
                ids=ids[s:e],
                embeddings=np.asarray(vectors[s:e], dtype=np.float32),
                metadatas=[
                    {"user_id": USER, "session_id": sid, "kind": "fact", "current": True}
                    for sid in sessions[s:e]
                ],
                documents=documents[s:e],
            )

    def close_versions(self, ids, sessions) -> None:
        for s in range(0, len(ids), self.max_batch):
            e = s + self.max_batch
            self.col.update(
                ids=ids[s:e],
                metadatas=[
                    {"user_id": USER, "session_id": sid, "kind": "fact", "current": False}
                    for sid in sessions[s:e]
                ],
            )

    def recall(self, vector) -> list[str]:
        res = self.col.query(query_embeddings=[vector], n_results=K, where=self.where)
        return res["ids"][0]

    def recall_unfiltered(self, vector) -> list[str]:
        return self.col.query(query_embeddings=[vector], n_results=K)["ids"][0]

    def count(self) -> int:
        return self.col.count()


# ---------------------------------------------------------------------- measuring


def percentiles(times) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(times) * 1000.0, [50, 99])
    return float(p50), float(p99)


def run_queries(fn, queries):
    """([ids returned] per query, [seconds] per query), after WARMUP untimed queries."""
    for q in queries[:WARMUP]:
        fn(q)
    results, times = [], []
    for q in queries:
        start = time.perf_counter()
        ids = fn(q)
        times.append(time.perf_counter() - start)
        results.append(ids)
    return results, times


def quality(results, targets, superseded) -> dict:
    hits = sum(t in ids for ids, t in zip(results, targets, strict=True))
    returned = sum(len(ids) for ids in results)
    stale = sum(i in superseded for ids in results for i in ids)
    return {
        "recall": hits / len(targets),
        "returned": returned,
        "stale": stale,
        "stale_rate": stale / returned if returned else 0.0,
    }


def exact_recall(known: dict, superseded: set, qvecs, targets) -> float:
    """recall@5 of an exact cosine scan (numpy) over the current memories: the ceiling."""
    ids = [i for i in known if i not in superseded]
    X = np.asarray([known[i] for i in ids], dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    hits = 0
    for s in range(0, len(qvecs), 256):
        top = np.argpartition(-(qvecs[s : s + 256] @ X.T), K, axis=1)[:, :K]
        hits += sum(targets[s + j] in {ids[i] for i in row} for j, row in enumerate(top))
    return hits / len(targets)


def measure(label, mem, chroma, qvecs, qtexts, targets, superseded, embedder, known) -> dict:
    """Recall quality and latency of ours (vector and text queries) and the peer's, once the
    background linker has put every memory in the HNSW graph (the steady state)."""
    while mem.col.info()["buffered"]:
        time.sleep(0.1)
    out = {"label": label, "exact": exact_recall(known, superseded, qvecs, targets)}

    def ours_vec(v):
        return [r.memory.id for r in mem.recall(v, k=K, user_id=USER)]

    def ours_text(t):
        return [r.memory.id for r in mem.recall(t, k=K, user_id=USER)]

    res, times = run_queries(ours_vec, list(qvecs))
    out["ours"] = quality(res, targets, superseded)
    out["ours"]["vec"] = percentiles(times)
    res, times = run_queries(ours_text, qtexts)
    out["ours"]["text_quality"] = quality(res, targets, superseded)
    out["ours"]["text"] = percentiles(times)
    _, times = run_queries(lambda t: embedder.embed([t]), qtexts)
    out["embed"] = percentiles(times)
    if chroma is not None:
        res, times = run_queries(chroma.recall, list(qvecs))
        out["peer"] = quality(res, targets, superseded)
        out["peer"]["vec"] = percentiles(times)
        res, times = run_queries(chroma.recall_unfiltered, list(qvecs))
        out["peer_unfiltered"] = quality(res, targets, superseded)
        out["peer_unfiltered"]["vec"] = percentiles(times)
    report(out, mem, chroma)
    return out


def report(m: dict, mem, chroma) -> None:
    o = m["ours"]
    stats = mem.stats()
    m["memories"], m["versions"] = stats["memories"], stats["versions"]
    print(f"\n== {m['label']}: {m['memories']:,} current memories, {m['versions']:,} versions")
    if chroma is not None:
        print(f"   chromadb holds {chroma.count():,} records (current and superseded)")
    lines = [
        f"exact cosine top-5 over the current memories (numpy): recall@5 {100 * m['exact']:.2f} %"
    ]
    tq = o["text_quality"]
    if chroma is not None:
        p = m["peer"]
        lines.append(
            summary(
                "recall@5 of the current version",
                100 * o["recall"],
                100 * p["recall"],
                "chromadb",
                "%",
                True,
            )
        )
        lines.append(
            f"superseded versions returned: ours {o['stale']:,} of {o['returned']:,} results "
            f"({100 * o['stale_rate']:.2f}%) | chromadb {p['stale']:,} of {p['returned']:,} "
            f"({100 * p['stale_rate']:.2f}%)"
        )
        lines.append(
            summary(
                "recall latency by vector, p50", o["vec"][0], p["vec"][0], "chromadb", "ms", False
            )
        )
        lines.append(
            summary(
                "recall latency by vector, p99", o["vec"][1], p["vec"][1], "chromadb", "ms", False
            )
        )
    else:
        lines.append(f"recall@5 of the current version: ours {100 * o['recall']:.2f} %")
        lines.append(
            f"superseded versions returned: ours {o['stale']:,} of {o['returned']:,} results "
            f"({100 * o['stale_rate']:.2f}%)"
        )
        lines.append(
            f"recall latency by vector: ours p50 {o['vec'][0]:.2f} ms, p99 {o['vec'][1]:.2f} ms"
        )
    if chroma is not None:
        u = m["peer_unfiltered"]
        lines.append(
            f"chromadb without its where filter (scale only: it may return superseded "
            f"versions): p50 {u['vec'][0]:.2f} ms, p99 {u['vec'][1]:.2f} ms, recall@5 "
            f"{100 * u['recall']:.2f} %, superseded returned {u['stale']:,} of {u['returned']:,}"
        )
    lines.append(
        f"recall latency by question text (one embedding included): ours p50 "
        f"{o['text'][0]:.2f} ms, p99 {o['text'][1]:.2f} ms; embedding one question alone "
        f"p50 {m['embed'][0]:.2f} ms, p99 {m['embed'][1]:.2f} ms"
    )
    lines.append(
        f"by question text: recall@5 {100 * tq['recall']:.2f} %, superseded returned "
        f"{tq['stale']:,} of {tq['returned']:,}"
    )
    print("\n".join(lines), flush=True)


def table(rows: list[dict], peer: bool) -> None:
    cols = []  # (heading, figures, the size's row)
    for m in rows:
        cols.append((f"{m['memories']:,} ours", m["ours"], m))
        if peer:
            cols.append((f"{m['memories']:,} chromadb", m["peer"], m))
    metrics = [
        ("recall@5 by vector (%)", lambda d, m: f"{100 * d['recall']:.2f}"),
        (
            "recall@5 by text (%)",
            lambda d, m: f"{100 * d['text_quality']['recall']:.2f}" if "text" in d else "-",
        ),
        ("exact cosine recall@5 (%)", lambda d, m: f"{100 * m['exact']:.2f}"),
        ("superseded returned (%)", lambda d, m: f"{100 * d['stale_rate']:.2f}"),
        ("vector recall p50 (ms)", lambda d, m: f"{d['vec'][0]:.2f}"),
        ("vector recall p99 (ms)", lambda d, m: f"{d['vec'][1]:.2f}"),
        ("text recall p50 (ms)", lambda d, m: f"{d['text'][0]:.2f}" if "text" in d else "-"),
        ("text recall p99 (ms)", lambda d, m: f"{d['text'][1]:.2f}" if "text" in d else "-"),
    ]
    w0 = max(len(n) for n, _ in metrics)
    widths = [max(len(h), 8) for h, _, _ in cols]
    head = "  ".join(h.rjust(w) for (h, _, _), w in zip(cols, widths, strict=True))
    print("\n" + " " * w0 + "  " + head)
    for name, fmt in metrics:
        cells = [fmt(d, m).rjust(w) for (_, d, m), w in zip(cols, widths, strict=True)]
        print(name.ljust(w0) + "  " + "  ".join(cells))


# ---------------------------------------------------------------------- the run


def remember(mem, chroma, texts, vectors, sessions, known: dict, want: int | None = None):
    """Remember texts (with their vectors) in chunks, mirror the memories they create into
    chroma and known (id -> vector); stop once want new memories exist. Returns (ids per text
    remembered, seconds ours, seconds chroma)."""
    ids_out, t_ours, t_peer, made, s = [], 0.0, 0.0, 0, 0
    while s < len(texts) and (want is None or made < want):
        e = s + (INSERT_CHUNK if want is None else min(INSERT_CHUNK, want - made))
        items = [
            {"text": t, "kind": "fact", "user_id": USER, "session_id": sid}
            for t, sid in zip(texts[s:e], sessions[s:e], strict=True)
        ]
        start = time.perf_counter()
        records = mem.remember_many(items, vectors=vectors[s:e])
        t_ours += time.perf_counter() - start
        new = []
        for row, r in enumerate(records):
            if r.id not in known:
                known[r.id] = vectors[s + row]
                new.append((r.id, s + row))
        made += len(new)
        ids_out += [r.id for r in records]
        if chroma is not None and new:
            rows = [row for _, row in new]
            start = time.perf_counter()
            chroma.add(
                [i for i, _ in new],
                vectors[rows],
                [sessions[r] for r in rows],
                [texts[r] for r in rows],
            )
            t_peer += time.perf_counter() - start
        s = e
    return ids_out, t_ours, t_peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--memories",
        type=int,
        default=100_000,
        help="current memories at full size (SQuAD sentences + distractors)",
    )
    parser.add_argument(
        "--questions", type=int, default=None, help="use the first N questions only"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--half-life", type=float, default=7 * 86400.0, help="Memory recency half-life in seconds"
    )
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=1.0,
        help="Memory access-refresh flush interval in seconds",
    )
    parser.add_argument(
        "--embedder",
        default=None,
        help="embedding model (default: the memory default, all-MiniLM-L6-v2:q8_0; "
        "all-MiniLM-L6-v2 for float32 weights)",
    )
    parser.add_argument(
        "--keyword-weight",
        type=float,
        default=None,
        help="the keyword half's share of a text recall's relevance (default: "
        "vdb.memory.reading.KEYWORD_WEIGHT; 0 ranks by cosine alone)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip chromadb")
    args = parser.parse_args()
    if args.keyword_weight is not None:
        reading.KEYWORD_WEIGHT = args.keyword_weight
    print(f"text recall relevance: keyword weight {reading.KEYWORD_WEIGHT:g}")
    rng = np.random.default_rng(args.seed)

    sentences, questions, answer_spans, spans_of = load_squad()
    if args.questions is not None:
        questions = questions[: args.questions]
    asked, targets_row = [], []
    for q, pi, a, b in questions:
        row = next((r for s, e, r in spans_of[pi] if s <= a and b <= e), None)
        if row is not None:
            asked.append(q)
            targets_row.append(row)
    skipped = len(questions) - len(asked)
    texts = [s[2] for s in sentences]
    sessions = [f"p{s[1]:04d}" for s in sentences]
    print(
        f"SQuAD v1.1 dev part A: {len(texts):,} sentences in {len(spans_of):,} paragraphs; "
        f"{len(questions):,} questions, {skipped:,} skipped (answer crosses a sentence "
        f"boundary), {len(asked):,} asked"
    )

    chroma = None
    tmp = Path(tempfile.mkdtemp(prefix="vdb-bench-memory-"))
    db = vdb.open(tmp / "db")
    try:
        mem = Memory(
            db,
            agent="bench",
            embedder=args.embedder,
            half_life=args.half_life,
            flush_interval=args.flush_interval,
        )
        embedder = mem.col.embedder
        embedder.embed(texts[:8])  # compile and warm up
        if not args.no_peer:
            try:
                chroma = Chroma(tmp / "chroma")
            except ImportError:
                print("chromadb not installed (pip install chromadb): no peer figures")
        peer = chroma is not None

        print("embedding", flush=True)
        svecs = embed_cached(embedder, texts, "sentences")
        qvecs = embed_cached(embedder, asked, "questions")

        # the SQuAD sentences, then a tenth of them superseded
        known: dict[str, np.ndarray] = {}
        sid_of, t_ours, t_peer = remember(mem, chroma, texts, svecs, sessions, known)
        current = list(sid_of)  # sentence row -> id of its current version
        merged = len(texts) - len(set(sid_of))
        order = rng.permutation(len(texts))
        goal = len(texts) // 10
        superseded: set[str] = set()
        closed, closed_sessions, new_ids, new_texts, new_sessions = [], [], [], [], []
        start = time.perf_counter()
        for row in order.tolist():
            if len(superseded) >= goal:
                break
            old = current[row]
            if old in superseded:
                continue
            ai, pi, text, offset = sentences[row]
            new_text = edited(text, offset, answer_spans[pi], rng)
            if new_text is None:
                continue
            rec = mem.update(old, new_text)
            superseded.add(old)
            for r, i in enumerate(current):
                if i == old:
                    current[r] = rec.id
            closed.append(old)
            closed_sessions.append(sessions[row])
            new_ids.append(rec.id)
            new_texts.append(new_text)
            new_sessions.append(sessions[row])
        t_update = time.perf_counter() - start
        new_vecs = np.asarray(
            [r.vector for r in mem.col.get(new_ids, with_vectors=True)], dtype=np.float32
        )
        known.update(zip(new_ids, new_vecs, strict=True))
        if peer:
            chroma.close_versions(closed, closed_sessions)
            chroma.add(new_ids, new_vecs, new_sessions, new_texts)
        print(
            f"remembered {len(texts):,} sentences in {t_ours:.1f} s ({merged} merged as near "
            f"duplicates); superseded {len(superseded):,} through update() in {t_update:.1f} s"
        )
        if peer:
            print(f"chromadb: added the same in {t_peer:.1f} s")
        targets = [current[r] for r in targets_row]

        def measure_now(label):
            return measure(label, mem, chroma, qvecs, asked, targets, superseded, embedder, known)

        rows = [measure_now("SQuAD sentences only")]

        # distractors up to --memories current memories
        have = len(texts) - merged
        want = args.memories - have
        if want > 0:
            dtexts = distractors(sentences, want + want // 50 + 100, args.seed)
            print(f"\nembedding {len(dtexts):,} distractors", flush=True)
            dvecs = embed_cached(embedder, dtexts, "distractors")
            dsessions = [f"d{i // DISTRACTOR_SESSION:05d}" for i in range(len(dtexts))]
            ids, t_ours, t_peer = remember(mem, chroma, dtexts, dvecs, dsessions, known, want)
            made = len(set(ids))
            print(
                f"remembered {len(ids):,} distractors as {made:,} memories in {t_ours:.1f} s "
                f"({len(ids) - made:,} merged as near duplicates)"
            )
            if peer:
                print(
                    summary(
                        "distractor insert, remember_many with vectors vs chromadb add",
                        made / t_ours,
                        made / t_peer,
                        "chromadb",
                        "memories/s",
                        True,
                    )
                )
            rows.append(measure_now(f"{args.memories:,} memories"))
        mem.flush()

        table(rows, peer)
        full = rows[-1]
        stale = sum(r["ours"]["stale"] + r["ours"]["text_quality"]["stale"] for r in rows)
        print(
            f"\nfloor: superseded versions never returned: {'PASS' if stale == 0 else 'FAIL'}"
            f" ({stale} returned)"
        )
        p50 = full["ours"]["vec"][0]
        print(
            f"floor: p50 recall latency by vector <= {FLOOR_MS:g} ms at "
            f"{full['memories']:,} memories: {'PASS' if p50 <= FLOOR_MS else 'FAIL'} "
            f"({p50:.2f} ms)"
        )
        p50 = full["ours"]["text"][0]
        print(
            f"floor: p50 recall latency by text (one embedding included, {embedder.name}) <= "
            f"{FLOOR_MS:g} ms at {full['memories']:,} memories: "
            f"{'PASS' if p50 <= FLOOR_MS else 'FAIL'} ({p50:.2f} ms)"
        )
        for row, (name, floor) in zip(rows, FLOOR_RECALL.items(), strict=False):
            got = row["ours"]["text_quality"]["recall"]
            print(
                f"floor: recall@5 by question text >= {floor:.2f} at {row['memories']:,} "
                f"memories ({name}): {'PASS' if got >= floor else 'FAIL'} ({got:.4f})"
            )
    finally:
        db.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
