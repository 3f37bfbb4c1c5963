"""Access refreshes of agent memory: a recall refreshes the last access of what it returns;
refreshes count at once for every Memory on one collection in the process and are written in
batches (see Memory.recall)."""

from __future__ import annotations

import math
import threading
import weakref

from vdb.memory.records import MemoryRecord, _record

FLUSH_TOUCHES = 256  # access refreshes held before they are written


class _Shared:
    """What every Memory on one collection shares: the lock that makes read-modify-write
    changes atomic, and the access refreshes not yet written (id -> time)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.touched: dict[str, float] = {}
        self.since: float | None = None  # when the oldest unwritten refresh was made


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def _shared(col) -> _Shared:
    with _SHARED_LOCK:
        state = _SHARED.get(col)
        if state is None:
            state = _SHARED[col] = _Shared()
        return state


class AccessRefreshes:
    """Memory's access refreshes (a mixin: Memory provides col, clock, half_life,
    flush_interval, refresh_access, _state and _rewrite)."""

    def _touch(self, ids: list[str], now: float) -> None:
        state = self._state
        if not ids or not self.refresh_access:
            return
        if state.since is None:
            state.since = now
        for i in ids:
            state.touched[i] = now
        due = len(state.touched) >= FLUSH_TOUCHES or now - state.since >= self.flush_interval
        if due and state.lock.acquire(blocking=False):  # else a writer holds it: later
            try:
                self._flush_locked()
            finally:
                state.lock.release()

    def flush(self) -> int:
        """Write the pending access refreshes now. Returns how many were written."""
        with self._state.lock:
            return self._flush_locked()

    def _flush_locked(self) -> int:
        state = self._state
        if not state.touched:
            return 0
        pending = dict(state.touched)
        points = self.col.get(list(pending), with_vectors=True)
        payloads = [
            dict(pt.payload, last_access=max(pt.payload["last_access"], pending[pt.id]))
            for pt in points
        ]
        self._rewrite(points, payloads)
        for i, t in pending.items():
            if state.touched.get(i) == t:
                del state.touched[i]
        state.since = None if not state.touched else self.clock()
        return len(points)

    def _record(self, pid, document, payload: dict) -> MemoryRecord:
        """The record with any access refresh not yet written."""
        touched = self._state.touched.get(pid)
        if touched is not None and touched > payload["last_access"]:
            payload = dict(payload, last_access=touched)
        return _record(pid, document, payload)

    def _recency(self, memory_id: str, p: dict, now: float) -> float:
        last = max(p["last_access"], self._state.touched.get(memory_id, -math.inf))
        return math.pow(0.5, max(0.0, now - last) / self.half_life)
