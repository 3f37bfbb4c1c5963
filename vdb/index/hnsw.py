"""HNSW approximate nearest-neighbour index on top of the flat arena.

The vectors stay in FlatIndex's aligned arena, in internal-id order; the graph sits beside it:
  levels    (capacity,) int8            top level of each node (-1: not in the graph)
  links0    (capacity, 2M) int32        level-0 neighbours;  counts0 (capacity,) int32
  upper_row (capacity,) int32           row of a node in the upper-level block, or -1
  links_up  (MAX_LEVEL, upper_cap, M)   neighbours on levels 1..;  counts_up (MAX_LEVEL, upper_cap)
Nodes are inserted in batches of doubling size (prefix doubling); see hnsw_kernels.insert_batch.
Deleted nodes stay in the graph as waypoints and are never returned.

Write buffer: set(..., link=False) stores the vectors and marks the rows buffered (searched
exactly, beside the graph walk) without linking them; link_pending() links them later, from
another thread while searches go on (the collection's linker). The graph lock serializes the
linker with whatever reallocates or rewrites the graph (reserve, compact, a checkpoint).
Searches read the graph while it is linked: every neighbour id written is a node id in
range and no array they hold is reallocated meanwhile, so a search racing the linker may miss
a node still being linked (it is still buffered, so the exact part finds it), never reads out
of bounds.
"""

import math
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numba
import numpy as np

from vdb.index import hnsw_kernels as hk
from vdb.index.flat import FlatIndex, aligned_empty, expect


@dataclass(frozen=True)
class HnswConfig:
    M: int = 16  # neighbours per node on upper levels; 2*M on level 0
    ef_construction: int = 200  # candidate list size while linking a new node
    ef_search: int = 64  # candidate list size while searching (at least k)
    seed: int = 0  # drives the level of every node: same seed, same graph
    max_batch: int = 4096  # largest insertion batch (prefix doubling stops growing here)
    batch_fraction: float = 0.02  # ... or this share of the graph, whichever is smaller
    int8: bool | None = None  # walk int8 codes, rescore in float32 (search and build); None:
    # once the float32 arena outgrows the caches
    compact_share: float = 0.2  # unlink deleted nodes once they exceed this share of live ones


# With int8=None the int8 walk is used once the float32 arena outgrows the caches (measured:
# 1.8x the float walk at 100,000 x 128, 0.9x at 4,000 x 128).
INT8_FROM_BYTES = 8 << 20


WALK_COST = 4  # see HnswIndex.search


def _floats(values, dim: int) -> np.ndarray:
    arr = np.array(values, np.float32)
    if arr.shape != (dim,) or not np.isfinite(arr).all():
        raise ValueError(f"code ranges are not {dim} finite numbers")
    return arr


class _Scratch(threading.local):
    """Per-Python-thread search buffers, one row per numba thread, reused across calls."""

    visited = None


class HnswIndex(FlatIndex):
    def __init__(self, dim: int, metric: str, config: HnswConfig = HnswConfig(), capacity=0):
        self.config = config
        M = config.M
        self.levels = np.full(0, -1, np.int8)
        self.links0 = np.zeros((0, 2 * M), np.int32)
        self.counts0 = np.zeros(0, np.int32)
        self.upper_row = np.full(0, -1, np.int32)
        self.links_up = np.zeros((hk.MAX_LEVEL, 0, M), np.int32)
        self.counts_up = np.zeros((hk.MAX_LEVEL, 0), np.int32)
        self.n_upper = 0
        self.entry = -1
        self.top_level = -1
        self.codes = np.zeros((0, dim), np.int8)  # (capacity, dim) round((x - mid) / step)
        self.code_lo = np.zeros(dim, np.float32)  # (dim,) range each dimension's codes cover
        self.code_hi = np.zeros(dim, np.float32)  # (dim,) (lo == hi everywhere: no codes yet)
        self.code_norms = np.zeros(0, np.float32)  # (capacity,) sum(step^2 * code^2) per row
        self._free_upper: list[int] = []  # upper-level rows freed by compaction
        self._scratch = _Scratch()
        self.buffer = np.zeros(0, np.bool_)  # (capacity,) rows not linked yet: searched exactly
        self._dirty = np.zeros(0, np.bool_)  # (capacity,) ... written since the linker took them
        self.n_buffered = 0  # rows set in buffer
        self._graph_lock = threading.RLock()  # held while the graph is linked or reallocated
        self._others = 0  # threads in _graph_first (they go before the next linking batch)
        self._turn = threading.Condition()  # guards _others
        self._flags_lock = threading.Lock()  # buffer, _dirty and n_buffered change together
        super().__init__(dim, metric, capacity)

    # ------------------------------------------------------------ storage

    GRAPH_ARRAYS = ("levels", "links0", "counts0", "upper_row", "codes", "buffer")

    def state(self) -> tuple[dict, dict]:
        meta, arrays = super().state()
        n, u = self.size, self.n_upper
        meta.update(
            kind="hnsw",
            config=asdict(self.config),
            entry=self.entry,
            top_level=self.top_level,
            n_upper=u,
            code_lo=self.code_lo.tolist(),
            code_hi=self.code_hi.tolist(),
            free_upper=self._free_upper,
        )
        arrays.update({name: getattr(self, name)[:n] for name in self.GRAPH_ARRAYS})
        arrays.update(links_up=self.links_up[:, :u], counts_up=self.counts_up[:, :u])
        return meta, arrays

    @classmethod
    def restore(cls, meta: dict, arrays: dict) -> "HnswIndex":
        """From a checkpoint's metadata and arrays, after checking that the graph fits its
        arena: shapes and dtypes, levels, counts, and every neighbour id in range, so the
        kernels never follow an edge out of bounds (ValueError if not). A checkpoint without
        a buffer array buffers the live rows that are not in the graph."""
        config = HnswConfig(**meta["config"])
        if "buffer" not in arrays and "levels" in arrays and "alive" in arrays:
            arrays = {**arrays, "buffer": arrays["alive"] & (arrays["levels"] < 0)}
        index = cls(meta["dim"], meta["metric"], config)
        index._restore(meta, arrays)
        n, dim, M, u = index.size, index.dim, config.M, meta["n_upper"]
        entry, top = meta["entry"], meta["top_level"]
        if not isinstance(u, int) or not 0 <= u <= n:
            raise ValueError(f"n_upper {u!r} does not fit {n} nodes")
        for name, dtype, shape in (
            ("levels", np.int8, (n,)),
            ("links0", np.int32, (n, 2 * M)),
            ("counts0", np.int32, (n,)),
            ("upper_row", np.int32, (n,)),
            ("codes", np.int8, (n, dim)),
            ("buffer", np.bool_, (n,)),
            ("links_up", np.int32, (hk.MAX_LEVEL, u, M)),
            ("counts_up", np.int32, (hk.MAX_LEVEL, u)),
        ):
            expect(arrays, name, dtype, shape)
        if not (isinstance(entry, int) and isinstance(top, int) and -1 <= entry < n):
            raise ValueError(f"entry point {entry!r} is not a node")
        if not -1 <= top <= hk.MAX_LEVEL or (entry >= 0) != (top >= 0):
            raise ValueError(f"top level {top!r} does not fit the entry point")
        if not hk.graph_in_bounds(
            arrays["levels"],
            arrays["links0"],
            arrays["counts0"],
            arrays["upper_row"],
            arrays["links_up"],
            arrays["counts_up"],
            entry,
            top,
        ):
            raise ValueError("the graph has a level, count or neighbour id out of range")
        free = meta["free_upper"]
        if not all(isinstance(r, int) and 0 <= r < u for r in free):
            raise ValueError("a freed upper-level row is out of range")
        for name in cls.GRAPH_ARRAYS + ("links_up", "counts_up"):
            setattr(index, name, arrays[name])
        index.entry, index.top_level, index.n_upper = entry, top, u
        index.code_lo = _floats(meta["code_lo"], dim)
        index.code_hi = _floats(meta["code_hi"], dim)
        index._free_upper = list(free)
        index.code_norms = np.zeros(len(index.codes), np.float32)
        index._set_norms(np.arange(n))
        index.buffer &= index.alive[:n]
        index._dirty = index.buffer.copy()
        index.n_buffered = int(np.count_nonzero(index.buffer))
        return index

    def reserve(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        with self._graph_first():
            self._grow_to(capacity)

    @contextmanager
    def _graph_first(self):
        """Hold the graph lock, ahead of the linker: link_pending starts no batch while a
        thread waits here, so a writer waits for the batch in hand at most (a lock alone
        lets the linker take it again and again)."""
        with self._turn:
            self._others += 1
        try:
            with self._graph_lock:
                yield
        finally:
            with self._turn:
                self._others -= 1
                self._turn.notify_all()

    def _grow_to(self, capacity: int) -> None:
        old = self.capacity
        super().reserve(capacity)
        new = self.capacity
        if new == old:
            return
        self.buffer = _grow(self.buffer, new, False)
        self._dirty = _grow(self._dirty, new, False)
        self.levels = _grow(self.levels, new, -1)
        self.links0 = _grow(self.links0, new, 0)
        self.counts0 = _grow(self.counts0, new, 0)
        self.upper_row = _grow(self.upper_row, new, -1)
        codes = aligned_empty((new, self.dim), np.int8)  # rows start on cache lines
        codes[: len(self.codes)] = self.codes
        self.codes = codes
        self.code_norms = _grow(self.code_norms, new, 0.0)

    def _reserve_upper(self, n: int) -> None:
        cap = self.links_up.shape[1]
        if n <= cap:
            return
        cap = max(n, 2 * cap, 64)
        links = np.zeros((hk.MAX_LEVEL, cap, self.config.M), np.int32)
        links[:, : self.n_upper] = self.links_up[:, : self.n_upper]
        counts = np.zeros((hk.MAX_LEVEL, cap), np.int32)
        counts[:, : self.n_upper] = self.counts_up[:, : self.n_upper]
        self.links_up, self.counts_up = links, counts

    @property
    def _l2(self) -> bool:
        return self.metric == "l2"

    # ------------------------------------------------------------ writes

    def set(self, iids: np.ndarray, vectors: np.ndarray, link: bool = True) -> None:
        """Insert or replace rows. link=False buffers them (searched exactly) for
        link_pending() to link later."""
        super().set(iids, vectors)
        iids = np.asarray(iids, dtype=np.int64)
        if self.config.int8 is not False:
            self._encode(iids, vectors)
        if not link:
            with self._flags_lock:
                self.n_buffered += int(np.count_nonzero(~self.buffer[iids]))
                self.buffer[iids] = True
                self._dirty[iids] = True
            return
        with self._graph_lock:
            self._link(iids)
            with self._flags_lock:  # rows linked now need no buffering
                self.n_buffered -= int(np.count_nonzero(self.buffer[iids]))
                self.buffer[iids] = False
                self._dirty[iids] = False

    def link_pending(self, limit: int | None = None) -> int:
        """Link buffered rows into the graph, while searches go on: at most limit of them,
        by default one insertion batch (so that whatever waits for the graph lock waits for
        one batch). Returns how many were linked. Rows written again meanwhile stay buffered
        for the next call."""
        with self._turn:
            self._turn.wait_for(lambda: not self._others)
        with self._graph_lock:
            n = self.size
            if limit is None:
                cfg = self.config
                linked = max(1, int(np.count_nonzero(self.levels[:n] >= 0)))
                limit = max(1, min(cfg.max_batch, int(cfg.batch_fraction * self.count), linked))
            with self._flags_lock:
                rows = np.flatnonzero(self._dirty[:n])
                gone = rows[~self.alive[rows]]  # deleted before they were linked
                self._dirty[gone] = False
                self.n_buffered -= int(np.count_nonzero(self.buffer[gone]))
                self.buffer[gone] = False
                batch = rows[self.alive[rows]][:limit].astype(np.int64)
                self._dirty[batch] = False
            if not len(batch):
                return 0
            self._link(batch)
            with self._flags_lock:
                done = batch[~self._dirty[batch]]
                self.n_buffered -= len(done)
                self.buffer[done] = False
            return len(batch)

    def paused(self):
        """A context in which the graph does not change (for a consistent checkpoint)."""
        return self._graph_first()

    def _encode(self, iids: np.ndarray, vectors: np.ndarray) -> None:
        """int8 codes of the rows, per dimension over [code_lo, code_hi]. When new data falls
        outside a dimension's range by more than 10% of its width, that range widens (with
        10% to spare) and the dimension is encoded again for every row."""
        lo, hi = vectors.min(axis=0), vectors.max(axis=0)  # (dim,)
        width = self.code_hi - self.code_lo
        dims = np.arange(self.dim)
        if not width.any():
            self.code_lo, self.code_hi = lo, hi
            self._quantize_rows(np.flatnonzero(self.alive[: self.size]), dims)
            return
        slack = 0.1 * width
        grow_lo, grow_hi = lo < self.code_lo - slack, hi > self.code_hi + slack
        wider = np.flatnonzero(grow_lo | grow_hi)
        if len(wider):
            self.code_lo = np.where(grow_lo, lo - slack, self.code_lo).astype(np.float32)
            self.code_hi = np.where(grow_hi, hi + slack, self.code_hi).astype(np.float32)
            self._quantize_rows(np.flatnonzero(self.alive[: self.size]), wider)
        self._quantize_rows(iids, dims)

    def _quantize_rows(self, rows: np.ndarray, dims: np.ndarray) -> None:
        mid, step = self._code_frame()
        rows = np.asarray(rows, np.int64)
        hk.quantize(self.vectors, rows, np.asarray(dims, np.int64), mid, step, self.codes)
        self._set_norms(rows)

    def _set_norms(self, rows: np.ndarray) -> None:
        """code_norms of the rows from their codes: sum(step^2 * code^2)."""
        step = self._code_frame()[1]
        hk.code_norms(self.codes, np.asarray(rows, np.int64), step * step, self.code_norms)

    def _use_codes(self) -> bool:
        """Walk the int8 codes (in searches and while linking new nodes)?"""
        int8 = self.config.int8
        if int8 is None:
            int8 = self.size * self.dim * 4 > INT8_FROM_BYTES
        return bool(int8) and bool((self.code_hi > self.code_lo).any())

    def _code_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """(mid, step) per dimension: x ~= mid + step * code, code in [-127, 127]."""
        mid = (self.code_lo + self.code_hi) / 2
        step = np.maximum((self.code_hi - self.code_lo) / 254, np.float32(1e-30))
        return mid.astype(np.float32), step.astype(np.float32)

    def _walk_queries(self, Q: np.ndarray) -> tuple[np.ndarray, bool]:
        """(queries for the int8 walk, whether to walk the codes). Queries stay float32:
        asymmetric distances lose less than int8 x int8."""
        if self._use_codes():
            return self._code_queries(Q), True
        return np.zeros((len(Q), self.dim), np.float32), False

    def _code_queries(self, Q: np.ndarray) -> np.ndarray:
        """(nq, dim): queries q' in code units such that <code, q'> - norm(code) is minus the
        squared l2 distance up to a constant of the query (x ~= mid + step * code, so
        q' = 2 * step * (q - mid) and norm = sum(step^2 * code^2)), or, for the dot product,
        <code, q'> ranks like <x, q> (q' = step * q, the constant <mid, q> dropped)."""
        mid, step = self._code_frame()
        if self._l2:
            return np.ascontiguousarray(2 * step * (Q - mid), dtype=np.float32)
        return np.ascontiguousarray(Q * step, dtype=np.float32)

    def _link(self, nodes: np.ndarray) -> None:
        if not len(nodes):
            return
        fresh = nodes[self.levels[nodes] < 0]
        self._assign_levels(fresh)
        self.counts0[nodes] = 0  # re-linked nodes choose their neighbours again
        if self.entry < 0:
            self.entry = int(nodes[0])
            self.top_level = int(self.levels[self.entry])
            nodes = nodes[1:]
        cfg = self.config
        # prefix doubling: a batch is no larger than the graph it links into
        linked = int(np.count_nonzero(self.levels[: self.size] >= 0)) - len(nodes)
        start = 0
        while start < len(nodes):
            limit = max(1, min(cfg.max_batch, int(cfg.batch_fraction * self.count)))
            batch = nodes[start : start + min(max(1, linked), limit)]
            self._insert_batch(batch)
            start += len(batch)
            linked += len(batch)

    def remove(self, iids: np.ndarray) -> None:
        super().remove(iids)
        if self.tombstones() > self.config.compact_share * max(1, self.count):
            self.compact()

    def tombstones(self) -> int:
        """How many deleted nodes are still linked into the graph."""
        return len(self._tombstones())

    def _tombstones(self) -> np.ndarray:
        n = self.size
        return np.flatnonzero((self.levels[:n] >= 0) & ~self.alive[:n])

    def compact(self) -> int:
        """Unlink deleted nodes: repair the neighbour lists that point at them, free their
        upper-level rows, and move the entry point if it was deleted. Their slots become fresh
        nodes when reused. Returns how many nodes were unlinked."""
        with self._graph_first():
            return self._compact()

    def _compact(self) -> int:
        n = self.size
        dead = self._tombstones()
        if not len(dead):
            return 0
        M0 = 2 * self.config.M
        threads = numba.get_num_threads()
        width = M0 * (M0 + 1)
        pool_i = np.empty((threads, width), np.int32)
        sort_i = np.empty((threads, width), np.int32)
        pool_s = np.empty((threads, width), np.float32)
        sort_s = np.empty((threads, width), np.float32)
        hk.repair(
            self.vectors,
            self.alive[:n],
            self.levels[:n],
            self.links0,
            self.counts0,
            self.upper_row,
            self.links_up,
            self.counts_up,
            self.config.M,
            self._l2,
            pool_i,
            pool_s,
            sort_s,
            sort_i,
        )
        upper = self.upper_row[dead]
        self._free_upper.extend(upper[upper >= 0].tolist())
        self.counts_up[:, upper[upper >= 0]] = 0
        self.levels[dead] = -1
        self.upper_row[dead] = -1
        self.counts0[dead] = 0
        if self.entry >= 0 and not self.alive[self.entry]:
            live = np.flatnonzero(self.levels[:n] >= 0)
            if len(live):
                best = live[np.argmax(self.levels[live])]
                self.entry, self.top_level = int(best), int(self.levels[best])
            else:
                self.entry, self.top_level = -1, -1
        return len(dead)

    def _assign_levels(self, nodes: np.ndarray) -> None:
        if not len(nodes):
            return
        u = _uniform(nodes, self.config.seed)
        ml = 1.0 / math.log(self.config.M)
        levels = np.minimum(np.floor(-np.log(u) * ml), hk.MAX_LEVEL).astype(np.int8)
        self.levels[nodes] = levels
        upper = nodes[levels > 0]
        reused = min(len(upper), len(self._free_upper))
        rows = self._free_upper[len(self._free_upper) - reused :]
        del self._free_upper[len(self._free_upper) - reused :]
        fresh = len(upper) - reused
        self._reserve_upper(self.n_upper + fresh)
        rows = np.array(rows + list(range(self.n_upper, self.n_upper + fresh)), np.int32)
        self.upper_row[upper] = rows
        self.counts_up[:, rows] = 0
        self.n_upper += fresh

    def _insert_batch(self, batch: np.ndarray) -> None:
        cfg = self.config
        width = max(cfg.ef_construction * 2 * cfg.M, 2 * cfg.M + len(batch)) + 1
        b = self._buffers(width)
        sel_s = np.empty((len(b.tags), width), np.float32)
        sel_i = np.empty((len(b.tags), width), np.int32)
        self._insert_kernel(batch, b, sel_s, sel_i)
        top = batch[np.argmax(self.levels[batch])]
        if self.levels[top] > self.top_level:
            self.entry, self.top_level = int(top), int(self.levels[top])

    def _insert_kernel(self, batch, b, sel_s, sel_i) -> None:
        cfg = self.config
        graph = (self.links0, self.counts0, self.upper_row, self.links_up, self.counts_up)
        hk.insert_batch(
            self.vectors,
            batch,
            self.levels,
            (*graph, self.entry, self.top_level),
            cfg.M,
            cfg.ef_construction,
            self._l2,
            (b.visited, b.tags, b.ck, b.cv, b.rk, b.rv, b.nbuf, sel_s, sel_i),
            np.zeros(1, np.bool_),
            self._group_of(),
            (self.codes, self.code_norms),
            *self._walk_queries(self.vectors[batch]),
        )

    def _group_of(self) -> np.ndarray:
        """This Python thread's table of reverse-edge group numbers while linking, one per
        node (-1 between calls: insert_batch resets what it sets)."""
        s = self._scratch
        if getattr(s, "group_of", None) is None or len(s.group_of) != self.capacity:
            s.group_of = np.full(self.capacity, -1, np.int32)
        return s.group_of

    def _buffers(self, width: int) -> "_Scratch":
        """This Python thread's buffers, one row per numba thread: visited tags (capacity),
        heaps (width) and a neighbour list (2M)."""
        threads = numba.get_num_threads()
        s = self._scratch
        if s.visited is None or s.visited.shape != (threads, self.capacity):
            s.visited = np.zeros((threads, self.capacity), np.uint16)
            s.tags = np.zeros(threads, np.int32)
        if getattr(s, "ck", None) is None or s.ck.shape[1] < width or s.ck.shape[0] != threads:
            s.ck = np.empty((threads, width), np.float32)
            s.cv = np.empty((threads, width), np.int32)
            s.rk = np.empty((threads, width), np.float32)
            s.rv = np.empty((threads, width), np.int32)
            s.nbuf = np.empty((threads, 2 * self.config.M), np.int32)
        return s

    # ------------------------------------------------------------ reads

    def search(
        self, queries: np.ndarray, k: int, mask: np.ndarray | None = None, ef: int | None = None
    ):
        n = self.size
        if mask is None:
            matching = self.count
            live = None if matching == n else self.alive[:n]
        else:
            live = mask[:n] & self.alive[:n]
            matching = int(np.count_nonzero(live))
        k = min(k, matching)
        nq = queries.shape[0]
        if k == 0:
            return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
        ef = max(ef or self.config.ef_search, k)
        M0 = 2 * self.config.M
        if live is not None:  # a filtered walk must visit ~1/selectivity times more nodes
            ef = min(n, int(ef * n / matching))
        # Scan exactly when that costs no more than the walk. Measured at 100,000 x 128 (one
        # thread, 5-50% selectivity): walk / scan time ~ 4 * ef * M0 * n / matching^2, the
        # walk's random accesses costing several times the scan's sequential ones.
        if matching * matching <= WALK_COST * ef * M0 * n or self.entry < 0:
            return super().search(queries, k, mask)
        buffered = None  # read before the walk: a row the linker finishes later is in the graph
        if self.n_buffered:
            buffered = self.buffer[:n] & (self.alive[:n] if live is None else live)
        scores, ids = self._graph_search(queries, k, ef, live)
        if self._l2:
            scores = np.sqrt(np.maximum(-scores, 0.0))  # Euclidean distance, as the scan gives
        short = (ids < 0).any(axis=1)
        if short.any():  # the walk found fewer than k matching nodes: scan those queries
            scores[short], ids[short] = super().search(queries[short], k, mask)
        if buffered is not None and buffered.any():
            more = super().search(queries, k, buffered)
            scores, ids = _merged((scores, ids), more, k, self._l2)
        return scores, ids

    def _graph_search(self, queries, k, ef, live):
        # a node enters the candidate heap at most once, so it never holds more than size
        width = max(min(ef * 2 * self.config.M, self.size + 1), ef + 1) + 1
        b = self._buffers(width)
        nq = queries.shape[0]
        out_s = np.empty((nq, k), np.float32)
        out_i = np.empty((nq, k), np.int64)
        use_mask = live is not None
        mask = live if use_mask else np.zeros(1, np.bool_)
        Q = np.ascontiguousarray(queries, dtype=np.float32)
        CQ, use_codes = self._walk_queries(Q)
        # one query gains nothing from a parallel region, and its threads would spin after it
        kernel = hk.search_serial if nq == 1 else hk.search_batch
        graph = (
            self.links0,
            self.counts0,
            self.upper_row,
            self.links_up,
            self.counts_up,
            self.entry,
            self.top_level,
        )
        bufs = (b.visited, b.tags, b.ck, b.cv, b.rk, b.rv, b.nbuf)
        kernel(
            self.vectors,
            Q,
            k,
            ef,
            self._l2,
            graph,
            mask,
            use_mask,
            bufs,
            out_s,
            out_i,
            (self.codes, self.code_norms),
            CQ,
            use_codes,
        )
        return out_s, out_i


def _merged(a, b, k: int, lower_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """The best k of two (scores, ids) results per query, each id once (the walk and the
    exact scan of the buffer may both find a row), -1 padded."""
    S = np.concatenate((a[0], b[0]), axis=1)  # (nq, ka + kb)
    ids = np.concatenate((a[1], b[1]), axis=1)
    key = S if lower_better else -S
    key = np.where(ids < 0, np.inf, key)
    by_id = np.argsort(ids, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ids, by_id, axis=1)
    repeat = np.zeros(ids.shape, np.bool_)
    repeat[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    dup = np.empty_like(repeat)
    np.put_along_axis(dup, by_id, repeat, axis=1)
    key = np.where(dup, np.inf, key)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(S, order, axis=1)
    out = np.take_along_axis(ids, order, axis=1)
    out[np.take_along_axis(key, order, axis=1) == np.inf] = -1
    return scores, out


def _grow(arr: np.ndarray, capacity: int, fill) -> np.ndarray:
    out = np.full((capacity, *arr.shape[1:]), fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _uniform(nodes: np.ndarray, seed: int) -> np.ndarray:
    """A uniform (0, 1] number per node id, from a splitmix64 hash of (seed, id)."""
    with np.errstate(over="ignore"):
        z = nodes.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 1.0) / float(1 << 53)
