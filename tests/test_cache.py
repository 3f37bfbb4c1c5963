"""The server's query-result cache: LRU order, time-to-live, per-collection invalidation."""

import pytest

from vdb.rpc import cache as cache_module
from vdb.rpc.cache import QueryCache


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: now[0])
    return now


def test_hit_miss_and_stats(clock):
    c = QueryCache(capacity=8, ttl=10, shards=1)
    assert c.get((1, 0, b"q")) is None
    c.put((1, 0, b"q"), "result")
    assert c.get((1, 0, b"q")) == "result"
    assert c.get((1, 1, b"q")) is None  # another write sequence number: another key
    stats = c.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 2, 1)
    assert stats["hit_rate"] == pytest.approx(1 / 3)


def test_least_recently_used_goes_first(clock):
    c = QueryCache(capacity=3, ttl=10, shards=1)
    for i in range(3):
        c.put((1, 0, bytes([i])), i)
    assert c.get((1, 0, b"\x00")) == 0  # now the most recent
    c.put((1, 0, b"\x03"), 3)
    assert c.get((1, 0, b"\x01")) is None  # evicted
    assert [c.get((1, 0, bytes([i]))) for i in (0, 2, 3)] == [0, 2, 3]
    assert len(c) == 3


def test_entries_expire(clock):
    c = QueryCache(capacity=8, ttl=5, shards=2)
    c.put((1, 0, b"q"), "r")
    clock[0] += 4.9
    assert c.get((1, 0, b"q")) == "r"
    clock[0] += 0.2
    assert c.get((1, 0, b"q")) is None and len(c) == 0


def test_invalidate_drops_one_collection(clock):
    c = QueryCache(capacity=64, ttl=10, shards=4)
    for cid in (1, 2):
        for i in range(10):
            c.put((cid, 0, bytes([i])), (cid, i))
    c.invalidate(1)
    assert all(c.get((1, 0, bytes([i]))) is None for i in range(10))
    assert all(c.get((2, 0, bytes([i]))) == (2, i) for i in range(10))
    assert len(c) == 10
    c.put((1, 1, b"again"), "ok")  # the collection can fill again
    assert c.get((1, 1, b"again")) == "ok"


def test_bad_settings():
    with pytest.raises(ValueError):
        QueryCache(capacity=0)
    with pytest.raises(ValueError):
        QueryCache(ttl=0)


def test_byte_budget(clock):
    c = QueryCache(capacity=100, ttl=10, shards=1, max_bytes=1000)
    for i in range(5):
        c.put((1, 0, bytes([i])), i, size=300)
    assert len(c) == 3 and c.stats()["bytes"] == 900  # the oldest two made room
    assert c.get((1, 0, b"\x00")) is None and c.get((1, 0, b"\x04")) == 4
    c.put((1, 0, b"huge"), "x", size=5000)  # larger than the budget: not kept
    assert c.get((1, 0, b"huge")) is None and len(c) == 3
    c.invalidate(1)
    assert c.stats()["bytes"] == 0
