"""Numba kernels for exact top-k search.

Scores are maximized: score = scale * dot(q, x) - bias[x]. With scale 1 and no bias this is the
dot product (cosine on normalized rows); with scale 2 and bias |x|^2 it is |q|^2 - |q - x|^2,
so the best l2 neighbours have the highest score.
"""

import importlib
import os
import threading

import numba
import numpy as np
from numba import njit, prange

# fastmath without the no-NaN/no-Inf assumptions: heaps start at -inf and must compare right.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
TILE = 64  # rows per tile: 64 x 384 x 4 bytes = 96 KiB, resident in L2 while every query passes


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
def _push(hs, hi, k, s, i):
    """Replace the root of a size-k min-heap (hs[0] is the worst kept score) and sift down."""
    pos = 0
    while True:
        c = 2 * pos + 1
        if c >= k:
            break
        if c + 1 < k and hs[c + 1] < hs[c]:
            c += 1
        if hs[c] >= s:
            break
        hs[pos] = hs[c]
        hi[pos] = hi[c]
        pos = c
    hs[pos] = s
    hi[pos] = i


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _scan_tile(Q, Xt, m, tid, tb, scale, hs, hi, k):
    """Score m tile rows Xt[:m] against every query; push into the per-query heaps.

    Hot spot of exact search. Register-blocked 4 queries x 2 rows: each pass over the
    dimension loads 6 vectors for 8 fused multiply-adds. Rows with tid < 0 are skipped.
    """
    nq, d = Q.shape
    q = 0
    while q + 4 <= nq:
        r = 0
        while r + 2 <= m:
            a00 = np.float32(0.0)
            a01 = np.float32(0.0)
            a10 = np.float32(0.0)
            a11 = np.float32(0.0)
            a20 = np.float32(0.0)
            a21 = np.float32(0.0)
            a30 = np.float32(0.0)
            a31 = np.float32(0.0)
            for j in range(d):
                x0 = Xt[r, j]
                x1 = Xt[r + 1, j]
                q0 = Q[q, j]
                q1 = Q[q + 1, j]
                q2 = Q[q + 2, j]
                q3 = Q[q + 3, j]
                a00 += q0 * x0
                a01 += q0 * x1
                a10 += q1 * x0
                a11 += q1 * x1
                a20 += q2 * x0
                a21 += q2 * x1
                a30 += q3 * x0
                a31 += q3 * x1
            i0 = tid[r]
            i1 = tid[r + 1]
            if i0 >= 0:
                b0 = tb[r]
                s = scale * a00 - b0
                if s > hs[q, 0]:
                    _push(hs[q], hi[q], k, s, i0)
                s = scale * a10 - b0
                if s > hs[q + 1, 0]:
                    _push(hs[q + 1], hi[q + 1], k, s, i0)
                s = scale * a20 - b0
                if s > hs[q + 2, 0]:
                    _push(hs[q + 2], hi[q + 2], k, s, i0)
                s = scale * a30 - b0
                if s > hs[q + 3, 0]:
                    _push(hs[q + 3], hi[q + 3], k, s, i0)
            if i1 >= 0:
                b1 = tb[r + 1]
                s = scale * a01 - b1
                if s > hs[q, 0]:
                    _push(hs[q], hi[q], k, s, i1)
                s = scale * a11 - b1
                if s > hs[q + 1, 0]:
                    _push(hs[q + 1], hi[q + 1], k, s, i1)
                s = scale * a21 - b1
                if s > hs[q + 2, 0]:
                    _push(hs[q + 2], hi[q + 2], k, s, i1)
                s = scale * a31 - b1
                if s > hs[q + 3, 0]:
                    _push(hs[q + 3], hi[q + 3], k, s, i1)
            r += 2
        while r < m:
            if tid[r] >= 0:
                for qq in range(q, q + 4):
                    acc = np.float32(0.0)
                    for j in range(d):
                        acc += Q[qq, j] * Xt[r, j]
                    s = scale * acc - tb[r]
                    if s > hs[qq, 0]:
                        _push(hs[qq], hi[qq], k, s, tid[r])
            r += 1
        q += 4
    while q < nq:
        for r in range(m):
            if tid[r] >= 0:
                acc = np.float32(0.0)
                for j in range(d):
                    acc += Q[q, j] * Xt[r, j]
                s = scale * acc - tb[r]
                if s > hs[q, 0]:
                    _push(hs[q], hi[q], k, s, tid[r])
        q += 1


@njit(nogil=True, fastmath=FASTMATH, cache=True, parallel=True)
def _scan(Q, X, bias, use_bias, scale, mask, use_mask, rows, use_rows, k, nchunks):
    """Per-chunk top-k heaps over all rows (or the listed rows) of X: (nchunks, nq, k) each."""
    nq, d = Q.shape
    n = rows.shape[0] if use_rows else X.shape[0]
    HS = np.full((nchunks, nq, k), -np.inf, dtype=np.float32)
    HI = np.full((nchunks, nq, k), -1, dtype=np.int64)
    per = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lo = c * per
        hi_ = min(n, lo + per)
        tid = np.empty(TILE, dtype=np.int64)
        tb = np.zeros(TILE, dtype=np.float32)
        buf = np.empty((TILE, d), dtype=np.float32)
        for t0 in range(lo, hi_, TILE):
            m = min(TILE, hi_ - t0)
            if use_rows:
                for i in range(m):
                    r = rows[t0 + i]
                    tid[i] = r
                    for j in range(d):
                        buf[i, j] = X[r, j]
                    if use_bias:
                        tb[i] = bias[r]
                _scan_tile(Q, buf, m, tid, tb, scale, HS[c], HI[c], k)
            else:
                any_live = False
                for i in range(m):
                    r = t0 + i
                    live = (not use_mask) or mask[r]
                    tid[i] = r if live else -1
                    any_live = any_live or live
                    if use_bias:
                        tb[i] = bias[r]
                if any_live:
                    _scan_tile(Q, X[t0 : t0 + m], m, tid, tb, scale, HS[c], HI[c], k)
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


def topk(Q, X, k, *, bias=None, scale=1.0, mask=None, rows=None, threads=None):
    """Best-first top-k by score = scale * <q, x> - bias over rows of X.

    Q: (nq, d) float32; X: (n, d) float32; bias: (n,) float32 or None; mask: (n,) bool, rows
    whose mask is False are skipped; rows: (m,) int64 row numbers to scan instead of all rows.
    Returns (scores (nq, k) float32, ids (nq, k) int64), padded with -inf / -1 where fewer than
    k rows qualify.
    """
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    nq = Q.shape[0]
    n = len(rows) if rows is not None else X.shape[0]
    threads = threads or numba.get_num_threads()
    nchunks = max(1, min(threads, n // (4 * TILE)))
    empty_f = np.zeros(0, dtype=np.float32)
    args = (
        Q,
        X,
        bias if bias is not None else empty_f,
        bias is not None,
        np.float32(scale),
        mask if mask is not None else np.zeros(0, dtype=np.bool_),
        mask is not None,
        rows if rows is not None else np.zeros(0, dtype=np.int64),
        rows is not None,
        k,
        nchunks,
    )
    if nq == 0 or k == 0:
        return np.zeros((nq, k), np.float32), np.full((nq, k), -1, np.int64)
    if _NEEDS_LOCK:
        with _call_lock:
            return _merge(*_scan(*args), k)
    return _merge(*_scan(*args), k)
