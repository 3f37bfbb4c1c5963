"""Integer kernels on Q4_0, Q8_0 and TQ2_0 matrices regrouped 8 rows at a time
(quants.interleave), for every number of input rows: decode steps, prefill, and embedding
batches.

Each group of 8 rows keeps, per block of the file (32 weights; TQ2_0 256), its 8 float16
scales (16 bytes) and then chunks of 32 bytes, chunk c holding bytes 4c..4c+3 of each row's
weight bytes, row after row (Q4_0: 4 chunks of nibble bytes; Q8_0: 8 chunks of weights plus
128, so that they are unsigned, or signed without VNNI (see _q8_0_flip); TQ2_0: 16 chunks
of four 2-bit fields). One 32-byte load then gives 4 weights of each of the 8 rows (Q4_0: 8,
as low and high nibbles; TQ2_0: 16, one field per input block of 32), and the byte
multiply-add against the matching 4 input bytes (broadcast) sums them into the row's own
int32 lane: no per-row sums to gather and one vector of scales per block, about a third of
the instructions of the row-at-a-time kernels (llm/i8dot.py, whose input rounding and LLVM
helpers these share). 4 input rows share each load. A TQ2_0 field is masked in place, not
shifted down: the sum comes out 4^k times too large (k: the field), and the input block's
scale divided by 4^k (exact, a power of two) undoes that.

Measured on TinyLlama-shaped matrices, 2 threads: a decode step streams 26-30 GB/s (the
row-at-a-time Q4_0 kernel 18-24), and 512-token products run at 380-500 billion integer
operations per second (dequantized slabs through BLAS: 140-170 GFLOP/s).
"""

import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.extending import intrinsic

from llm import i8dot
from llm.i8dot import (
    F32x8,
    I8x32,
    I32x8,
    _broadcast,
    _byte_splat,
    _load,
    _madd,
    _magnitude,
    _signs_of,
    _splat,
)
from llm.qdot import _stack_f32

GROUP = 8  # rows per regrouped group
TOKENS = 4  # input rows that share each load of a group's weights
TOKEN_ACC = 32  # their 4 sums of 8 rows
GROUPED = (2, 3, 10)  # the kinds (quants._KIND) regrouped: Q8_0, Q4_0, TQ2_0
BLOCK_WEIGHTS = {2: 32, 3: 32, 10: 256}  # weights per block in the file
BLOCK_BYTES = {2: 34, 3: 18, 10: 66}  # bytes per block in the file
GROUP_BLOCK = {2: 16 + 8 * 32, 3: 16 + 4 * 32, 10: 16 + 16 * 32}  # 8 scales, the weights
F16x8 = ir.VectorType(ir.HalfType(), 8)


def _x4_splat(builder, context, arr_type, arr, pos):
    """The 4 input bytes at arr[pos] repeated in all 8 int32 lanes, as 32 bytes."""
    word = _load(builder, context, arr_type, arr, pos, ir.IntType(32))
    return builder.bitcast(_broadcast(builder, [word], I32x8, [0] * 8), I8x32)


def _group_weights(builder, context, arr_type, arr, pos, kind, spos, mask):
    """The group block at arr[pos] as (32 bytes holding 4 weights of each of the 8 rows,
    unsigned but for Q8_0 without VNNI; the position of those 4 weights in the input block)
    pairs, and its 8 scales.
    TQ2_0: the 8 chunks at arr[pos] (not a whole block: those for one input block) with the
    field mask (a runtime byte) applied, and the scales at arr[spos]."""
    at = lambda k: builder.add(pos, ir.Constant(pos.type, k))  # noqa: E731
    if kind == 10:
        scales = builder.fpext(_load(builder, context, arr_type, arr, spos, F16x8), F32x8)
        field = _byte_splat(builder, mask)
        return [
            (builder.and_(_load(builder, context, arr_type, arr, at(32 * c), I8x32), field), 4 * c)
            for c in range(8)
        ], scales
    scales = builder.fpext(_load(builder, context, arr_type, arr, pos, F16x8), F32x8)
    pairs = []
    for c in range(4 if kind == 3 else 8):
        w = _load(builder, context, arr_type, arr, at(16 + 32 * c), I8x32)
        if kind == 3:
            pairs.append((builder.and_(w, _splat(I8x32, 15)), 4 * c))
            pairs.append((builder.lshr(w, _splat(I8x32, 4)), 16 + 4 * c))
        else:
            pairs.append((w, 4 * c))
    return pairs, scales


def _add_scaled(builder, acc_ptr, at, ints, offset, scales, scale):
    """acc_ptr[at : at + 8] += (float(ints) - offset) * scales * scale, in exactly this order
    (no fast-math flags): one input row's sums then come out bit for bit the same whichever
    kernel path, alone or among 4, computed them. A last-bit difference would not stay one:
    rounding the next layer's input to 8 bits can turn it into a whole step."""
    f = builder.fsub(builder.sitofp(ints, F32x8), _broadcast(builder, [offset], F32x8, [0] * 8))
    s = builder.fmul(scales, _broadcast(builder, [scale], F32x8, [0] * 8))
    ptr = builder.bitcast(builder.gep(acc_ptr, [at]), F32x8.as_pointer())
    builder.store(builder.fadd(builder.load(ptr, align=4), builder.fmul(f, s)), ptr, align=4)


@intrinsic(prefer_literal=True)
def _group(typingctx, kind, acc, packed, pos, spos, mask, xq, xpos, stride, scales, offsets):
    """acc[8 k + i] += (weights of row i . x_k - offsets[k]) * scales[k] * row i's float16
    scale, for the 8 rows of the group block of kind (a literal) at packed[pos] and the
    input rows x_k at xq's data + xpos + k stride, k < len(scales) (a UniTuple: 1 or 4).
    offsets[k]: the input block's sum times what the unsigned weights carry above the real
    ones (Q8_0 _q8_0_flip(), Q4_0 8, TQ2_0 4^field). TQ2_0 only: the scales at packed[spos] and the
    field mask. The group's weights are loaded (and split into nibbles) once for all the
    input rows."""
    if not isinstance(kind, types.IntegerLiteral):
        return None
    count = scales.count

    def codegen(context, builder, sig, args):
        _, acc_ptr, packed_v, pos_v, spos_v, mask_v, xq_v, xpos_v, stride_v = args[:9]
        scales_v, offsets_v = args[9:]
        at = lambda base, k: builder.add(base, ir.Constant(base.type, k))  # noqa: E731
        kind_v = sig.args[0].literal_value
        pairs, w_scales = _group_weights(
            builder, context, sig.args[2], packed_v, pos_v, kind_v, spos_v, mask_v
        )
        rows = [
            builder.add(xpos_v, builder.mul(stride_v, ir.Constant(stride_v.type, k)))
            for k in range(count)
        ]
        chains = max(1, 4 // count)  # independent sums per input row, so that they overlap
        parts = [[ir.Constant(I32x8, None)] * chains for _ in range(count)]
        signed = kind_v == 2 and not i8dot.VNNI  # Q8_0 kept signed: see _q8_0_flip
        for i, (w, off) in enumerate(pairs):
            u = _magnitude(builder, w) if signed else w
            for k in range(count):
                x = _x4_splat(builder, context, sig.args[6], xq_v, at(rows[k], off))
                if signed:  # |w| times x with w's sign
                    x = _signs_of(builder, x, w)
                parts[k][i % chains] = _madd(builder, parts[k][i % chains], u, x)
        for k in range(count):
            total = parts[k][0]
            for part in parts[k][1:]:
                total = builder.add(total, part)
            first = ir.Constant(ir.IntType(64), 8 * k)
            scale, offset = builder.extract_value(scales_v, k), builder.extract_value(offsets_v, k)
            _add_scaled(builder, acc_ptr, first, total, offset, w_scales, scale)
        return context.get_dummy_value()

    sig = types.void(kind, acc, packed, pos, spos, mask, xq, xpos, stride, scales, offsets)
    return sig, codegen


@njit(cache=True, inline="always")
def _tq2_0_at(b):
    """Where input block b's TQ2_0 fields sit in a group's row: the chunks' position, the
    scales' position, the field's mask, and 4^field (what the masked sums carry)."""
    base = (b >> 3) * GROUP_BLOCK_TQ2_0
    field = b & 3
    return base + 16 + 256 * ((b >> 2) & 1), base, 3 << (2 * field), np.float32(1 << (2 * field))


@njit(cache=True, inline="always")
def _one(kind, p, grp, xq, xd, xsum, t, b):
    """Block b of the group for input row t into p[0:8]."""
    pos, cols = b * 32 + t * xq.shape[1], xq.shape[1]
    if kind == 2:
        at = b * GROUP_BLOCK_Q8_0
        offsets = (np.float32(_q8_0_flip()) * xsum[t, b],)
        _group(2, p, grp, at, at, 0, xq, pos, cols, (xd[t, b],), offsets)
    elif kind == 3:
        at = b * GROUP_BLOCK_Q4_0
        offsets = (np.float32(8.0) * xsum[t, b],)
        _group(3, p, grp, at, at, 0, xq, pos, cols, (xd[t, b],), offsets)
    else:
        at, spos, mask, m = _tq2_0_at(b)
        _group(10, p, grp, at, spos, mask, xq, pos, cols, (xd[t, b] / m,), (m * xsum[t, b],))


@njit(cache=True, inline="always")
def _four(kind, p, grp, xq, xd, xsum, t, b):
    """Block b of the group for input rows t..t+3 into p[0:32]."""
    pos, cols = b * 32 + t * xq.shape[1], xq.shape[1]
    scales = (xd[t, b], xd[t + 1, b], xd[t + 2, b], xd[t + 3, b])
    sums = (xsum[t, b], xsum[t + 1, b], xsum[t + 2, b], xsum[t + 3, b])
    if kind == 2:
        at, m = b * GROUP_BLOCK_Q8_0, np.float32(_q8_0_flip())
        offsets = (m * sums[0], m * sums[1], m * sums[2], m * sums[3])
        _group(2, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    elif kind == 3:
        at, m = b * GROUP_BLOCK_Q4_0, np.float32(8.0)
        offsets = (m * sums[0], m * sums[1], m * sums[2], m * sums[3])
        _group(3, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    else:
        at, spos, mask, m = _tq2_0_at(b)
        offsets = (m * sums[0], m * sums[1], m * sums[2], m * sums[3])
        scales = (scales[0] / m, scales[1] / m, scales[2] / m, scales[3] / m)
        _group(10, p, grp, at, spos, mask, xq, pos, cols, scales, offsets)


GROUP_BLOCK_Q8_0, GROUP_BLOCK_Q4_0, GROUP_BLOCK_TQ2_0 = (GROUP_BLOCK[k] for k in GROUPED)


def product_grouped(kind, xq, xd, xsum, packed, out):
    """out[t, r] = x[t] . W[r] for x quantized by quantize() and weights of kind (2: Q8_0,
    3: Q4_0, 10: TQ2_0) regrouped by interleave (packed: (rows / 8, blocks *
    GROUP_BLOCK[kind])), groups of rows in parallel, 4 input rows at a time."""
    {2: _product_q8_0, 3: _product_q4_0, 10: _product_tq2_0}[kind](xq, xd, xsum, packed, out)


# One compiled kernel per kind, the kind a constant in each: with both kinds' code in one
# loop, Q8_0's 512-row products ran at half the speed.
@njit(cache=True, parallel=True, fastmath=True)
def _product_q8_0(xq, xd, xsum, packed, out):
    _grouped(2, xq, xd, xsum, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q4_0(xq, xd, xsum, packed, out):
    _grouped(3, xq, xd, xsum, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_tq2_0(xq, xd, xsum, packed, out):
    _grouped(10, xq, xd, xsum, packed, out)


@njit(cache=True, inline="always")
def _grouped(kind, xq, xd, xsum, packed, out):
    nb = xq.shape[1] // 32
    whole = xq.shape[0] // TOKENS * TOKENS
    for g in prange(packed.shape[0]):
        grp = packed[g]
        p = _stack_f32(GROUP)
        acc = carray(p, (GROUP,))
        p4 = _stack_f32(TOKEN_ACC)
        acc4 = carray(p4, (TOKEN_ACC,))
        for t in range(0, whole, TOKENS):
            for j in range(TOKEN_ACC):
                acc4[j] = 0.0
            for b in range(nb):
                _four(kind, p4, grp, xq, xd, xsum, t, b)
            for k in range(TOKENS):
                for i in range(GROUP):
                    out[t + k, g * GROUP + i] = acc4[GROUP * k + i]
        for t in range(whole, xq.shape[0]):  # the blocks summed in the same order as above
            for j in range(GROUP):
                acc[j] = 0.0
            for b in range(nb):
                _one(kind, p, grp, xq, xd, xsum, t, b)
            for i in range(GROUP):
                out[t, g * GROUP + i] = acc[i]


@njit(cache=True, inline="always")
def _q8_0_flip():
    """What regrouped Q8_0 weights carry above the real ones: with VNNI they are stored as
    unsigned bytes w + 128 for its unsigned-by-signed byte products. Without it those
    products pair into saturating int16 sums, which 255 * 127 twice would overflow, so the
    weights stay signed and multiply as |w| times x with w's sign (2 * 128 * 127 fits)."""
    return 128 if i8dot.VNNI else 0


@njit(cache=True, inline="always")
def _layout(kind):
    """A file block of kind: its bytes, 4-byte chunks of weights, what its weight bytes are
    xored with (Q8_0 with VNNI: its int8 weights as unsigned bytes, w + 128), and where its
    weights and its float16 scale start."""
    if kind == 2:
        return 34, 8, _q8_0_flip(), 2, 0
    if kind == 3:
        return 18, 4, 0, 2, 0
    return 66, 16, 0, 0, 64


@njit(cache=True, nogil=True)
def interleave(kind, raw, packed):
    """Rows of kind (2: Q8_0, 3: Q4_0, 10: TQ2_0) in the file's layout (rows, blocks * BLOCK_BYTES)
    into the grouped layout above. Serial: a parallel kernel at load would start numba's
    OpenMP runtime before the caller's first product, and in a process that imported torch
    after that (bench_embed's peer), torch ran 10x slower."""
    size, chunks, flip, w0, s0 = _layout(kind)
    step = 16 + 32 * chunks
    nb = raw.shape[1] // size
    for g in range(packed.shape[0]):
        for i in range(GROUP):
            row = raw[g * GROUP + i]
            for b in range(nb):
                src, dst = b * size, b * step
                packed[g, dst + 2 * i] = row[src + s0]
                packed[g, dst + 2 * i + 1] = row[src + s0 + 1]
                for c in range(chunks):
                    for j in range(4):
                        packed[g, dst + 16 + 32 * c + 4 * i + j] = row[src + w0 + 4 * c + j] ^ flip


@njit(cache=True, nogil=True)
def deinterleave(kind, packed, raw):
    """The inverse of interleave, for packed's groups into raw's rows. A twin of interleave
    rather than one function with a direction: the file's rows are a read-only mapping,
    which numba will not type in a function that also writes to them."""
    size, chunks, flip, w0, s0 = _layout(kind)
    step = 16 + 32 * chunks
    nb = raw.shape[1] // size
    for g in range(packed.shape[0]):
        for i in range(GROUP):
            row = raw[g * GROUP + i]
            for b in range(nb):
                src, dst = b * step, b * size
                row[dst + s0] = packed[g, src + 2 * i]
                row[dst + s0 + 1] = packed[g, src + 2 * i + 1]
                for c in range(chunks):
                    for j in range(4):
                        row[dst + w0 + 4 * c + j] = packed[g, src + 16 + 32 * c + 4 * i + j] ^ flip
