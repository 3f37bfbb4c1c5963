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

The collection has a keyword (BM25) index over the memories' texts. Recall ranks by a
weighted sum of relevance, recency (0.5 ** (time since last access / half-life)) and
importance, each in [0, 1]. Relevance fuses the dense and keyword halves first: for a text
query 0.8 * (1 + cos) / 2 + 0.2 * BM25 / the best candidate's BM25 (vdb.memory.reading;
for a vector query (1 + cos) / 2 alone). The default
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

import time

import numpy as np

from vdb.collection import scan
from vdb.errors import InvalidArgumentError, ReadOnlyError, shown
from vdb.memory.access import FLUSH_TOUCHES, AccessRefreshes, _shared
from vdb.memory.reading import CANDIDATES, Reading
from vdb.memory.records import (
    AGENT_RE,
    DEFAULT_WEIGHTS,
    DUPLICATE_COSINE,
    KINDS,
    MAX_AGENT,
    TURN,
    MemoryNotFoundError,
    MemoryRecord,
    Recalled,
    _check_importance,
    _check_metadata,
    _check_name,
    _check_text,
    _count,
    _entry,
    _new_payload,
    _number,
    check_agent,
    check_options,
)
from vdb.memory.writing import Writing

__all__ = [
    "AGENT_RE",
    "CANDIDATES",
    "DEFAULT_WEIGHTS",
    "DUPLICATE_COSINE",
    "FLUSH_TOUCHES",
    "KINDS",
    "MAX_AGENT",
    "TURN",
    "Memory",
    "MemoryNotFoundError",
    "MemoryRecord",
    "Recalled",
    "_check_importance",
    "_check_metadata",
    "_check_name",
    "_check_text",
    "_count",
    "_entry",
    "_new_payload",
    "check_agent",
    "check_options",
]


class Memory(Writing, Reading, AccessRefreshes):
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
        if self.col.config.text is None:  # an agent made before memories had keyword search
            try:
                self.col.enable_text()
            except ReadOnlyError:
                pass  # recalled by vectors alone until a writer opens it
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

    # ------------------------------------------------------------------ helpers

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
