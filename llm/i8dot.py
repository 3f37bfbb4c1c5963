"""Integer decode kernels for Q8_0 and Q4_0 weights on x86 CPUs with AVX2, as llama.cpp
computes them: the input row is rounded to 8 bits per block of 32 (a float16 scale each,
quantize()), and each block's 32 products are summed in integers by the CPU's byte
multiply-add instructions (vpdpbusd with AVX-VNNI, else vpmaddubsw and vpmaddwd), then
scaled and added in float32.

Per 32 weights that is about a dozen instructions where decoding the weights to float32
takes two dozen, and the float kernels (llm/qdot.py) are bound by that arithmetic, not by
memory. Rounding the input to 8 bits moves the result by about 0.3% of its spread (the same
rounding llama.cpp does). Without AVX2 (another architecture, or an old CPU) AVAILABLE is
False and the float kernels serve every type.
"""

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from llm.qdot import _f16, _round_half, _stack_f32

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


def _accumulate(builder, acc_ptr, lane, ints, scale):
    """acc_ptr[8 lane : 8 lane + 8] += float(ints) * scale."""
    ptr = builder.gep(acc_ptr, [builder.mul(lane, ir.Constant(lane.type, 8))])
    ptr = builder.bitcast(ptr, F32x8.as_pointer())
    acc = builder.load(ptr, align=4)
    s = builder.insert_element(ir.Constant(F32x8, None), scale, ir.Constant(ir.IntType(32), 0))
    s = builder.shuffle_vector(s, s, ir.Constant(I32x8, [0] * 8))
    f = builder.sitofp(ints, F32x8)
    builder.store(builder.fadd(acc, builder.fmul(f, s, flags=("fast",)), flags=("fast",)), ptr)


def _unsigned_dot(builder, u, x):
    """Sums of adjacent four products of unsigned bytes u and signed bytes x, as 8 int32:
    one vpdpbusd with VNNI, else vpmaddubsw (pairs into int16) and vpmaddwd (pairs of
    those into int32)."""
    if VNNI:
        zero = ir.Constant(I32x8, None)
        return _x86(
            builder,
            "llvm.x86.avx512.vpdpbusd.256",
            I32x8,
            zero,
            builder.bitcast(u, I32x8),
            builder.bitcast(x, I32x8),
        )
    pairs = _x86(builder, "llvm.x86.avx2.pmadd.ub.sw", I16x16, u, x)
    return _x86(builder, "llvm.x86.avx2.pmadd.wd", I32x8, pairs, _splat(I16x16, 1))


@intrinsic
def _block_q8_0(typingctx, acc, lane, row, pos, xq, xpos, scale):
    """acc[8 lane : 8 lane + 8] += (32 signed weight bytes at row[pos]) .
    (xq[xpos : xpos + 32]) * scale, spread over the 8 floats."""

    def codegen(context, builder, sig, args):
        acc_ptr, lane, row_v, pos_v, xq_v, xpos_v, scale_v = args
        w = _load(builder, context, sig.args[2], row_v, pos_v, I8x32)
        x = _load(builder, context, sig.args[4], xq_v, xpos_v, I8x32)
        # |w| times x with w's sign: the first operand of the byte products is unsigned
        aw = _x86(builder, "llvm.abs.v32i8", I8x32, w, ir.Constant(ir.IntType(1), 0))
        sx = _x86(builder, "llvm.x86.avx2.psign.b", I8x32, x, w)
        _accumulate(builder, acc_ptr, lane, _unsigned_dot(builder, aw, sx), scale_v)
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


@njit(cache=True, fastmath=True)  # serial: a few rows, not worth waking the threads
def quantize(x, xq, xd, xsum):
    """Each block of 32 of x's rows rounded to 8 bits: xq = round(x / d), d = max|x| / 127
    (kept in xd rounded to float16, as llama.cpp's Q8_0 keeps it); xsum: each block's sum
    of xq."""
    n, cols = x.shape
    for t in range(n):
        for b in range(cols // 32):
            amax = np.float32(0.0)
            for j in range(32):
                amax = max(amax, abs(x[t, b * 32 + j]))
            d = amax / np.float32(127.0)
            inv = np.float32(1.0) / d if d > 0 else np.float32(0.0)
            total = 0
            for j in range(32):
                q = np.int8(np.rint(x[t, b * 32 + j] * inv))
                xq[t, b * 32 + j] = q
                total += q
            xd[t, b] = _round_half(d)
            xsum[t, b] = total


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


@njit(cache=True, parallel=True, fastmath=True)
def product(kind, xq, xd, xsum, raw, out):
    """out[t, r] = x[t] . W[r] for x quantized by quantize() and W in Q8_0 (kind 2) or Q4_0
    (kind 3) blocks, output rows in parallel."""
    for r in prange(raw.shape[0]):
        row = raw[r]
        for t in range(xq.shape[0]):
            if kind == 2:
                out[t, r] = _dot_q8_0(row, xq, xd, xsum, t)
            else:
                out[t, r] = _dot_q4_0(row, xq, xd, xsum, t)
