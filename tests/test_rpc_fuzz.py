"""Malformed requests to every method (read from the proto descriptors): random bytes and
mutants of a valid request (bit flips, truncations, fields re-encoded with another wire type,
repeated fields grown to near the message limit). Every call ends with an expected status,
never INTERNAL or UNKNOWN, and without a traceback in the log; afterwards the server answers a
known search exactly and the data it held is intact. Undecodable bodies get INVALID_ARGUMENT
and one log line; messages stay bounded whatever the input's length."""

import logging
import random

import grpc
import numpy as np
import pytest

import vdb
from tests.rpc import serving
from tests.test_rpc_auth import World, _methods, _table, stub
from vdb.rpc import convert
from vdb.rpc._gen import collections_pb2 as cpb
from vdb.rpc._gen import memory_pb2 as mpb
from vdb.rpc._gen import memory_pb2_grpc as mgrpc
from vdb.rpc._gen import points_pb2 as ppb
from vdb.rpc._gen import points_pb2_grpc as pgrpc
from vdb.rpc.status import MAX_DETAILS

Code = grpc.StatusCode
EXPECTED = {
    Code.OK,
    Code.INVALID_ARGUMENT,
    Code.NOT_FOUND,
    Code.ALREADY_EXISTS,
    Code.RESOURCE_EXHAUSTED,
    Code.FAILED_PRECONDITION,
    Code.UNIMPLEMENTED,  # a unary method sent no request message (an empty stream)
}
MUTANTS = 60  # per method, besides the random bodies
LIMIT = 256 << 10  # the fuzzed server's message limit


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """(field number, encoded field) of a message's top-level fields (a valid message)."""
    out, pos = [], 0
    while pos < len(data):
        start = pos
        tag, pos = _read_varint(data, pos)
        wire = tag & 7
        if wire == 0:
            pos = _read_varint(data, pos)[1]
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:  # 2: length-delimited
            length, pos = _read_varint(data, pos)
            pos += length
        out.append((tag >> 3, data[start:pos]))
    return out


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the base-128 varint at pos."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _mutants(valid: bytes, rng: random.Random, n: int):
    """n mutants of a valid request body."""
    fields = _fields(valid)
    for i in range(n):
        kind = i % 6
        data = bytearray(valid)
        if kind == 0 and data:  # bit flips
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(len(data))
                data[pos] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:  # truncation
            del data[rng.randrange(len(data)) :]
        elif kind == 2 and fields:  # a field re-encoded with another wire type
            number, _ = rng.choice(fields)
            wire = rng.choice([0, 1, 2, 5])
            payload = {
                0: _varint(rng.getrandbits(rng.choice([1, 7, 32, 64]))),
                1: rng.randbytes(8),
                2: _varint(3) + rng.randbytes(3),
                5: rng.randbytes(4),
            }[wire]
            data += _varint(number << 3 | wire) + payload
        elif kind == 3 and fields:  # a repeated (or merged) field grown near the limit
            _, field = rng.choice(fields)
            data += field * max(1, (LIMIT // 2) // max(1, len(field)))
        elif kind == 4:  # an unknown field, a huge length prefix, or garbage appended
            data += rng.choice(
                [_varint(rng.randint(1000, 1 << 28) << 3 | 2) + _varint(5) + b"12345", b"\xff"]
            )
        else:  # a random field number and wire type with random contents
            data += _varint(rng.randint(1, 40) << 3 | rng.randint(0, 7)) + rng.randbytes(9)
        yield bytes(data)


def _send(call, method, body: bytes) -> grpc.StatusCode:
    arg = iter([body, body]) if method.client_streaming else body
    try:
        result = call(arg, timeout=60)
        if method.server_streaming:
            for i, _ in enumerate(result):
                if method.name == "Watch" or i > 50:
                    result.cancel()
                    return Code.OK
    except grpc.RpcError as exc:
        return Code.OK if exc.code() == Code.CANCELLED else exc.code()
    return Code.OK


@pytest.fixture
def fuzzed(tmp_path):
    options = dict(max_message_bytes=LIMIT, max_embed_texts=64, max_batch_queries=256)
    with serving(tmp_path / "db", **options) as (server, address):
        yield server, address


def test_fuzz_every_method(fuzzed, caplog):
    _, address = fuzzed
    db = vdb.connect(address)
    world = World(db)
    keep = db.create_collection("zz-keep", 4, "l2", index="flat")
    vectors = np.random.default_rng(5).standard_normal((50, 4)).astype(np.float32)
    keep.upsert(list(range(50)), vectors, payloads=[{"i": i} for i in range(50)])
    table, methods = _table(False), _methods()
    rng = random.Random(19)
    channel = grpc.insecure_channel(address)
    counts: dict = {}
    calls = 0
    with caplog.at_level(logging.INFO):
        for path, method in sorted(methods.items()):
            valid = table[path][1](world).SerializeToString()
            call = stub(channel, method)
            bodies = [rng.randbytes(rng.choice([1, 7, 64, 1000])) for _ in range(4)]
            for body in bodies + list(_mutants(valid, rng, MUTANTS)):
                code = _send(call, method, body)
                counts[code] = counts.get(code, 0) + 1
                calls += 1
                assert code in EXPECTED, (path, body[:80], code)
    channel.close()
    assert calls == len(methods) * (4 + MUTANTS)
    assert counts.get(Code.INVALID_ARGUMENT, 0) > calls // 4, counts
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not noisy, [r.getMessage() for r in noisy[:3]]
    # the server is up and right: a known search, the records, the count
    assert keep.count() == 50
    for i in (0, 17, 49):
        hit = keep.search(vectors[i], k=1)[0]
        assert hit.id == i and hit.score == pytest.approx(0, abs=1e-3) and hit.payload == {"i": i}
    np.testing.assert_array_equal(np.stack([r.vector for r in keep.get(list(range(50)))]), vectors)
    db.close()


def test_undecodable_requests_get_invalid_argument_and_one_log_line(server, caplog):
    channel = grpc.insecure_channel(server[1])
    search = channel.unary_unary("/vdb.v1.Points/Search")
    stream = channel.stream_stream("/vdb.v1.Points/UpsertStream")
    with caplog.at_level(logging.INFO):
        for call, body in ((search, b"\xff\xff"), (stream, iter([b"\x0a\xff"]))):
            caplog.clear()
            with pytest.raises(grpc.RpcError) as info:
                result = call(body, timeout=30)
                list(result) if call is stream else None
            assert info.value.code() == Code.INVALID_ARGUMENT
            assert "not a valid message" in info.value.details()
            lines = [r for r in caplog.records if "undecodable" in r.getMessage()]
            assert len(lines) == 1 and not lines[0].exc_info, caplog.records
            assert not [r for r in caplog.records if r.exc_info]
    channel.close()
    with vdb.connect(server[1]) as db:
        assert db.list_collections() == []


def test_long_input_is_never_echoed_whole(server):
    """A 10 KB agent or collection name gets its own status (not RESOURCE_EXHAUSTED from
    oversized metadata), with a bounded message."""
    channel = grpc.insecure_channel(server[1])
    memory, points = mgrpc.MemoryStub(channel), pgrpc.PointsStub(channel)
    collections = channel.unary_unary(
        "/vdb.v1.Collections/Create",
        request_serializer=cpb.CreateCollectionRequest.SerializeToString,
    )
    long = "x" * 10_000
    wide = "\u00e9" * 10_000  # two bytes each, percent-encoded in the status
    for call, request, code in [
        (memory.Stats, mpb.MemoryAgent(agent=long), Code.INVALID_ARGUMENT),
        (memory.Recall, mpb.RecallRequest(agent=wide, text="tea"), Code.INVALID_ARGUMENT),
        (collections, cpb.CreateCollectionRequest(name=long, dim=2), Code.INVALID_ARGUMENT),
        (collections, cpb.CreateCollectionRequest(name=wide, dim=2), Code.INVALID_ARGUMENT),
        (points.Count, ppb.CountRequest(collection=long), Code.NOT_FOUND),
        (
            points.Get,
            ppb.GetRequest(collection=long, ids=convert.id_list([long])),
            Code.NOT_FOUND,
        ),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=30)
        assert info.value.code() == code, (request.ByteSize(), info.value.details()[:200])
        assert len(info.value.details().encode()) <= MAX_DETAILS
    channel.close()
    with vdb.connect(server[1]) as db:
        col = db.create_collection("c", 2)
        col.upsert(["a"], [[1, 0]])
        for pid, error in ((long, vdb.InvalidIdError), (long[:250], vdb.PointNotFoundError)):
            with pytest.raises(error) as info:
                col.get(pid)
            assert len(str(info.value)) < 200
        with pytest.raises(vdb.InvalidArgumentError) as info:
            db.memory(long)
        assert len(str(info.value)) < 200
