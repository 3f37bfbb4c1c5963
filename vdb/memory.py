"""Long-term memory for an agent: remember, recall, update without forgetting, forget.

One collection per agent (`memory.<agent>`) holds the memories as points: the text is the
document, the vector its embedding, and the payload says the rest:

    kind        fact | event | preference | summary
    importance  in [0, 1]
    user_id, session_id    scopes (absent: the agent's own)
    created, last_access   seconds since the epoch
    count       times remembered (a near-duplicate reinforces instead of adding a copy)
    current     False once superseded by an update or forgotten
    valid_from, valid_to   the interval the version held (valid_to absent while current)
    previous, next         the versions before and after (history())
    expires_at  from a time-to-live, if given
    metadata    the caller's own JSON

Recall ranks by a weighted sum of relevance (cosine, as (1 + cos) / 2), recency
(0.5 ** (time since last access / half-life)) and importance, each in [0, 1]. The default
weights, 0.6 / 0.2 / 0.2, keep relevance first (a memory about something else should not win
because it is fresh or marked important) while letting recency and importance break the
near-ties between memories about the same thing, as in the Generative Agents paper's
retrieval, which weighs the three equally but normalizes relevance over a smaller
candidate set. A recall refreshes the last access of what it returns.

Updates never destroy: update() closes the old version (current False, valid_to now, next
the new id) and writes the new one linked back. forget() is soft by default (the memory
stays, closed, for history()); forget(hard=True) deletes the whole chain from disk.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

import numpy as np

from vdb.collection import scan
from vdb.errors import InvalidArgumentError, NotFoundError

KINDS = ("fact", "event", "preference", "summary")
DEFAULT_WEIGHTS = {"relevance": 0.6, "recency": 0.2, "importance": 0.2}
DUPLICATE_COSINE = 0.92  # at or above: the same memory said again (all-MiniLM-L6-v2 scale)
CANDIDATES = 64  # nearest memories re-ranked per recall


class MemoryNotFoundError(NotFoundError):
    """No memory has this id."""


@dataclass
class MemoryRecord:
    id: str
    text: str
    kind: str
    importance: float
    created: float
    last_access: float
    count: int
    current: bool
    user_id: str | None = None
    session_id: str | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    previous: str | None = None
    next: str | None = None
    expires_at: float | None = None
    metadata: dict | None = None


@dataclass
class Recalled:
    memory: MemoryRecord
    score: float
    relevance: float
    recency: float
    importance: float


def _record(pid, document, p: dict) -> MemoryRecord:
    return MemoryRecord(
        id=pid,
        text=document or "",
        kind=p["kind"],
        importance=p["importance"],
        created=p["created"],
        last_access=p["last_access"],
        count=p["count"],
        current=p["current"],
        user_id=p.get("user_id"),
        session_id=p.get("session_id"),
        valid_from=p.get("valid_from"),
        valid_to=p.get("valid_to"),
        previous=p.get("previous"),
        next=p.get("next"),
        expires_at=p.get("expires_at"),
        metadata=p.get("metadata"),
    )


class Memory:
    """Example:
    >>> mem = Memory(vdb.open("db"), agent="assistant")  # doctest: +SKIP
    >>> m = mem.remember("Alice prefers tea", kind="preference", user_id="alice")  # doctest: +SKIP
    >>> [r.memory.text for r in mem.recall("what does Alice drink?", user_id="alice")]
    ... # doctest: +SKIP
    ['Alice prefers tea']
    """

    def __init__(
        self,
        db,
        agent: str = "default",
        embedder: str | None = None,
        half_life: float = 7 * 86400.0,
        weights: dict | None = None,
        duplicate_cosine: float = DUPLICATE_COSINE,
        max_memories: int | None = None,
        clock=time.time,
    ):
        import embed

        if not (isinstance(half_life, int | float) and half_life > 0):
            raise InvalidArgumentError(f"half_life must be > 0 seconds, got {half_life!r}")
        w = dict(DEFAULT_WEIGHTS, **(weights or {}))
        if (
            set(w) != set(DEFAULT_WEIGHTS)
            or any(not isinstance(v, int | float) or v < 0 for v in w.values())
            or not sum(w.values()) > 0
        ):
            raise InvalidArgumentError(
                f"weights: non-negative relevance, recency and importance, got {weights!r}"
            )
        if not -1 <= duplicate_cosine <= 1:
            raise InvalidArgumentError(
                f"duplicate_cosine must be in [-1, 1], got {duplicate_cosine}"
            )
        if max_memories is not None and (not isinstance(max_memories, int) or max_memories < 1):
            raise InvalidArgumentError(
                f"max_memories must be a positive integer, got {max_memories!r}"
            )
        total = sum(w.values())
        self.weights = {k: v / total for k, v in w.items()}
        self.agent, self.half_life, self.clock = agent, float(half_life), clock
        self.duplicate_cosine, self.max_memories = duplicate_cosine, max_memories
        self.col = db.get_or_create_collection(
            f"memory.{agent}", embedder=embedder or embed.DEFAULT_MODEL
        )

    # ------------------------------------------------------------------ scopes

    @staticmethod
    def _scope(user_id, session_id, all_users: bool = False) -> list[dict]:
        """Filter clauses for a scope: a user's memories (or the agent's own, with no user),
        and within them a session's when one is given."""
        clauses = []
        if not all_users:
            clauses.append(
                {"user_id": user_id} if user_id is not None else {"user_id": {"$exists": False}}
            )
        if session_id is not None:
            clauses.append({"session_id": session_id})
        return clauses

    def _filter(self, clauses: list[dict], history: bool = False):
        now = self.clock()
        clauses = list(clauses)
        if not history:
            clauses.append({"current": True})
            clauses.append(
                {"$or": [{"expires_at": {"$exists": False}}, {"expires_at": {"$gt": now}}]}
            )
        return {"$and": clauses} if clauses else None

    # ------------------------------------------------------------------ writing

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
        above duplicate_cosine in the same scope): its importance rises halfway to the new
        one's if higher, its count by one, its last access to now."""
        _check_text(text)
        if kind not in KINDS:
            raise InvalidArgumentError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        _check_importance(importance)
        if ttl is not None and not (isinstance(ttl, int | float) and ttl > 0):
            raise InvalidArgumentError(f"ttl must be > 0 seconds, got {ttl!r}")
        for name, value in (("user_id", user_id), ("session_id", session_id)):
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidArgumentError(f"{name} must be a non-empty string, got {value!r}")
        now = self.clock()
        vector = self.col.embedder.embed([text])[0]
        near = self.col.search(
            vector, k=1, filter=self._filter(self._scope(user_id, session_id)), with_vectors=True
        )
        if near and near[0].score >= self.duplicate_cosine and near[0].payload["kind"] == kind:
            hit = near[0]
            p = dict(hit.payload)
            if importance > p["importance"]:
                p["importance"] = (p["importance"] + importance) / 2
            p["count"] += 1
            p["last_access"] = now
            if ttl is not None:
                p["expires_at"] = now + ttl
            self.col.upsert([hit.id], [hit.vector], [p], [hit.document])
            return _record(hit.id, hit.document, p)
        pid = uuid.uuid4().hex
        p = {
            "kind": kind,
            "importance": float(importance),
            "created": now,
            "last_access": now,
            "count": 1,
            "current": True,
            "valid_from": now,
        }
        if user_id is not None:
            p["user_id"] = user_id
        if session_id is not None:
            p["session_id"] = session_id
        if ttl is not None:
            p["expires_at"] = now + ttl
        if metadata is not None:
            p["metadata"] = metadata
        self.col.upsert([pid], [vector], [p], [text])
        if self.max_memories is not None:
            self._evict(user_id)
        return _record(pid, text, p)

    def update(
        self, memory_id: str, text: str, importance: float | None = None, metadata=None
    ) -> MemoryRecord:
        """A new version of a current memory; the old one is closed and linked to it."""
        _check_text(text)
        if importance is not None:
            _check_importance(importance)
        old = self._point(memory_id)
        p = dict(old.payload)
        if not p["current"]:
            raise InvalidArgumentError(
                f"memory {memory_id!r} is not current: update its latest version"
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
        if memory_id is not None:
            points = [self._point(memory_id)]
        else:
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
        """Hard-delete the lowest-value current memories of a scope beyond max_memories."""
        flt = self._filter(self._scope(user_id, None))
        count = self.col.count(flt)
        excess = count - self.max_memories
        if excess <= 0:
            return
        now = self.clock()
        points = self._all(flt)
        value = sorted(
            points,
            key=lambda pt: (
                self.weights["recency"] * self._recency(pt.payload, now)
                + self.weights["importance"] * pt.payload["importance"]
            ),
        )
        ids = {i for pt in value[:excess] for i in self._chain_ids(pt.id)}
        self.col.delete(ids=sorted(ids))

    # ------------------------------------------------------------------ reading

    def recall(
        self,
        query: str,
        k: int = 5,
        kind: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        all_users: bool = False,
        history: bool = False,
        filter=None,
    ) -> list[Recalled]:
        """The k most useful memories for query in a scope, best first; refreshes their last
        access (history=True also ranks closed versions, and refreshes nothing)."""
        _check_text(query, "query")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
        clauses = self._scope(user_id, session_id, all_users)
        if kind is not None:
            if kind not in KINDS:
                raise InvalidArgumentError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
            clauses.append({"kind": kind})
        if filter is not None:
            clauses.append(filter)
        hits = self.col.search(
            query, k=max(CANDIDATES, k), filter=self._filter(clauses, history), with_vectors=True
        )
        now = self.clock()
        scored = []
        for h in hits:
            rel = (1.0 + h.score) / 2
            rec = self._recency(h.payload, now)
            imp = h.payload["importance"]
            w = self.weights
            score = w["relevance"] * rel + w["recency"] * rec + w["importance"] * imp
            scored.append((score, rel, rec, imp, h))
        scored.sort(key=lambda s: -s[0])
        top = scored[:k]
        if not history:
            hits = [h for *_, h in top]
            self._rewrite(hits, [dict(h.payload, last_access=now) for h in hits])
        return [
            Recalled(_record(h.id, h.document, h.payload), s, rel, rec, imp)
            for s, rel, rec, imp, h in top
        ]

    def _recency(self, p: dict, now: float) -> float:
        return math.pow(0.5, max(0.0, now - p["last_access"]) / self.half_life)

    def get(self, memory_id: str) -> MemoryRecord:
        pt = self._point(memory_id)
        return _record(pt.id, pt.document, pt.payload)

    def list(
        self,
        kind: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        all_users: bool = False,
        history: bool = False,
    ) -> list[MemoryRecord]:
        """Memories of a scope, oldest first."""
        clauses = self._scope(user_id, session_id, all_users)
        if kind is not None:
            clauses.append({"kind": kind})
        points = self._all(self._filter(clauses, history))
        records = [_record(pt.id, pt.document, pt.payload) for pt in points]
        return sorted(records, key=lambda r: (r.created, r.id))

    def history(self, memory_id: str) -> list[MemoryRecord]:
        """Every version of the memory, oldest first."""
        return [self.get(i) for i in self._chain_ids(memory_id)]

    def stats(self) -> dict:
        points = self._all(None)
        now = self.clock()
        current = [pt for pt in points if pt.payload["current"]]
        live = [pt for pt in current if pt.payload.get("expires_at", math.inf) > now]
        by_kind = {k: sum(pt.payload["kind"] == k for pt in live) for k in KINDS}
        users = sorted({pt.payload["user_id"] for pt in live if "user_id" in pt.payload})
        return {
            "agent": self.agent,
            "memories": len(live),
            "versions": len(points),
            "expired": len(current) - len(live),
            "forgotten": sum(bool(pt.payload.get("forgotten")) for pt in points),
            "by_kind": by_kind,
            "users": users,
        }

    # ------------------------------------------------------------------ helpers

    def _point(self, memory_id):
        if not isinstance(memory_id, str):
            raise MemoryNotFoundError(f"no memory with id {memory_id!r}")
        found = self.col.get([memory_id], with_vectors=True)
        if not found:
            raise MemoryNotFoundError(f"no memory with id {memory_id!r}")
        return found[0]

    def _chain_ids(self, memory_id: str) -> list[str]:
        """Ids of every version of a memory, oldest first."""
        start = self._point(memory_id)
        return [*reversed(self._walk(start, "previous")), start.id, *self._walk(start, "next")]

    def _walk(self, pt, link: str) -> list[str]:
        """Ids of the versions reached by following link from pt, nearest first."""
        ids = []
        while pt.payload.get(link):
            found = self.col.get([pt.payload[link]], with_vectors=False)
            if not found:
                break
            pt = found[0]
            ids.append(pt.id)
        return ids

    def _rewrite(self, points, payloads) -> None:
        """Store new payloads for points (with their vectors and documents) in one batch."""
        if points:
            self.col.upsert(
                [pt.id for pt in points],
                np.asarray([pt.vector for pt in points]),
                payloads,
                [pt.document for pt in points],
            )

    def _all(self, flt, with_vectors: bool = False):
        return list(scan(self.col, flt, with_vectors=with_vectors))


def _check_text(text, what: str = "text") -> None:
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError(f"{what} must be a non-empty string")


def _check_importance(importance) -> None:
    if (
        not isinstance(importance, int | float)
        or isinstance(importance, bool)
        or not 0 <= importance <= 1
    ):
        raise InvalidArgumentError(f"importance must be in [0, 1], got {importance!r}")
