"""Agent memory kept by a vdb server: RemoteMemory has the methods of vdb.memory.Memory and
returns the same records, recalls and contexts.

Arguments are checked here with the embedded Memory's own checks where a value could not
travel (a wrong type), so a bad call raises the exception it raises in-process; the server
checks the rest, and its errors come back as the same classes (MemoryNotFoundError too).
"""

from __future__ import annotations

import grpc
import numpy as np

from vdb import validate
from vdb.errors import ClosedError, CollectionNotFoundError, InvalidArgumentError, shown
from vdb.memory import (
    DUPLICATE_COSINE,
    KINDS,
    TURN,
    Context,
    MemoryNotFoundError,
    MemoryRecord,
    Recalled,
)
from vdb.memory.conversation import check_session, check_turn
from vdb.memory.records import (
    _check_importance,
    _check_text,
    _count,
    _entry,
    check_options,
)
from vdb.rpc import convert, status
from vdb.rpc._gen import memory_pb2 as mpb
from vdb.rpc._gen import memory_pb2_grpc as mgrpc
from vdb.rpc.memory import WEIGHTS, recalled_from, record_from

U64_MAX = (1 << 64) - 1


class RemoteMemory:
    """vdb.memory.Memory, carried out by a vdb server over its database.

    Example:
        >>> db = vdb.connect("127.0.0.1:50051")  # doctest: +SKIP
        >>> mem = db.memory("assistant")  # doctest: +SKIP
        >>> _ = mem.remember("Alice prefers tea", kind="preference", user_id="alice")
        ... # doctest: +SKIP
        >>> [r.memory.text for r in mem.recall("what does Alice drink?", user_id="alice")]
        ... # doctest: +SKIP
        ['Alice prefers tea']

    The options are those of Memory; the server decides the rest: its generation model (when
    it has one) counts the buffers' tokens and writes the summaries, its clock dates the
    memories, and it writes access refreshes within a second. embedder names a model in the
    server's model cache. A call that finds the agent without a collection creates it, which
    an API key that may only read cannot do (ReadOnlyError).
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
        buffer_tokens: int = 2048,
    ):
        self.weights = check_options(
            agent, half_life, weights, duplicate_cosine, max_memories, buffer_tokens
        )
        if embedder is not None and (not isinstance(embedder, str) or not embedder):
            raise InvalidArgumentError(
                f"embedder must name a model in the server's model cache, got {embedder!r}"
            )
        self.agent, self.embedder, self.half_life = agent, embedder, float(half_life)
        self.duplicate_cosine, self.max_memories = duplicate_cosine, max_memories
        self.buffer_tokens = buffer_tokens
        self._db = db
        self._stub = mgrpc.MemoryStub(db._channel)
        self._options = mpb.MemoryOptions(
            half_life=self.half_life,
            duplicate_cosine=float(duplicate_cosine),
            buffer_tokens=min(buffer_tokens, U64_MAX),
            embedder=embedder or "",
        )
        for name in WEIGHTS:
            setattr(self._options.weights, name, self.weights[name])
        if max_memories is not None:
            self._options.max_memories = min(max_memories, U64_MAX)

    def __repr__(self) -> str:
        return f"RemoteMemory({self._db.address!r}, agent={self.agent!r})"

    def __enter__(self) -> RemoteMemory:
        return self

    def __exit__(self, *exc) -> None:
        if not self._db.read_only and not self._db._closed:
            self.flush()

    @property
    def col(self):
        """The agent's collection (a RemoteCollection)."""
        from vdb.database import MEMORY_EMBEDDER

        name, embedder = f"memory.{self.agent}", self.embedder or MEMORY_EMBEDDER
        return self._db.get_or_create_collection(name, embedder=embedder)

    # ------------------------------------------------------------------ calls

    def _call(self, method: str, request):
        db = self._db
        if db._closed:
            raise ClosedError(f"connection to {db.address} is closed")
        request.agent = self.agent
        request.options.CopyFrom(self._options)
        try:
            return getattr(self._stub, method)(request, metadata=db._metadata, timeout=db._timeout)
        except grpc.RpcError as exc:
            raise _error(exc) from None

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
        """Store text, or reinforce the current memory that already says it (see
        Memory.remember)."""
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
    ) -> list[MemoryRecord]:
        """remember() for many items at once, in one call (see Memory.remember_many)."""
        defaults = {"kind": kind, "importance": importance, "metadata": None}
        defaults.update(user_id=user_id, session_id=session_id, ttl=ttl)
        entries = [_entry(item, defaults) for item in items]
        if not _count(batch_size):
            raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size}")
        request = mpb.RememberRequest(batch_size=min(batch_size, U64_MAX))
        for e in entries:
            msg = request.items.add(text=e["text"], kind=e["kind"], importance=e["importance"])
            for name in ("user_id", "session_id", "ttl"):
                if e[name] is not None:
                    setattr(msg, name, e[name])
            if e["metadata"] is not None:
                convert.set_struct(msg.metadata, e["metadata"])
        if vectors is not None:
            v = np.asarray(vectors, dtype=np.float32)
            if v.ndim != 2:
                raise InvalidArgumentError(
                    f"vectors must have shape ({len(entries)}, {self._dim()}), got {v.shape}"
                )
            request.vectors.CopyFrom(convert.pack(v))
        resp = self._call("Remember", request)
        return [record_from(m) for m in resp.records]

    def update(
        self, memory_id: str, text: str, importance: float | None = None, metadata=None
    ) -> MemoryRecord:
        """A new version of a current memory; the old one is closed and linked to it."""
        _check_text(text)
        if importance is not None:
            _check_importance(importance)
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidArgumentError(f"metadata must be a dict, got {type(metadata).__name__}")
        request = mpb.UpdateMemoryRequest(id=_memory_id(memory_id), text=text)
        if importance is not None:
            request.importance = importance
        if metadata is not None:
            convert.set_struct(request.metadata, metadata)
        return record_from(self._call("Update", request))

    def forget(self, memory_id: str | None = None, filter=None, hard: bool = False) -> int:
        """Close memories (soft) or delete them with their whole version chains (hard). By id,
        or every current memory matching filter."""
        if (memory_id is None) == (filter is None):
            raise InvalidArgumentError("forget takes either memory_id or filter")
        request = mpb.ForgetRequest(hard=bool(hard))
        if memory_id is not None:
            request.id = _memory_id(memory_id)
        else:
            convert.set_filter(request.filter, filter)
        return self._call("Forget", request).count

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
        in a scope, best first (see Memory.recall)."""
        request = mpb.RecallRequest(all_users=bool(all_users), history=bool(history))
        self._set_query(request, query)
        if not _count(k):
            raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
        request.k = min(k, U64_MAX)
        if kind is not None:
            if kind not in (*KINDS, TURN):
                raise InvalidArgumentError(
                    f"kind must be one of {', '.join((*KINDS, TURN))}, got {kind!r}"
                )
            request.kind = kind
        _set_scope(request, user_id, session_id)
        if filter is not None:
            convert.set_filter(request.filter, filter)
        return [recalled_from(m) for m in self._call("Recall", request).results]

    def get(self, memory_id: str) -> MemoryRecord:
        request = mpb.MemoryIdRequest(id=_memory_id(memory_id))
        return record_from(self._call("Get", request))

    def list(
        self,
        kind: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        all_users: bool = False,
        history: bool = False,
    ) -> list[MemoryRecord]:
        """Memories of a scope, oldest first (turns only with kind="turn")."""
        request = mpb.ListMemoriesRequest(all_users=bool(all_users), history=bool(history))
        if kind is not None:
            if not isinstance(kind, str):
                raise InvalidArgumentError(f"kind must be a string, got {kind!r}")
            request.kind = kind
        _set_scope(request, user_id, session_id)
        return [record_from(m) for m in self._call("List", request).records]

    def history(self, memory_id: str) -> list[MemoryRecord]:
        """Every version of the memory, oldest first."""
        request = mpb.MemoryIdRequest(id=_memory_id(memory_id))
        return [record_from(m) for m in self._call("History", request).records]

    def stats(self) -> dict:
        msg = self._call("Stats", mpb.MemoryAgent())
        by_kind = {k: msg.by_kind.get(k, 0) for k in (*KINDS, TURN)}
        by_kind.update((k, v) for k, v in sorted(msg.by_kind.items()) if k not in by_kind)
        return {
            "agent": msg.agent,
            "memories": msg.memories,
            "turns": msg.turns,
            "versions": msg.versions,
            "expired": msg.expired,
            "forgotten": msg.forgotten,
            "by_kind": by_kind,
            "users": list(msg.users),
        }

    # ------------------------------------------------------------------ conversation

    def add_turn(self, role: str, text: str, session_id: str, user_id: str | None = None):
        """Append a turn to a session's conversation buffer; turns past buffer_tokens leave
        it, summarized into a summary memory. Returns (the turn, the summaries made)."""
        check_turn(role, text, session_id, user_id)
        request = mpb.AddTurnRequest(role=role, text=text, session_id=session_id)
        if user_id is not None:
            request.user_id = user_id
        resp = self._call("AddTurn", request)
        return record_from(resp.turn), [record_from(m) for m in resp.summaries]

    def turns(self, session_id: str, user_id: str | None = None) -> list[MemoryRecord]:
        """The turns in a session's buffer, oldest first."""
        check_session(session_id, user_id)
        request = mpb.TurnsRequest(session_id=session_id)
        if user_id is not None:
            request.user_id = user_id
        return [record_from(m) for m in self._call("Turns", request).records]

    def context(
        self,
        query: str,
        budget_tokens: int = 1024,
        user_id: str | None = None,
        session_id: str | None = None,
        k: int = 20,
    ) -> Context:
        """A prompt block of the memories most useful for query and the session's recent
        turns, within budget_tokens (see Memory.context)."""
        if not _count(budget_tokens):
            raise InvalidArgumentError(
                f"budget_tokens must be a positive integer, got {budget_tokens!r}"
            )
        request = mpb.ContextRequest(budget_tokens=min(budget_tokens, U64_MAX))
        self._set_query(request, query)
        if not _count(k):
            raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
        request.k = min(k, U64_MAX)
        _set_scope(request, user_id, session_id)
        resp = self._call("Context", request)
        return Context(
            resp.text,
            resp.tokens,
            [recalled_from(m) for m in resp.memories],
            [record_from(m) for m in resp.turns],
        )

    def count_tokens(self, text: str) -> int:
        """Tokens of text for the buffer budget, as the server counts them."""
        if not isinstance(text, str):
            raise InvalidArgumentError(f"text must be a string, got {type(text).__name__}")
        return self._call("CountTokens", mpb.CountTokensRequest(text=text)).tokens

    def flush(self) -> int:
        """Have the server write the pending access refreshes now. Returns how many."""
        return self._call("Flush", mpb.MemoryAgent()).written

    # ------------------------------------------------------------------ helpers

    def _set_query(self, request, query) -> None:
        if isinstance(query, str):
            _check_text(query, "query")
            request.text = query
            return
        try:
            q = np.asarray(query, dtype=np.float32)
        except (TypeError, ValueError):
            q = None
        if q is not None and q.ndim == 1 and q.size:
            request.vector.CopyFrom(convert.pack(q[None, :]))
            return
        # the embedded search's error for this query; any other: a batch is not one query
        if q is None or q.ndim == 0:
            dim = 1
        else:
            dim = self._dim() if q.ndim == 1 else q.shape[-1]
        validate.vectors(query, dim, "l2", what="query")
        raise InvalidArgumentError(f"the query is one vector, got shape {q.shape}")

    def _dim(self) -> int:
        """The dimension of the agent's vectors (for an error message)."""
        try:
            return self._db.get_collection(f"memory.{self.agent}").dim
        except CollectionNotFoundError:
            from vdb.database import MEMORY_EMBEDDER

            model = self.embedder or MEMORY_EMBEDDER
            return self._db.embed(["dimension"], model).shape[1]


def _memory_id(memory_id) -> str:
    if not isinstance(memory_id, str):
        raise MemoryNotFoundError(f"no memory with id {shown(memory_id)}")
    return memory_id


def _set_scope(request, user_id, session_id) -> None:
    for name, value in (("user_id", user_id), ("session_id", session_id)):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidArgumentError(f"{name} must be a string, got {value!r}")
            setattr(request, name, value)


def _error(exc: grpc.RpcError) -> Exception:
    name = dict(exc.trailing_metadata() or ()).get(status.ERROR_KEY)
    if name == MemoryNotFoundError.__name__:
        return MemoryNotFoundError(exc.details() or "")
    return status.error_from(exc)
