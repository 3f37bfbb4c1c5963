"""The keyword index survives kill -9: after a crash it is loaded from its checkpoint plus the
op log (or rebuilt), holds every acknowledged write, and scores exactly as a twin built from
the records does; a read-only handle follows the writer's keyword index."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vdb
from tests.helpers.text_writer import BATCH, WORDS, batch_ids, tag_word
from tests.reference import bm25_scores
from vdb.collection import scan
from vdb.index import sparse_file
from vdb.text import analyzer

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["river stone", "the forest of copper thunder", "signal signal harbor", "meadow"]


def start_writer(path, start, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.text_writer", str(path), str(start), *extra],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def crash_once(path, start, rnd, every):
    """Run a writer for a random moment, kill -9 it; (acknowledged batches, deletes)."""
    proc = start_writer(path, start, str(every))
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
    time.sleep(rnd.uniform(0.05, 0.6))
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    acked, deleted = set(), set()
    for line in out.split("\n")[:-1]:  # the last piece may be a line cut by the kill
        word, _, num = line.partition(" ")
        (acked if word == "ACK" else deleted).add(int(num))
    return acked, deleted


def keyword_results(col, queries) -> list[dict]:
    """{id: score} of every point matching each query."""
    return [
        {
            h.id: h.score
            for h in col.search(text=q, k=10**6, with_payload=False, with_document=False)
        }
        for q in queries
    ]


def twin_results(col, queries) -> list[dict]:
    """The same from a BM25 twin over the documents stored in LMDB (float32, as Hits)."""
    an = analyzer.get("en")
    docs = {r.id: an.terms(r.document) for r in scan(col) if r.document}
    return [
        {i: float(np.float32(s)) for i, s in bm25_scores(docs, an.terms(q)).items()}
        for q in queries
    ]


def check(path, acked, deleted, last):
    """Every acknowledged batch is searchable by its tag word unless acknowledged deleted (a
    delete of batch b - 2 after batch b >= last may have committed unacknowledged), and the
    keyword index scores as its twin does. Returns (next start, in-flight deletes, where the
    keyword index was loaded from)."""
    with vdb.open(path) as db:
        col = db.get_collection("t")
        loaded = col.info()["text_index"]["loaded_from"]
        present = {r.payload["batch"] for r in scan(col)}
        queries = QUERIES + [tag_word(b) for b in sorted(acked | present)[-6:]]
        assert keyword_results(col, queries) == twin_results(col, queries)
        for b in present:
            hits = col.search(text=tag_word(b), k=10 * BATCH, with_document=False)
            assert sorted(h.id for h in hits) == sorted(batch_ids(b)), f"batch {b} is partial"
        in_flight = {
            b for b in acked - present if b % 3 == 1 and b + 2 >= last and b + 2 in acked | present
        }
        lost = acked - deleted - present - in_flight
        assert not lost, f"acknowledged batches lost: {lost}"
        assert not (deleted & present), f"acknowledged deletes undone: {deleted & present}"
        return max(present | acked | deleted, default=-1) + 1, in_flight, loaded


@pytest.mark.parametrize("trials", [pytest.param(4), pytest.param(30, marks=pytest.mark.slow)])
def test_keyword_index_survives_kill_9(tmp_path, trials):
    rnd = random.Random(23)
    path = tmp_path / "db"
    start, all_acked, all_deleted, sources = 0, set(), set(), []
    for _ in range(trials):
        acked, deleted = crash_once(path, start, rnd, every=70)  # a checkpoint every 2 batches
        all_acked |= acked
        all_deleted |= deleted
        start, in_flight, loaded = check(path, all_acked, all_deleted, max(acked, default=-10))
        all_deleted |= in_flight
        sources.append(loaded)
    assert all_acked, "the writer never acknowledged a batch"
    assert "checkpoint" in sources, sources
    assert not list((path / "index").glob("*.tmp-*")), "stale temporary checkpoint files"
    # the replayed index and one rebuilt from the records score alike, to the bit
    with vdb.open(path) as db:
        col = db.get_collection("t")
        before = [col._text.scores(analyzer.get("en").terms(q)) for q in QUERIES]
    sparse_file.path_for(path / "index", 1).unlink()
    with vdb.open(path) as db:
        col = db.get_collection("t")
        assert col.info()["text_index"]["loaded_from"] == "records"
        for q, (slots, scores) in zip(QUERIES, before, strict=True):
            again = col._text.scores(analyzer.get("en").terms(q))
            np.testing.assert_array_equal(again[0], slots)
            assert again[1].tobytes() == scores.tobytes()


def test_read_only_handle_follows_the_writers_keyword_index(tmp_path):
    path = tmp_path / "db"
    proc = start_writer(path, 0, "100000", "7")
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        with vdb.open(path, read_only=True) as ro:
            col = ro.get_collection("t")
            assert col.search(text="river") == []
            proc.stdin.write("go\n")
            proc.stdin.flush()
            while (line := proc.stdout.readline().strip()) != "DONE":
                assert line, proc.stderr.read()
            queries = QUERIES + [tag_word(b) for b in range(7)] + [" ".join(WORDS)]
            assert keyword_results(col, queries) == twin_results(col, queries)  # refreshed
            assert col.info()["lsn"] == 7 + 2  # seven upserts, two deletes, replayed
            assert col.search(text=tag_word(1)) == []  # deleted after batch 3
            assert len(col.search(text=tag_word(0), k=100)) == BATCH
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
