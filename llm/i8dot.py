"""Integer decode kernels for Q8_0, Q4_0, Q4_K, Q6_K and TQ2_0 weights on x86 CPUs with AVX2
(regrouped matrices of every integer kind: llm/i8group.py), as llama.cpp computes them: the
input row is rounded to 8 bits as llama.cpp rounds it for the weight type (quantize(): Q8_0
blocks of 32 with a float16 scale; quantize_q8_1(): Q8_1, the same with each block's scaled
sum; quantize_k(): Q8_K blocks of 256 with a float32 scale and sums per 16), and each
block's products are summed in integers by the CPU's byte multiply-add instructions
(vpdpbusd with AVX-VNNI, else vpmaddubsw and vpmaddwd), then scaled and added in float32.

Per 32 weights that is about a dozen instructions where decoding the weights to float32
takes two dozen, and the float kernels (llm/qdot.py) are bound by that arithmetic, not by
memory: measured 1.5-2.5x faster per core. Rounding the input to 8 bits moves the result by
about 0.3% of its spread (the same rounding llama.cpp does). Weights whose 4-bit or 2-bit
values are unsigned (Q4_0, Q4_K, TQ2_0) multiply as they are, and their offset (8, the min,
1) comes off once per block through the block's input sum; signed ones (Q8_0, Q6_K) multiply
|w| by x with w's sign. Without AVX2 (another architecture, or an old CPU) AVAILABLE is
False and the float kernels serve every type.
"""

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from llm.qdot import _f16, _i8, _k4_scale_min, _round_half, _stack_f32

_FEATURES = llvm.get_host_cpu_features()
AVAILABLE = bool(_FEATURES.get("avx2", False))
VNNI = AVAILABLE and bool(
    (_FEATURES.get("avx512vnni", False) and _FEATURES.get("avx512vl", False))
    or _FEATURES.get("avxvnni", False)
)

I8x32 = ir.VectorType(ir.IntType(8), 32)
I8x16 = ir.VectorType(ir.IntType(8), 16)
I16x16 = ir.VectorType(ir.IntType(16), 16)
I32x8 = ir.VectorType(ir.IntType(32), 8)
F32x8 = ir.VectorType(ir.FloatType(), 8)


def _x86(builder, name, ret, *args):
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ret, [a.type for a in args]), name
    )
    return builder.call(fn, args)


def _load(builder, context, arr_type, arr, pos, vec_type):
    """vec_type loaded (unaligned) from arr's data at byte offset pos."""
    data = context.make_array(arr_type)(context, builder, arr).data
    ptr = builder.gep(builder.bitcast(data, ir.IntType(8).as_pointer()), [pos])
    return builder.load(builder.bitcast(ptr, vec_type.as_pointer()), align=1)


def _splat(ty, value):
    return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)


def _broadcast(builder, values: list, ty, lanes: list[int]):
    """A vector of type ty whose lane i holds values[lanes[i]]."""
    vec = ir.Constant(ty, None)
    for i, v in enumerate(values):
        vec = builder.insert_element(vec, v, ir.Constant(ir.IntType(32), i))
    order = ir.Constant(ir.VectorType(ir.IntType(32), ty.count), lanes)
    return builder.shuffle_vector(vec, vec, order)


def _byte_splat(builder, v):
    """A runtime integer, truncated to a byte, in all 32 lanes."""
    return _broadcast(builder, [builder.trunc(v, ir.IntType(8))], I8x32, [0] * 32)


def _accumulate(builder, acc_ptr, lane, ints, *scales):
    """acc_ptr[8 lane : 8 lane + 8] += float(ints) * scale: one scale for all 8 lanes, or
    two, for the first and the last four."""
    ptr = builder.gep(acc_ptr, [builder.mul(lane, ir.Constant(lane.type, 8))])
    ptr = builder.bitcast(ptr, F32x8.as_pointer())
    acc = builder.load(ptr, align=4)
    s = _broadcast(builder, list(scales), F32x8, [0] * 4 + [len(scales) - 1] * 4)
    f = builder.sitofp(ints, F32x8)
    total = builder.fadd(acc, builder.fmul(f, s, flags=("fast",)), flags=("fast",))
    builder.store(total, ptr, align=4)  # the stack buffer is only 4-byte aligned


def _signed_dot(builder, w, x):
    """As _unsigned_dot for signed bytes w: |w| times x with w's sign (the first operand of
    the byte products is unsigned)."""
    return _unsigned_dot(builder, _magnitude(builder, w), _signs_of(builder, x, w))


def _magnitude(builder, w):
    """|w| for 32 signed bytes (-128 becomes 128 as an unsigned byte)."""
    return _x86(builder, "llvm.abs.v32i8", I8x32, w, ir.Constant(ir.IntType(1), 0))


def _signs_of(builder, x, w):
    """x with w's signs, byte by byte (0 where w is 0)."""
    return _x86(builder, "llvm.x86.avx2.psign.b", I8x32, x, w)


def _unsigned_dot(builder, u, x):
    """Sums of adjacent four products of unsigned bytes u and signed bytes x, as 8 int32."""
    return _madd(builder, ir.Constant(I32x8, None), u, x)


def _madd(builder, acc, u, x):
    """acc (8 int32) plus the sums of adjacent four products of unsigned bytes u and signed
    bytes x: one vpdpbusd with VNNI, else vpmaddubsw (pairs into int16) and vpmaddwd (pairs
    of those into int32) and an add."""
    if VNNI:  # 8 int32 lanes, or 16 (512-bit, for i8group's two groups at a time)
        i32 = acc.type
        return _x86(
            builder,
            f"llvm.x86.avx512.vpdpbusd.{32 * i32.count}",
            i32,
            acc,
            builder.bitcast(u, i32),
            builder.bitcast(x, i32),
        )
    pairs = _x86(builder, "llvm.x86.avx2.pmadd.ub.sw", I16x16, u, x)
    return builder.add(
        acc, _x86(builder, "llvm.x86.avx2.pmadd.wd", I32x8, pairs, _splat(I16x16, 1))
    )


@intrinsic
def _block_q8_0(typingctx, acc, lane, row, pos, xq, xpos, scale):
    """acc[8 lane : 8 lane + 8] += (32 signed weight bytes at row[pos]) .
    (xq[xpos : xpos + 32]) * scale, spread over the 8 floats."""

    def codegen(context, builder, sig, args):
        acc_ptr, lane, row_v, pos_v, xq_v, xpos_v, scale_v = args
        w = _load(builder, context, sig.args[2], row_v, pos_v, I8x32)
        x = _load(builder, context, sig.args[4], xq_v, xpos_v, I8x32)
        _accumulate(builder, acc_ptr, lane, _signed_dot(builder, w, x), scale_v)
        return context.get_dummy_value()

    return types.void(acc, lane, row, pos, xq, xpos, scale), codegen


@intrinsic
def _block_q4_0(typingctx, acc, lane, row, pos, xq, xpos, scale):
    """As _block_q8_0 for the 16 nibble bytes at row[pos] (weight j is the low nibble of
    byte j, weight 16 + j the high one) taken as they are, 0 to 15: the caller subtracts 8
    times the block's input sum."""

    def codegen(context, builder, sig, args):
        acc_ptr, lane, row_v, pos_v, xq_v, xpos_v, scale_v = args
        packed = _load(builder, context, sig.args[2], row_v, pos_v, I8x16)
        lo = builder.and_(packed, _splat(I8x16, 15))
        hi = builder.lshr(packed, _splat(I8x16, 4))
        order = ir.Constant(ir.VectorType(ir.IntType(32), 32), list(range(32)))
        w = builder.shuffle_vector(lo, hi, order)
        x = _load(builder, context, sig.args[4], xq_v, xpos_v, I8x32)
        _accumulate(builder, acc_ptr, lane, _unsigned_dot(builder, w, x), scale_v)
        return context.get_dummy_value()

    return types.void(acc, lane, row, pos, xq, xpos, scale), codegen


@intrinsic
def _block_bits(typingctx, acc, lane, row, pos, shift, mask, xq, xpos, scale):
    """acc[8 lane : 8 lane + 8] += ((32 bytes at row[pos]) >> shift & mask) .
    xq[xpos : xpos + 32] * scale: one 32-weight slice of a K or ternary block whose weights
    sit at the same bits of 32 consecutive bytes, taken unsigned."""

    def codegen(context, builder, sig, args):
        acc_ptr, lane, row_v, pos_v, shift_v, mask_v, xq_v, xpos_v, scale_v = args
        packed = _load(builder, context, sig.args[2], row_v, pos_v, I8x32)
        shift, mask = _byte_splat(builder, shift_v), _byte_splat(builder, mask_v)
        w = builder.and_(builder.lshr(packed, shift), mask)
        x = _load(builder, context, sig.args[6], xq_v, xpos_v, I8x32)
        _accumulate(builder, acc_ptr, lane, _unsigned_dot(builder, w, x), scale_v)
        return context.get_dummy_value()

    return types.void(acc, lane, row, pos, shift, mask, xq, xpos, scale), codegen


@intrinsic
def _block_q6(typingctx, acc, lane, row, lo, lo_shift, hi, hi_shift, xq, xpos, s1, s2):
    """One 32-weight slice of a Q6_K block: weight l is ((row[lo + l] >> lo_shift) & 15) |
    ((row[hi + l] >> hi_shift) & 3) << 4, minus 32; acc[8 lane : 8 lane + 4] gets the first
    16 products times s1, the next 4 floats the last 16 times s2."""

    def codegen(context, builder, sig, args):
        acc_ptr, lane, row_v, lo_v, lo_s, hi_v, hi_s, xq_v, xpos_v, s1, s2 = args
        low = _load(builder, context, sig.args[2], row_v, lo_v, I8x32)
        low = builder.and_(builder.lshr(low, _byte_splat(builder, lo_s)), _splat(I8x32, 15))
        high = _load(builder, context, sig.args[2], row_v, hi_v, I8x32)
        high = builder.and_(builder.lshr(high, _byte_splat(builder, hi_s)), _splat(I8x32, 3))
        w = builder.sub(builder.or_(low, builder.shl(high, _splat(I8x32, 4))), _splat(I8x32, 32))
        x = _load(builder, context, sig.args[7], xq_v, xpos_v, I8x32)
        ints = _signed_dot(builder, w, x)
        _accumulate(builder, acc_ptr, lane, ints, s1, s2)
        return context.get_dummy_value()

    return types.void(acc, lane, row, lo, lo_shift, hi, hi_shift, xq, xpos, s1, s2), codegen


# The input roundings: llama.cpp's activation blocks, each weight type multiplying against its
# own (its vec_dot_type): Q8_0 for Q8_0, Q4_0 and Q5_0; Q8_1 for Q4_1 and Q5_1; Q8_K for the
# K types and TQ2_0. Serial (a few rows are not worth waking the threads) and without
# fast-math, so that every division and rounding is the one llama.cpp's AVX2 build makes.


@njit(cache=True, inline="always")
def _round_32(x, t, b, xq):
    """Block b of 32 of row t rounded as llama.cpp's quantize_row_q8_0 (AVX2): q =
    round-half-even(x 127 / max|x|) into xq; returns (d = max|x| / 127 in float32, sum of q)."""
    amax = np.float32(0.0)
    for j in range(32):
        amax = max(amax, abs(x[t, b * 32 + j]))
    d = amax / np.float32(127.0)
    inv = np.float32(127.0) / amax if amax != 0 else np.float32(0.0)
    total = 0
    for j in range(32):
        q = np.int8(np.rint(x[t, b * 32 + j] * inv))
        xq[t, b * 32 + j] = q
        total += q
    return d, total


@njit(cache=True)
def quantize(x, xq, xd, xsum):
    """Q8_0: each block of 32 of x's rows (n, cols) rounded to 8 bits, xq (n, cols) int8; xd
    (n, cols / 32) float32: each block's scale max|x| / 127 rounded to float16, as the block
    keeps it; xsum (n, cols / 32) float32: each block's sum of xq."""
    for t in range(x.shape[0]):
        for b in range(x.shape[1] // 32):
            d, total = _round_32(x, t, b, xq)
            xd[t, b] = _round_half(d)
            xsum[t, b] = total


@njit(cache=True)
def quantize_q8_1(x, xq, xd, xs):
    """Q8_1: as quantize, but xs holds each block's s = d sum(xq) rounded to float16, with d
    the float32 scale before its own rounding (llama.cpp's quantize_row_q8_1)."""
    for t in range(x.shape[0]):
        for b in range(x.shape[1] // 32):
            d, total = _round_32(x, t, b, xq)
            xd[t, b] = _round_half(d)
            xs[t, b] = _round_half(d * np.float32(total))


@njit(cache=True)
def quantize_k(x, xq, xd, bsums):
    """Q8_K (llama.cpp's quantize_row_q8_K_ref, which its x86 build runs): per block of 256,
    max is the value of largest magnitude (the first, with its sign), q = min(127,
    round-half-even(x (-127 / max))) into xq (n, cols) int8; xd (n, cols / 256) float32: d =
    1 / (-127 / max), kept in float32; bsums (n, cols / 16) int32: sums of q per 16. An
    all-zero block has d = 0 and q = 0."""
    if x.shape[0] >= PARALLEL_ROWS:
        _quantize_k_rows(x, xq, xd, bsums)
        return
    for t in range(x.shape[0]):
        _quantize_k_row(x, xq, xd, bsums, t)


PARALLEL_ROWS = 8  # from this many rows (a prompt pass) on, rows are rounded in parallel


@njit(cache=True, parallel=True)
def _quantize_k_rows(x, xq, xd, bsums):
    for t in prange(x.shape[0]):
        _quantize_k_row(x, xq, xd, bsums, t)


@njit(cache=True, inline="always", fastmath={"nsz", "reassoc"})
def _abs_max_256(row, start):
    """max |row[start : start + 256]|, in 8 running maxima (one is a chain left scalar)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.float32(0.0)
    for j in range(start, start + 256, 8):
        m0 = max(m0, abs(row[j]))
        m1 = max(m1, abs(row[j + 1]))
        m2 = max(m2, abs(row[j + 2]))
        m3 = max(m3, abs(row[j + 3]))
        m4 = max(m4, abs(row[j + 4]))
        m5 = max(m5, abs(row[j + 5]))
        m6 = max(m6, abs(row[j + 6]))
        m7 = max(m7, abs(row[j + 7]))
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@njit(cache=True, inline="always")
def _quantize_k_row(x, xq, xd, bsums, t):
    """Q8_K of row t of x (quantize_k)."""
    for b in range(x.shape[1] // 256):
        amax = _abs_max_256(x[t], b * 256)
        j = b * 256
        while abs(x[t, j]) != amax and j < b * 256 + 255:  # the first of largest magnitude
            j += 1
        top = x[t, j]
        if amax == 0:
            xd[t, b] = 0.0
            for j in range(256):
                xq[t, b * 256 + j] = 0
            for s in range(16):
                bsums[t, b * 16 + s] = 0
            continue
        iscale = np.float32(-127.0) / top
        for j in range(b * 256, b * 256 + 256):  # rounded first, summed after: it vectorizes
            xq[t, j] = min(127, np.int32(np.rint(iscale * x[t, j])))
        for s in range(16):
            total = 0
            for j in range(b * 256 + s * 16, b * 256 + s * 16 + 16):
                total += xq[t, j]
            bsums[t, b * 16 + s] = total
        xd[t, b] = np.float32(1.0) / iscale


def k_blocks32(xd, bsums):
    """Q8_K's scales and sums per block of 32, for kernels that take those: xd (n, cols / 256)
    repeated, and the sums of pairs of bsums (n, cols / 16), as float32 (n, cols / 32)."""
    xd32 = np.repeat(xd, 8, axis=1)
    xsum32 = (bsums[:, 0::2] + bsums[:, 1::2]).astype(np.float32)
    return xd32, xsum32


ACC_FLOATS = 32  # 4 independent sums of 8, so that consecutive blocks do not wait on each other


@njit(cache=True, inline="always")
def _acc():
    p = _stack_f32(ACC_FLOATS)
    acc = carray(p, (ACC_FLOATS,))
    for j in range(ACC_FLOATS):
        acc[j] = 0.0
    return p, acc


@njit(cache=True, inline="always")
def _q8_0(p, lane, row, x, d, b):
    _block_q8_0(p, lane, row, b * 34 + 2, x, b * 32, _f16(row, b * 34) * d[b])


@njit(cache=True, fastmath=True)
def _dot_q8_0(row, xq, xd, xsum, t):
    p, acc = _acc()
    x, d = xq[t], xd[t]
    nb, b = xq.shape[1] // 32, 0
    while b + 4 <= nb:
        _q8_0(p, 0, row, x, d, b)
        _q8_0(p, 1, row, x, d, b + 1)
        _q8_0(p, 2, row, x, d, b + 2)
        _q8_0(p, 3, row, x, d, b + 3)
        b += 4
    while b < nb:
        _q8_0(p, 0, row, x, d, b)
        b += 1
    return acc.sum()


@njit(cache=True, inline="always")
def _q4_0(p, lane, row, x, d, xs, b):
    """Block b into accumulator lane; returns its share of the "- 8" term."""
    scale = _f16(row, b * 18) * d[b]
    _block_q4_0(p, lane, row, b * 18 + 2, x, b * 32, scale)
    return scale * xs[b]


@njit(cache=True, fastmath=True)
def _dot_q4_0(row, xq, xd, xsum, t):
    p, acc = _acc()
    x, d, xs = xq[t], xd[t], xsum[t]
    o0 = o1 = o2 = o3 = np.float32(0.0)  # sums of scale * block input sum, for the "- 8"
    nb, b = xq.shape[1] // 32, 0
    while b + 4 <= nb:
        o0 += _q4_0(p, 0, row, x, d, xs, b)
        o1 += _q4_0(p, 1, row, x, d, xs, b + 1)
        o2 += _q4_0(p, 2, row, x, d, xs, b + 2)
        o3 += _q4_0(p, 3, row, x, d, xs, b + 3)
        b += 4
    while b < nb:
        o0 += _q4_0(p, 0, row, x, d, xs, b)
        b += 1
    return acc.sum() - np.float32(8.0) * (o0 + o1 + o2 + o3)


@njit(cache=True, fastmath=True)
def _dot_q4_k(row, xq, xd, xsum, t):
    """Q4_K: sub-block j of 32 has scale d sc_j and min dmin m_j (6 bits each); its weights
    are the low (even j) or high (odd j) nibbles of 32 bytes."""
    p, acc = _acc()
    x, xdt, xs = xq[t], xd[t], xsum[t]
    mins = np.float32(0.0)
    for b in range(xq.shape[1] // 256):
        base = b * 144
        d, dmin = _f16(row, base), _f16(row, base + 2)
        for j in range(8):
            sc, m = _k4_scale_min(j, row, base + 4)
            sub = b * 8 + j
            mins += dmin * np.float32(m) * xdt[sub] * xs[sub]
            scale = d * np.float32(sc) * xdt[sub]
            _block_bits(
                p, j % 4, row, base + 16 + (j // 2) * 32, 4 * (j % 2), 15, x, sub * 32, scale
            )
    return acc.sum() - mins


@njit(cache=True, fastmath=True)
def _dot_tq2_0(row, xq, xd, xsum, t):
    """TQ2_0: weight h 128 + k 32 + j is bits 2k, 2k + 1 of byte h 32 + j, minus 1."""
    p, acc = _acc()
    x, xdt, xs = xq[t], xd[t], xsum[t]
    ones = np.float32(0.0)
    for b in range(xq.shape[1] // 256):
        base = b * 66
        d = _f16(row, base + 64)
        for h in range(2):
            for k in range(4):
                sub = b * 8 + h * 4 + k
                scale = d * xdt[sub]
                ones += scale * xs[sub]
                _block_bits(p, k, row, base + h * 32, 2 * k, 3, x, sub * 32, scale)
    return acc.sum() - ones


@njit(cache=True, fastmath=True)
def _dot_q6_k(row, xq, xd, xsum, t):
    """Q6_K: int8 scales per 16 weights, a float16 d per 256."""
    p, acc = _acc()
    x, xdt = xq[t], xd[t]
    for b in range(xq.shape[1] // 256):
        base = b * 210
        d = _f16(row, base + 208)
        for h in range(2):
            ql, qh, sc = base + h * 64, base + 128 + h * 32, base + 192 + h * 8
            for k in range(4):
                sub = b * 8 + h * 4 + k
                s = d * xdt[sub]
                s1, s2 = s * _i8(row[sc + 2 * k]), s * _i8(row[sc + 2 * k + 1])
                lo = ql + 32 * (k % 2)
                _block_q6(p, k, row, lo, 4 * (k // 2), qh, 2 * k, x, sub * 32, s1, s2)
    return acc.sum()


@njit(cache=True, parallel=True, fastmath=True)
def product(kind, xq, xd, xsum, raw, out):
    """out[t, r] = x[t] . W[r] for W in blocks of kind (quants._KIND: Q8_0 2, Q4_0 3, Q4_K 4,
    Q6_K 9, TQ2_0 10), output rows in parallel; x rounded by quantize() for Q8_0 and Q4_0, by
    quantize_k() for the others, its scales and sums given per block of 32 (k_blocks32())."""
    for r in prange(raw.shape[0]):
        row = raw[r]
        for t in range(xq.shape[0]):
            if kind == 2:
                out[t, r] = _dot_q8_0(row, xq, xd, xsum, t)
            elif kind == 3:
                out[t, r] = _dot_q4_0(row, xq, xd, xsum, t)
            elif kind == 4:
                out[t, r] = _dot_q4_k(row, xq, xd, xsum, t)
            elif kind == 9:
                out[t, r] = _dot_q6_k(row, xq, xd, xsum, t)
            else:
                out[t, r] = _dot_tq2_0(row, xq, xd, xsum, t)
