"""Numba kernels for exact top-k search.

Scores are maximized: score = scale * dot(q, x) - bias[x]. With scale 1 and no bias this is the
dot product (cosine on normalized rows); with scale 2 and bias |x|^2 it is |q|^2 - |q - x|^2,
so the best l2 neighbours have the highest score.

Two scans keep the best k per query in per-chunk heaps, merged at the end: batches of at
least lanes.LANES queries go through lanes.py (the queries in vector lanes); smaller ones
through _scan below, 4 queries x 4 rows per pass with dot products along the dimension.
Either reads the rows it scores where they lie (all rows, the rows a mask lets through, or
listed rows), so a filtered scan costs what an unfiltered one costs per scanned row.
"""

import importlib
import os
import threading

import numba
import numpy as np
from numba import njit, prange

from vdb.index import lanes
from vdb.index.heaps import FASTMATH, _push

MIN_CHUNK_WORK = 1 << 21  # multiply-adds per parallel chunk at least (~25 us on one core)
TILE_BYTES = 24 << 10  # rows per tile: as many as fit here, so they stay in L1 while queries pass


def _choose_threading_layer() -> bool:
    """Prefer a layer that allows concurrent calls from many threads; True if calls need a lock."""
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return os.environ["NUMBA_THREADING_LAYER"] == "workqueue"
    for pool in ("tbbpool", "omppool"):
        try:
            importlib.import_module(f"numba.np.ufunc.{pool}")
        except Exception:
            continue
        numba.config.THREADING_LAYER = "threadsafe"
        return False
    return True


_NEEDS_LOCK = _choose_threading_layer()
_call_lock = threading.Lock()


@njit(nogil=True, fastmath=FASTMATH, cache=True, inline="always")
def _offer(hs, hi, q, k, s, i):
    """Keep score s of row i for query q if it beats the worst score kept so far."""
    if s > hs[q, 0]:
        _push(hs[q], hi[q], k, s, i)


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _scan_tile(Q, X, src, tid, tb, m, scale, hs, hi, k):
    """Score the m tile rows X[src[:m]] against every query; push into the per-query heaps.

    Hot spot of exact search. Rows are read in place through src (no copy); m is a multiple of
    4, and padding rows carry tid -1 (scored, never pushed). Register-blocked 4 queries x 4
    rows: each pass over the dimension loads 8 vectors for 16 fused multiply-adds, and the 4
    rows (4 x dim floats) stay in L1 while every query block passes.
    """
    nq, d = Q.shape
    q = 0
    while q + 4 <= nq:
        for r in range(0, m, 4):
            s0, s1, s2, s3 = src[r], src[r + 1], src[r + 2], src[r + 3]
            a00 = a01 = a02 = a03 = np.float32(0.0)
            a10 = a11 = a12 = a13 = np.float32(0.0)
            a20 = a21 = a22 = a23 = np.float32(0.0)
            a30 = a31 = a32 = a33 = np.float32(0.0)
            for j in range(d):
                x0 = X[s0, j]
                x1 = X[s1, j]
                x2 = X[s2, j]
                x3 = X[s3, j]
                q0 = Q[q, j]
                q1 = Q[q + 1, j]
                q2 = Q[q + 2, j]
                q3 = Q[q + 3, j]
                a00 += q0 * x0
                a01 += q0 * x1
                a02 += q0 * x2
                a03 += q0 * x3
                a10 += q1 * x0
                a11 += q1 * x1
                a12 += q1 * x2
                a13 += q1 * x3
                a20 += q2 * x0
                a21 += q2 * x1
                a22 += q2 * x2
                a23 += q2 * x3
                a30 += q3 * x0
                a31 += q3 * x1
                a32 += q3 * x2
                a33 += q3 * x3
            i = tid[r]
            if i >= 0:
                b = tb[r]
                _offer(hs, hi, q, k, scale * a00 - b, i)
                _offer(hs, hi, q + 1, k, scale * a10 - b, i)
                _offer(hs, hi, q + 2, k, scale * a20 - b, i)
                _offer(hs, hi, q + 3, k, scale * a30 - b, i)
            i = tid[r + 1]
            if i >= 0:
                b = tb[r + 1]
                _offer(hs, hi, q, k, scale * a01 - b, i)
                _offer(hs, hi, q + 1, k, scale * a11 - b, i)
                _offer(hs, hi, q + 2, k, scale * a21 - b, i)
                _offer(hs, hi, q + 3, k, scale * a31 - b, i)
            i = tid[r + 2]
            if i >= 0:
                b = tb[r + 2]
                _offer(hs, hi, q, k, scale * a02 - b, i)
                _offer(hs, hi, q + 1, k, scale * a12 - b, i)
                _offer(hs, hi, q + 2, k, scale * a22 - b, i)
                _offer(hs, hi, q + 3, k, scale * a32 - b, i)
            i = tid[r + 3]
            if i >= 0:
                b = tb[r + 3]
                _offer(hs, hi, q, k, scale * a03 - b, i)
                _offer(hs, hi, q + 1, k, scale * a13 - b, i)
                _offer(hs, hi, q + 2, k, scale * a23 - b, i)
                _offer(hs, hi, q + 3, k, scale * a33 - b, i)
        q += 4
    while q < nq:  # the last nq % 4 queries, one at a time against 4 rows
        for r in range(0, m, 4):
            s0, s1, s2, s3 = src[r], src[r + 1], src[r + 2], src[r + 3]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for j in range(d):
                qj = Q[q, j]
                a0 += qj * X[s0, j]
                a1 += qj * X[s1, j]
                a2 += qj * X[s2, j]
                a3 += qj * X[s3, j]
            if tid[r] >= 0:
                _offer(hs, hi, q, k, scale * a0 - tb[r], tid[r])
            if tid[r + 1] >= 0:
                _offer(hs, hi, q, k, scale * a1 - tb[r + 1], tid[r + 1])
            if tid[r + 2] >= 0:
                _offer(hs, hi, q, k, scale * a2 - tb[r + 2], tid[r + 2])
            if tid[r + 3] >= 0:
                _offer(hs, hi, q, k, scale * a3 - tb[r + 3], tid[r + 3])
        q += 1


@njit(nogil=True, fastmath=FASTMATH, cache=True, parallel=True)
def _scan(Q, X, bias, use_bias, scale, mask, use_mask, rows, use_rows, k, nchunks, tile):
    """Per-chunk top-k heaps over all rows (or the listed rows) of X: (nchunks, nq, k) each.

    Each chunk collects up to `tile` qualifying rows (live under the mask, or listed) into a
    tile of row numbers and scores them in place; skipped rows cost one mask read.
    """
    nq = Q.shape[0]
    n = rows.shape[0] if use_rows else X.shape[0]
    HS = np.full((nchunks, nq, k), -np.inf, dtype=np.float32)
    HI = np.full((nchunks, nq, k), -1, dtype=np.int64)
    per = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lo = c * per
        hi_ = min(n, lo + per)
        src = np.empty(tile, dtype=np.int64)  # rows of X to read
        tid = np.empty(tile, dtype=np.int64)  # ids to report, -1 for padding
        tb = np.zeros(tile, dtype=np.float32)
        m = 0
        for p in range(lo, hi_):
            r = rows[p] if use_rows else p
            if use_mask and not mask[r]:
                continue
            src[m] = r
            tid[m] = r
            if use_bias:
                tb[m] = bias[r]
            m += 1
            if m == tile:
                _scan_tile(Q, X, src, tid, tb, m, scale, HS[c], HI[c], k)
                m = 0
        if m > 0:
            while m % 4:  # pad to whole blocks with a real row that is never reported
                src[m] = src[0]
                tid[m] = -1
                tb[m] = 0.0
                m += 1
            _scan_tile(Q, X, src, tid, tb, m, scale, HS[c], HI[c], k)
    return HS, HI


@njit(nogil=True, cache=True, parallel=True)
def _merge(HS, HI, k):
    """Merge per-chunk heaps into (nq, k) best-first results; ties go to the lower id."""
    nchunks, nq, kk = HS.shape
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    for q in prange(nq):
        s = HS[:, q, :].copy().ravel()
        ids = HI[:, q, :].copy().ravel()
        by_id = np.argsort(ids, kind="mergesort")
        s = s[by_id]
        ids = ids[by_id]
        order = np.argsort(-s, kind="mergesort")
        j = 0
        for o in order:
            if ids[o] < 0:
                continue
            out_s[q, j] = s[o]
            out_i[q, j] = ids[o]
            j += 1
            if j == k:
                break
    return out_s, out_i


def tile_rows(dim: int) -> int:
    """Rows per tile for vectors of dim floats: a multiple of 4 from 4 to 256."""
    return max(4, min(256, TILE_BYTES // (4 * max(dim, 1)) // 4 * 4))


def topk(Q, X, k, *, bias=None, scale=1.0, mask=None, rows=None, threads=None, width=None):
    """Best-first top-k by score = scale * <q, x> - bias over rows of X.

    Q: (nq, d) float32; X: (n, d) float32; bias: (n,) float32 or None; mask: (n,) bool, rows
    whose mask is False are skipped; rows: (m,) int64 row numbers to scan instead of all rows.
    Returns (scores (nq, k) float32, ids (nq, k) int64), padded with -inf / -1 where fewer than
    k rows qualify. width: queries per vector for a scan with the queries in vector lanes
    (lanes.py; 8 or 16), 0 for the scan a block of 4 queries at a time; None picks lanes.LANES
    for batches of at least that many queries, else the blocks.
    """
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    nq = Q.shape[0]
    if nq == 0 or k == 0:
        return np.zeros((nq, k), np.float32), np.full((nq, k), -1, np.int64)
    n = len(rows) if rows is not None else X.shape[0]
    threads = threads or numba.get_num_threads()
    nchunks = max(1, min(threads, n // 4, n * nq * X.shape[1] // MIN_CHUNK_WORK))
    common = (
        X,
        bias if bias is not None else np.zeros(0, dtype=np.float32),
        bias is not None,
        np.float32(scale),
        mask if mask is not None else np.zeros(0, dtype=np.bool_),
        mask is not None,
        rows if rows is not None else np.zeros(0, dtype=np.int64),
        rows is not None,
        k,
        nchunks,
    )
    if width is None:
        width = lanes.LANES if nq >= lanes.LANES else 0
    if width:
        run, args = lanes.scan, (lanes.pack(Q, width), nq, *common, lanes.width(width))
    else:
        run, args = _scan, (Q, *common, tile_rows(X.shape[1]))
    if _NEEDS_LOCK:
        with _call_lock:
            return _merge(*run(*args), k)
    return _merge(*run(*args), k)
