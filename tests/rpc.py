"""Helpers for tests of the gRPC service: an in-process server on 127.0.0.1 port 0, a
`vdb serve` subprocess, and raw stubs for requests the Python client would never send."""

import os
import re
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import grpc

import vdb
from vdb.rpc._gen import collections_pb2_grpc, points_pb2_grpc, server_pb2_grpc, snapshots_pb2_grpc
from vdb.rpc.server import Server, ServerOptions

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def serving(path, **options):
    """(server, address) of a server over the database at path, stopped and closed after."""
    db = vdb.open(path)
    server = Server(db, ServerOptions(port=0, **options))
    try:
        port = server.start()
        yield server, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=1)
        db.close()


class Stubs:
    """Raw stubs on a plaintext channel."""

    def __init__(self, address: str, api_key: str | None = None):
        self.channel = grpc.insecure_channel(address)
        self.metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self.collections = collections_pb2_grpc.CollectionsStub(self.channel)
        self.points = points_pb2_grpc.PointsStub(self.channel)
        self.snapshots = snapshots_pb2_grpc.SnapshotsStub(self.channel)
        self.server = server_pb2_grpc.ServerStub(self.channel)

    def code(self, method, request) -> grpc.StatusCode:
        """The status code a call ends with (OK when it succeeds)."""
        try:
            method(request, metadata=self.metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def close(self) -> None:
        self.channel.close()


class ServerProcess:
    """`vdb serve` in a subprocess on a free port. Its stdout and stderr are read all along by
    background threads (a pipe nobody reads would block the server once full)."""

    def __init__(self, data, *args, env=None):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vdb", "--data", str(data), "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._read_stderr, daemon=True)]
        self._readers[0].start()
        line = self.proc.stdout.readline()
        match = re.search(r" on (\S+:\d+) ", line)
        if not match:
            self.proc.kill()
            self.proc.wait(30)
            self._readers[0].join(30)
            self.proc.stdout.close()
            self.proc.stderr.close()
            raise RuntimeError(f"server did not start: {line!r} {self.stderr()}")
        self.address = match.group(1)
        http = re.search(r"HTTP on https?://(\S+?)\)", line)
        self.http_address = http.group(1) if http else None
        self._readers.append(threading.Thread(target=self.proc.stdout.read, daemon=True))
        self._readers[1].start()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self._err.append(line)

    def stderr(self) -> str:
        """What the server wrote to stderr so far (all of it once it has exited)."""
        if self.proc.poll() is not None:
            self._readers[0].join(30)
        return "".join(self._err)

    def peak_rss(self) -> int:
        """The server's peak resident memory so far, in bytes (VmHWM)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        for reader in self._readers:
            reader.join(30)
        self.proc.stdout.close()
        self.proc.stderr.close()
