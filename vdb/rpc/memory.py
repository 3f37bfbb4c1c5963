"""The Memory service: agent memory (vdb.memory.Memory) kept in the server's database.

The server holds one Memory per agent and set of options, built on first use. Memories on
the same agent share their lock and pending access refreshes (vdb.memory.store), so clients
with different options still see one consistent memory. When the server has a generation
model, it counts the conversation buffers' tokens and writes their summaries.
"""

import logging
import threading
from collections import OrderedDict
from dataclasses import fields

from vdb.errors import CollectionNotFoundError, InvalidArgumentError, ReadOnlyError
from vdb.memory import Memory, MemoryRecord, Recalled
from vdb.memory.records import check_agent
from vdb.rpc import convert
from vdb.rpc._gen import memory_pb2 as mpb
from vdb.rpc._gen import memory_pb2_grpc as mgrpc
from vdb.rpc.handler import rpc

log = logging.getLogger("vdb.server")

CACHED = 256  # Memory objects kept (agents times sets of options)
REMEMBER_BATCH = 16  # memories embedded and written per commit of a Remember
WEIGHTS = ("relevance", "recency", "importance")

# ---------------------------------------------------------------- records <-> messages
# (shared with vdb.rpc.memory_client)

_REQUIRED = ("id", "text", "kind", "importance", "created", "last_access", "count", "current")
_OPTIONAL = tuple(
    f.name for f in fields(MemoryRecord) if f.name not in _REQUIRED and f.name != "metadata"
)


def set_record(msg: mpb.MemoryRecord, record: MemoryRecord) -> None:
    for name in _REQUIRED:
        setattr(msg, name, getattr(record, name))
    for name in _OPTIONAL:
        value = getattr(record, name)
        if value is not None:
            setattr(msg, name, value)
    if record.metadata is not None:
        convert.set_value(msg.metadata, record.metadata)


def record_from(msg: mpb.MemoryRecord) -> MemoryRecord:
    values = {name: getattr(msg, name) for name in _REQUIRED}
    for name in _OPTIONAL:
        values[name] = getattr(msg, name) if msg.HasField(name) else None
    values["metadata"] = convert.value_from(msg.metadata) if msg.HasField("metadata") else None
    return MemoryRecord(**values)


def records_message(records) -> mpb.MemoryRecords:
    msg = mpb.MemoryRecords()
    for record in records:
        set_record(msg.records.add(), record)
    return msg


def set_recalled(msg: mpb.RecalledMemory, r: Recalled) -> None:
    set_record(msg.memory, r.memory)
    msg.score, msg.relevance, msg.recency, msg.importance = (
        r.score,
        r.relevance,
        r.recency,
        r.importance,
    )


def recalled_from(msg: mpb.RecalledMemory) -> Recalled:
    return Recalled(record_from(msg.memory), msg.score, msg.relevance, msg.recency, msg.importance)


def options_from(msg: mpb.MemoryOptions) -> dict:
    """MemoryOptions -> keyword arguments of Memory (only the options that are set)."""
    options = {}
    for name in ("half_life", "duplicate_cosine", "max_memories", "buffer_tokens"):
        if msg.HasField(name):
            options[name] = getattr(msg, name)
    if msg.HasField("weights"):
        w = msg.weights
        options["weights"] = {name: getattr(w, name) for name in WEIGHTS if w.HasField(name)}
    if msg.embedder:
        from vdb.rpc.server import _model_name

        options["embedder"] = _model_name(msg.embedder)
    return options


def _query(request):
    """The text or the one query vector of a Recall or Context request."""
    if request.WhichOneof("query") == "vector":
        vectors = convert.unpack(request.vector, "vector")
        if vectors.shape[0] != 1:
            raise InvalidArgumentError(f"the query is one vector, got {vectors.shape[0]} rows")
        return vectors[0]
    return request.text


def _optional(msg, name: str, default=None):
    return getattr(msg, name) if msg.HasField(name) else default


# ---------------------------------------------------------------- the generation model


class HostedModel:
    """The server's generation model (a ModelHost's) as a Memory's generator: tokenize as
    the model does, and chat as one more generation stream that takes its turns with the
    Generation service's streams. When the server already runs its limit of streams, or the
    model is replaced meanwhile, chat returns "" and the summary falls back to an extract."""

    def __init__(self, host, prefill_chunk: int = 256):
        self.host, self.prefill_chunk = host, prefill_chunk

    @property
    def loaded(self) -> bool:
        return self.host.model is not None

    @property
    def n_ctx(self) -> int:
        return self.host.model.n_ctx

    def tokenize(self, text: str, bos: bool | None = None, special: bool = False) -> list[int]:
        return self.host.model.tokenize(text, bos=bos, special=special)

    def chat(self, messages, max_tokens: int = 256, **sampler) -> str:
        from vdb.errors import AbortedError, ResourceExhaustedError
        from vdb.rpc.generation import TurnCancelled, stepped

        host = self.host
        try:
            with host.stream(lambda: False) as handle:
                run = handle.model.chat(
                    messages, max_tokens, stream=True, prefill_chunk=self.prefill_chunk, **sampler
                )
                never = threading.Event()
                return "".join(stepped(handle, run, never, lambda: None))
        except (TurnCancelled, AbortedError, ResourceExhaustedError):
            return ""


# ---------------------------------------------------------------- the service


class MemoryService(mgrpc.MemoryServicer):
    def __init__(self, core, host=None, prefill_chunk: int = 256):
        self.core = core
        self.model = HostedModel(host, prefill_chunk) if host is not None else None
        self._memories: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def _memory(self, request, context) -> Memory:
        """The Memory for the request's agent and options. A caller that may only read gets
        none for an agent without a collection (making one is a write), and its recalls leave
        last access times as they were."""
        agent, options = request.agent, options_from(request.options)
        check_agent(agent)  # before the name is used anywhere
        db = self.core.db
        writable = self.core.writable(context)
        try:
            col = db.get_collection(f"memory.{agent}")
        except CollectionNotFoundError:
            col = None
            if not writable:
                raise ReadOnlyError(
                    f"agent {agent!r} has no memories yet, and this API key may only read"
                ) from None
        generator = self.model if self.model is not None and self.model.loaded else None
        key = (agent, _key(options), generator is not None, writable)
        with self._lock:
            mem = self._memories.get(key)
            if mem is not None and mem.col is col:
                self._memories.move_to_end(key)
                return mem
            mem = Memory(db, agent, generator=generator, **options)
            mem.refresh_access = writable
            self._memories[key] = mem
            self._memories.move_to_end(key)
            while len(self._memories) > CACHED:
                self._memories.popitem(last=False)
            return mem

    def flush(self) -> None:
        """Write every pending access refresh (at shutdown)."""
        with self._lock:
            memories = list(self._memories.values())
        for mem in memories:
            try:
                mem.flush()
            except Exception:  # a dropped collection, a closed database: nothing to keep
                log.exception("flushing the memory of agent %r", mem.agent)

    @rpc(write=True)
    def Remember(self, request, context):
        self.core.limits.texts(len(request.items), "memories")
        mem = self._memory(request, context)
        items = []
        for m in request.items:
            item = {"text": m.text}
            for name in ("kind", "importance", "user_id", "session_id", "ttl"):
                if m.HasField(name):
                    item[name] = getattr(m, name)
            if m.HasField("metadata"):
                item["metadata"] = convert.struct_from(m.metadata)
            items.append(item)
        vectors = convert.unpack(request.vectors) if request.HasField("vectors") else None
        # small batches: the deadline and the server's stop are checked between them
        batch = request.batch_size if request.HasField("batch_size") else REMEMBER_BATCH
        try:
            records = mem.remember_many(
                items,
                vectors=vectors,
                batch_size=min(batch, REMEMBER_BATCH) if batch else batch,  # 0: its error
                progress=lambda done: self.core.check_alive(context),
            )
        finally:
            self.core.wrote(mem.col)
        return records_message(records)

    @rpc()
    def Recall(self, request, context):
        self.core.limits.k(_optional(request, "k", 5))
        mem = self._memory(request, context)
        recalled = mem.recall(
            _query(request),
            k=_optional(request, "k", 5),
            kind=_optional(request, "kind"),
            user_id=_optional(request, "user_id"),
            session_id=_optional(request, "session_id"),
            all_users=request.all_users,
            history=request.history,
            filter=convert.optional_filter(request),
        )
        resp = mpb.RecallResponse()
        for r in recalled:
            set_recalled(resp.results.add(), r)
        return resp

    @rpc()
    def Get(self, request, context):
        msg = mpb.MemoryRecord()
        set_record(msg, self._memory(request, context).get(request.id))
        return msg

    @rpc()
    def List(self, request, context):
        records = self._memory(request, context).list(
            kind=_optional(request, "kind"),
            user_id=_optional(request, "user_id"),
            session_id=_optional(request, "session_id"),
            all_users=request.all_users,
            history=request.history,
        )
        return records_message(records)

    @rpc(write=True)
    def Update(self, request, context):
        mem = self._memory(request, context)
        metadata = convert.struct_from(request.metadata) if request.HasField("metadata") else None
        try:
            record = mem.update(
                request.id, request.text, _optional(request, "importance"), metadata
            )
        finally:
            self.core.wrote(mem.col)
        msg = mpb.MemoryRecord()
        set_record(msg, record)
        return msg

    @rpc(write=True)
    def Forget(self, request, context):
        mem = self._memory(request, context)
        target = request.WhichOneof("target")
        try:
            count = mem.forget(
                memory_id=request.id if target == "id" else None,
                filter=convert.filter_from(request.filter) if target == "filter" else None,
                hard=request.hard,
            )
        finally:
            self.core.wrote(mem.col)
        return mpb.ForgetResponse(count=count)

    @rpc()
    def History(self, request, context):
        return records_message(self._memory(request, context).history(request.id))

    @rpc()
    def Stats(self, request, context):
        stats = self._memory(request, context).stats()
        return mpb.MemoryStats(
            agent=stats["agent"],
            memories=stats["memories"],
            turns=stats["turns"],
            versions=stats["versions"],
            expired=stats["expired"],
            forgotten=stats["forgotten"],
            by_kind=stats["by_kind"],
            users=stats["users"],
        )

    @rpc(write=True)
    def AddTurn(self, request, context):
        self.core.limits.text(request.text, "turn")
        mem = self._memory(request, context)
        try:
            turn, summaries = mem.add_turn(
                request.role,
                request.text,
                _optional(request, "session_id"),
                _optional(request, "user_id"),
            )
        finally:
            self.core.wrote(mem.col)
        resp = mpb.AddTurnResponse()
        set_record(resp.turn, turn)
        for s in summaries:
            set_record(resp.summaries.add(), s)
        return resp

    @rpc()
    def Turns(self, request, context):
        turns = self._memory(request, context).turns(
            _optional(request, "session_id"), _optional(request, "user_id")
        )
        return records_message(turns)

    @rpc()
    def Context(self, request, context):
        self.core.limits.k(_optional(request, "k", 20))
        ctx = self._memory(request, context).context(
            _query(request),
            budget_tokens=_optional(request, "budget_tokens", 1024),
            user_id=_optional(request, "user_id"),
            session_id=_optional(request, "session_id"),
            k=_optional(request, "k", 20),
        )
        resp = mpb.ContextResponse(text=ctx.text, tokens=ctx.tokens)
        for r in ctx.memories:
            set_recalled(resp.memories.add(), r)
        for t in ctx.turns:
            set_record(resp.turns.add(), t)
        return resp

    @rpc()
    def CountTokens(self, request, context):
        self.core.limits.text(request.text)
        tokens = self._memory(request, context).count_tokens(request.text)
        return mpb.CountTokensResponse(tokens=tokens)

    @rpc(write=True)
    def Flush(self, request, context):
        mem = self._memory(request, context)
        try:
            written = mem.flush()
        finally:
            self.core.wrote(mem.col)
        return mpb.FlushResponse(written=written)


def _key(options: dict) -> tuple:
    """A hashable form of Memory keyword arguments."""
    return tuple(
        sorted(
            (name, tuple(sorted(value.items())) if isinstance(value, dict) else value)
            for name, value in options.items()
        )
    )
