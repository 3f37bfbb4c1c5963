"""The background thread that links a collection's buffered points into its HNSW graph.

A write is acknowledged once LMDB holds it and the index holds its vectors as buffered rows
(searched exactly); this thread then links them in large parallel batches,
so that writes never wait for the graph. Between batches it lets go of the graph, so a
writer that grows the index, a checkpoint or stop() waits for one batch at most.
"""

import logging
import threading
import time
from contextlib import contextmanager

import numba

log = logging.getLogger("vdb.linker")

BETWEEN_WRITES = 0.25  # seconds after an upsert during which the next is expected
WRITING_BATCH = 256  # rows linked per batch meanwhile


class Linker:
    def __init__(self, name: str):
        self._name = name
        self._cond = threading.Condition()
        self._index = None  # the index with rows to link
        self._busy = False  # linking is running or about to
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._writers = 0  # upserts running now
        self._last_write = 0.0  # time.monotonic() when the last one ended
        self.error: BaseException | None = None  # what stopped the linking, if anything

    def wake(self, index) -> None:
        """index has buffered rows: link them."""
        with self._cond:
            if self._stopped or self.error is not None:
                return
            self._index, self._busy = index, True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"vdb-linker-{self._name}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._index is None or self._stopped:
                    # Nothing to link: the thread ends (wake() starts another). OpenMP keeps a
                    # team of worker threads for each thread that ran a parallel region, and
                    # once the process has more of them than cores, every team's workers sleep
                    # right after each region instead of spinning: a question's embedding in
                    # another thread took 4.5 ms instead of 2.6 while this one only waited.
                    self._busy = False
                    self._thread = None
                    self._cond.notify_all()
                    return
                index, self._index = self._index, None
            try:
                while not self._stopped:
                    numba.set_num_threads(self._threads())
                    # while upserts come, small batches: a writer that must grow the index, or
                    # that comes back for its core, waits for the batch in hand
                    limit = WRITING_BATCH if self._writing() else None
                    if not index.link_pending(limit):
                        break
            except Exception as exc:  # the rows stay buffered, so searches stay exact
                log.exception("linking the HNSW graph of collection %r failed", self._name)
                with self._cond:
                    self.error = exc
                    self._stopped = True

    @staticmethod
    def _all_threads() -> int:
        return numba.config.NUMBA_NUM_THREADS

    def _threads(self) -> int:
        """Every numba thread, but one fewer while an upsert runs: the writer's own work
        (checks, encoding, LMDB) then keeps a core and acknowledges at full speed."""
        total = self._all_threads()
        return total - 1 if total > 1 and self._writers else total

    def _writing(self) -> bool:
        """Whether upserts keep coming: one runs, or one ended less than BETWEEN_WRITES ago
        (the next is expected soon)."""
        return bool(self._writers) or time.monotonic() - self._last_write < BETWEEN_WRITES

    @contextmanager
    def writing(self):
        """Around an upsert, so that linking leaves it a core (see _threads)."""
        with self._cond:
            self._writers += 1
        try:
            yield
        finally:
            with self._cond:
                self._writers -= 1
                self._last_write = time.monotonic()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no linking is running or asked for; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy or self._stopped, timeout)

    def stop(self) -> None:
        """Stop after the current batch (the rows left stay buffered)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
