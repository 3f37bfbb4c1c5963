"""Attention of one new token over the float16 KV cache, read in place.

Converting the cache to float32 for a BLAS product each step cost more than the attention
itself once the context grows (at 512 positions of a TinyLlama-sized model: 13 ms of a
token's 85). This kernel reads the float16 bits directly, one head per thread, and rounds
as llama.cpp does: the query arrives rounded to float16 (done by the caller) and the
attention weights are rounded to float16 before they meet the values.
"""

import numpy as np
from numba import njit, prange

from llm.ops import exp_neg_inplace, row_max
from llm.qdot import _half_bits, _half_f32, _round_half


@njit(cache=True, parallel=True, fastmath=True, error_model="numpy")  # NaN, not an exception
def decode(q, k, v, start, end, scale, out):
    """out[h] = softmax(q[h] . k[h // group, start:end] * scale) . v[h // group, start:end]
    (start > 0: a sliding window).

    q: (heads, head_dim) float32; k, v: (kv_heads, n_ctx, head_dim) uint16, the bits of the
    float16 cache; out: (heads, head_dim) float32."""
    heads = q.shape[0]
    group = heads // k.shape[0]
    for h in prange(heads):
        _head(q, k, v, h, h // group, start, end, scale, out)


@njit(cache=True, parallel=True, fastmath=True, error_model="numpy")
def decode_rows(q, k_new, v_new, ks, vs, layer, ends, window, scale, out):
    """decode for several sequences in one parallel region, each over a cache of its own,
    after storing each one's new key and value: row i's k_new[i] and v_new[i] ((kv_heads,
    head_dim) float32, rounded to float16) go to position ends[i] - 1 of ks[i][layer] and
    vs[i][layer] (ks, vs: typed lists of (layers, kv_heads, n_ctx, head_dim) uint16), then
    out[i] (heads, head_dim) is q[i]'s attention over positions [first, ends[i]) of them,
    first = ends[i] - window when window > 0 (a sliding window), else 0. Each row equals
    decode's for that sequence alone."""
    b, heads, _ = q.shape
    for i in range(b):
        p = ends[i] - 1
        k, v = ks[i][layer], vs[i][layer]
        for h in range(k_new.shape[1]):
            for d in range(k_new.shape[2]):
                k[h, p, d] = np.uint16(_half_bits(k_new[i, h, d]))
                v[h, p, d] = np.uint16(_half_bits(v_new[i, h, d]))
    for j in prange(b * heads):
        i, h = j // heads, j % heads
        k, v = ks[i][layer], vs[i][layer]
        end = ends[i]
        start = max(0, end - window) if window > 0 else 0
        _head(q[i], k, v, h, h // (heads // k.shape[0]), start, end, scale, out[i])


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def _head(q, k, v, h, kh, start, end, scale, out):
    """out[h]: head h's attention over kv head kh of the cache, positions [start, end)."""
    hd = q.shape[1]
    scores = np.empty(end - start, np.float32)
    p = start
    while p + 4 <= end:  # four positions at once: independent sums overlap
        s0 = s1 = s2 = s3 = np.float32(0.0)
        for d in range(hd):
            qd = q[h, d]
            s0 += qd * _half_f32(np.uint32(k[kh, p, d]))
            s1 += qd * _half_f32(np.uint32(k[kh, p + 1, d]))
            s2 += qd * _half_f32(np.uint32(k[kh, p + 2, d]))
            s3 += qd * _half_f32(np.uint32(k[kh, p + 3, d]))
        i = p - start
        scores[i], scores[i + 1] = s0 * scale, s1 * scale
        scores[i + 2], scores[i + 3] = s2 * scale, s3 * scale
        p += 4
    while p < end:
        s = np.float32(0.0)
        for d in range(hd):
            s += q[h, d] * _half_f32(np.uint32(k[kh, p, d]))
        scores[p - start] = s * scale
        p += 1
    top = row_max(scores)
    for i in range(end - start):
        scores[i] -= top
    exp_neg_inplace(scores)  # vectorized, where np.exp calls libm per element
    inv = np.float32(1.0) / scores.sum()
    for i in range(end - start):
        scores[i] = _round_half(scores[i] * inv)
    acc = np.zeros(hd, np.float32)
    for p in range(start, end):
        w = scores[p - start]
        for d in range(hd):
            acc[d] += w * _half_f32(np.uint32(v[kh, p, d]))
    for d in range(hd):
        out[h, d] = acc[d]
