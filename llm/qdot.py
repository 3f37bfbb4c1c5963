"""Dot products straight on GGUF blocks: the decode-time kernels behind quants.matmul.

Each output row is one weight row dotted with each input row. The weights are decoded and
multiplied in the same statement into 32 float32 accumulators that live on the stack (so
LLVM keeps them in vector registers and vectorizes the block loop), and summed once per row.
Any intermediate buffer of decoded weights, or a branch in the decoding, stops the
vectorization: measured 5-10x slower. fastmath lets the sums be reassociated; the results
differ from a sequential sum by float32 rounding only.

Block layouts: see llm/quants.py.
"""

import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 32


@intrinsic
def _stack_f32(typingctx, size):
    """A float32 buffer on the stack (alloca in the function's entry block)."""

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(types.float32)
        return cgutils.alloca_once(builder, ty, size=args[0])

    return types.CPointer(types.float32)(types.intp), codegen


@intrinsic
def _bits_f32(typingctx, bits):
    """The float32 whose bit pattern is the uint32 bits."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.uint32), codegen


@intrinsic
def _half_f32(typingctx, bits):
    """The float32 value of the float16 whose bit pattern is bits (the CPU's conversion)."""

    def codegen(context, builder, signature, args):
        h = builder.bitcast(builder.trunc(args[0], ir.IntType(16)), ir.HalfType())
        return builder.fpext(h, ir.FloatType())

    return types.float32(types.uint32), codegen


@intrinsic
def _round_half(typingctx, x):
    """x rounded to the nearest float16, as float32."""

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.fptrunc(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _half_bits(typingctx, x):
    """The bit pattern of x rounded to the nearest float16 (the CPU's conversion)."""

    def codegen(context, builder, signature, args):
        h = builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))
        return builder.zext(h, ir.IntType(32))

    return types.uint32(types.float32), codegen


@njit(cache=True, inline="always")
def _lanes():
    acc = carray(_stack_f32(LANES), (LANES,))
    for j in range(LANES):
        acc[j] = 0.0
    return acc


@njit(cache=True, inline="always")
def _total(acc):
    s = np.float32(0.0)
    for j in range(LANES):
        s += acc[j]
    return s


@njit(cache=True, inline="always")
def _f16(row, pos):
    return _half_f32(np.uint32(row[pos]) | (np.uint32(row[pos + 1]) << 8))


@njit(cache=True, inline="always")
def _i8(byte):
    return np.float32(np.int8(byte))


@njit(cache=True, inline="always")
def _field(v, scale, width):
    """Bits of a byte held as a float32 v: (v >> s) & (width - 1) as floor(v 2^-s) mod width,
    scale = 2^-s. Float arithmetic keeps 16 lanes to a vector register where numba's integer
    arithmetic would widen to 64 bits (8 lanes)."""
    a = np.floor(v * np.float32(scale))
    return a - np.float32(width) * np.floor(a * np.float32(1.0 / width))


@njit(cache=True, inline="always")
def _hi4(v):
    return np.floor(v * np.float32(0.0625))


@njit(cache=True, inline="always")
def _lo4(v):
    return v - np.float32(16.0) * np.floor(v * np.float32(0.0625))


@njit(cache=True, inline="always")
def _byte(row, i):
    return np.float32(row[i])


@njit(cache=True, inline="always")
def _k4_scale_min(j, row, pos):
    """Scale and min of sub-block j from the 12 packed bytes at row[pos] (Q4_K, Q5_K)."""
    if j < 4:
        return np.int32(row[pos + j]) & 63, np.int32(row[pos + j + 4]) & 63
    sc = (np.int32(row[pos + j + 4]) & 0xF) | ((np.int32(row[pos + j - 4]) >> 6) << 4)
    m = (np.int32(row[pos + j + 4]) >> 4) | ((np.int32(row[pos + j]) >> 6) << 4)
    return sc, m


# Per lane j of 16: 2^-(j % 8), to read bit j of Q5's 32 high bits from byte j // 8.
_BIT_SCALE = np.array([2.0 ** -(j % 8) for j in range(16)], dtype=np.float32)


# ------------------------------------------------------------------ one row . one input row


@njit(cache=True, fastmath=True)
def _dot_f16(row, x, t):
    acc = _lanes()
    for c in range(x.shape[1] // 32):
        for j in range(32):
            i = c * 32 + j
            acc[j] += _f16(row, 2 * i) * x[t, i]
    return _total(acc)


@njit(cache=True, fastmath=True)
def _dot_bf16(row, x, t):
    acc = _lanes()
    for c in range(x.shape[1] // 32):
        for j in range(32):
            i = c * 32 + j
            bits = (np.uint32(row[2 * i]) << 16) | (np.uint32(row[2 * i + 1]) << 24)
            acc[j] += _bits_f32(bits) * x[t, i]
    return _total(acc)


@njit(cache=True, fastmath=True)
def _dot_q8_0(row, x, t):
    acc = _lanes()
    for b in range(x.shape[1] // 32):
        base, o = b * 34, b * 32
        d = _f16(row, base)
        for j in range(32):
            acc[j] += d * _i8(row[base + 2 + j]) * x[t, o + j]
    return _total(acc)


@njit(cache=True, fastmath=True)
def _dot_q4_0(row, x, t):
    acc = _lanes()
    for b in range(x.shape[1] // 32):
        base, o = b * 18, b * 32
        d = _f16(row, base)
        for j in range(16):
            v = _byte(row, base + 2 + j)
            acc[j] += d * (_lo4(v) - np.float32(8.0)) * x[t, o + j]
            acc[16 + j] += d * (_hi4(v) - np.float32(8.0)) * x[t, o + 16 + j]
    return _total(acc)


@njit(cache=True, fastmath=True)
def _dot_q4_1(row, x, t):
    acc = _lanes()
    for b in range(x.shape[1] // 32):
        base, o = b * 20, b * 32
        d, m = _f16(row, base), _f16(row, base + 2)
        for j in range(16):
            v = _byte(row, base + 4 + j)
            acc[j] += (d * _lo4(v) + m) * x[t, o + j]
            acc[16 + j] += (d * _hi4(v) + m) * x[t, o + 16 + j]
    return _total(acc)


@njit(cache=True, fastmath=True)
def _dot_q5(row, x, t, with_min):
    """Q5_0 (w = d (q - 16)) and Q5_1 (w = d q + m); bit j of the 32 bits qh is weight j's
    fifth bit."""
    acc = _lanes()
    size = 24 if with_min else 22
    for b in range(x.shape[1] // 32):
        base, o = b * size, b * 32
        d = _f16(row, base)
        m = _f16(row, base + 2) if with_min else np.float32(-16.0) * d
        qh = base + (4 if with_min else 2)
        for j in range(16):
            v = _byte(row, qh + 4 + j)
            lo = _lo4(v) + np.float32(16.0) * _field(_byte(row, qh + j // 8), _BIT_SCALE[j], 2)
            hi = _hi4(v) + np.float32(16.0) * _field(_byte(row, qh + 2 + j // 8), _BIT_SCALE[j], 2)
            acc[j] += (d * lo + m) * x[t, o + j]
            acc[16 + j] += (d * hi + m) * x[t, o + 16 + j]
    return _total(acc)


@njit(cache=True, fastmath=True)
def _dot_q4_k(row, x, t):
    acc = _lanes()
    for b in range(x.shape[1] // 256):
        base, o = b * 144, b * 256
        d, dmin = _f16(row, base), _f16(row, base + 2)
        for sub in range(8):
            sc, mn = _k4_scale_min(sub, row, base + 4)
            ds, dm = d * np.float32(sc), dmin * np.float32(mn)
            qs, oo = base + 16 + (sub // 2) * 32, o + sub * 32
            if sub % 2 == 0:
                for j in range(32):
                    acc[j] += (ds * _lo4(_byte(row, qs + j)) - dm) * x[t, oo + j]
            else:
                for j in range(32):
                    acc[j] += (ds * _hi4(_byte(row, qs + j)) - dm) * x[t, oo + j]
    return _total(acc)


@njit(cache=True, fastmath=True)
def _dot_q5_k(row, x, t):
    acc = _lanes()
    for b in range(x.shape[1] // 256):
        base, o = b * 176, b * 256
        d, dmin = _f16(row, base), _f16(row, base + 2)
        for sub in range(8):
            sc, mn = _k4_scale_min(sub, row, base + 4)
            ds, dm = d * np.float32(sc), dmin * np.float32(mn)
            qs, oo = base + 48 + (sub // 2) * 32, o + sub * 32
            bit = np.float32(2.0**-sub)
            for j in range(32):
                v = _byte(row, qs + j)
                low = _lo4(v) if sub % 2 == 0 else _hi4(v)
                q = low + np.float32(16.0) * _field(_byte(row, base + 16 + j), bit, 2)
                acc[j] += (ds * q - dm) * x[t, oo + j]
    return _total(acc)


@njit(cache=True, fastmath=True)
def _dot_q6_k(row, x, t):
    acc = _lanes()
    for b in range(x.shape[1] // 256):
        base = b * 210
        d = _f16(row, base + 208)
        for half in range(2):
            ql, qh, sc = base + half * 64, base + 128 + half * 32, base + 192 + half * 8
            for k in range(4):
                lo_at, oo = ql + 32 * (k % 2), b * 256 + half * 128 + k * 32
                high = np.float32(4.0**-k)
                s1, s2 = d * _i8(row[sc + 2 * k]), d * _i8(row[sc + 2 * k + 1])
                for j in range(32):
                    v = _byte(row, lo_at + j)
                    low = _lo4(v) if k < 2 else _hi4(v)
                    q = low + np.float32(16.0) * _field(_byte(row, qh + j), high, 4)
                    s = s1 if j < 16 else s2
                    acc[j] += s * (q - np.float32(32.0)) * x[t, oo + j]
    return _total(acc)


@njit(cache=True, fastmath=True)
def _dot_tq2_0(row, x, t):
    acc = _lanes()
    for b in range(x.shape[1] // 256):
        base = b * 66
        d = _f16(row, base + 64)
        for half in range(2):
            for k in range(4):
                oo, shift = b * 256 + half * 128 + k * 32, np.float32(4.0**-k)
                for j in range(32):
                    q = _field(_byte(row, base + half * 32 + j), shift, 4)
                    acc[j] += d * (q - np.float32(1.0)) * x[t, oo + j]
    return _total(acc)


@njit(cache=True, inline="always")
def _trit(v, power):
    """The ternary digit a TQ1_0 byte (as float v) holds at a power of 3:
    ((v 3^n) mod 256) * 3 // 256."""
    a = v * np.float32(power)
    a -= np.float32(256.0) * np.floor(a * np.float32(1.0 / 256))
    return np.floor(a * np.float32(3.0 / 256))


@njit(cache=True, fastmath=True)
def _dot_tq1_0(row, x, t):
    acc = _lanes()
    one = np.float32(1.0)
    for b in range(x.shape[1] // 256):
        base, o = b * 54, b * 256
        d = _f16(row, base + 52)
        power = 1
        for n in range(5):
            for j in range(32):
                w = d * (_trit(_byte(row, base + j), power) - one)
                acc[j] += w * x[t, o + n * 32 + j]
            for j in range(16):
                w = d * (_trit(_byte(row, base + 32 + j), power) - one)
                acc[j] += w * x[t, o + 160 + n * 16 + j]
            power *= 3
        power = 1
        for n in range(4):
            for j in range(4):
                w = d * (_trit(_byte(row, base + 48 + j), power) - one)
                acc[16 + j] += w * x[t, o + 240 + n * 4 + j]
            power *= 3
    return _total(acc)


# ------------------------------------------------------------------ the kernel


@njit(cache=True, parallel=True, fastmath=True)
def product(kind, x, raw, out):
    """out[t, r] = x[t] . W[r] for W in its blocks (kind: quants._KIND), output rows in
    parallel. raw: (rows, bytes per row) uint8; x: (n, columns) float32, C-contiguous."""
    n = x.shape[0]
    for r in prange(raw.shape[0]):
        row = raw[r]
        for t in range(n):
            if kind == 0:
                s = _dot_f16(row, x, t)
            elif kind == 1:
                s = _dot_bf16(row, x, t)
            elif kind == 2:
                s = _dot_q8_0(row, x, t)
            elif kind == 3:
                s = _dot_q4_0(row, x, t)
            elif kind == 4:
                s = _dot_q4_k(row, x, t)
            elif kind == 5:
                s = _dot_q4_1(row, x, t)
            elif kind == 6:
                s = _dot_q5(row, x, t, False)
            elif kind == 7:
                s = _dot_q5(row, x, t, True)
            elif kind == 8:
                s = _dot_q5_k(row, x, t)
            elif kind == 9:
                s = _dot_q6_k(row, x, t)
            elif kind == 10:
                s = _dot_tq2_0(row, x, t)
            else:
                s = _dot_tq1_0(row, x, t)
            out[t, r] = s


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def product_f32(x, w, out):
    """out = x @ w.T for float32 weights w (rows, columns) and x (a question's few rows, or
    prefill attention's queries and scores in integer models), output rows in parallel.
    Blocks of 2 input rows by 4 weight rows share each load: 6 loads feed 8 multiply-adds.
    At 15 rows (a question) through MiniLM's weights: 3.4 ms per pass at best
    against BLAS's 4.7; at 64 rows the two were even."""
    n, cols = x.shape
    rows = w.shape[0]
    for b in prange((rows + 3) // 4):
        r0 = b * 4
        if r0 + 4 > rows:  # the last, partial block: one weight row at a time
            for r in range(r0, rows):
                for t in range(n):
                    s = np.float32(0.0)
                    for i in range(cols):
                        s += x[t, i] * w[r, i]
                    out[t, r] = s
            continue
        t = 0
        while t + 2 <= n:
            a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = np.float32(0.0)
            for i in range(cols):
                u, v = x[t, i], x[t + 1, i]
                w0, w1, w2, w3 = w[r0, i], w[r0 + 1, i], w[r0 + 2, i], w[r0 + 3, i]
                a0 += u * w0
                a1 += u * w1
                a2 += u * w2
                a3 += u * w3
                c0 += v * w0
                c1 += v * w1
                c2 += v * w2
                c3 += v * w3
            out[t, r0], out[t, r0 + 1], out[t, r0 + 2], out[t, r0 + 3] = a0, a1, a2, a3
            out[t + 1, r0], out[t + 1, r0 + 1], out[t + 1, r0 + 2], out[t + 1, r0 + 3] = (
                c0,
                c1,
                c2,
                c3,
            )
            t += 2
        if t < n:
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for i in range(cols):
                u = x[t, i]
                a0 += u * w[r0, i]
                a1 += u * w[r0 + 1, i]
                a2 += u * w[r0 + 2, i]
                a3 += u * w[r0 + 3, i]
            out[t, r0], out[t, r0 + 1], out[t, r0 + 2], out[t, r0 + 3] = a0, a1, a2, a3
