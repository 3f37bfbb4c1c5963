"""Runs fuzz jobs in a worker subprocess under an address-space limit and a timeout.

One worker takes many jobs in turn, answering each on a pipe. When it dies (a signal, an
abort from a damaged heap) the job it was running is recorded as a crash with the signal and
the end of its stderr, and a fresh worker takes the next job; when a job outlives the
timeout the worker is killed and the job recorded as a hang.
"""

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# bounds-checked builds of the kernels, kept apart from the unchecked ones (numba's cache
# index does not record the boundscheck flag) and kept between runs
BOUNDSCHECK_CACHE = ROOT / ".vdb-test-home" / "numba-boundscheck"
MEMORY_LIMIT = 6 << 30  # bytes of address space a worker may map
STARTUP_SECONDS = 300.0


def worker_env(boundscheck: bool = True, cache_dir: Path = BOUNDSCHECK_CACHE) -> dict:
    """The environment of a worker: bounds-checked kernels (or the ordinary builds, from the
    ordinary cache, with boundscheck=False), one BLAS thread."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = dict(
        os.environ,
        PYTHONPATH=path,
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        PYTHONFAULTHANDLER="1",
    )
    if boundscheck:
        env.update(NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(cache_dir))
    return env


def _limit(memory: int):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return apply


class Worker:
    """A worker process (`python -m module RESULT_FD`) and the pipe it answers on."""

    def __init__(self, module: str, env: dict, memory: int):
        read_fd, write_fd = os.pipe()
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            pass_fds=(write_fd,),
            cwd=ROOT,
            env=env,
            preexec_fn=_limit(memory),
        )
        os.close(write_fd)
        self.fd, self.buffer = read_fd, b""
        ready = self.read(STARTUP_SECONDS)
        if not isinstance(ready, dict) or not ready.get("ready"):
            raise RuntimeError(f"the fuzz worker did not start: {self.stderr_tail()}")

    def read(self, timeout: float):
        """The next JSON answer; "eof" when the worker died, "timeout" when none came."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return "eof"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def send(self, job: dict) -> None:
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()

    def peak_rss(self) -> int:
        """The worker's peak resident memory so far, bytes (0 when unknown)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def stderr_tail(self, n: int = 1500) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-n:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # our own child
        self.proc.wait()
        os.close(self.fd)
        self.stderr.close()
        if self.proc.stdin:
            self.proc.stdin.close()


class Runner:
    """Runs jobs through a worker, restarting it after a crash or a hang.

    run(job) returns the worker's answer, or {"outcome": "crash" | "hang", ...}; an answer
    whose seconds, less the seconds numba spent compiling, exceed slow_seconds is marked
    "slow" (a one-off compile of a kernel is not a hang; minutes of work would be)."""

    def __init__(
        self,
        module: str = "tests.fuzz.gguf_worker",
        env: dict | None = None,
        memory: int = MEMORY_LIMIT,
        timeout: float = 300.0,
        slow_seconds: float = 10.0,
    ):
        self.module, self.env, self.memory = module, env or worker_env(), memory
        self.timeout, self.slow_seconds = timeout, slow_seconds
        self.worker: Worker | None = None
        self.restarts = 0
        self.peak_rss = 0

    def run(self, job: dict) -> dict:
        if self.worker is None:
            self.worker = Worker(self.module, self.env, self.memory)
        worker = self.worker
        try:
            worker.send(job)
            answer = worker.read(self.timeout)
        except BrokenPipeError:  # it died before reading the job
            answer = "eof"
        if isinstance(answer, dict):
            self.peak_rss = max(self.peak_rss, worker.peak_rss())
            if answer["seconds"] - answer["compile"] > self.slow_seconds:
                answer["outcome"] = "slow"
            return answer
        if answer == "timeout":
            result = {"outcome": "hang", "class": None, "message": f"over {self.timeout} s"}
        else:
            code = worker.proc.wait()
            name = signal.Signals(-code).name if code < 0 else f"exit {code}"
            result = {"outcome": "crash", "class": name, "message": worker.stderr_tail()}
        self.peak_rss = max(self.peak_rss, worker.peak_rss())
        worker.close()
        self.worker = None
        self.restarts += 1
        return result

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
