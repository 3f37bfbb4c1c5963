"""A `vdb serve` subprocess: kill -9 during a streaming upsert loses no acknowledged batch;
SIGTERM drains the in-flight stream and closes the store cleanly."""

import threading

import numpy as np
import pytest

import vdb
from tests.rpc import ServerProcess

BATCH, DIM = 200, 16


def batch(b: int):
    ids = [f"{b}-{i}" for i in range(BATCH)]
    vectors = np.random.default_rng(b).standard_normal((BATCH, DIM)).astype(np.float32)
    return ids, vectors, [{"batch": b}] * BATCH


def check_batches(col, acked) -> None:
    """Every acknowledged batch is whole and exact; any other batch is whole or absent."""
    for b in acked:
        ids, vectors, _ = batch(b)
        records = col.get(ids)
        assert [r.id for r in records] == ids, f"acknowledged batch {b} is not whole"
        np.testing.assert_array_equal(np.stack([r.vector for r in records]), vectors)
    present = {}
    for rec in col.scroll(limit=1_000_000)[0]:
        present[rec.payload["batch"]] = present.get(rec.payload["batch"], 0) + 1
    assert all(n == BATCH for n in present.values()), present
    assert set(acked) <= set(present)


@pytest.mark.parametrize("kill_after", [1, 6])
def test_kill_9_during_streaming_upsert(tmp_path, kill_after):
    server = ServerProcess(tmp_path / "db")
    acked = []
    try:
        with vdb.connect(server.address) as db:
            col = db.create_collection("c", DIM)

            def on_batch(i, result):
                acked.append(i)
                if len(acked) == kill_after:
                    server.kill()

            with pytest.raises(vdb.UnavailableError):
                col.bulk_upsert((batch(b) for b in range(10_000)), on_batch)
    finally:
        server.close()
    assert len(acked) >= kill_after
    server = ServerProcess(tmp_path / "db")
    try:
        with vdb.connect(server.address) as db:
            check_batches(db.get_collection("c"), acked)
    finally:
        server.close()


def test_sigterm_drains_the_stream_and_closes_cleanly(tmp_path):
    server = ServerProcess(tmp_path / "db", "--grace", "60")
    first_ack, exit_code = threading.Event(), []
    try:
        with vdb.connect(server.address) as db:
            col = db.create_collection("c", DIM)
            acked = []

            def batches():
                yield batch(0)
                assert first_ack.wait(30)
                threading.Thread(target=lambda: exit_code.append(server.terminate())).start()
                for b in range(1, 20):  # still accepted: the stream was in flight
                    yield batch(b)

            def on_batch(i, result):
                acked.append(i)
                first_ack.set()

            result = col.bulk_upsert(batches(), on_batch)
            assert result.count == 20 * BATCH and acked == list(range(20))
        server.proc.wait(60)
        assert exit_code == [0] or server.proc.returncode == 0
        assert "stopped" in server.stderr()
    finally:
        server.close()
    with vdb.open(tmp_path / "db") as db:
        col = db.get_collection("c")
        assert col.info()["loaded_from"] == "checkpoint"  # the store was closed cleanly
        check_batches(col, range(20))
