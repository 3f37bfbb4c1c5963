"""The Memory service: a RemoteMemory gives what an embedded Memory gives for the same calls
(records, recalls, history chains, stats, conversation buffers and their summaries, context
blocks, errors), read-only keys may recall but not write (not even access times), malformed
requests get status codes while the server keeps serving, and access refreshes survive a
shutdown."""

import time
from dataclasses import asdict

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import vdb
from tests.conftest import fixture_file
from tests.rpc import serving
from tests.test_conversation import CHAT
from vdb.memory import Context, Memory, MemoryNotFoundError, MemoryRecord, Recalled
from vdb.rpc._gen import common_pb2 as pb
from vdb.rpc._gen import memory_pb2 as mpb
from vdb.rpc._gen import memory_pb2_grpc as mgrpc
from vdb.rpc.memory_client import RemoteMemory

TIMES = ("created", "last_access", "valid_from", "valid_to", "expires_at")
LINKS = ("id", "previous", "next", "summary")


@pytest.fixture
def both(tmp_path):
    """(embedded Database, RemoteDatabase), each over its own fresh directory."""
    with (
        vdb.open(tmp_path / "local") as local,
        serving(tmp_path / "served") as (_, address),
        vdb.connect(address) as remote,
    ):
        yield local, remote


class Ref:
    """The n-th memory id a side has seen, whatever its value there."""

    def __init__(self, n: int):
        self.n = n


class Twin:
    """The same calls on an embedded Memory and a RemoteMemory. Results are compared with
    each id replaced by the order in which its side first saw it, times by whether they are
    set, and scores within a tolerance (each side dates its memories by its own clock)."""

    def __init__(self, local, remote):
        self.sides = [(local, []), (remote, [])]

    def __call__(self, method, *args, unordered=False, messages=True, **kwargs):
        out = []
        for mem, ids in self.sides:
            real = [self._real(ids, a) for a in args]
            named = {k: self._real(ids, v) for k, v in kwargs.items()}
            try:
                value = getattr(mem, method)(*real, **named)
            except Exception as exc:
                message = str(exc)
                for n, i in enumerate(ids):
                    message = message.replace(i, f"<{n}>")
                out.append(("raised", type(exc), message if messages else None))
                continue
            if unordered:
                value = sorted(value, key=lambda r: (r.text, r.kind, r.user_id or ""))
            out.append(self._norm(ids, value))
        assert same(*out), f"{method}:\n  embedded {out[0]!r}\n  remote   {out[1]!r}"
        return out[0]

    def raises(self, method, *args, messages=True, **kwargs):
        """The class and message of the exception both sides raise (messages=False: the
        classes only)."""
        result = self(method, *args, messages=messages, **kwargs)
        assert isinstance(result, tuple) and result[0] == "raised", result
        return result[1], result[2]

    @staticmethod
    def _real(ids, value):
        return ids[value.n] if isinstance(value, Ref) else value

    def _norm(self, ids, value):
        def ordinal(i):
            if i not in ids:
                ids.append(i)
            return ids.index(i)

        if isinstance(value, MemoryRecord):
            d = asdict(value)
            for name in LINKS:
                if d[name] is not None:
                    d[name] = ordinal(d[name])
            for name in TIMES:
                d[name] = d[name] is not None
            if isinstance(d["metadata"], dict) and "turns" in d["metadata"]:
                d["metadata"] = dict(
                    d["metadata"], turns=[ordinal(i) for i in d["metadata"]["turns"]]
                )
            return d
        if isinstance(value, Recalled):
            d = {k: getattr(value, k) for k in ("score", "relevance", "recency", "importance")}
            return dict(d, memory=self._norm(ids, value.memory))
        if isinstance(value, Context):
            memories = [self._norm(ids, r) for r in value.memories]
            turns = [self._norm(ids, t) for t in value.turns]
            return {
                "text": value.text,
                "tokens": value.tokens,
                "memories": memories,
                "turns": turns,
            }
        if isinstance(value, list | tuple):
            return [self._norm(ids, v) for v in value]
        return value


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) < 1e-4
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def twin(both, agent="assistant", **options) -> Twin:
    local, remote = both
    return Twin(local.memory(agent, **options), remote.memory(agent, **options))


# ---------------------------------------------------------------- the same results


def test_database_memory_gives_each_backend_its_memory(both):
    local, remote = both
    assert type(local.memory("a")) is Memory
    weights = {"relevance": 3, "recency": 1, "importance": 1}
    mem = remote.memory("a", half_life=60.0, weights=weights)
    assert type(mem) is RemoteMemory and mem.agent == "a" and mem.half_life == 60.0
    assert mem.weights == pytest.approx({"relevance": 0.6, "recency": 0.2, "importance": 0.2})
    assert Memory(local, "a", weights=weights).weights == mem.weights


def test_memories_match_the_embedded_memory(both):
    t = twin(both)
    t("remember", "Alice is vegetarian", user_id="alice", importance=0.7, metadata={"n": 1})
    t("remember", "Bob is vegetarian", user_id="bob")
    t("remember", "The office closes at six")
    t("remember", "Alice's flight leaves Monday", kind="event", user_id="alice", session_id="s1")
    batch = t(
        "remember_many",
        [
            "Alice lives in Lisbon",
            {"text": "Alice likes green tea", "kind": "preference", "importance": 0.9},
            "Alice lives in Lisbon",  # reinforces the first, within the batch
        ],
        user_id="alice",
    )
    assert batch[0]["id"] == batch[2]["id"] and batch[2]["count"] == 2
    again = t("remember", "Alice is vegetarian", user_id="alice", importance=0.9)
    assert again["id"] == 0 and again["count"] == 2 and again["importance"] == pytest.approx(0.8)
    for query, kw in [
        ("diet", {"user_id": "alice", "k": 5}),
        ("diet", {"user_id": "bob"}),
        ("diet", {}),
        ("flight", {"user_id": "alice", "session_id": "s1"}),
        ("vegetarian", {"all_users": True, "k": 10}),
        ("drinks", {"user_id": "alice", "kind": "preference"}),
        ("anything", {"all_users": True, "filter": {"importance": {"$gte": 0.8}}}),
    ]:
        t("recall", query, **kw)
    t("remember", "The printer is on the second floor")  # a write: refreshes written
    assert len(t("recall", "where is the printer", k=2)) == 2
    assert t("flush") == 2  # what that recall refreshed
    t("list", user_id="alice", unordered=True)
    t("list", kind="event", all_users=True)
    t("get", Ref(0))

    new = t("update", Ref(0), "Alice eats fish now", importance=0.6, metadata={"why": "asked"})
    assert new["previous"] == 0 and new["metadata"] == {"why": "asked"}
    t("update", Ref(new["id"]), "Alice eats fish and chips")
    chain = t("history", Ref(0))
    assert [r["text"] for r in chain] == [
        "Alice is vegetarian",
        "Alice eats fish now",
        "Alice eats fish and chips",
    ]
    assert [r["current"] for r in chain] == [False, False, True]
    t("get", Ref(0))
    t.raises("update", Ref(0), "not the latest")  # the message names the id: <0> on both
    assert t("forget", Ref(1)) == 1  # Bob's
    assert t("forget", Ref(1)) == 0
    assert t("forget", filter={"kind": "event"}) == 1
    t("recall", "vegetarian", all_users=True, history=True, k=10)
    assert t("forget", Ref(0), hard=True) == 3  # the whole chain
    assert t.raises("history", Ref(0))[0] is MemoryNotFoundError
    t("remember", "A note for a moment", ttl=0.2)
    time.sleep(0.3)
    t("recall", "note")
    stats = t("stats")
    assert stats["expired"] == 1 and stats["forgotten"] == 2 and stats["users"] == ["alice"]
    t("list", all_users=True, history=True, unordered=True)


def test_vectors_limits_and_weights_match(both):
    local, _ = both
    t = twin(both, max_memories=3, weights={"importance": 0.5}, half_life=3600.0)
    texts = ["red apples", "green pears", "yellow bananas", "purple plums", "orange oranges"]
    vectors = local.embed(texts)
    items = [{"text": text, "importance": (i + 1) / 10} for i, text in enumerate(texts)]
    t("remember_many", items, vectors=vectors, kind="fact")
    kept = t("list", unordered=True)  # the most important
    assert [r["text"] for r in kept] == sorted(texts[2:])
    t("remember", "Plums are purple", importance=1.0)
    top = t("recall", vectors[3], k=3)
    assert {r["memory"]["text"] for r in top[:2]} == {"purple plums", "Plums are purple"}
    assert [r["text"] for r in t("list", unordered=True)] == [
        "Plums are purple",
        "orange oranges",
        "purple plums",
    ]
    assert t("stats")["memories"] == 3


def test_conversations_match_the_embedded_memory(both):
    t = twin(both, buffer_tokens=48)
    summaries = []
    for role, text in CHAT[:5]:
        turn, made = t("add_turn", role, text, "s1", user_id="alice")
        assert turn["tokens"] == t("count_tokens", f"{role}: {text}")
        summaries += made
    assert summaries and all(s["metadata"]["extractive"] for s in summaries)
    kept = t("turns", "s1", user_id="alice")
    assert kept and [r["seq"] for r in kept] == list(range(5 - len(kept), 5))
    assert t("turns", "s1") == [] and t("turns", "other", user_id="alice") == []
    t("remember", "Carla is allergic to nuts", user_id="alice", importance=0.9)
    ctx = t(
        "context", "what is Carla allergic to", budget_tokens=120, user_id="alice", session_id="s1"
    )
    assert "Memories:" in ctx["text"] and "Recent conversation:" in ctx["text"]
    t("context", "nuts", budget_tokens=8, user_id="alice", session_id="s1", k=3)
    t("recall", "Carla", kind="turn", user_id="alice", k=2)
    t("list", kind="turn", user_id="alice")
    assert t("stats")["turns"] == 5


def test_the_servers_generation_model_counts_and_summarizes(tmp_path):
    import llm

    path = fixture_file("models", "stories260K.gguf")
    with (
        vdb.open(tmp_path / "local") as local,
        serving(tmp_path / "served", model=str(path)) as (_, address),
        vdb.connect(address) as remote,
    ):
        embedded = Memory(local, "assistant", generator=llm.load(path), buffer_tokens=80)
        t = Twin(embedded, remote.memory("assistant", buffer_tokens=80))
        made = []
        for role, text in CHAT[:3]:
            turn, summaries = t("add_turn", role, text, "s1")
            made += summaries
        assert made and not any(s["metadata"]["extractive"] for s in made)
        assert t("count_tokens", "user: hello") == len(embedded.generator.tokenize("user: hello"))
        t("context", "Carla", budget_tokens=100, session_id="s1")


def test_unknown_agents_are_empty_on_both(both):
    t = twin(both, agent="ghost")
    assert t("recall", "anything") == [] and t("list") == [] and t("turns", "s") == []
    assert t("stats")["versions"] == 0
    assert t("context", "anything")["text"] == ""
    assert t.raises("get", "nope")[0] is MemoryNotFoundError
    assert t.raises("history", "nope")[0] is MemoryNotFoundError
    assert t("flush") == 0


def test_bad_input_raises_the_same_errors(both):
    local, remote = both
    t = twin(both)
    t("remember", "Alice likes tea", user_id="alice")
    vector = local.embed(["tea"])[0]
    for method, args, kwargs in [
        ("remember", ("",), {}),
        ("remember", ("   ",), {}),
        ("remember", (42,), {}),
        ("remember", ("x",), {"kind": "bogus"}),
        ("remember", ("x",), {"kind": "turn"}),
        ("remember", ("x",), {"importance": 1.5}),
        ("remember", ("x",), {"importance": True}),
        ("remember", ("x",), {"ttl": 0}),
        ("remember", ("x",), {"user_id": ""}),
        ("remember", ("x",), {"metadata": ["not", "a", "dict"]}),
        ("remember_many", (["a", 3],), {}),
        ("remember_many", ([{"text": "a", "colour": "red"}],), {}),
        ("remember_many", (["a"],), {"batch_size": 0}),
        ("remember_many", (["a", "b"],), {"vectors": [vector]}),
        ("remember_many", (["a"],), {"vectors": [vector[:10]]}),
        ("remember_many", (["a"],), {"vectors": vector}),
        ("remember_many", (["a"],), {"vectors": [vector * 0]}),
        ("recall", ("",), {}),
        ("recall", ("tea",), {"k": 0}),
        ("recall", ("tea",), {"kind": "nope"}),
        # the embedded message places the error in the filter it combines with the scope
        ("recall", ("tea",), {"filter": {"$nope": 1}, "messages": False}),
        ("forget", (), {"filter": {"kind": {"$nope": 1}}, "messages": False}),
        ("recall", (vector[:10],), {}),
        ("get", ("nope",), {}),
        ("get", (42,), {}),
        ("history", ("nope",), {}),
        ("update", ("nope", "text"), {}),
        ("update", (Ref(0), ""), {}),
        ("update", (Ref(0), "text"), {"importance": -1}),
        ("forget", (), {}),
        ("forget", ("nope",), {}),
        ("forget", (Ref(0),), {"filter": {"kind": "fact"}}),
        ("add_turn", ("robot", "hello", "s1"), {}),
        ("add_turn", ("user", "", "s1"), {}),
        ("add_turn", ("user", "hello", None), {}),
        ("add_turn", ("user", "hello", ""), {}),
        ("add_turn", ("user", "hello", "s1"), {"user_id": ""}),
        ("turns", (None,), {}),
        ("context", ("tea",), {"budget_tokens": 0}),
        ("context", ("",), {}),
        ("context", ("tea",), {"k": 0}),
    ]:
        cls, _ = t.raises(method, *args, **kwargs)
        assert issubclass(cls, ValueError | KeyError), (method, args, kwargs, cls)
    assert t("stats")["versions"] == 1  # nothing was written meanwhile
    for options in [
        {"agent": ""},
        {"agent": "a/b"},
        {"half_life": 0},
        {"half_life": float("inf")},
        {"weights": {"bogus": 1.0}},
        {"weights": {"relevance": -1.0}},
        {"weights": {"relevance": 0, "recency": 0, "importance": 0}},
        {"duplicate_cosine": 1.5},
        {"max_memories": 0},
        {"buffer_tokens": 0},
        {"buffer_tokens": 2.5},
    ]:
        errors = []
        for db in (local, remote):
            with pytest.raises(vdb.InvalidArgumentError) as info:
                db.memory(**options)
            errors.append(str(info.value))
        assert errors[0] == errors[1]


# ---------------------------------------------------------------- over the wire


def test_read_only_keys_recall_but_do_not_write(tmp_path):
    with (
        serving(tmp_path / "db", api_keys=("rw",), read_only_keys=("ro",)) as (_, address),
        vdb.connect(address, api_key="rw") as rw,
        vdb.connect(address, api_key="ro") as ro,
    ):
        writer = rw.memory("a")
        tea = writer.remember("Alice likes green tea", user_id="alice")
        with ro.memory("a") as reader:
            recalled = reader.recall("what does Alice drink", user_id="alice")
            assert [r.memory.id for r in recalled] == [tea.id]
            assert reader.get(tea.id).text == tea.text and reader.stats()["memories"] == 1
            assert reader.context("tea", user_id="alice").memories[0].memory.id == tea.id
            assert reader.count_tokens("hello") > 0
            for call in (
                lambda: reader.remember("Bob likes coffee"),
                lambda: reader.remember_many(["Bob likes coffee"]),
                lambda: reader.update(tea.id, "Alice likes black tea"),
                lambda: reader.forget(tea.id),
                lambda: reader.add_turn("user", "hello", "s1"),
                reader.flush,
            ):
                with pytest.raises(vdb.PermissionDeniedError):
                    call()
        # creating an agent's collection is a write
        with pytest.raises(vdb.PermissionDeniedError, match="may only read"):
            ro.memory("ghost").recall("anything")
        assert not rw.has_collection("memory.ghost")
        # a read-only key leaves no trace: its recall did not refresh the last access
        assert writer.flush() == 0
        assert writer.get(tea.id).last_access == tea.last_access
        assert writer.list(user_id="alice")[0].current
        writer.recall("what does Alice drink", user_id="alice")  # a read-write recall does
        assert writer.flush() == 1 and writer.get(tea.id).last_access > tea.last_access


def test_malformed_requests_get_status_codes_and_the_server_keeps_serving(remote, server):
    channel = grpc.insecure_channel(server[1])
    stub = mgrpc.MemoryStub(channel)

    def code(method, request):
        try:
            method(request, timeout=30)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    agent = {"agent": "a"}
    row = pb.Vectors(dim=384, data=bytes(384 * 4))
    two_rows = pb.Vectors(dim=384, data=b"\x00\x00\x80\x3f" * 384 * 2)
    assert code(stub.Stats, mpb.MemoryAgent(**agent)) == grpc.StatusCode.OK
    for method, request, expected in [
        (stub.Stats, mpb.MemoryAgent(), INVALID),
        (stub.Stats, mpb.MemoryAgent(agent="a/b"), INVALID),
        (stub.Stats, mpb.MemoryAgent(**agent, options=mpb.MemoryOptions(half_life=-1)), INVALID),
        (stub.Stats, mpb.MemoryAgent(**agent, options=mpb.MemoryOptions(max_memories=0)), INVALID),
        (
            stub.Stats,
            mpb.MemoryAgent(
                **agent, options=mpb.MemoryOptions(weights=mpb.MemoryWeights(recency=-1))
            ),
            INVALID,
        ),
        (
            stub.Stats,
            mpb.MemoryAgent(**agent, options=mpb.MemoryOptions(embedder="/x.gguf")),
            INVALID,
        ),
        (stub.Remember, mpb.RememberRequest(**agent, items=[mpb.MemoryItem()]), INVALID),
        (
            stub.Remember,
            mpb.RememberRequest(**agent, items=[mpb.MemoryItem(text="x", kind="k")]),
            INVALID,
        ),
        (
            stub.Remember,
            mpb.RememberRequest(**agent, items=[mpb.MemoryItem(text="x", user_id="")]),
            INVALID,
        ),
        (
            stub.Remember,
            mpb.RememberRequest(**agent, items=[mpb.MemoryItem(text="x")], vectors=row),
            INVALID,  # a zero vector
        ),
        (
            stub.Remember,
            mpb.RememberRequest(
                **agent, items=[mpb.MemoryItem(text="x")], vectors=pb.Vectors(dim=3, data=b"\0" * 5)
            ),
            INVALID,
        ),
        (
            stub.Remember,
            mpb.RememberRequest(**agent, items=[mpb.MemoryItem(text="x")], batch_size=0),
            INVALID,
        ),
        (stub.Recall, mpb.RecallRequest(**agent), INVALID),
        (stub.Recall, mpb.RecallRequest(**agent, text="x", k=0), INVALID),
        (stub.Recall, mpb.RecallRequest(**agent, vector=two_rows), INVALID),
        (
            stub.Recall,
            mpb.RecallRequest(**agent, vector=pb.Vectors(dim=3, data=bytes(12))),
            INVALID,
        ),
        (stub.Recall, mpb.RecallRequest(**agent, text="x", filter=pb.Filter()), INVALID),
        (stub.Get, mpb.MemoryIdRequest(**agent, id="nope"), NOT_FOUND),
        (stub.History, mpb.MemoryIdRequest(**agent, id="nope"), NOT_FOUND),
        (stub.Update, mpb.UpdateMemoryRequest(**agent, id="nope", text="x"), NOT_FOUND),
        (stub.Forget, mpb.ForgetRequest(**agent), INVALID),
        (stub.Forget, mpb.ForgetRequest(**agent, id="nope"), NOT_FOUND),
        (stub.AddTurn, mpb.AddTurnRequest(**agent, role="user", text="hi"), INVALID),
        (stub.AddTurn, mpb.AddTurnRequest(**agent, role="x", text="hi", session_id="s"), INVALID),
        (stub.Turns, mpb.TurnsRequest(**agent), INVALID),
        (stub.Context, mpb.ContextRequest(**agent, text="x", budget_tokens=0), INVALID),
    ]:
        assert code(method, request) == expected, request
    channel.close()
    mem = remote.memory("a")
    assert mem.remember("still serving").count == 1
    assert [r.memory.text for r in mem.recall("serving")] == ["still serving"]
    with pytest.raises(MemoryNotFoundError, match="no memory with id 'nope'"):
        mem.get("nope")
    with pytest.raises(vdb.InvalidArgumentError, match="kind must be one of"):
        mem.remember("x", kind="bogus")


def test_health_lists_the_memory_service(server):
    channel = grpc.insecure_channel(server[1])
    check = health_pb2_grpc.HealthStub(channel).Check
    request = health_pb2.HealthCheckRequest(service="vdb.v1.Memory")
    assert check(request).status == health_pb2.HealthCheckResponse.SERVING
    channel.close()


def test_a_dropped_agent_starts_afresh(remote):
    mem = remote.memory("a")
    mem.remember("Alice likes tea")
    remote.drop_collection("memory.a")
    assert mem.recall("tea") == [] and mem.stats()["versions"] == 0
    assert mem.remember("Alice likes coffee").count == 1
    assert mem.col.count() == 1


def test_refreshes_are_written_when_the_server_stops(tmp_path):
    with serving(tmp_path / "db") as (_, address), vdb.connect(address) as remote:
        mem = remote.memory("a")
        tea = mem.remember("Alice likes tea")
        seen = mem.recall("tea")[0].memory
        assert seen.last_access > tea.last_access
    with vdb.open(tmp_path / "db") as db:
        assert db.memory("a").get(tea.id).last_access == seen.last_access


def test_closed_connections_raise_closed(remote):
    mem = remote.memory("a")
    remote.close()
    with pytest.raises(vdb.ClosedError):
        mem.recall("anything")
