"""The gRPC service through a real server on 127.0.0.1 port 0: every RPC, status codes,
API keys, TLS, limits, deadlines, the query cache, health checking and reflection."""

import datetime
import ipaddress
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import vdb
from tests.rpc import Stubs, serving
from vdb.results import SearchResults, Selection
from vdb.rpc import convert
from vdb.rpc._gen import collections_pb2 as cpb
from vdb.rpc._gen import common_pb2 as pb
from vdb.rpc._gen import points_pb2 as ppb
from vdb.rpc._gen import server_pb2 as spb
from vdb.rpc._gen import snapshots_pb2 as snpb
from vdb.rpc.limits import Budget
from vdb.rpc.points import _Gathered

Code = grpc.StatusCode


@pytest.fixture
def stubs(server):
    s = Stubs(server[1])
    yield s
    s.close()


def _vectors(n, dim, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


# ---------------------------------------------------------------- every RPC


def test_collections_rpcs(remote, stubs):
    col = remote.create_collection("c", 4, "dot", index={"kind": "flat"})
    assert col.info()["index"]["kind"] == "flat"
    name = cpb.CollectionName(name="c")
    assert stubs.collections.Exists(name).exists
    assert not stubs.collections.Exists(cpb.CollectionName(name="d")).exists
    assert list(stubs.collections.List(cpb.ListCollectionsRequest()).names) == ["c"]
    info = stubs.collections.Get(name)
    assert (info.name, info.dim, info.metric, info.index.kind) == ("c", 4, "dot", "flat")
    col.upsert([1, 2], _vectors(2, 4))
    assert stubs.collections.Checkpoint(name).lsn == 1
    assert stubs.collections.Compact(name).unlinked == 0
    stubs.collections.Delete(name)
    assert remote.list_collections() == []


def test_points_rpcs(remote, stubs):
    col = remote.create_collection("p", 3, "l2")
    vecs = _vectors(5, 3)
    col.upsert(list(range(5)), vecs, payloads=[{"i": i} for i in range(5)])
    req = ppb.SearchRequest(collection="p", queries=convert.pack(vecs[:2]), k=1)
    batch = stubs.points.SearchBatch(req)
    assert list(batch.counts) == [1, 1] and list(batch.int_ids) == [0, 1]
    assert np.frombuffer(batch.scores, "<f4").tolist() == [0, 0]  # l2: each finds itself
    assert [d.payload.fields["i"].int_value for d in batch.data] == [0, 1]
    one = stubs.points.Search(ppb.SearchRequest(collection="p", queries=convert.pack(vecs[3:4])))
    assert list(one.counts) == [5] and one.int_ids[0] == 3  # k=0 means 10
    got = stubs.points.Get(ppb.GetRequest(collection="p", ids=convert.id_list([4, 9])))
    assert [p.id.num for p in got.records] == [4] and not got.vectors.data
    count = ppb.CountRequest(collection="p")
    convert.set_filter(count.filter, {"i": {"$gte": 2}})
    assert stubs.points.Count(count).count == 3
    page = stubs.points.Scroll(ppb.ScrollRequest(collection="p", limit=2, with_vectors=True))
    assert len(page.records) == 2 and page.next_page_token
    np.testing.assert_array_equal(convert.unpack(page.vectors), vecs[:2])
    page = stubs.points.Scroll(ppb.ScrollRequest(collection="p", page_token=page.next_page_token))
    assert [p.id.num for p in page.records] == [2, 3, 4] and not page.next_page_token
    deleted = stubs.points.Delete(
        ppb.DeleteRequest(collection="p", ids=pb.PointIdList(ids=convert.id_list([0, 1])))
    )
    assert deleted.count == 2 and col.count() == 3


def _chunk(ids, counts, width, dim=2):
    """SearchResults of queries with counts hits each, rows of ids padded to width, and the
    payload, document and vector of each hit derived from its id."""
    nq = len(counts)
    object_ids = any(isinstance(i, str) for i in ids)
    padded = np.full((nq, width), None if object_ids else -1, object if object_ids else np.int64)
    scores = np.full((nq, width), np.nan, np.float32)
    found = np.arange(width) < np.array(counts)[:, None]
    padded[found] = ids
    scores[found] = np.arange(len(ids), dtype=np.float32) / 4
    starts = np.cumsum([0, *counts]).tolist()

    def fields(q):
        mine = ids[starts[q] : starts[q + 1]]
        return (
            [None if i == 3 else {"id": str(i)} for i in mine],
            [None if i == 1 else f"doc {i}" for i in mine],
            [np.full(dim, len(str(i)), np.float32) for i in mine],
        )

    return SearchResults(padded, scores, np.array(counts, np.int64), fields)


@pytest.mark.parametrize("want", [Selection(), Selection(("id",), False, True), Selection(False)])
def test_search_columns_read_back_as_the_results_they_came_from(want):
    """The columns the server sends (chunk after chunk: int ids, then a mix of int and string
    ids, rows of different widths, a point found by two queries) read back by the client as
    the same SearchResults: ids padded with None once a string id is in, scores with NaN."""
    chunks = [_chunk([7, 3], [2, 0], 2), _chunk(["a", 1, "b", "a"], [1, 3], 3)]
    out = _Gathered(want, 2, Budget(1 << 20))
    for chunk in chunks:
        out.add(chunk)
    msg = out.message()
    assert list(msg.counts) == [2, 0, 1, 3] and msg.width == 3 and msg.string_ids
    assert list(msg.int_ids) == [7, 3, 1] and list(msg.str_ids) == ["a", "b", "a"]
    assert len(msg.data) == (6 if want.payload or want.document else 0)
    got = convert.results_from(ppb.SearchResponse.FromString(msg.SerializeToString()), want)
    assert got.ids.dtype == object and got.ids.shape == (4, 3)
    assert got.ids.tolist() == [
        [7, 3, None],
        [None, None, None],
        ["a", None, None],
        [1, "b", "a"],
    ]
    np.testing.assert_array_equal(got.scores[3], np.float32([0.25, 0.5, 0.75]))
    assert np.isnan(got.scores[1]).all() and np.isnan(got.scores[0, 2])
    assert got.counts.tolist() == [2, 0, 1, 3]
    hits = [h for chunk in chunks for h in chunk]
    for g, w in zip(got, hits, strict=True):
        assert [(h.id, h.score) for h in g] == [(h.id, h.score) for h in w]
        assert [h.payload for h in g] == [want.cut(h.payload) if want.payload else None for h in w]
        assert [h.document for h in g] == [h.document if want.document else None for h in w]
        for a, b in zip(g, w, strict=True):
            if want.vectors:
                np.testing.assert_array_equal(a.vector, b.vector)
            else:
                assert a.vector is None
    int_only = _Gathered(Selection(False, False), 2, Budget(1 << 20))
    int_only.add(_chunk([-5, 1 << 40], [1, 1, 0], 1))
    back = convert.results_from(int_only.message(), Selection(False, False))
    assert back.ids.dtype == np.int64 and back.ids.tolist() == [[-5], [1 << 40], [-1]]


def test_snapshot_rpcs(remote, stubs, tmp_path):
    col = remote.create_collection("s", 2)
    col.upsert(["a", "b"], [[1, 0], [0, 1]], payloads=[{"x": 1}, None])
    info = stubs.snapshots.Create(snpb.CreateSnapshotRequest())
    assert info.size_bytes > 0
    listed = stubs.snapshots.List(snpb.ListSnapshotsRequest()).snapshots
    assert [s.name for s in listed] == [info.name]
    chunks = list(stubs.snapshots.Download(snpb.SnapshotName(name=info.name)))
    assert {c.path for c in chunks} == {"data.mdb"}
    stubs.snapshots.Delete(snpb.SnapshotName(name=info.name))
    assert not stubs.snapshots.List(snpb.ListSnapshotsRequest()).snapshots
    assert stubs.code(stubs.snapshots.Delete, snpb.SnapshotName(name=info.name)) == Code.NOT_FOUND
    bad = snpb.SnapshotName(name="../../etc")
    assert stubs.code(stubs.snapshots.Delete, bad) == Code.INVALID_ARGUMENT
    # the client's snapshot(): a local copy that opens as a database
    remote.snapshot(tmp_path / "copy")
    with vdb.open(tmp_path / "copy") as copy:
        assert copy.get_collection("s").get("a").payload == {"x": 1}
    with pytest.raises(vdb.InvalidArgumentError, match="not empty"):
        remote.snapshot(tmp_path / "copy")


def test_server_info(remote):
    info = remote.info()
    assert info["version"] == vdb.__version__ and not info["read_only"]
    assert info["cache"]["enabled"] and info["workers"] >= 1 and info["in_flight"] == 1


def test_health_and_reflection(server):
    channel = grpc.insecure_channel(server[1])
    check = health_pb2_grpc.HealthStub(channel).Check
    assert check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    points = health_pb2.HealthCheckRequest(service="vdb.v1.Points")
    assert check(points).status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(stub.ServerReflectionInfo(iter([request])))
    names = {s.name for s in response.list_services_response.service}
    assert {"vdb.v1.Points", "vdb.v1.Collections", "vdb.v1.Snapshots", "vdb.v1.Server"} <= names
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="vdb.v1.Points")
    response = next(stub.ServerReflectionInfo(iter([request])))
    assert response.file_descriptor_response.file_descriptor_proto
    channel.close()


# ---------------------------------------------------------------- malformed requests


def test_malformed_vectors_are_refused_naming_their_field(remote, stubs):
    remote.create_collection("v", 3)
    ragged = pb.Vectors(dim=3, data=bytes(5))  # not a whole row of 3 float32 values
    empty_dim = pb.Vectors(dim=0, data=bytes(12))
    point = [pb.Point(id=convert.id_list([1])[0])]
    cases = [
        (stubs.points.SearchBatch, ppb.SearchRequest(collection="v", queries=ragged), "queries"),
        (stubs.points.Search, ppb.SearchRequest(collection="v", queries=empty_dim), "queries"),
        (
            stubs.points.Upsert,
            ppb.UpsertRequest(collection="v", vectors=ragged, points=point),
            "vectors",
        ),
    ]
    for method, request, field in cases:
        with pytest.raises(grpc.RpcError) as err:
            method(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"{field}: " in err.value.details() and "querys" not in err.value.details()


def test_malformed_requests_get_status_codes_and_server_keeps_serving(remote, stubs):
    remote.create_collection("m", 3)
    P, C = stubs.points, stubs.collections

    def upsert(ids, data, dim=3):
        return ppb.UpsertRequest(
            collection="m",
            vectors=pb.Vectors(dim=dim, data=data),
            points=[pb.Point(id=convert.id_list([i])[0]) for i in ids],
        )

    good = np.ones((1, 3), "<f4").tobytes()
    cases = [
        (P.Upsert, upsert([1], np.ones((1, 4), "<f4").tobytes(), dim=4), Code.INVALID_ARGUMENT),
        (P.Upsert, upsert([1], good[:-2]), Code.INVALID_ARGUMENT),
        (P.Upsert, upsert([1], np.array([[np.nan, 1, 1]], "<f4").tobytes()), Code.INVALID_ARGUMENT),
        (P.Upsert, upsert([1, 2], good), Code.INVALID_ARGUMENT),
        (P.Upsert, upsert([1], good, dim=0), Code.INVALID_ARGUMENT),
        (P.Upsert, ppb.UpsertRequest(collection="m", points=[pb.Point()]), Code.INVALID_ARGUMENT),
        (P.Upsert, ppb.UpsertRequest(collection="nope"), Code.NOT_FOUND),
        (P.Upsert, ppb.UpsertRequest(), Code.INVALID_ARGUMENT),
        (P.Search, ppb.SearchRequest(collection="nope"), Code.NOT_FOUND),
        (P.Search, ppb.SearchRequest(collection="m"), Code.INVALID_ARGUMENT),
        (
            P.Search,
            ppb.SearchRequest(collection="m", queries=convert.pack(np.ones((2, 3)))),
            Code.INVALID_ARGUMENT,
        ),
        (P.Delete, ppb.DeleteRequest(collection="m"), Code.INVALID_ARGUMENT),
        (
            P.Count,
            ppb.CountRequest(collection="m", filter=pb.Filter()),
            Code.INVALID_ARGUMENT,
        ),
        (
            P.Count,
            ppb.CountRequest(
                collection="m", filter=pb.Filter(condition=pb.Condition(key="a", value=pb.Value()))
            ),
            Code.INVALID_ARGUMENT,
        ),
        (
            P.Scroll,
            ppb.ScrollRequest(collection="m", page_token=b"\xffjunk"),
            Code.INVALID_ARGUMENT,
        ),
        (C.Create, cpb.CreateCollectionRequest(name="m", dim=3), Code.ALREADY_EXISTS),
        (C.Create, cpb.CreateCollectionRequest(name="x", dim=0), Code.INVALID_ARGUMENT),
        (
            C.Create,
            cpb.CreateCollectionRequest(name="x", dim=2, index=cpb.IndexParams(kind="tree")),
            Code.INVALID_ARGUMENT,
        ),
        (C.Get, cpb.CollectionName(name="nope"), Code.NOT_FOUND),
        (C.Delete, cpb.CollectionName(name=""), Code.INVALID_ARGUMENT),
    ]
    for method, request, code in cases:
        assert stubs.code(method, request) == code, request
        assert stubs.code(P.Count, ppb.CountRequest(collection="m")) == Code.OK
    assert remote.get_collection("m").count() == 0  # nothing half-written


def test_oversize_message(tmp_path):
    with serving(tmp_path / "db", max_message_bytes=64 << 10) as (_, address):
        with vdb.connect(address) as db:
            col = db.create_collection("big", 64)
            with pytest.raises(vdb.MessageTooLargeError) as info:
                col.upsert(list(range(1000)), _vectors(1000, 64))  # 256 KiB of vectors
            assert isinstance(info.value, ValueError)
            col.upsert(list(range(10)), _vectors(10, 64))
            assert col.count() == 10


def test_errors_map_back_to_the_embedded_classes(remote):
    col = remote.create_collection("e", 2)
    with pytest.raises(vdb.DimensionError):
        col.upsert([1], [[1, 2, 3]])
    with pytest.raises(vdb.CollectionNotFoundError):
        remote.get_collection("missing")
    with pytest.raises(vdb.PointNotFoundError):
        col.get(5)


def test_collection_dropped_by_another_client(server, remote):
    remote.create_collection("e", 2)
    with vdb.connect(server[1]) as other:
        stale = other.get_collection("e")
        remote.drop_collection("e")
        with pytest.raises(vdb.CollectionNotFoundError):
            stale.count()


# ---------------------------------------------------------------- auth and TLS


def test_api_keys(tmp_path):
    with serving(tmp_path / "db", api_keys=("rw-key",), read_only_keys=("ro-key",)) as (_, addr):
        with pytest.raises(vdb.AuthenticationError):
            vdb.connect(addr)
        with pytest.raises(vdb.AuthenticationError):
            vdb.connect(addr, api_key="wrong")
        with vdb.connect(addr, api_key="rw-key") as rw:
            assert not rw.read_only
            rw.create_collection("k", 2).upsert([1], [[1, 0]])
        with vdb.connect(addr, api_key="ro-key") as ro:
            assert ro.read_only
            col = ro.get_collection("k")
            assert col.count() == 1 and col.search([1, 0], k=1)[0].id == 1
            with pytest.raises(vdb.ReadOnlyError):
                col.upsert([2], [[0, 1]])
            with pytest.raises(vdb.ReadOnlyError):
                ro.create_collection("k2", 2)
        raw = Stubs(addr, api_key="ro-key")
        assert raw.code(raw.points.Delete, ppb.DeleteRequest(collection="k")) == (
            Code.PERMISSION_DENIED
        )
        assert raw.code(raw.snapshots.Create, snpb.CreateSnapshotRequest()) == (
            Code.PERMISSION_DENIED
        )
        raw.close()
        raw = Stubs(addr)
        assert raw.code(raw.server.Info, spb.ServerInfoRequest()) == Code.UNAUTHENTICATED
        raw.close()
        channel = grpc.insecure_channel(addr)  # health checks need no key
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        channel.close()


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls(tmp_path):
    cert, key = _self_signed(tmp_path)
    with serving(tmp_path / "db", tls_cert=str(cert), tls_key=str(key), api_keys=("k",)) as (
        _,
        address,
    ):
        with vdb.connect(address, api_key="k", tls=str(cert)) as db:
            db.create_collection("t", 2).upsert([1], [[1, 0]])
            assert db.get_collection("t").search([1, 0])[0].id == 1
        with vdb.connect(address, api_key="k", tls=cert.read_bytes()) as db:
            assert db.list_collections() == ["t"]
        with pytest.raises(vdb.UnavailableError):
            vdb.connect(address, api_key="k", timeout=5)  # plaintext to a TLS port


# ---------------------------------------------------------------- streaming, limits, deadlines


def test_streaming_upsert_100k(remote):
    col = remote.create_collection("bulk", 16, index="flat")
    n, batch = 100_000, 5_000
    vecs = _vectors(n, 16, seed=7)
    acks = []
    result = col.bulk_upsert(
        (
            (list(range(i, i + batch)), vecs[i : i + batch], [{"b": i // batch}] * batch)
            for i in range(0, n, batch)
        ),
        on_batch=lambda i, r: acks.append(i),
    )
    assert result.count == n and acks == list(range(n // batch))
    assert col.count() == n and col.count({"b": 3}) == batch
    rec = col.get(54_321)
    np.testing.assert_array_equal(rec.vector, vecs[54_321])
    assert rec.payload == {"b": 10}


def test_bulk_upsert_bad_batch_keeps_earlier_batches(remote):
    col = remote.create_collection("bb", 2)
    good = ([1, 2], [[1, 0], [0, 1]])
    acks = []
    with pytest.raises(vdb.DimensionError):
        col.bulk_upsert([good, ([3], [[1, 2, 3]]), ([4], [[1, 1]])], lambda i, r: acks.append(i))
    assert acks == [0] and col.count() == 2


def test_too_many_concurrent_requests(tmp_path):
    release, acked = threading.Event(), threading.Event()
    with serving(tmp_path / "db", workers=2, max_concurrent=1) as (_, address):
        db = vdb.connect(address)
        col = db.create_collection("r", 2)

        def slow_batches():
            yield ([1], [[1, 0]])
            release.wait(30)

        worker = threading.Thread(
            target=lambda: col.bulk_upsert(slow_batches(), lambda i, r: acked.set())
        )
        worker.start()
        try:
            assert acked.wait(30)
            with pytest.raises(vdb.ResourceExhaustedError):  # the stream holds the only slot
                col.count()
        finally:
            release.set()
            worker.join(30)
        assert col.count() == 1  # serving again
        db.close()


def test_deadline_stops_a_stream(tmp_path):
    with serving(tmp_path / "db") as (_, address):
        with vdb.connect(address, timeout=1.0) as db:
            col = db.create_collection("d", 2)
            acks = []

            def batches():
                yield ([1], [[1, 0]])
                time.sleep(2.0)  # past the deadline
                yield ([2], [[0, 1]])

            with pytest.raises(vdb.DeadlineExceededError):
                col.bulk_upsert(batches(), lambda i, r: acks.append(i))
            assert acks == [0]
            time.sleep(0.5)
            assert col.count() == 1


# ---------------------------------------------------------------- concurrency and the cache


def test_concurrent_clients_read_their_writes(server):
    address = server[1]
    with vdb.connect(address) as db:
        db.create_collection("cc", 8, index="flat")
    errors = []

    def client(t):
        try:
            with vdb.connect(address) as db:
                col = db.get_collection("cc")
                rng = np.random.default_rng(t)
                for i in range(30):
                    vec = rng.standard_normal(8).astype(np.float32)
                    pid = f"{t}-{i}"
                    col.upsert([pid], [vec], payloads=[{"t": t}])
                    hit = col.search(vec, k=1, filter={"t": t})[0]
                    assert hit.id == pid and hit.score == pytest.approx(1, abs=1e-5)
                    assert col.get(pid).payload == {"t": t}
                    col.search(rng.standard_normal((4, 8)), k=5)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    with vdb.connect(address) as db:
        assert db.get_collection("cc").count() == 180


def test_query_cache_hits_and_invalidation(remote):
    col = remote.create_collection("q", 2, index="flat")
    col.upsert([1, 2], [[1, 0], [0.8, 0.6]])
    before = remote.info()["cache"]
    first = col.search([1, 0], k=2)
    again = col.search([1, 0], k=2)
    assert [h.id for h in first] == [h.id for h in again] == [1, 2]
    stats = remote.info()["cache"]
    assert stats["hits"] == before["hits"] + 1 and stats["misses"] == before["misses"] + 1
    assert stats["entries"] >= 1
    col.upsert([3], [[1, 0.01]])  # a write invalidates: the next search sees point 3
    assert [h.id for h in col.search([1, 0], k=2)] == [1, 3]
    assert remote.info()["cache"]["hits"] == stats["hits"]
    col.delete(ids=[1])
    assert [h.id for h in col.search([1, 0], k=2)] == [3, 2]
    assert remote.info()["cache"]["hit_rate"] > 0


def test_cache_off(tmp_path):
    with serving(tmp_path / "db", cache=False) as (_, address), vdb.connect(address) as db:
        col = db.create_collection("q", 2)
        col.upsert([1], [[1, 0]])
        col.search([1, 0])
        col.search([1, 0])
        assert db.info()["cache"] == {
            "enabled": False,
            "hits": 0,
            "misses": 0,
            "hit_rate": 0.0,
            "entries": 0,
            "capacity": 0,
            "ttl_seconds": 0.0,
        }


def test_closed_client(server):
    db = vdb.connect(server[1])
    col = db.create_collection("z", 2)
    db.close()
    with pytest.raises(vdb.ClosedError):
        db.list_collections()
    with pytest.raises(vdb.ClosedError):
        col.count()


def test_unreachable_server():
    with pytest.raises(vdb.UnavailableError):
        vdb.connect("127.0.0.1:1", timeout=5)


def test_cache_memory_bound_is_applied(tmp_path):
    with serving(tmp_path / "db", cache_bytes=4096) as (server, address):
        assert server.core.cache._bytes_per_shard == 4096 // 16


def test_model_names_never_reach_the_servers_files(tmp_path, remote, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "creds.txt").write_text("secret")
    for name in ("creds.txt", "../creds.txt", "x.gguf"):
        with pytest.raises(ValueError) as info:
            remote.embed(["hi"], model=name)
        assert "secr" not in str(info.value)
