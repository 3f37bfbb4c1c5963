"""Every method of every service (read from the proto descriptors, with health checking and
server reflection) x every kind of caller (no key, a wrong key, read-only, read-write, admin)
over TLS: allowed or denied as the table below says, and an allowed call does what it should.

The rules (README's auth table): methods that only read take any valid key; methods that
write data, or write files on the server's disk (Snapshots Create, Delete and Stream), take a
read-write key; SwapModel takes an admin key; reflection takes any valid key; health checks
take none."""

import itertools

import grpc
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

import vdb
from tests.conftest import fixture_file
from tests.rpc import serving
from tests.test_rpc import _self_signed
from vdb.rpc import convert
from vdb.rpc._gen import collections_pb2 as cpb
from vdb.rpc._gen import common_pb2 as pb
from vdb.rpc._gen import embeddings_pb2 as epb
from vdb.rpc._gen import generation_pb2 as gpb
from vdb.rpc._gen import memory_pb2 as mpb
from vdb.rpc._gen import points_pb2 as ppb
from vdb.rpc._gen import retrieval_pb2 as rpb
from vdb.rpc._gen import server_pb2 as spb
from vdb.rpc._gen import snapshots_pb2 as snpb
from vdb.rpc.server import SERVICES

Code = grpc.StatusCode
NONE, ANY, READ, WRITE, ADMIN = "none", "any", "read", "write", "admin"
KEYS = {"no key": None, "wrong key": "wrong", "read-only": "ro", "read-write": "rw", "admin": "ad"}
RANK = {"no key": -1, "wrong key": -1, "read-only": 0, "read-write": 1, "admin": 2}
NEEDS = {NONE: -2, ANY: 0, READ: 0, WRITE: 1, ADMIN: 2}
MODEL = fixture_file("models", "stories260K.gguf")


class World:
    """The data every call works on, and fresh things for calls that use one up."""

    def __init__(self, db):
        self.db = db
        col = self.db.create_collection("base", 2)
        col.upsert([1, 2], [[1, 0], [0, 1]], payloads=[{"a": 1}, {"a": 2}])
        docs = self.db.create_collection("docs", embedder="all-MiniLM-L6-v2")
        docs.upsert(["d1", "d2"], documents=["Cats sleep a lot.", "Dogs bark at night."])
        self.mem = self.db.memory("a")
        self.memory_id = self.mem.remember("Alice likes tea", user_id="alice").id
        self.mem.add_turn("user", "hello", "s1")
        self.snapshot = self.db._call(self.db._snapshots.Create, snpb.CreateSnapshotRequest())
        self.n = itertools.count()

    def fresh_collection(self) -> str:
        name = f"tmp-{next(self.n)}"
        self.db.create_collection(name, 2)
        return name

    def fresh_memory(self) -> str:
        return self.mem.remember(f"fact number {next(self.n)}", user_id="bob").id

    def fresh_snapshot(self) -> str:
        return self.db._call(self.db._snapshots.Create, snpb.CreateSnapshotRequest()).name


def _agent(cls, **fields):
    return lambda w: cls(agent="a", **fields)


def _upsert(w):
    return ppb.UpsertRequest(
        collection="base",
        vectors=convert.pack([[0.5, 0.5]]),
        points=[pb.Point(id=pb.PointId(num=100 + next(w.n)))],
    )


def _table(has_model: bool):
    """{"/service/method": (who may call, request factory, code of an allowed call)}."""
    gen_ok = Code.OK if has_model else Code.FAILED_PRECONDITION
    q = convert.pack([[1.0, 0.0]])
    return {
        "/vdb.v1.Collections/Create": (
            WRITE,
            lambda w: cpb.CreateCollectionRequest(name=f"new-{next(w.n)}", dim=2),
            Code.OK,
        ),
        "/vdb.v1.Collections/Get": (READ, lambda w: cpb.CollectionName(name="base"), Code.OK),
        "/vdb.v1.Collections/List": (READ, lambda w: cpb.ListCollectionsRequest(), Code.OK),
        "/vdb.v1.Collections/Delete": (
            WRITE,
            lambda w: cpb.CollectionName(name=w.fresh_collection()),
            Code.OK,
        ),
        "/vdb.v1.Collections/Exists": (READ, lambda w: cpb.CollectionName(name="x"), Code.OK),
        "/vdb.v1.Collections/Checkpoint": (
            WRITE,
            lambda w: cpb.CollectionName(name="base"),
            Code.OK,
        ),
        "/vdb.v1.Collections/Compact": (WRITE, lambda w: cpb.CollectionName(name="base"), Code.OK),
        "/vdb.v1.Collections/EnableText": (
            WRITE,
            lambda w: cpb.EnableTextRequest(name="base", text=cpb.TextParams(analyzer="en")),
            Code.OK,
        ),
        "/vdb.v1.Points/Upsert": (WRITE, _upsert, Code.OK),
        "/vdb.v1.Points/UpsertStream": (WRITE, _upsert, Code.OK),
        "/vdb.v1.Points/Get": (
            READ,
            lambda w: ppb.GetRequest(collection="base", ids=[pb.PointId(num=1)]),
            Code.OK,
        ),
        "/vdb.v1.Points/Delete": (
            WRITE,
            lambda w: ppb.DeleteRequest(
                collection="base", ids=pb.PointIdList(ids=[pb.PointId(num=99_999)])
            ),
            Code.OK,
        ),
        "/vdb.v1.Points/Count": (READ, lambda w: ppb.CountRequest(collection="base"), Code.OK),
        "/vdb.v1.Points/Scroll": (READ, lambda w: ppb.ScrollRequest(collection="base"), Code.OK),
        "/vdb.v1.Points/Search": (
            READ,
            lambda w: ppb.SearchRequest(collection="base", queries=q),
            Code.OK,
        ),
        "/vdb.v1.Points/SearchBatch": (
            READ,
            lambda w: ppb.SearchRequest(collection="base", queries=q),
            Code.OK,
        ),
        "/vdb.v1.Snapshots/Create": (WRITE, lambda w: snpb.CreateSnapshotRequest(), Code.OK),
        "/vdb.v1.Snapshots/List": (READ, lambda w: snpb.ListSnapshotsRequest(), Code.OK),
        "/vdb.v1.Snapshots/Delete": (
            WRITE,
            lambda w: snpb.SnapshotName(name=w.fresh_snapshot()),
            Code.OK,
        ),
        "/vdb.v1.Snapshots/Download": (
            READ,
            lambda w: snpb.SnapshotName(name=w.snapshot.name),
            Code.OK,
        ),
        "/vdb.v1.Snapshots/Stream": (WRITE, lambda w: snpb.CreateSnapshotRequest(), Code.OK),
        "/vdb.v1.Server/Info": (READ, lambda w: spb.ServerInfoRequest(), Code.OK),
        "/vdb.v1.Embeddings/Embed": (READ, lambda w: epb.EmbedRequest(texts=["hi"]), Code.OK),
        "/vdb.v1.Generation/Generate": (
            READ,
            lambda w: gpb.GenerateRequest(prompt="Once", max_tokens=3),
            gen_ok,
        ),
        "/vdb.v1.Generation/Chat": (
            READ,
            lambda w: gpb.ChatRequest(
                messages=[gpb.ChatMessage(role="user", content="Hi")], max_tokens=3
            ),
            gen_ok,
        ),
        "/vdb.v1.Generation/Tokenize": (READ, lambda w: gpb.TokenizeRequest(text="Hi"), gen_ok),
        "/vdb.v1.Generation/ModelInfo": (READ, lambda w: gpb.ModelInfoRequest(), Code.OK),
        "/vdb.v1.Generation/SwapModel": (
            ADMIN,
            lambda w: gpb.SwapModelRequest(name=MODEL.name, drain_timeout=5),
            Code.OK if has_model else Code.INVALID_ARGUMENT,
        ),
        "/vdb.v1.Retrieval/HybridSearch": (
            READ,
            lambda w: rpb.HybridSearchRequest(collection="docs", query="cats", k=1),
            Code.OK,
        ),
        "/vdb.v1.Retrieval/Ask": (
            READ,
            lambda w: rpb.AskRequest(collection="docs", question="What do cats do?", k=1),
            Code.OK,
        ),
        "/vdb.v1.Memory/Remember": (
            WRITE,
            _agent(mpb.RememberRequest, items=[mpb.MemoryItem(text="Bob likes coffee")]),
            Code.OK,
        ),
        "/vdb.v1.Memory/Recall": (READ, _agent(mpb.RecallRequest, text="tea"), Code.OK),
        "/vdb.v1.Memory/Get": (
            READ,
            lambda w: mpb.MemoryIdRequest(agent="a", id=w.memory_id),
            Code.OK,
        ),
        "/vdb.v1.Memory/List": (READ, _agent(mpb.ListMemoriesRequest, all_users=True), Code.OK),
        "/vdb.v1.Memory/Update": (
            WRITE,
            lambda w: mpb.UpdateMemoryRequest(agent="a", id=w.fresh_memory(), text="changed"),
            Code.OK,
        ),
        "/vdb.v1.Memory/Forget": (
            WRITE,
            lambda w: mpb.ForgetRequest(agent="a", id=w.fresh_memory()),
            Code.OK,
        ),
        "/vdb.v1.Memory/History": (
            READ,
            lambda w: mpb.MemoryIdRequest(agent="a", id=w.memory_id),
            Code.OK,
        ),
        "/vdb.v1.Memory/Stats": (READ, _agent(mpb.MemoryAgent), Code.OK),
        "/vdb.v1.Memory/AddTurn": (
            WRITE,
            _agent(mpb.AddTurnRequest, role="user", text="hi again", session_id="s1"),
            Code.OK,
        ),
        "/vdb.v1.Memory/Turns": (READ, _agent(mpb.TurnsRequest, session_id="s1"), Code.OK),
        "/vdb.v1.Memory/Context": (
            READ,
            _agent(mpb.ContextRequest, text="tea", session_id="s1"),
            Code.OK,
        ),
        "/vdb.v1.Memory/CountTokens": (READ, _agent(mpb.CountTokensRequest, text="hi"), Code.OK),
        "/vdb.v1.Memory/Flush": (WRITE, _agent(mpb.MemoryAgent), Code.OK),
        "/grpc.health.v1.Health/Check": (NONE, lambda w: health_pb2.HealthCheckRequest(), Code.OK),
        "/grpc.health.v1.Health/Watch": (NONE, lambda w: health_pb2.HealthCheckRequest(), Code.OK),
        "/grpc.health.v1.Health/List": (NONE, lambda w: health_pb2.HealthListRequest(), Code.OK),
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": (
            ANY,
            lambda w: reflection_pb2.ServerReflectionRequest(list_services=""),
            Code.OK,
        ),
    }


def _methods():
    """{"/service/method": MethodDescriptor} of every method the server serves."""
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    names = (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME)
    return {
        f"/{service.full_name}/{m.name}": m
        for service in map(pool.FindServiceByName, names)
        for m in service.methods
    }


def stub(channel, method, serializer=None, deserializer=None):
    """A callable for a MethodDescriptor, of the kind its streaming calls for."""
    request = "stream" if method.client_streaming else "unary"
    response = "stream" if method.server_streaming else "unary"
    path = f"/{method.containing_service.full_name}/{method.name}"
    return getattr(channel, f"{request}_{response}")(path, serializer, deserializer)


def _call(channel, method, request, key):
    """The status code of one call (reading one message of an endless stream)."""
    reply = message_factory.GetMessageClass(method.output_type).FromString
    call = stub(channel, method, type(request).SerializeToString, reply)
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    arg = iter([request]) if method.client_streaming else request
    try:
        result = call(arg, metadata=metadata, timeout=60)
        if method.server_streaming:
            for _ in result:
                if method.name == "Watch":  # endless: one status message is the answer
                    result.cancel()
                    break
    except grpc.RpcError as exc:
        return exc.code()
    return Code.OK


def test_every_method_for_every_key(tmp_path):
    cert, key = _self_signed(tmp_path)
    options = dict(
        tls_cert=str(cert),
        tls_key=str(key),
        api_keys=("rw",),
        read_only_keys=("ro",),
        admin_keys=("ad",),
        model=str(MODEL),
    )
    table = _table(has_model=True)
    methods = _methods()
    assert set(table) == set(methods), "every served method needs a row in the table"
    with serving(tmp_path / "db", **options) as (_, address):
        world = World(vdb.connect(address, api_key="ad", tls=str(cert)))
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        channel = grpc.secure_channel(address, creds)
        outcomes = {}
        try:
            for path, method in sorted(methods.items()):
                who, make, allowed = table[path]
                for caller, api_key in KEYS.items():
                    code = _call(channel, method, make(world), api_key)
                    if RANK[caller] >= NEEDS[who]:
                        expected = allowed
                    elif RANK[caller] < 0:
                        expected = Code.UNAUTHENTICATED
                    else:
                        expected = Code.PERMISSION_DENIED
                    outcomes[path, caller] = (code, expected)
        finally:
            channel.close()
            world.db.close()
    wrong = {k: v for k, v in outcomes.items() if v[0] != v[1]}
    assert not wrong, wrong
    assert len(outcomes) == len(methods) * len(KEYS)  # 48 methods x 5 callers


@pytest.mark.parametrize("key", [None, "wrong"])
def test_reflection_needs_a_key_only_when_the_server_has_keys(tmp_path, key):
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    method = _methods()["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"]
    with serving(tmp_path / "open") as (_, address):
        channel = grpc.insecure_channel(address)
        assert _call(channel, method, request, key) == Code.OK  # no keys: nothing to check
        channel.close()
