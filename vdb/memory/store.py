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

Conversation turns (kind "turn") live in the same collection; vdb.memory.conversation says
what they add.

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

Every Memory on one collection in a process shares a lock (so that read-modify-write changes
from several threads do not interleave) and the access refreshes recall has not written yet.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
import weakref
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from vdb import filters
from vdb.collection import scan
from vdb.errors import InvalidArgumentError, NotFoundError, shown
from vdb.storage.codec import encode_payload

KINDS = ("fact", "event", "preference", "summary")
TURN = "turn"  # a conversation turn (see vdb.memory.conversation)
DEFAULT_WEIGHTS = {"relevance": 0.6, "recency": 0.2, "importance": 0.2}
DUPLICATE_COSINE = 0.92  # at or above: the same memory said again (all-MiniLM-L6-v2 scale)
CANDIDATES = 64  # nearest memories re-ranked per recall
FLUSH_TOUCHES = 256  # access refreshes held before they are written
MAX_AGENT = 56  # characters of an agent name: "memory." + agent is a collection name
AGENT_RE = re.compile(rf"^[A-Za-z0-9_.-]{{1,{MAX_AGENT}}}$")


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
    role: str | None = None  # turns only: role, seq, tokens, in_buffer, summary
    seq: int | None = None
    tokens: int | None = None
    in_buffer: bool | None = None
    summary: str | None = None


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
        role=p.get("role"),
        seq=p.get("seq"),
        tokens=p.get("tokens"),
        in_buffer=p.get("in_buffer"),
        summary=p.get("summary"),
    )


class Memory:
    """Example:
    >>> mem = Memory(vdb.open("db"), agent="assistant")  # doctest: +SKIP
    >>> m = mem.remember("Alice prefers tea", kind="preference", user_id="alice")  # doctest: +SKIP
    >>> [r.memory.text for r in mem.recall("what does Alice drink?", user_id="alice")]
    ... # doctest: +SKIP
    ['Alice prefers tea']

    generator: a generation model (llm.load(...) or vdb.connect_model(...)) that summarizes
    turns leaving a conversation buffer and counts its tokens; without one, the embedder's
    tokenizer counts and the summaries are extracts. buffer_tokens: each session's budget.
    flush_interval: seconds an access refresh may wait before it is written (see recall).
    embedder: the model a new agent's memories are embedded with (default
    vdb.database.MEMORY_EMBEDDER, the default model in Q8_0); an existing agent keeps its own.
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
        generator=None,
        buffer_tokens: int = 2048,
        flush_interval: float = 1.0,
        clock=time.time,
    ):
        from vdb.database import MEMORY_EMBEDDER

        self.weights = check_options(
            agent, half_life, weights, duplicate_cosine, max_memories, buffer_tokens
        )
        if not (_number(flush_interval) and flush_interval >= 0):
            raise InvalidArgumentError(
                f"flush_interval must be >= 0 seconds, got {flush_interval!r}"
            )
        self.agent, self.half_life, self.clock = agent, float(half_life), clock
        self.duplicate_cosine, self.max_memories = duplicate_cosine, max_memories
        self.generator, self.buffer_tokens = generator, buffer_tokens
        self.flush_interval = float(flush_interval)
        # False: recall leaves last access times as they were (a server sets it for callers
        # whose key may only read)
        self.refresh_access = True
        self.col = db.get_or_create_collection(
            f"memory.{agent}", embedder=embedder or MEMORY_EMBEDDER
        )
        self._state = _shared(self.col)

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()

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

    def _reading(self, kind, user_id, session_id, all_users) -> list[dict]:
        """Checked filter clauses for recall and list: a scope and a kind (any but turns when
        None)."""
        _check_name("user_id", user_id)
        _check_name("session_id", session_id)
        if kind is not None and kind not in (*KINDS, TURN):
            raise InvalidArgumentError(
                f"kind must be one of {', '.join((*KINDS, TURN))}, got {kind!r}"
            )
        clauses = self._scope(user_id, session_id, all_users)
        clauses.append({"kind": kind} if kind is not None else {"kind": {"$ne": TURN}})
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

    # ------------------------------------------------------------------ reading

    def recall(
        self,
        query,
        k: int = 5,
        kind: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        all_users: bool = False,
        history: bool = False,
        filter=None,
    ) -> list[Recalled]:
        """The k most useful memories for query (a text, or a vector from the same embedder)
        in a scope, best first. Conversation turns take part only with kind="turn".

        A recall refreshes the last access of what it returns (history=True also ranks closed
        versions, and refreshes nothing). Refreshes count at once, for every Memory on this
        agent in the process, and are written in batches: with the next write, once
        flush_interval seconds old or FLUSH_TOUCHES many, or by flush(); a crash loses only
        refreshes, never a memory."""
        if isinstance(query, str):
            _check_text(query, "query")
        elif not _one_vector(query):
            raise InvalidArgumentError("query must be one text or one vector")
        if not _count(k):
            raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
        clauses = self._reading(kind, user_id, session_id, all_users)
        if filter is not None:
            filters.parse(filter)  # its errors point into the caller's filter
            clauses.append(filter)
        hits = self.col.search(
            query, k=max(CANDIDATES, k), filter=self._filter(clauses, history), with_vectors=False
        )
        now = self.clock()
        w = self.weights
        scored = []
        for h in hits:
            rel = (1.0 + h.score) / 2
            rec = self._recency(h.id, h.payload, now)
            imp = h.payload["importance"]
            score = w["relevance"] * rel + w["recency"] * rec + w["importance"] * imp
            scored.append((score, rel, rec, imp, h))
        scored.sort(key=lambda s: -s[0])
        top = scored[:k]
        if not history:
            self._touch([h.id for *_, h in top], now)
        return [
            Recalled(self._record(h.id, h.document, h.payload), s, rel, rec, imp)
            for s, rel, rec, imp, h in top
        ]

    def _recency(self, memory_id: str, p: dict, now: float) -> float:
        last = max(p["last_access"], self._state.touched.get(memory_id, -math.inf))
        return math.pow(0.5, max(0.0, now - last) / self.half_life)

    def get(self, memory_id: str) -> MemoryRecord:
        pt = self._point(memory_id)
        return self._record(pt.id, pt.document, pt.payload)

    def list(
        self,
        kind: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        all_users: bool = False,
        history: bool = False,
    ) -> list[MemoryRecord]:
        """Memories of a scope, oldest first (turns only with kind="turn")."""
        clauses = self._reading(kind, user_id, session_id, all_users)
        points = self._all(self._filter(clauses, history))
        records = [self._record(pt.id, pt.document, pt.payload) for pt in points]
        return sorted(records, key=lambda r: (r.created, r.id))

    def history(self, memory_id: str) -> list[MemoryRecord]:
        """Every version of the memory, oldest first."""
        return [self.get(i) for i in self._chain_ids(memory_id)]

    def stats(self) -> dict:
        points = self._all(None)
        now = self.clock()
        current = [pt for pt in points if pt.payload["current"]]
        live = [pt for pt in current if pt.payload.get("expires_at", math.inf) > now]
        by_kind = {k: sum(pt.payload["kind"] == k for pt in live) for k in (*KINDS, TURN)}
        users = sorted({pt.payload["user_id"] for pt in live if "user_id" in pt.payload})
        return {
            "agent": self.agent,
            "memories": sum(pt.payload["kind"] != TURN for pt in live),
            "turns": by_kind[TURN],
            "versions": len(points),
            "expired": len(current) - len(live),
            "forgotten": sum(bool(pt.payload.get("forgotten")) for pt in points),
            "by_kind": by_kind,
            "users": users,
        }

    # ------------------------------------------------------------------ conversation

    def add_turn(self, role: str, text: str, session_id: str, user_id: str | None = None):
        """Append a turn to a session's conversation buffer; turns past buffer_tokens leave
        it, summarized into a summary memory. Returns (the turn, the summaries made)."""
        from vdb.memory import conversation

        return conversation.add_turn(self, role, text, session_id, user_id)

    def turns(self, session_id: str, user_id: str | None = None) -> list[MemoryRecord]:
        """The turns in a session's buffer, oldest first."""
        from vdb.memory import conversation

        return conversation.buffer(self, session_id, user_id)

    def context(
        self,
        query: str,
        budget_tokens: int = 1024,
        user_id: str | None = None,
        session_id: str | None = None,
        k: int = 20,
    ):
        """A prompt block of the memories most useful for query and the session's recent
        turns, within budget_tokens (see conversation.context)."""
        from vdb.memory import conversation

        return conversation.context(self, query, budget_tokens, user_id, session_id, k)

    def count_tokens(self, text: str) -> int:
        """Tokens of text for the buffer budget: the generator's, else the embedder's."""
        if self.generator is not None:
            return len(self.generator.tokenize(text))
        return self.col.embedder.count_tokens(text)

    # ------------------------------------------------------------------ access refreshes

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

    # ------------------------------------------------------------------ helpers

    def _record(self, pid, document, payload: dict) -> MemoryRecord:
        """The record with any access refresh not yet written."""
        touched = self._state.touched.get(pid)
        if touched is not None and touched > payload["last_access"]:
            payload = dict(payload, last_access=touched)
        return _record(pid, document, payload)

    def _point(self, memory_id):
        if not isinstance(memory_id, str):
            raise MemoryNotFoundError(f"no memory with id {shown(memory_id)}")
        found = self.col.get([memory_id], with_vectors=True)
        if not found:
            raise MemoryNotFoundError(f"no memory with id {shown(memory_id)}")
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


def check_agent(agent) -> None:
    """An agent's name: its memories live in the collection "memory.<agent>"."""
    if not isinstance(agent, str) or not AGENT_RE.match(agent):
        raise InvalidArgumentError(
            f"agent must be 1-{MAX_AGENT} letters, digits, '_', '-' or '.', got {shown(agent)}"
        )


def check_options(agent, half_life, weights, duplicate_cosine, max_memories, buffer_tokens) -> dict:
    """Check a Memory's options (embedded or remote); returns the weights normalized."""
    check_agent(agent)
    if not (_number(half_life) and half_life > 0):
        raise InvalidArgumentError(f"half_life must be > 0 seconds, got {half_life!r}")
    w = dict(DEFAULT_WEIGHTS, **(weights or {}))
    if (
        set(w) != set(DEFAULT_WEIGHTS)
        or any(not _number(v) or v < 0 for v in w.values())
        or not sum(w.values()) > 0
    ):
        raise InvalidArgumentError(
            f"weights: non-negative relevance, recency and importance, got {weights!r}"
        )
    if not (_number(duplicate_cosine) and -1 <= duplicate_cosine <= 1):
        raise InvalidArgumentError(f"duplicate_cosine must be in [-1, 1], got {duplicate_cosine!r}")
    if max_memories is not None and not _count(max_memories):
        raise InvalidArgumentError(f"max_memories must be a positive integer, got {max_memories!r}")
    if not _count(buffer_tokens):
        raise InvalidArgumentError(
            f"buffer_tokens must be a positive integer, got {buffer_tokens!r}"
        )
    total = sum(w.values())
    return {k: v / total for k, v in w.items()}


def _new_payload(e: dict, now: float) -> dict:
    p = {
        "kind": e["kind"],
        "importance": float(e["importance"]),
        "created": now,
        "last_access": now,
        "count": 1,
        "current": True,
        "valid_from": now,
    }
    for name in ("user_id", "session_id", "metadata"):
        if e[name] is not None:
            p[name] = e[name]
    if e["ttl"] is not None:
        p["expires_at"] = now + e["ttl"]
    return p


def _entry(item, defaults: dict) -> dict:
    """A checked remember_many item: text, kind, importance, metadata, user_id, session_id,
    ttl."""
    if isinstance(item, str):
        item = {"text": item}
    if not isinstance(item, dict):
        raise InvalidArgumentError(f"a memory is a text or a dict, got {type(item).__name__}")
    unknown = set(item) - {"text", *defaults}
    if unknown:
        raise InvalidArgumentError(f"unknown memory fields: {', '.join(sorted(unknown))}")
    e = dict(defaults, **item)
    _check_text(e.get("text"))
    if e["kind"] not in KINDS:
        raise InvalidArgumentError(f"kind must be one of {', '.join(KINDS)}, got {e['kind']!r}")
    _check_importance(e["importance"])
    if e["ttl"] is not None and not (_number(e["ttl"]) and e["ttl"] > 0):
        raise InvalidArgumentError(f"ttl must be > 0 seconds, got {e['ttl']!r}")
    _check_metadata(e["metadata"])
    for name in ("user_id", "session_id"):
        _check_name(name, e[name])
    return e


def _one_vector(query) -> bool:
    try:
        arr = np.asarray(query)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1 and arr.dtype.kind in "fiu"


def _check_metadata(metadata) -> None:
    """metadata: None or a dict the store can keep (JSON: string keys, finite numbers)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(f"metadata must be a dict, got {type(metadata).__name__}")
    encode_payload({"metadata": metadata})


def _check_name(name: str, value) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgumentError(f"{name} must be a non-empty string, got {value!r}")


def _check_vectors(vectors, n: int, dim: int) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.shape != (n, dim):
        raise InvalidArgumentError(f"vectors must have shape ({n}, {dim}), got {v.shape}")
    if not np.isfinite(v).all() or not (np.linalg.norm(v, axis=1) > 0).all():
        raise InvalidArgumentError("vectors must be finite and non-zero")
    return v


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _check_text(text, what: str = "text") -> None:
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError(f"{what} must be a non-empty string")


def _check_importance(importance) -> None:
    if not _number(importance) or not 0 <= importance <= 1:
        raise InvalidArgumentError(f"importance must be in [0, 1], got {importance!r}")
