"""`vdb serve --grace 2` after a load run (writes, searches, streams, generation, agent memory,
cancelled calls, undecodable bodies, requests past their deadline) stops on SIGTERM within
its bound (--grace + STOP_WAIT + EXIT_WAIT), exits 0 having closed the store, and every
acknowledged write is there on reopen. A server whose stderr nobody reads keeps serving and
stops as well (its log lines are dropped rather than blocking gRPC's polling thread)."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

import vdb
from tests.conftest import fixture_file
from tests.rpc import ROOT, ServerProcess
from vdb.cli.serve import EXIT_WAIT, STOP_WAIT
from vdb.rpc._gen import embeddings_pb2 as epb
from vdb.rpc._gen import embeddings_pb2_grpc as egrpc

GRACE = 2.0
BOUND = GRACE + STOP_WAIT + EXIT_WAIT  # seconds from SIGTERM to exit, at most
MODEL = fixture_file("models", "stories260K.gguf")
DIM = 8


class Load:
    """Client threads, each repeating one kind of call until stopped; errors are counted
    (calls fail once the server stops), acknowledged upserts are kept."""

    def __init__(self, address: str):
        self.address = address
        self.stop = threading.Event()
        self.acked: dict[int, np.ndarray] = {}
        self.calls = 0
        self.lock = threading.Lock()
        self.threads = []

    def run(self, fn) -> None:
        seed = len(self.threads)  # each thread its own ids

        def loop():
            with vdb.connect(self.address, timeout=10) as db:
                rng = np.random.default_rng(seed)
                while not self.stop.is_set():
                    try:
                        fn(db, rng)
                    except (vdb.VdbError, grpc.RpcError, ValueError):
                        pass
                    with self.lock:
                        self.calls += 1

        thread = threading.Thread(target=loop, daemon=True)
        self.threads.append(thread)
        thread.start()

    def upserts(self, db, rng) -> None:
        col = db.get_collection("c")
        ids = [int(i) for i in rng.integers(0, 1 << 40, 20)]
        vectors = rng.standard_normal((20, DIM)).astype(np.float32)
        col.upsert(ids, vectors)
        with self.lock:
            self.acked.update(zip(ids, vectors, strict=True))

    def streams(self, db, rng) -> None:
        col = db.get_collection("c")
        batches = [
            ([int(i) for i in rng.integers(0, 1 << 40, 50)], rng.standard_normal((50, DIM)))
            for _ in range(4)
        ]
        acked = []
        col.bulk_upsert(batches, lambda i, r: acked.append(i))
        with self.lock:
            for i in acked:
                ids, vectors = batches[i]
                self.acked.update(zip(ids, vectors.astype(np.float32), strict=True))

    @staticmethod
    def searches(db, rng) -> None:
        db.get_collection("c").search(rng.standard_normal((16, DIM)), k=20)

    @staticmethod
    def memory(db, rng) -> None:
        mem = db.memory("agent")
        mem.remember(f"fact number {int(rng.integers(1 << 30))}")
        mem.recall("fact", k=3)

    @staticmethod
    def generation(db, rng) -> None:
        with vdb.connect_model(db.address, timeout=10) as model:
            pieces = model.generate("Once upon a time", 64, stream=True)
            for i, _ in enumerate(pieces):
                if i == 4:
                    pieces.close()  # cancels the stream
                    break

    @staticmethod
    def abuse(db, rng) -> None:
        channel = db._channel
        junk = channel.unary_unary("/vdb.v1.Points/SearchBatch")
        try:
            junk(bytes(rng.integers(0, 256, 40, dtype=np.uint8)), timeout=5)
        except grpc.RpcError:
            pass
        embed = egrpc.EmbeddingsStub(channel).Embed
        texts = epb.EmbedRequest(texts=[f"a long text number {i}" * 8 for i in range(4096)])
        try:  # past its deadline long before the server could finish
            embed(texts, timeout=0.3)
        except grpc.RpcError:
            pass
        future = embed.future(texts, timeout=30)
        time.sleep(0.05)
        future.cancel()


def test_sigterm_after_a_load_run_stops_within_the_bound(tmp_path):
    args = ["--grace", str(GRACE), "--model", str(MODEL)]
    server = ServerProcess(tmp_path / "db", *args)
    load = Load(server.address)
    try:
        with vdb.connect(server.address) as db:
            db.create_collection("c", DIM)
        kinds = [
            load.upserts,
            load.streams,
            load.searches,
            load.memory,
            load.abuse,
            load.generation,
        ]
        for kind in kinds:
            load.run(kind)
        deadline = time.monotonic() + 120
        while (load.calls < 60 or len(load.acked) < 200) and time.monotonic() < deadline:
            time.sleep(0.1)
        server.proc.send_signal(signal.SIGTERM)  # the load goes on meanwhile
        try:
            code = server.proc.wait(BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"vdb serve still running {BOUND:.0f} s after SIGTERM")
        load.stop.set()
        log = server.stderr()
        assert code == 0, log[-2000:]
        assert "vdb: stopped" in log and "exiting" not in log, log[-2000:]
        assert "Traceback" not in log, log[log.index("Traceback") :][:2000]
        assert "undecodable request" in log  # one line each, no traceback
    finally:
        load.stop.set()
        server.close()
    with load.lock:
        acked = dict(load.acked)
    assert len(acked) >= 200
    with vdb.open(tmp_path / "db") as db:
        col = db.get_collection("c")
        assert col.info()["loaded_from"] == "checkpoint"  # closed cleanly
        records = col.get(list(acked))
        assert len(records) == len(acked)
        for rec in records[:: max(1, len(records) // 200)]:
            np.testing.assert_array_equal(rec.vector, acked[rec.id])


def test_a_server_whose_stderr_is_not_read_keeps_serving_and_stops(tmp_path):
    """Thousands of undecodable requests, one log line each, into a pipe nobody reads: the
    pipe fills, yet the server answers and stops on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdb", "--data", str(tmp_path / "db"), "serve", "--port", "0"]
        + ["--grace", str(GRACE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # never read
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        address = re.search(rb" on (\S+:\d+) ", proc.stdout.readline()).group(1).decode()
        channel = grpc.insecure_channel(address)
        junk = channel.unary_unary("/vdb.v1.Points/Search")
        codes = set()
        for _ in range(2000):  # about 300 KB of log lines
            try:
                junk(b"\xff" * 30, timeout=30)
            except grpc.RpcError as exc:
                codes.add(exc.code())
        channel.close()
        assert codes == {grpc.StatusCode.INVALID_ARGUMENT}
        with vdb.connect(address, timeout=30) as db:
            db.create_collection("c", 2).upsert([1], [[1, 0]])
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(BOUND) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"vdb serve still running {BOUND:.0f} s after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    with vdb.open(tmp_path / "db") as db:
        assert db.get_collection("c").get(1).vector.tolist() == [1, 0]
