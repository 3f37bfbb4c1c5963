"""Transformer building blocks as numba kernels, in place on float32.

They are serial on purpose: they run between BLAS calls, and OpenBLAS's threads keep spinning
for a while after each call, so a parallel region here competes with them for the cores
(measured: with parallel layer norm and GELU the products around them took 1.7x as long).
"""

import math

import numpy as np
from numba import njit

from llm.qdot import _bits_f32, _half_bits, _half_f32, _round_half

SQRT_HALF = np.float32(1.0 / math.sqrt(2.0))


@njit(cache=True, inline="always", fastmath=True)
def _normalize(row, weight, bias, eps):
    """row <- (row - mean) / sqrt(var + eps) * weight + bias."""
    d = row.shape[0]
    mean = 0.0
    for i in range(d):
        mean += row[i]
    mean /= d
    var = 0.0
    for i in range(d):
        c = row[i] - mean
        var += c * c
    inv = 1.0 / math.sqrt(var / d + eps)
    for i in range(d):
        row[i] = np.float32((row[i] - mean) * inv) * weight[i] + bias[i]


# Kernels that divide by a value computed from the data use numpy's error model: a zero
# there (a row of NaN or infinite values from damaged weights) gives NaN or infinity, which
# the callers' checks of their outputs catch, not a ZeroDivisionError from inside a kernel.


@njit(cache=True, fastmath=True, error_model="numpy")
def add_layer_norm(x, residual, weight, bias, eps):
    """x <- LayerNorm(x + residual) * weight + bias, row by row. x, residual: (n, d)."""
    for r in range(x.shape[0]):
        row = x[r]
        row += residual[r]
        _normalize(row, weight, bias, eps)


@njit(cache=True, fastmath=True, error_model="numpy")
def layer_norm(x, weight, bias, eps):
    """x <- LayerNorm(x) * weight + bias, row by row."""
    for r in range(x.shape[0]):
        _normalize(x[r], weight, bias, eps)


# erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (beyond, erf is +-1 in float32): the rational
# approximation Eigen and XLA use for float32, within 7e-8 of erf; unlike math.erf it is plain
# arithmetic, so the loop vectorizes.
_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)
P0, P1, P2, P3, P4, P5, P6 = (np.float32(c) for c in _ERF_P)
Q0, Q1, Q2, Q3, Q4 = (np.float32(c) for c in _ERF_Q)


@njit(cache=True, inline="always", fastmath=True, error_model="numpy")
def erf(x):
    x = min(max(x, np.float32(-4.0)), np.float32(4.0))
    x2 = x * x
    p = ((((((P0 * x2 + P1) * x2 + P2) * x2 + P3) * x2 + P4) * x2 + P5) * x2 + P6) * x
    q = (((Q0 * x2 + Q1) * x2 + Q2) * x2 + Q3) * x2 + Q4
    return p / q


@njit(cache=True, fastmath=True, error_model="numpy")  # no zero-division check: it vectorizes
def add_bias_gelu(x, bias):
    """x <- GELU(x + bias), the erf form: v/2 (1 + erf(v / sqrt 2)). x: (n, d) float32."""
    n, d = x.shape
    half = np.float32(0.5)
    one = np.float32(1.0)
    for r in range(n):
        for i in range(d):
            v = x[r, i] + bias[i]
            x[r, i] = half * v * (one + erf(v * SQRT_HALF))


# exp(x) = 2^n e^r with n = round(x / ln 2), |r| <= ln 2 / 2, e^r from Cephes' expf polynomial
# (within 2 ulp of expf). 2^n is built from its bits ((n + 127) << 23), so the loops have no
# libm call and no table lookup, and vectorize.
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)
_LOG2E = np.float32(1.44269504088896341)
_EXP_P = tuple(
    np.float32(c)
    for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1)
)
E0, E1, E2, E3, E4 = _EXP_P
_EXP_MIN = np.float32(-87.0)  # below, e^x leaves float32's normal range: taken as 0
# fastmath without its promise of no infinities or NaN: the kernels below meet -inf (masked
# attention scores), and NaN from damaged weights must come out as NaN
FINITE_FREE = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(cache=True, inline="always", fastmath=FINITE_FREE)
def row_max(row):
    """The largest value of a 1-D float32 array, in 8 independent running maxima (a single
    one is a loop-carried chain the compiler leaves scalar: 4x slower)."""
    d = row.shape[0]
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = row[0]
    i = 0
    while i + 8 <= d:
        t0 = row[i] if row[i] > t0 else t0
        t1 = row[i + 1] if row[i + 1] > t1 else t1
        t2 = row[i + 2] if row[i + 2] > t2 else t2
        t3 = row[i + 3] if row[i + 3] > t3 else t3
        t4 = row[i + 4] if row[i + 4] > t4 else t4
        t5 = row[i + 5] if row[i + 5] > t5 else t5
        t6 = row[i + 6] if row[i + 6] > t6 else t6
        t7 = row[i + 7] if row[i + 7] > t7 else t7
        i += 8
    for j in range(i, d):
        t0 = row[j] if row[j] > t0 else t0
    t0, t2, t4, t6 = max(t0, t1), max(t2, t3), max(t4, t5), max(t6, t7)
    return max(max(t0, t2), max(t4, t6))


@njit(cache=True, fastmath=FINITE_FREE)
def exp_neg_inplace(x):
    """x <- e^x for x <= 0, elementwise: e^r (|r| <= ln 2 / 2) by its polynomial, times 2^n
    made from n's bits. One loop of plain arithmetic, so it vectorizes."""
    for i in range(x.shape[0]):
        v = x[i]
        y = v if v > _EXP_MIN else _EXP_MIN
        n = np.floor(y * _LOG2E + np.float32(0.5))
        r = y - n * _LN2_HI - n * _LN2_LO
        p = ((((E0 * r + E1) * r + E2) * r + E3) * r + E4) * r + np.float32(0.5)
        scale = _bits_f32(np.uint32((np.int32(n) + 127) << 23))
        e = (p * r * r + r + np.float32(1.0)) * scale
        x[i] = e if v >= _EXP_MIN else (np.float32(0.0) if v < _EXP_MIN else v)  # NaN stays


@njit(cache=True, fastmath=True, error_model="numpy")
def _softmax_rows(rows):
    n, d = rows.shape
    for r in range(n):
        row = rows[r]
        m = row_max(row)
        for i in range(d):
            row[i] -= m
        exp_neg_inplace(row)
        s = np.float32(0.0)
        for i in range(d):
            s += row[i]
        inv = np.float32(1.0) / s
        for i in range(d):
            row[i] *= inv


@njit(cache=True, fastmath=FINITE_FREE, error_model="numpy")
def swiglu(x, up):
    """x <- x / (1 + e^-x) * up, elementwise (x, up: (n, d) float32). e^-|x| (never above 1,
    so it cannot overflow) gives the sigmoid on either side of 0: 1 / (1 + t) or t / (1 + t)."""
    d = x.shape[1]
    t = np.empty(d, np.float32)
    for r in range(x.shape[0]):
        row = x[r]
        for i in range(d):
            t[i] = -abs(row[i])
        exp_neg_inplace(t)
        for i in range(d):
            v = row[i]
            e = t[i]
            sig = (np.float32(1.0) if v >= 0 else e) / (np.float32(1.0) + e)
            row[i] = v * sig * up[r, i]


@njit(cache=True, fastmath=FINITE_FREE, error_model="numpy")
def attention_weights(scores, scale, mask, masked):
    """scores <- softmax(scores * scale + mask) row by row, each weight rounded to float16 as
    llama.cpp rounds it before it meets the float16 values. scores: (group * n, end), the
    queries of group heads for n tokens; mask: (n, end), each token's row (0 or -inf), used
    when masked. The sum of a row is taken in float64, as ggml takes it."""
    rows, d = scores.shape
    n = mask.shape[0] if masked else 1
    for r in range(rows):
        row = scores[r]
        if masked:
            m = mask[r % n]
            for i in range(d):
                row[i] = row[i] * scale + m[i]
        else:
            for i in range(d):
                row[i] = row[i] * scale
        top = row_max(row)
        for i in range(d):
            row[i] -= top
        exp_neg_inplace(row)
        total = 0.0
        for i in range(d):
            total += np.float64(row[i])
        inv = np.float32(1.0 / total)
        for i in range(d):
            row[i] = _round_half(row[i] * inv)


def softmax(x: np.ndarray) -> None:
    """x <- softmax over the last axis, in place. x: C-contiguous float32. Serial: it runs
    between BLAS calls, whose threads would compete with a parallel region's."""
    _softmax_rows(x.reshape(-1, x.shape[-1]))


@njit(cache=True)  # no fastmath: the roundings below are llama.cpp's
def rope(x, cos, sin, neox):
    """Rotary embedding in place on the first 2 * cos.shape[1] dimensions of each head.
    x: (n, heads, head_dim); cos, sin: (n, half). neox: dimension i pairs with i + half (the
    NeoX layout), else 2i pairs with 2i + 1.

    Rounded as llama.cpp's compiled kernel rounds a * c - b * s and a * s + b * c: the second
    product rounded to float32, the first fused into the sum (a float32 product is exact in
    float64). Against llama.cpp's rotated q and k of Gemma 3, captured from its graph: equal
    but for a few elements in a thousand, where a sine or cosine differs in its last bit."""
    n, heads, _ = x.shape
    half = cos.shape[1]
    for t in range(n):
        for h in range(heads):
            for i in range(half):
                a_i, b_i = (i, i + half) if neox else (2 * i, 2 * i + 1)
                a, b = np.float64(x[t, h, a_i]), np.float64(x[t, h, b_i])
                c, s = np.float64(cos[t, i]), np.float64(sin[t, i])
                bs = np.float64(np.float32(b * s))
                bc = np.float64(np.float32(b * c))
                x[t, h, a_i] = np.float32(a * c - bs)
                x[t, h, b_i] = np.float32(a * s + bc)


@njit(cache=True)  # no fastmath: float32 products rounded one by one, as llama.cpp's
def rope_angles(positions, step, freq_scale, factors, use_factors, out):
    """out (n, half) <- freq_scale * theta_i (/ factors[i] when use_factors) with theta_0 = p
    and theta_(i+1) = theta_i * step, all in float32 (ggml's rope cache)."""
    scale = np.float32(freq_scale)
    for t in range(positions.shape[0]):
        theta = np.float32(positions[t])
        for i in range(out.shape[1]):
            extrap = theta / factors[i] if use_factors else theta
            out[t, i] = scale * extrap
            theta = theta * step


# ---- float16 steps of the decoder, as llama.cpp rounds them (the CPU's conversions; numpy's
# astype to and from float16 took a third of a Gemma 3 prompt's time)


@njit(cache=True)
def half_to_f32(bits, out):
    """out <- the float16 values whose bit patterns are bits (uint16, 2-D)."""
    for i in range(bits.shape[0]):
        for j in range(bits.shape[1]):
            out[i, j] = _half_f32(np.uint32(bits[i, j]))


@njit(cache=True)
def round_half(x):
    """x <- x rounded to float16, in place (2-D float32)."""
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            x[i, j] = _round_half(x[i, j])


@njit(cache=True)
def store_half(src, dst):
    """dst <- src rounded to float16 bit patterns: src (n, heads, d) float32, dst (heads, n, d)
    uint16 (a cache slice)."""
    for t in range(src.shape[0]):
        for h in range(src.shape[1]):
            for j in range(src.shape[2]):
                dst[h, t, j] = np.uint16(_half_bits(src[t, h, j]))


@njit(cache=True)
def geglu(x, gate, table):
    """x <- GELU(x) * gate as llama.cpp computes it: GELU looked up in table (65536 float32,
    by x's float16 bits), x itself from 10 up, 0 at -10 and below. x, gate: (n, d)."""
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[i, j]
            if v >= 10.0:
                y = v
            elif v <= -10.0:
                y = np.float32(0.0)
            else:
                y = table[_half_bits(v)]
            x[i, j] = y * gate[i, j]


@njit(cache=True, error_model="numpy")
def rms_norm(x, weight, eps, out):
    """out <- RMSNorm of each row of x (n, d) times weight, as ggml computes it: float32
    squares summed in float64 in order, the mean rounded to float32, then x times
    1 / sqrt(mean + eps) and times weight, in float32."""
    d = x.shape[1]
    for i in range(x.shape[0]):
        total = 0.0
        for j in range(d):
            sq = x[i, j] * x[i, j]
            total += np.float64(sq)
        mean = np.float32(total / d) + np.float32(eps)
        scale = np.float32(1.0) / np.float32(math.sqrt(mean))
        for j in range(d):
            out[i, j] = (x[i, j] * scale) * weight[j]
