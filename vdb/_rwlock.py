"""A writer-preferring readers-writer lock."""

import threading
from contextlib import contextmanager


class RWLock:
    """Many readers or one writer. Waiting writers block new readers, so writes cannot starve."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._reading = _Reading(self)

    def read(self) -> "_Reading":
        """A context holding the lock for reading (a plain object rather than a generator: it
        is taken once per search)."""
        return self._reading

    @contextmanager
    def write(self):
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Reading:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock):
        self._lock = lock

    def __enter__(self) -> None:
        lock = self._lock
        with lock._mutex:  # the condition's own lock, without its Python-level wrapper
            while lock._writer or lock._writers_waiting:
                lock._cond.wait()
            lock._readers += 1

    def __exit__(self, *exc) -> None:
        lock = self._lock
        with lock._mutex:
            lock._readers -= 1
            if not lock._readers and lock._writers_waiting:  # only writers wait on readers
                lock._cond.notify_all()
