"""Writing agent memory: remember (near-duplicates reinforce), update (a new version linked to
the old), forget (soft or hard) and eviction beyond max_memories."""

from __future__ import annotations

import uuid
from collections import defaultdict

import numpy as np

from vdb import filters
from vdb.errors import InvalidArgumentError, shown
from vdb.memory.records import (
    MemoryRecord,
    _check_importance,
    _check_metadata,
    _check_text,
    _check_vectors,
    _count,
    _entry,
    _new_payload,
    _record,
)


class Writing:
    """Memory's writes (a mixin: Memory provides col, clock, weights, duplicate_cosine,
    max_memories, _state, the scope filters and the point helpers)."""

    def remember(
        self,
        text: str,
        kind: str = "fact",
        importance: float = 0.5,
        metadata: dict | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        ttl: float | None = None,
    ) -> MemoryRecord:
        """Store text, or reinforce the current memory that already says it (cosine at or
        above duplicate_cosine, same kind and scope): its importance rises halfway to the new
        one's if higher, its count by one, its last access to now."""
        item = {"text": text, "kind": kind, "importance": importance, "metadata": metadata}
        item.update(user_id=user_id, session_id=session_id, ttl=ttl)
        return self.remember_many([item])[0]

    def remember_many(
        self,
        items,
        kind: str = "fact",
        importance: float = 0.5,
        user_id: str | None = None,
        session_id: str | None = None,
        ttl: float | None = None,
        vectors=None,
        batch_size: int = 256,
        progress=None,
    ) -> list[MemoryRecord]:
        """remember() for many items at once: texts, or dicts with text and any of kind,
        importance, metadata, user_id, session_id, ttl (the arguments are their defaults).
        Embedded in batches (or vectors given, one row per item), each batch written in one
        commit; near-duplicates reinforce, within a batch too. Every item is checked before
        anything is written. Returns the record each item became or reinforced.
        progress(done) is called before each batch with the items written so far; an
        exception it raises stops there (the batches before stay written)."""
        defaults = {"kind": kind, "importance": importance, "metadata": None}
        defaults.update(user_id=user_id, session_id=session_id, ttl=ttl)
        entries = [_entry(item, defaults) for item in items]
        if not _count(batch_size):
            raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size}")
        if vectors is not None:
            vectors = _check_vectors(vectors, len(entries), self.col.dim)
        out: list[MemoryRecord] = []
        with self._state.lock:
            self._flush_locked()
            for start in range(0, len(entries), batch_size):
                if progress is not None:
                    progress(start)
                chunk = entries[start : start + batch_size]
                vecs = None if vectors is None else vectors[start : start + batch_size]
                out += self._remember_batch(chunk, vecs)
            if self.max_memories is not None:
                for user in dict.fromkeys(e["user_id"] for e in entries):
                    self._evict(user)
        return out

    def _remember_batch(self, entries: list[dict], vecs) -> list[MemoryRecord]:
        now = self.clock()
        if vecs is None:
            vecs = self.col.embedder.embed([e["text"] for e in entries])
        unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        nearest = self._nearest(entries, vecs)
        pending: dict[str, list] = {}  # id -> [vector, payload, document], written at once
        fresh = defaultdict(list)  # scope and kind -> [(id, row)] added by this batch
        ids = []
        for i, e in enumerate(entries):
            key = (e["user_id"], e["session_id"], e["kind"])
            target = None
            hit = nearest[i]
            if hit is not None and hit.score >= self.duplicate_cosine:
                target = hit.id
                if target not in pending:
                    pending[target] = [hit.vector, dict(hit.payload), hit.document]
            else:
                for pid, row in fresh[key]:
                    if float(unit[row] @ unit[i]) >= self.duplicate_cosine:
                        target = pid
                        break
            if target is not None:
                p = pending[target][1]
                if e["importance"] > p["importance"]:
                    p["importance"] = (p["importance"] + e["importance"]) / 2
                p["count"] += 1
                p["last_access"] = now
                if e["ttl"] is not None:
                    p["expires_at"] = now + e["ttl"]
                ids.append(target)
                continue
            pid = uuid.uuid4().hex
            pending[pid] = [vecs[i], _new_payload(e, now), e["text"]]
            fresh[key].append((pid, i))
            ids.append(pid)
        order = list(pending)
        self.col.upsert(
            order,
            np.asarray([pending[i][0] for i in order], dtype=np.float32),
            [pending[i][1] for i in order],
            [pending[i][2] for i in order],
        )
        return [_record(i, pending[i][2], pending[i][1]) for i in ids]

    def _nearest(self, entries: list[dict], vecs) -> list:
        """For each entry, the nearest current memory of its scope and kind (or None)."""
        groups = defaultdict(list)
        for i, e in enumerate(entries):
            groups[(e["user_id"], e["session_id"], e["kind"])].append(i)
        nearest = [None] * len(entries)
        for (user, session, kind), rows in groups.items():
            flt = self._filter([*self._scope(user, session), {"kind": kind}])
            found = self.col.search(vecs[rows], k=1, filter=flt, with_vectors=True)
            for i, hits in zip(rows, found, strict=True):
                nearest[i] = hits[0] if hits else None
        return nearest

    def update(
        self, memory_id: str, text: str, importance: float | None = None, metadata=None
    ) -> MemoryRecord:
        """A new version of a current memory; the old one is closed and linked to it."""
        _check_text(text)
        if importance is not None:
            _check_importance(importance)
        _check_metadata(metadata)
        with self._state.lock:
            self._flush_locked()
            old = self._point(memory_id)
            p = dict(old.payload)
            if not p["current"]:
                raise InvalidArgumentError(
                    f"memory {shown(memory_id)} is not current: update its latest version"
                )
            now = self.clock()
            new_id = uuid.uuid4().hex
            q = {k: v for k, v in p.items() if k not in ("valid_to", "next")}
            q.update(
                {
                    "importance": float(importance if importance is not None else p["importance"]),
                    "created": now,
                    "last_access": now,
                    "count": 1,
                    "current": True,
                    "valid_from": now,
                    "previous": memory_id,
                }
            )
            if metadata is not None:
                q["metadata"] = metadata
            vector = self.col.embedder.embed([text])[0]
            p.update({"current": False, "valid_to": now, "next": new_id})
            # one batch: both versions change together or not at all
            self.col.upsert([memory_id, new_id], [old.vector, vector], [p, q], [old.document, text])
        return _record(new_id, text, q)

    def forget(self, memory_id: str | None = None, filter=None, hard: bool = False) -> int:
        """Close memories (soft: kept for history, never recalled) or delete them with their
        whole version chains (hard). By id, or every current memory matching filter."""
        if (memory_id is None) == (filter is None):
            raise InvalidArgumentError("forget takes either memory_id or filter")
        with self._state.lock:
            self._flush_locked()
            if memory_id is not None:
                points = [self._point(memory_id)]
            else:
                filters.parse(filter)  # its errors point into the caller's filter
                points = self._all(self._filter([filter]), with_vectors=True)
            if hard:
                ids = {i for pt in points for i in self._chain_ids(pt.id)}
                return self.col.delete(ids=sorted(ids)).count if ids else 0
            now = self.clock()
            closing = [pt for pt in points if pt.payload["current"]]
            closed = {"current": False, "valid_to": now, "forgotten": True}
            self._rewrite(closing, [dict(pt.payload, **closed) for pt in closing])
        return len(closing)

    def _evict(self, user_id) -> None:
        """Hard-delete the lowest-value current memories of a scope beyond max_memories;
        turns still in a conversation buffer stay."""
        flt = self._filter(self._scope(user_id, None))
        excess = self.col.count(flt) - self.max_memories
        if excess <= 0:
            return
        now = self.clock()
        points = [pt for pt in self._all(flt) if not pt.payload.get("in_buffer")]
        value = sorted(
            points,
            key=lambda pt: (
                self.weights["recency"] * self._recency(pt.id, pt.payload, now)
                + self.weights["importance"] * pt.payload["importance"]
            ),
        )
        ids = {i for pt in value[:excess] for i in self._chain_ids(pt.id)}
        if ids:
            self.col.delete(ids=sorted(ids))
