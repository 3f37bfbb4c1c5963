"""The server's query-result cache: a sharded LRU with a time-to-live.

Keys are (collection number, write sequence number, request bytes). A write moves the
collection's sequence number on, so an entry is never served after a write; invalidate() also
frees the collection's entries at once instead of leaving them to age out.
"""

import threading
import time
from collections import OrderedDict


class _Shard:
    __slots__ = ("lock", "entries", "by_cid", "bytes")

    def __init__(self):
        self.lock = threading.Lock()
        self.entries: OrderedDict = OrderedDict()  # key -> (expires_at, value, size), oldest first
        self.by_cid: dict[int, set] = {}
        self.bytes = 0

    def drop(self, key) -> None:
        self.bytes -= self.entries.pop(key)[2]
        keys = self.by_cid.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.by_cid[key[0]]


class QueryCache:
    """Thread-safe; each shard has its own lock, so concurrent lookups rarely contend."""

    def __init__(
        self,
        capacity: int = 10_000,
        ttl: float = 60.0,
        shards: int = 16,
        max_bytes: int = 256 << 20,
    ):
        """capacity: entries; max_bytes: total size of the cached values (as put() reports)."""
        if capacity < 1 or ttl <= 0 or shards < 1 or max_bytes < 1:
            raise ValueError("cache capacity, ttl, shards and max_bytes must be positive")
        self.capacity, self.ttl = capacity, ttl
        self._shards = [_Shard() for _ in range(shards)]
        self._per_shard = max(1, capacity // shards)
        self._bytes_per_shard = max(1, max_bytes // shards)
        self._stats_lock = threading.Lock()
        self.hits = self.misses = 0

    def _shard(self, key) -> _Shard:
        return self._shards[hash(key) % len(self._shards)]

    def get(self, key):
        """The cached value, or None (a miss) when absent or expired."""
        shard = self._shard(key)
        now = time.monotonic()
        with shard.lock:
            item = shard.entries.get(key)
            if item is not None and item[0] < now:
                shard.drop(key)
                item = None
            if item is not None:
                shard.entries.move_to_end(key)
        with self._stats_lock:
            if item is None:
                self.misses += 1
            else:
                self.hits += 1
        return None if item is None else item[1]

    def put(self, key, value, size: int = 0) -> None:
        """Cache value under key (a tuple starting with the collection number); size: its
        bytes, counted against max_bytes. A value larger than a shard's budget is not kept."""
        if size > self._bytes_per_shard:
            return
        shard = self._shard(key)
        with shard.lock:
            if key in shard.entries:
                shard.drop(key)
            shard.entries[key] = (time.monotonic() + self.ttl, value, size)
            shard.bytes += size
            shard.by_cid.setdefault(key[0], set()).add(key)
            while len(shard.entries) > self._per_shard or shard.bytes > self._bytes_per_shard:
                shard.drop(next(iter(shard.entries)))

    def invalidate(self, cid: int) -> None:
        """Forget every entry of collection cid."""
        for shard in self._shards:
            with shard.lock:
                for key in shard.by_cid.pop(cid, ()):
                    shard.bytes -= shard.entries.pop(key)[2]

    def __len__(self) -> int:
        return sum(len(s.entries) for s in self._shards)

    def stats(self) -> dict:
        with self._stats_lock:
            hits, misses = self.hits, self.misses
        total = hits + misses
        return {
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / total if total else 0.0,
            "entries": len(self),
            "bytes": sum(s.bytes for s in self._shards),
            "capacity": self._per_shard * len(self._shards),
            "ttl_seconds": self.ttl,
        }
