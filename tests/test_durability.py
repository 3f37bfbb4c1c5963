"""Acknowledged writes survive kill -9; no partial batch is ever visible; one writer only."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vdb
from tests.helpers.writer import BATCH, batch_ids, batch_vectors

ROOT = Path(__file__).resolve().parent.parent


def start_writer(path, start, extra=()):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.writer", str(path), str(start), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def crash_once(path, start, rnd, extra=()):
    proc = start_writer(path, start, extra)
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
    time.sleep(rnd.uniform(0.0, 0.4))
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    acked, deleted = set(), set()
    for line in out.split("\n")[:-1]:  # the last piece may be a line cut by the kill
        word, _, num = line.partition(" ")
        (acked if word == "ACK" else deleted).add(int(num))
    return acked, deleted


def check(path, acked, deleted, last):
    """last: the newest batch acknowledged before the kill. After committing batch b (a multiple
    of 3) the writer deletes batch b - 2; when b >= last, that delete may have committed without
    being acknowledged."""
    with vdb.open(path) as db:
        col = db.get_collection("c")
        present = set()
        for rec in col.scroll(limit=10**6, with_vectors=True)[0]:
            present.add(rec.payload["batch"])
        for b in present:
            recs = col.get(batch_ids(b))
            assert len(recs) == BATCH, f"batch {b} is partial: {len(recs)} of {BATCH}"
            np.testing.assert_array_equal(np.stack([r.vector for r in recs]), batch_vectors(b))
        in_flight = {
            b for b in acked - present if b % 3 == 1 and b + 2 >= last and b + 2 in acked | present
        }
        lost = acked - deleted - present - in_flight
        assert not lost, f"acknowledged batches lost: {lost}"
        assert not (deleted & present), f"acknowledged deletes undone: {deleted & present}"
        return max(present | acked | deleted, default=-1) + 1, in_flight


@pytest.mark.parametrize("trials", [pytest.param(4), pytest.param(40, marks=pytest.mark.slow)])
def test_acknowledged_batches_survive_kill_9(tmp_path, trials):
    rnd = random.Random(7)
    path = tmp_path / "db"
    start = 0
    all_acked, all_deleted = set(), set()
    for _ in range(trials):
        acked, deleted = crash_once(path, start, rnd)
        all_acked |= acked
        all_deleted |= deleted
        start, deleted_unacknowledged = check(path, all_acked, all_deleted, max(acked, default=-10))
        all_deleted |= deleted_unacknowledged
    assert all_acked, "the writer never acknowledged a batch"


def test_second_writer_process_is_refused_and_readers_work(tmp_path):
    path = tmp_path / "db"
    proc = start_writer(path, 0)
    try:
        assert proc.stdout.readline().strip() == "READY"
        with pytest.raises(vdb.DatabaseLockedError, match=str(proc.pid)):
            vdb.open(path)
        while proc.stdout.readline().strip() != "ACK 2":
            pass
        with vdb.open(path, read_only=True) as ro:
            col = ro.get_collection("c")
            assert col.count() >= 2 * BATCH
            first = col.lsn
            deadline = time.monotonic() + 30
            while col.lsn == first and time.monotonic() < deadline:
                time.sleep(0.05)
                col.refresh()
            assert col.lsn > first, "read-only handle never saw newer writes"
            page, _ = col.scroll(limit=10**6)
            assert len(page) % BATCH == 0
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    with vdb.open(path) as db:
        assert db.get_collection("c").count() > 0
