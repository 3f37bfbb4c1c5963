"""A prompt-prefix cache: the keys and values of recent prompts, reused by later prompts that
start with the same tokens (a system prompt and instructions opening every question, a chat
re-sending its history), so that only the rest of the prompt is computed.

Entries are whole prompts' KV cache contents (float16, as the cache holds them), kept least
recently used first within a byte budget. A lookup finds the entry sharing the longest run of
leading tokens with the new prompt (at least MIN_TOKENS, and never the whole prompt: its last
token is always run, for its logits) and copies those positions into the new cache. Each
position's keys and values depend only on the tokens up to it, and the integer kernels
compute each row on its own, so a generation from a cached prefix gives the logits of a cold
run.
"""

import threading
from collections import OrderedDict

import numpy as np

MIN_TOKENS = 16  # shorter common prefixes are computed again (a copy would save little)
DEFAULT_BYTES = 256 << 20


class PrefixCache:
    """Thread-safe. budget: bytes of keys and values kept at most (0 turns it off)."""

    def __init__(self, budget: int = DEFAULT_BYTES):
        if type(budget) is not int or budget < 0:
            raise ValueError(f"the prefix cache budget must be bytes >= 0, got {budget!r}")
        self.budget = budget
        self._lock = threading.Lock()
        self._entries: OrderedDict = OrderedDict()  # tokens (tuple) -> (ids array, k, v)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0

    def stats(self) -> dict:
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self.bytes,
                "budget": self.budget,
                "hits": self.hits,
                "misses": self.misses,
                "reused_tokens": self.reused_tokens,
            }

    def restore(self, ids: list[int], cache) -> int:
        """Fill an empty cache with the longest cached prefix of ids (leaving at least the
        last token to run); returns how many positions it filled."""
        if not self.budget or cache.length:
            return 0
        want = np.asarray(ids[:-1], np.int64)
        with self._lock:
            best, found = 0, None
            for key, entry in self._entries.items():
                n = _common(entry[0], want)
                if n > best:
                    best, found = n, key
            if best < MIN_TOKENS or best > cache.n_ctx:
                self.misses += 1
                return 0
            self._entries.move_to_end(found)
            _, k, v = self._entries[found]
            cache.k[:, :, :best] = k[:, :, :best]
            cache.v[:, :, :best] = v[:, :, :best]
            self.hits += 1
            self.reused_tokens += best
        cache.length = best
        return best

    def store(self, ids: list[int], cache) -> None:
        """Keep the cache's first len(ids) positions (the prompt ids, just run) for later
        prompts, dropping the least recently used entries over the budget."""
        n = len(ids)
        if not self.budget or n < MIN_TOKENS or cache.length < n:
            return
        size = 2 * cache.k[:, :, :n].nbytes
        if size > self.budget:
            return
        key, tokens = tuple(ids), np.asarray(ids, np.int64)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            for other, entry in list(self._entries.items()):  # a prefix of this one: replaced
                if len(entry[0]) <= n and _common(entry[0], tokens) == len(entry[0]):
                    self._drop(other)
            while self._entries and self.bytes + size > self.budget:
                self._drop(next(iter(self._entries)))
            k = np.array(cache.k[:, :, :n])
            v = np.array(cache.v[:, :, :n])
            self._entries[key] = (tokens, k, v)
            self.bytes += size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def _drop(self, key) -> None:
        _, k, v = self._entries.pop(key)
        self.bytes -= k.nbytes + v.nbytes


def _common(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the common leading run of two token arrays."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n
