"""Exact search over a contiguous, 64-byte aligned vector arena."""

import numpy as np

from vdb.index import kernels

ALIGN = 64
GATHER_BELOW = 0.5  # scan only the listed rows when fewer than this share of rows match
RESCORE_FLOATS = 1 << 22  # float32 differences held at once while rescoring l2 hits


def aligned_empty(shape: tuple[int, int], dtype=np.float32) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a 64-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    offset = (-raw.ctypes.data) % ALIGN
    return raw[offset : offset + nbytes].view(dtype).reshape(shape)


def expect(arrays: dict, name: str, dtype, shape: tuple) -> None:
    """ValueError unless arrays[name] has exactly this dtype and shape."""
    arr = arrays.get(name)
    if arr is None or arr.dtype != np.dtype(dtype) or arr.shape != shape:
        got = None if arr is None else f"{arr.dtype} {arr.shape}"
        raise ValueError(f"array {name} is {got}, not {np.dtype(dtype)} {shape}")


class FlatIndex:
    """Brute-force index. Vectors for cosine are expected normalized by the caller."""

    def __init__(self, dim: int, metric: str, capacity: int = 0):
        self.dim = dim
        self.metric = metric
        self.vectors = aligned_empty((capacity, dim))  # (capacity, dim) float32
        self.alive = np.zeros(capacity, dtype=np.bool_)  # (capacity,)
        self.sq_norms = np.zeros(capacity, dtype=np.float32)  # (capacity,) |x|^2, for l2
        self.size = 0  # rows [0, size) may be alive
        self.count = 0  # number of alive rows

    def __len__(self) -> int:
        return self.count

    def state(self) -> tuple[dict, dict]:
        """(metadata, arrays) for a checkpoint: everything needed to restore without a rebuild."""
        n = self.size
        meta = {
            "kind": "flat",
            "dim": self.dim,
            "metric": self.metric,
            "size": n,
            "count": self.count,
        }
        arrays = {
            "vectors": self.vectors[:n],
            "alive": self.alive[:n],
            "sq_norms": self.sq_norms[:n],
        }
        return meta, arrays

    @classmethod
    def restore(cls, meta: dict, arrays: dict) -> "FlatIndex":
        index = cls(meta["dim"], meta["metric"])
        index._restore(meta, arrays)
        return index

    def _restore(self, meta: dict, arrays: dict) -> None:
        """Adopt a checkpoint's arrays after checking they fit together (ValueError if not)."""
        size, count = meta["size"], meta["count"]
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"size {size!r} is not a count")
        expect(arrays, "vectors", np.float32, (size, self.dim))
        expect(arrays, "alive", np.bool_, (size,))
        expect(arrays, "sq_norms", np.float32, (size,))
        if count != int(np.count_nonzero(arrays["alive"])):
            raise ValueError(f"count {count!r} is not the number of live rows")
        self.vectors, self.alive, self.sq_norms = (
            arrays["vectors"],
            arrays["alive"],
            arrays["sq_norms"],
        )
        self.size, self.count = size, count

    @property
    def capacity(self) -> int:
        return self.alive.shape[0]

    def reserve(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        capacity = max(capacity, 2 * self.capacity, 1024)
        vectors = aligned_empty((capacity, self.dim))
        vectors[: self.size] = self.vectors[: self.size]
        alive = np.zeros(capacity, dtype=np.bool_)
        alive[: self.size] = self.alive[: self.size]
        sq_norms = np.zeros(capacity, dtype=np.float32)
        sq_norms[: self.size] = self.sq_norms[: self.size]
        self.vectors, self.alive, self.sq_norms = vectors, alive, sq_norms

    def set(self, iids: np.ndarray, vectors: np.ndarray) -> None:
        if len(iids) == 0:
            return
        self.reserve(int(iids.max()) + 1)
        self.count += int(np.count_nonzero(~self.alive[iids]))
        self.vectors[iids] = vectors
        if self.metric == "l2":
            self.sq_norms[iids] = np.einsum("ij,ij->i", vectors, vectors)
        self.alive[iids] = True
        self.size = max(self.size, int(iids.max()) + 1)

    def remove(self, iids: np.ndarray) -> None:
        iids = iids[iids < self.size]
        self.count -= int(np.count_nonzero(self.alive[iids]))
        self.alive[iids] = False

    def search(self, queries: np.ndarray, k: int, mask: np.ndarray | None = None):
        nq = queries.shape[0]
        n = self.size
        if mask is None:
            live = self.alive[:n]
            matching = self.count
            mask = None if matching == n else live
        else:
            mask = mask[:n] & self.alive[:n]
            matching = int(np.count_nonzero(mask))
        k = min(k, matching)
        if k == 0:
            return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
        rows = None
        if mask is not None and matching < GATHER_BELOW * n:
            rows = np.flatnonzero(mask).astype(np.int64, copy=False)
            mask = None
        X = self.vectors[:n]
        if self.metric == "l2":
            scores, ids = kernels.topk(
                queries, X, k, bias=self.sq_norms[:n], scale=2.0, mask=mask, rows=rows
            )
            # The expansion |q|^2 - 2<q,x> + |x|^2 loses precision for near neighbours:
            # recompute the kept distances directly (a block of queries at a time, so the
            # differences stay small) and re-sort them.
            step = max(1, RESCORE_FLOATS // (k * self.dim))
            for start in range(0, nq, step):
                part = slice(start, start + step)
                diff = X[ids[part]] - queries[part, None, :]  # (step, k, dim)
                scores[part] = np.sqrt(np.einsum("qkd,qkd->qk", diff, diff))
            order = np.argsort(scores, axis=1, kind="stable")  # (nq, k)
            scores = np.take_along_axis(scores, order, axis=1)
            ids = np.take_along_axis(ids, order, axis=1)
        else:
            scores, ids = kernels.topk(queries, X, k, mask=mask, rows=rows)
        return scores, ids
