"""Integer kernels on matrices regrouped 8 rows at a time (quants.interleave), for every number
of input rows: decode steps, prefill, and embedding batches. Every integer kind is regrouped:
Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and TQ2_0 (the block kernel, _group) and Q4_K, Q5_K and Q6_K
(the 256-weight kernels, _kgroup).

Each group of 8 rows keeps, per block of the file, its rows' scales side by side (8 float16
d, then what else the type has per block: Q4_1/Q5_1 8 float16 m; Q4_K/Q5_K 8 dmin and the 8
sub-block scales and 8 mins of each row unpacked to a byte each, the mins in pairs of
sub-blocks (_min_at); Q6_K the 16 int8 scales of each row) and then chunks of 32 bytes,
chunk c holding bytes 4c..4c+3 of each row's weight bytes, row after row
(Q4_0/Q4_1/Q5_0/Q5_1: 4 chunks of nibble bytes; Q8_0: 8 chunks of weights plus 128, so that
they are unsigned, or signed without VNNI (see _q8_0_flip); TQ2_0: 16 chunks of four 2-bit
fields; Q4_K: 32 chunks of nibbles; Q5_K: 8 chunks of its fifth bits and 32 of nibbles;
Q6_K: 32 chunks of low nibbles and 16 of high bit pairs, then each row's int32 constant of
the block, Q6_OFFSETS). One 32-byte load then gives 4 weights of each of the 8 rows
(nibbles: 8, as low and high nibbles; TQ2_0: 16, one field per input block of 32), and the
byte multiply-add against the matching 4 input bytes (broadcast) sums them into the row's
own int32 lane: no per-row sums to gather and one vector of scales per block, about a third
of the instructions of the row-at-a-time kernels (llm/i8dot.py, whose input rounding and
LLVM helpers these share). 4 input rows share each load. A TQ2_0 field is masked in place,
not shifted down: the sum comes out 4^k times too large (k: the field), and the input
block's scale divided by 4^k (exact, a power of two) undoes that. Q5_0/Q5_1 keep their 32
fifth bits per row transposed into 4 bytes (bit c of byte j: weight 4c + j), so that a
chunk's fifth bits are one shift and mask of one load.

Weights multiply unsigned (Q5_0's q) and their offsets come off through the input's block
sums, as llama.cpp's AVX2 kernels do; Q6_K's weights multiply signed (q - 32) against the
input plus 128, unsigned, and what the 128 adds is a constant of the row, kept at load. The
K types sum a whole block of 256 in integers (each sub-block's sums times its integer scale,
and the mins times the input's sums per 16: llama.cpp's Q8_K bsums) and scale it once, by
the row's d times the input block's d, as ggml_vec_dot_q4_K_q8_K / q5_K / q6_K do; results
then differ from llama.cpp's by float32 summation order only.

Measured on TinyLlama-shaped matrices, 2 threads: a decode step streams 26-30 GB/s (the
row-at-a-time Q4_0 kernel 18-24), and 512-token products run at 380-500 billion integer
operations per second (dequantized slabs through BLAS: 140-170 GFLOP/s); 64 input rows
against the TinyLlama Q4_K_M file's matrices (product_grouped alone): Q4_K 5632 x 2048 at
265 billion multiply-adds per second in 8-row groups, 285-291 two groups at a time (WIDE),
Q6_K 2048 x 5632 at 180 and 187.
"""

import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.extending import intrinsic

from llm import i8dot
from llm.i8dot import (
    F32x8,
    I8x16,
    I8x32,
    I16x16,
    I32x8,
    _broadcast,
    _byte_splat,
    _load,
    _madd,
    _magnitude,
    _signs_of,
    _splat,
    _x86,
)
from llm.qdot import _k4_scale_min, _stack_f32

GROUP = 8  # rows per regrouped group
# The K kinds' products take two groups at a time in 512-bit registers (AVX-512 VNNI and BW)
WIDE = bool(i8dot._FEATURES.get("avx512vnni") and i8dot._FEATURES.get("avx512bw"))
TOKENS = 4  # input rows that share each load of a group's weights
TOKEN_ACC = 32  # their 4 sums of 8 rows
WIDE_ROWS, WIDE_ACC = 2 * GROUP, 2 * TOKEN_ACC  # the same for two groups at a time
# The kinds (quants._KIND) regrouped: Q8_0, Q4_0, Q4_K, Q4_1, Q5_0, Q5_1, Q5_K, Q6_K, TQ2_0
GROUPED = (2, 3, 4, 5, 6, 7, 8, 9, 10)
K_KINDS = (4, 8, 9)  # the 256-weight kinds summed per block of 256 (input: raw Q8_K)
BLOCK_WEIGHTS = {2: 32, 3: 32, 4: 256, 5: 32, 6: 32, 7: 32, 8: 256, 9: 256, 10: 256}
BLOCK_BYTES = {2: 34, 3: 18, 4: 144, 5: 20, 6: 22, 7: 24, 8: 176, 9: 210, 10: 66}
# bytes per group block: 8 rows' scales (and mins, fifth bits), then the weight chunks
GROUP_BLOCK = {
    2: 16 + 8 * 32,
    3: 16 + 4 * 32,
    4: 32 + 128 + 32 * 32,
    5: 32 + 4 * 32,
    6: 16 + 32 + 4 * 32,
    7: 32 + 32 + 4 * 32,
    8: 32 + 128 + 8 * 32 + 32 * 32,
    9: 16 + 128 + 32 * 32 + 16 * 32 + 32,
    10: 16 + 16 * 32,
}
Q6_OFFSETS = 16 + 128 + 32 * 32 + 16 * 32  # Q6_K: 8 int32, 128 sum_s sc_s sum(q - 32) per row
# GROUP_BLOCK as a tuple indexed by kind, a constant inside the kernels
_STEP = tuple(GROUP_BLOCK.get(k, 0) for k in range(11))
# Where a block-of-32 kind keeps its float16 mins (Q4_1, Q5_1), its transposed fifth bits
# (Q5_0, Q5_1) and its weight chunks inside a group block; -1: none
_MINS_AT = {5: 16, 7: 16}
_HIGH_AT = {6: 16, 7: 32}
_CHUNKS_AT = {2: 16, 3: 16, 5: 32, 6: 48, 7: 64, 10: 16}
F16x8 = ir.VectorType(ir.HalfType(), 8)
I8x8 = ir.VectorType(ir.IntType(8), 8)


def _x4_splat(builder, context, arr_type, arr, pos):
    """The 4 input bytes at arr[pos] repeated in all 8 int32 lanes, as 32 bytes."""
    word = _load(builder, context, arr_type, arr, pos, ir.IntType(32))
    return builder.bitcast(_broadcast(builder, [word], I32x8, [0] * 8), I8x32)


def _bit_to(builder, v, bit, to):
    """Each byte of v with its bit `bit` moved to bit `to` (the other bits: shifted along)."""
    if to > bit:
        return builder.shl(v, _splat(v.type, to - bit))
    if bit > to:
        return builder.lshr(v, _splat(v.type, bit - to))
    return v


def _fifth_bit(builder, high, c):
    """Bytes of 16 where bit c of the transposed fifth bits `high` is set, else 0."""
    return builder.and_(_bit_to(builder, high, c, 4), _splat(I8x32, 16))


def _group_weights(builder, context, arr_type, arr, pos, kind, spos, mask):
    """The group block at arr[pos] as (32 bytes holding 4 weights of each of the 8 rows,
    unsigned but for Q8_0 without VNNI; the position of those 4 weights in the input block)
    pairs, its 8 scales and its 8 mins (Q4_1, Q5_1; else None).
    TQ2_0: the 8 chunks at arr[pos] (not a whole block: those for one input block) with the
    field mask (a runtime byte) applied, and the scales at arr[spos]."""
    at = lambda k: builder.add(pos, ir.Constant(pos.type, k))  # noqa: E731
    load = lambda p, ty: _load(builder, context, arr_type, arr, p, ty)  # noqa: E731
    if kind == 10:
        scales = builder.fpext(load(spos, F16x8), F32x8)
        field = _byte_splat(builder, mask)
        return (
            [(builder.and_(load(at(32 * c), I8x32), field), 4 * c) for c in range(8)],
            scales,
            None,
        )
    scales = builder.fpext(load(pos, F16x8), F32x8)
    mins = builder.fpext(load(at(_MINS_AT[kind]), F16x8), F32x8) if kind in _MINS_AT else None
    high = load(at(_HIGH_AT[kind]), I8x32) if kind in _HIGH_AT else None
    first = _CHUNKS_AT[kind]
    pairs = []
    for c in range(8 if kind == 2 else 4):
        w = load(at(first + 32 * c), I8x32)
        if kind == 2:
            pairs.append((w, 4 * c))
            continue
        lo, hi = builder.and_(w, _splat(I8x32, 15)), builder.lshr(w, _splat(I8x32, 4))
        if high is not None:  # weight 4c + j's fifth bit is bit c, weight 16 + 4c + j's c + 4
            lo = builder.or_(lo, _fifth_bit(builder, high, c))
            hi = builder.or_(hi, _fifth_bit(builder, high, c + 4))
        pairs.append((lo, 4 * c))
        pairs.append((hi, 16 + 4 * c))
    return pairs, scales, mins


def _add_scaled(builder, acc_ptr, at, ints, offset, scales, scale, mins=None):
    """acc_ptr[at : at + 8] += (float(ints) - offset) * scales * scale, in exactly this order
    (no fast-math flags): one input row's sums then come out bit for bit the same whichever
    kernel path, alone or among 4, computed them. A last-bit difference would not stay one:
    rounding the next layer's input to 8 bits can turn it into a whole step.
    With mins (Q4_1, Q5_1): acc += float(ints) * scales * scale + mins * offset."""
    f = builder.sitofp(ints, F32x8)
    if mins is None:
        f = builder.fsub(f, _broadcast(builder, [offset], F32x8, [0] * 8))
    s = builder.fmul(scales, _broadcast(builder, [scale], F32x8, [0] * 8))
    term = builder.fmul(f, s)
    if mins is not None:
        term = builder.fadd(term, builder.fmul(mins, _broadcast(builder, [offset], F32x8, [0] * 8)))
    ptr = builder.bitcast(builder.gep(acc_ptr, [at]), F32x8.as_pointer())
    builder.store(builder.fadd(builder.load(ptr, align=4), term), ptr, align=4)


@intrinsic(prefer_literal=True)
def _group(typingctx, kind, acc, packed, pos, spos, mask, xq, xpos, stride, scales, offsets):
    """acc[8 k + i] += (weights of row i . x_k - offsets[k]) * scales[k] * row i's float16
    scale, for the 8 rows of the group block of kind (a literal) at packed[pos] and the
    input rows x_k at xq's data + xpos + k stride, k < len(scales) (a UniTuple: 1 or 4).
    offsets[k]: the input block's sum times what the unsigned weights carry above the real
    ones (Q8_0 _q8_0_flip(), Q4_0 8, Q5_0 16, TQ2_0 4^field); Q4_1 and Q5_1: the input
    block's s (Q8_1), which their mins multiply instead. TQ2_0 only: the scales at
    packed[spos] and the field mask. The group's weights are loaded (and split into nibbles)
    once for all the input rows."""
    if not isinstance(kind, types.IntegerLiteral):
        return None
    count = scales.count

    def codegen(context, builder, sig, args):
        _, acc_ptr, packed_v, pos_v, spos_v, mask_v, xq_v, xpos_v, stride_v = args[:9]
        scales_v, offsets_v = args[9:]
        at = lambda base, k: builder.add(base, ir.Constant(base.type, k))  # noqa: E731
        kind_v = sig.args[0].literal_value
        pairs, w_scales, w_mins = _group_weights(
            builder, context, sig.args[2], packed_v, pos_v, kind_v, spos_v, mask_v
        )
        rows = _rows(builder, xpos_v, stride_v, count)
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
            first = ir.Constant(ir.IntType(64), 8 * k)
            scale, offset = builder.extract_value(scales_v, k), builder.extract_value(offsets_v, k)
            total = _sum(builder, parts[k])
            _add_scaled(builder, acc_ptr, first, total, offset, w_scales, scale, w_mins)
        return context.get_dummy_value()

    sig = types.void(kind, acc, packed, pos, spos, mask, xq, xpos, stride, scales, offsets)
    return sig, codegen


def _rows(builder, xpos, stride, count):
    """Where input rows 0..count-1 start: xpos + k stride."""
    return [
        builder.add(xpos, builder.mul(stride, ir.Constant(stride.type, k))) for k in range(count)
    ]


def _sum(builder, vectors):
    total = vectors[0]
    for v in vectors[1:]:
        total = builder.add(total, v)
    return total


def _w(ty, wide):
    """Vector type ty with wide times its lanes: 2 for two groups of 8 rows at once (16 rows
    in 512-bit registers)."""
    return ir.VectorType(ty.element, ty.count * wide)


def _k4_sums(builder, load, x4, kind, count, wide):
    """Q4_K / Q5_K: per input row k, the block's sum over its 8 sub-blocks j of sc_j times
    (the sub-block's unsigned weights . x), 8 rows as int32 lanes. x4(k, i): input row k's
    4 bytes at position i of the block, broadcast; wide: 2 for 16 rows (load gives both
    groups' bytes)."""
    chains = max(1, 2 // count)
    nibbles = 160 if kind == 4 else 416
    sums = [None] * count
    for p in range(4):  # sub-blocks 2p (low nibbles) and 2p + 1 (high nibbles)
        dots = [
            [[ir.Constant(_w(I32x8, wide), None)] * chains for _ in range(2)] for _ in range(count)
        ]
        for c in range(8):
            w = load(nibbles + 256 * p + 32 * c, I8x32)
            halves = [builder.and_(w, _splat(w.type, 15)), builder.lshr(w, _splat(w.type, 4))]
            if kind == 8:  # the fifth bits: bit 2p and 2p + 1 of the chunk's qh bytes
                high = load(160 + 32 * c, I8x32)
                for h in range(2):
                    bit = builder.and_(_bit_to(builder, high, 2 * p + h, 4), _splat(w.type, 16))
                    halves[h] = builder.or_(halves[h], bit)
            for k in range(count):
                for h in range(2):
                    dot = dots[k][h]
                    dot[c % chains] = _madd(
                        builder, dot[c % chains], halves[h], x4(k, 64 * p + 32 * h + 4 * c)
                    )
        for h in range(2):
            sc = builder.zext(load(32 + 8 * (2 * p + h), I8x8), _w(I32x8, wide))
            for k in range(count):
                term = builder.mul(_sum(builder, dots[k][h]), sc)
                sums[k] = term if sums[k] is None else builder.add(sums[k], term)
    return sums


def _k4_mins(builder, load, pair, count, wide):
    """Q4_K / Q5_K: per input row k, sum over sub-blocks j of m_j times the input's sum over
    sub-block j, 8 rows as int32 lanes: one vpmaddwd per pair of sub-blocks (the mins of a
    row's pair, zero-extended to int16, against pair(k, p): the input's two sums as int16 in
    one 32-bit word, broadcast)."""
    i16, i32 = _w(I16x16, wide), _w(I32x8, wide)
    pmadd = "llvm.x86.avx2.pmadd.wd" if wide == 1 else "llvm.x86.avx512.pmaddw.d.512"
    mins = [builder.zext(load(96 + 16 * p, I8x16), i16) for p in range(4)]
    out = []
    for k in range(count):
        total = None
        for p in range(4):
            word = _broadcast(builder, [pair(k, p)], i32, [0] * i32.count)
            term = _x86(builder, pmadd, i32, mins[p], builder.bitcast(word, i16))
            total = term if total is None else builder.add(total, term)
        out.append(total)
    return out


def _q6_sums(builder, load, x4, count, wide):
    """Q6_K: per input row k, sum over the 16 sub-blocks s of 16 of sc_s times (the weights
    q - 32, signed . the input plus 128, unsigned), 8 rows as int32 lanes. The input's 128
    comes off with the row's constant Q6_OFFSETS (kept at load), so the weights' 32 costs
    nothing per input row."""
    chains = max(1, 2 // count)
    b8 = _w(I8x32, wide)
    sums = [None] * count
    for h in range(2):  # halves of 128 weights
        for half in range(2):  # the first or last 16 of each 32 (scale index s: its parity)
            dots = [
                [[ir.Constant(_w(I32x8, wide), None)] * chains for _ in range(4)]
                for _ in range(count)
            ]
            for cc in range(4):
                c = 4 * half + cc
                low = [load(144 + 32 * (16 * h + 8 * odd + c), I8x32) for odd in range(2)]
                high = load(1168 + 32 * (8 * h + c), I8x32)
                for q in range(4):  # weights h 128 + 32 q + 4c + (0..3)
                    lo = low[q % 2] if q < 2 else builder.lshr(low[q % 2], _splat(b8, 4))
                    lo = builder.and_(lo, _splat(b8, 15))
                    hi = builder.and_(_bit_to(builder, high, 2 * q, 4), _splat(b8, 0x30))
                    w = builder.add(builder.or_(lo, hi), _splat(b8, -32))
                    for k in range(count):
                        dot = dots[k][q]
                        dot[cc % chains] = _madd(
                            builder, dot[cc % chains], x4(k, 128 * h + 32 * q + 4 * c), w
                        )
            for q in range(4):
                s = 8 * h + 2 * q + half
                sc = builder.sext(load(16 + 8 * s, I8x8), _w(I32x8, wide))
                for k in range(count):
                    term = builder.mul(_sum(builder, dots[k][q]), sc)
                    sums[k] = term if sums[k] is None else builder.add(sums[k], term)
    return sums


@intrinsic(prefer_literal=True)
def _kgroup(
    typingctx, kind, wide, acc, packed, pos, gstride, xq, xpos, stride, bs, bspos, bsstride, scales
):
    """acc[R k + i] += row i . x_k for the R = 8 wide rows of the 256-weight group block of
    kind (a literal: Q4_K 4, Q5_K 8, Q6_K 9) at packed[pos] (wide, a literal: 1, or 2 for
    this group and the next, gstride bytes on, in 512-bit registers) and the input rows x_k
    (Q8_K) at xq's data + xpos + k stride, k < len(scales) (a UniTuple of their Q8_K d: 1 or
    4 rows), whose sums are at element bspos + k bsstride of bs (Q6_K: per 16, int32;
    Q4_K/Q5_K: per 32, int16). The block's sums are integers until one float scale per row:
    d_i d_k (and dmin_i d_k for the mins)."""
    if not isinstance(kind, types.IntegerLiteral) or not isinstance(wide, types.IntegerLiteral):
        return None
    count = scales.count

    def codegen(context, builder, sig, args):
        acc_ptr, packed_v, pos_v, gstride_v = args[2:6]
        xq_v, xpos_v, stride_v, bs_v, bspos_v, bsstride_v, scales_v = args[6:13]
        kind_v, w = sig.args[0].literal_value, sig.args[1].literal_value
        lanes = 8 * w
        at = lambda base, k: builder.add(base, ir.Constant(base.type, k))  # noqa: E731

        def load(offset, ty):
            """ty from this group block (and the next's alike, after it, when wide)."""
            where = at(pos_v, offset)
            first = _load(builder, context, sig.args[3], packed_v, where, ty)
            if w == 1:
                return first
            where = builder.add(where, gstride_v)
            second = _load(builder, context, sig.args[3], packed_v, where, ty)
            order = ir.Constant(
                ir.VectorType(ir.IntType(32), 2 * ty.count), list(range(2 * ty.count))
            )
            return builder.shuffle_vector(first, second, order)

        rows = _rows(builder, xpos_v, stride_v, count)
        bsrows = _rows(builder, bspos_v, bsstride_v, count)
        i32, f32 = _w(I32x8, w), _w(F32x8, w)

        def x4(k, i):
            word = _load(builder, context, sig.args[6], xq_v, at(rows[k], i), ir.IntType(32))
            return builder.bitcast(_broadcast(builder, [word], i32, [0] * lanes), _w(I8x32, w))

        d = builder.fpext(load(0, F16x8), f32)
        if kind_v == 9:
            offsets = load(Q6_OFFSETS, I32x8)
            sums = [builder.sub(v, offsets) for v in _q6_sums(builder, load, x4, count, w)]
            mins = None
        else:
            sums = _k4_sums(builder, load, x4, kind_v, count, w)

            def pair(k, p):
                where = builder.mul(at(bsrows[k], 2 * p), ir.Constant(bspos_v.type, 2))
                return _load(builder, context, sig.args[9], bs_v, where, ir.IntType(32))

            mins = _k4_mins(builder, load, pair, count, w)
            dmin = builder.fpext(load(16, F16x8), f32)
        for k in range(count):
            yd = _broadcast(builder, [builder.extract_value(scales_v, k)], f32, [0] * lanes)
            term = builder.fmul(builder.sitofp(sums[k], f32), builder.fmul(d, yd))
            if mins is not None:
                m = builder.fmul(builder.sitofp(mins[k], f32), builder.fmul(dmin, yd))
                term = builder.fsub(term, m)
            ptr = builder.gep(acc_ptr, [ir.Constant(ir.IntType(64), lanes * k)])
            ptr = builder.bitcast(ptr, f32.as_pointer())
            builder.store(builder.fadd(builder.load(ptr, align=4), term), ptr, align=4)
        return context.get_dummy_value()

    sig = types.void(
        kind, wide, acc, packed, pos, gstride, xq, xpos, stride, bs, bspos, bsstride, scales
    )
    return sig, codegen


@njit(cache=True, inline="always")
def _tq2_0_at(b):
    """Where input block b's TQ2_0 fields sit in a group's row: the chunks' position, the
    scales' position, the field's mask, and 4^field (what the masked sums carry)."""
    base = (b >> 3) * _STEP[10]
    field = b & 3
    return base + 16 + 256 * ((b >> 2) & 1), base, 3 << (2 * field), np.float32(1 << (2 * field))


@njit(cache=True, inline="always")
def _offset(kind):
    """What an input block's sum is multiplied by for the offsets of _group (Q4_1, Q5_1: the
    input's s, as it is)."""
    if kind == 2:
        return np.float32(_q8_0_flip())
    if kind == 3:
        return np.float32(8.0)
    if kind == 6:
        return np.float32(16.0)
    return np.float32(1.0)


@njit(cache=True, inline="always")
def _one(kind, p, grp, xq, xd, xsum, t, b):
    """Block b (of 32) of the group for input row t into p[0:8]."""
    pos, cols = b * 32 + t * xq.shape[1], xq.shape[1]
    if kind == 10:
        at, spos, mask, m = _tq2_0_at(b)
        _group(10, p, grp, at, spos, mask, xq, pos, cols, (xd[t, b] / m,), (m * xsum[t, b],))
        return
    at, scales, offsets = b * _STEP[kind], (xd[t, b],), (_offset(kind) * xsum[t, b],)
    if kind == 2:
        _group(2, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    elif kind == 3:
        _group(3, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    elif kind == 5:
        _group(5, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    elif kind == 6:
        _group(6, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    else:
        _group(7, p, grp, at, at, 0, xq, pos, cols, scales, offsets)


@njit(cache=True, inline="always")
def _four(kind, p, grp, xq, xd, xsum, t, b):
    """Block b (of 32) of the group for input rows t..t+3 into p[0:32]."""
    pos, cols = b * 32 + t * xq.shape[1], xq.shape[1]
    scales = (xd[t, b], xd[t + 1, b], xd[t + 2, b], xd[t + 3, b])
    sums = (xsum[t, b], xsum[t + 1, b], xsum[t + 2, b], xsum[t + 3, b])
    if kind == 10:
        at, spos, mask, m = _tq2_0_at(b)
        offsets = (m * sums[0], m * sums[1], m * sums[2], m * sums[3])
        scales = (scales[0] / m, scales[1] / m, scales[2] / m, scales[3] / m)
        _group(10, p, grp, at, spos, mask, xq, pos, cols, scales, offsets)
        return
    at, m = b * _STEP[kind], _offset(kind)
    offsets = (m * sums[0], m * sums[1], m * sums[2], m * sums[3])
    if kind == 2:
        _group(2, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    elif kind == 3:
        _group(3, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    elif kind == 5:
        _group(5, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    elif kind == 6:
        _group(6, p, grp, at, at, 0, xq, pos, cols, scales, offsets)
    else:
        _group(7, p, grp, at, at, 0, xq, pos, cols, scales, offsets)


@njit(cache=True, inline="always")
def _k_at(kind, xq, bsums, t, b):
    """Where block b (of 256) of input row t and of a group sit: (input position, its sums'
    position, the group block's position, the input's and the sums' row lengths)."""
    cols, nbs = xq.shape[1], bsums.shape[1]
    per = nbs // (cols // 256)
    return b * 256 + t * cols, b * per + t * nbs, b * _STEP[kind], cols, nbs


@njit(cache=True, inline="always")
def _one_k(kind, p, grp, xq, xd, bsums, t, b):
    """Block b (of 256) of the group for input row t into p[0:8]."""
    pos, bpos, at, cols, nbs = _k_at(kind, xq, bsums, t, b)
    _k_narrow(kind, p, grp, at, xq, pos, cols, bsums, bpos, nbs, (xd[t, b],))


@njit(cache=True, inline="always")
def _four_k(kind, p, grp, xq, xd, bsums, t, b):
    """Block b (of 256) of the group for input rows t..t+3 into p[0:32]."""
    pos, bpos, at, cols, nbs = _k_at(kind, xq, bsums, t, b)
    scales = (xd[t, b], xd[t + 1, b], xd[t + 2, b], xd[t + 3, b])
    _k_narrow(kind, p, grp, at, xq, pos, cols, bsums, bpos, nbs, scales)


@njit(cache=True, inline="always")
def _one_k_wide(kind, p, grp, gstride, xq, xd, bsums, t, b):
    """Block b of the group and the next (gstride bytes on) for input row t into p[0:16]."""
    pos, bpos, at, cols, nbs = _k_at(kind, xq, bsums, t, b)
    _k_wide(kind, p, grp, at, gstride, xq, pos, cols, bsums, bpos, nbs, (xd[t, b],))


@njit(cache=True, inline="always")
def _four_k_wide(kind, p, grp, gstride, xq, xd, bsums, t, b):
    """Block b of the group and the next for input rows t..t+3 into p[0:64]."""
    pos, bpos, at, cols, nbs = _k_at(kind, xq, bsums, t, b)
    scales = (xd[t, b], xd[t + 1, b], xd[t + 2, b], xd[t + 3, b])
    _k_wide(kind, p, grp, at, gstride, xq, pos, cols, bsums, bpos, nbs, scales)


@njit(cache=True, inline="always")
def _k_narrow(kind, p, grp, at, xq, pos, cols, bsums, bpos, nbs, scales):
    if kind == 4:
        _kgroup(4, 1, p, grp, at, 0, xq, pos, cols, bsums, bpos, nbs, scales)
    elif kind == 8:
        _kgroup(8, 1, p, grp, at, 0, xq, pos, cols, bsums, bpos, nbs, scales)
    else:
        _kgroup(9, 1, p, grp, at, 0, xq, pos, cols, bsums, bpos, nbs, scales)


@njit(cache=True, inline="always")
def _k_wide(kind, p, grp, at, gstride, xq, pos, cols, bsums, bpos, nbs, scales):
    if kind == 4:
        _kgroup(4, 2, p, grp, at, gstride, xq, pos, cols, bsums, bpos, nbs, scales)
    elif kind == 8:
        _kgroup(8, 2, p, grp, at, gstride, xq, pos, cols, bsums, bpos, nbs, scales)
    else:
        _kgroup(9, 2, p, grp, at, gstride, xq, pos, cols, bsums, bpos, nbs, scales)


def product_grouped(kind, xq, xd, xsum, packed, out):
    """out[t, r] = x[t] . W[r] for weights of kind (quants._KIND) regrouped by interleave
    (packed: (rows / 8, blocks * GROUP_BLOCK[kind])), groups of rows in parallel, 4 input rows
    at a time. x as its kind multiplies it (i8dot): Q8_0, Q4_0, Q5_0: quantize(); Q4_1, Q5_1:
    quantize_q8_1() (xsum: the blocks' s); Q4_K, Q5_K, Q6_K: quantize_k() (xd per 256, xsum:
    the int32 sums per 16); TQ2_0: quantize_k() through k_blocks32()."""
    if WIDE and i8dot.VNNI and kind in _WIDE_PRODUCTS:
        _WIDE_PRODUCTS[kind](xq, xd, xsum, packed, out)
    else:
        _PRODUCTS[kind](xq, xd, xsum, packed, out)


# One compiled kernel per kind, the kind a constant in each: with both kinds' code in one
# loop, Q8_0's 512-row products ran at half the speed.
@njit(cache=True, parallel=True, fastmath=True)
def _product_q8_0(xq, xd, xsum, packed, out):
    _grouped(2, xq, xd, xsum, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q4_0(xq, xd, xsum, packed, out):
    _grouped(3, xq, xd, xsum, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q4_1(xq, xd, xsum, packed, out):
    _grouped(5, xq, xd, xsum, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q5_0(xq, xd, xsum, packed, out):
    _grouped(6, xq, xd, xsum, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q5_1(xq, xd, xsum, packed, out):
    _grouped(7, xq, xd, xsum, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_tq2_0(xq, xd, xsum, packed, out):
    _grouped(10, xq, xd, xsum, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q4_k(xq, xd, bsums, packed, out):
    _grouped_k(4, xq, xd, bsums, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q5_k(xq, xd, bsums, packed, out):
    _grouped_k(8, xq, xd, bsums, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q6_k(xq, xd, bsums, packed, out):
    _grouped_k(9, xq, xd, bsums, packed, out)


# Two groups at a time in 512-bit registers (WIDE): the 256-bit byte multiply-add and the
# 512-bit one issue at about the same rate here (7.5 and 7.1 billion a second on one core),
# so a 512-bit one does twice the work.
@njit(cache=True, parallel=True, fastmath=True)
def _product_q4_k_wide(xq, xd, bsums, packed, out):
    _grouped_k_wide(4, xq, xd, bsums, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q5_k_wide(xq, xd, bsums, packed, out):
    _grouped_k_wide(8, xq, xd, bsums, packed, out)


@njit(cache=True, parallel=True, fastmath=True)
def _product_q6_k_wide(xq, xd, bsums, packed, out):
    _grouped_k_wide(9, xq, xd, bsums, packed, out)


_PRODUCTS = {
    2: _product_q8_0,
    3: _product_q4_0,
    4: _product_q4_k,
    5: _product_q4_1,
    6: _product_q5_0,
    7: _product_q5_1,
    8: _product_q5_k,
    9: _product_q6_k,
    10: _product_tq2_0,
}
_WIDE_PRODUCTS = {4: _product_q4_k_wide, 8: _product_q5_k_wide, 9: _product_q6_k_wide}


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
def _plus_128(xq):
    """(n, cols) int8 plus 128, as uint8 (Q6_K's unsigned input, _q6_sums)."""
    out = np.empty(xq.shape, np.uint8)
    for t in range(xq.shape[0]):
        for j in range(xq.shape[1]):
            out[t, j] = np.uint8(np.int32(xq[t, j]) + 128)
    return out


@njit(cache=True, inline="always")
def _sums_per_32(bsums):
    """(n, cols / 16) int32 sums per 16 into (n, cols / 32) int16 sums per 32."""
    out = np.empty((bsums.shape[0], bsums.shape[1] // 2), np.int16)
    for t in range(bsums.shape[0]):
        for j in range(out.shape[1]):
            out[t, j] = bsums[t, 2 * j] + bsums[t, 2 * j + 1]
    return out


@njit(cache=True, inline="always")
def _grouped_k(kind, xq, xd, bsums, packed, out):
    """As _grouped, for the 256-weight kinds. Q4_K/Q5_K take the input's sums per 32 as int16
    (at most 32 * 127 in magnitude), for their mins' vpmaddwd (_k4_mins); Q6_K its input
    plus 128 (_q6_sums)."""
    if kind == 9:
        xq = _plus_128(xq)
    else:
        bsums = _sums_per_32(bsums)
    for g in prange(packed.shape[0]):
        _k_rows(kind, xq, xd, bsums, packed, out, g, 1)


@njit(cache=True, inline="always")
def _grouped_k_wide(kind, xq, xd, bsums, packed, out):
    """_grouped_k two groups (16 rows) at a time in 512-bit registers, an odd last group
    alone."""
    if kind == 9:
        xq = _plus_128(xq)
    else:
        bsums = _sums_per_32(bsums)
    pairs = packed.shape[0] // 2
    for j in prange(pairs + packed.shape[0] % 2):
        if j < pairs:
            _k_rows(kind, xq, xd, bsums, packed, out, 2 * j, 2)
        else:
            _k_rows(kind, xq, xd, bsums, packed, out, 2 * j, 1)


@njit(cache=True, inline="always")
def _k_rows(kind, xq, xd, bsums, packed, out, g, wide):
    """out's columns of group g (wide 2: and g + 1) for every input row."""
    nb = xq.shape[1] // 256
    whole = xq.shape[0] // TOKENS * TOKENS
    grp, gstride, rows = packed[g], packed.shape[1], GROUP * wide
    p = _stack_f32(WIDE_ROWS)
    acc = carray(p, (WIDE_ROWS,))
    p4 = _stack_f32(WIDE_ACC)
    acc4 = carray(p4, (WIDE_ACC,))
    for t in range(0, whole, TOKENS):
        for j in range(TOKENS * rows):
            acc4[j] = 0.0
        for b in range(nb):
            if wide == 1:
                _four_k(kind, p4, grp, xq, xd, bsums, t, b)
            else:
                _four_k_wide(kind, p4, grp, gstride, xq, xd, bsums, t, b)
        for k in range(TOKENS):
            for i in range(rows):
                out[t + k, g * GROUP + i] = acc4[rows * k + i]
    for t in range(whole, xq.shape[0]):  # the blocks summed in the same order as above
        for j in range(rows):
            acc[j] = 0.0
        for b in range(nb):
            if wide == 1:
                _one_k(kind, p, grp, xq, xd, bsums, t, b)
            else:
                _one_k_wide(kind, p, grp, gstride, xq, xd, bsums, t, b)
        for i in range(rows):
            out[t, g * GROUP + i] = acc[i]


@njit(cache=True, inline="always")
def _q8_0_flip():
    """What regrouped Q8_0 weights carry above the real ones: with VNNI they are stored as
    unsigned bytes w + 128 for its unsigned-by-signed byte products. Without it those
    products pair into saturating int16 sums, which 255 * 127 twice would overflow, so the
    weights stay signed and multiply as |w| times x with w's sign (2 * 128 * 127 fits)."""
    return 128 if i8dot.VNNI else 0


# ---------------------------------------------------------------- the layout
# A group block holds, for each of its 8 rows i, the row's file block cut into units: unit a
# of `size` bytes at the block's src + a size goes to dst + 8 size a + size i.


@njit(cache=True, inline="always")
def _units(row, src, size, count, grp, dst, i, flip):
    for a in range(count):
        for j in range(size):
            grp[dst + 8 * size * a + size * i + j] = row[src + size * a + j] ^ flip


@njit(cache=True, inline="always")
def _units_back(grp, dst, size, count, row, src, i, flip):
    for a in range(count):
        for j in range(size):
            row[src + size * a + j] = grp[dst + 8 * size * a + size * i + j] ^ flip


@njit(cache=True, inline="always")
def _high_in(row, src, grp, dst, i):
    """Q5_0/Q5_1's 32 fifth bits (a little-endian uint32 at row[src], bit k: weight k) into 4
    bytes at grp[dst + 4i]: bit c of byte j is weight 4c + j's."""
    for j in range(4):
        v = 0
        for c in range(8):
            k = 4 * c + j
            v |= ((np.int32(row[src + k // 8]) >> (k % 8)) & 1) << c
        grp[dst + 4 * i + j] = v


@njit(cache=True, inline="always")
def _high_back(grp, dst, i, row, src):
    for j in range(4):
        row[src + j] = 0
    for j in range(4):
        v = np.int32(grp[dst + 4 * i + j])
        for c in range(8):
            k = 4 * c + j
            row[src + k // 8] |= ((v >> c) & 1) << (k % 8)


@njit(cache=True, inline="always")
def _min_at(j, i):
    """Where min j of row i sits among a group block's mins: pairs of sub-blocks, 16 bytes
    each, a row's two side by side (so that they widen to one int16 pair per row)."""
    return 64 + 16 * (j >> 1) + 2 * i + (j & 1)


@njit(cache=True, inline="always")
def _k_scales_in(row, src, grp, dst, i):
    """Q4_K/Q5_K's 12 bytes of 6-bit scales and mins at row[src] as a byte each: scale j at
    grp[dst + 8j + i], min j at grp[dst + _min_at(j, i)]."""
    for j in range(8):
        sc, m = _k4_scale_min(j, row, src)
        grp[dst + 8 * j + i] = sc
        grp[dst + _min_at(j, i)] = m


@njit(cache=True, inline="always")
def _k_scales_back(grp, dst, i, row, src):
    """The inverse of _k_scales_in: the 12 packed bytes (llama.cpp's get_scale_min_k4 read
    backwards; every bit of the 12 bytes is a bit of a scale or a min)."""
    for j in range(4):
        sc, m = np.int32(grp[dst + 8 * j + i]), np.int32(grp[dst + _min_at(j, i)])
        sc4, m4 = np.int32(grp[dst + 8 * (j + 4) + i]), np.int32(grp[dst + _min_at(j + 4, i)])
        row[src + j] = sc | ((sc4 >> 4) << 6)
        row[src + 4 + j] = m | ((m4 >> 4) << 6)
        row[src + 8 + j] = (sc4 & 15) | ((m4 & 15) << 4)


@njit(cache=True, inline="always")
def _q6_offset_in(row, src, grp, dst, i):
    """Q6_K: 128 sum_s sc_s sum over sub-block s of (q - 32) for row i's file block at
    row[src] (ql: 128 bytes, qh: 64, scales: 16 int8), as a little-endian int32 at
    grp[dst + Q6_OFFSETS + 4i]: what the input's + 128 adds to the row's block sum."""
    total = 0
    for n in range(2):
        ql, qh, sc = src + 64 * n, src + 128 + 32 * n, src + 192 + 8 * n
        for j in range(32):
            low, high = np.int32(row[ql + j]), np.int32(row[ql + 32 + j])
            bits = np.int32(row[qh + j])
            quarter = (
                (low & 15) | ((bits & 3) << 4),
                (high & 15) | (((bits >> 2) & 3) << 4),
                (low >> 4) | (((bits >> 4) & 3) << 4),
                (high >> 4) | (((bits >> 6) & 3) << 4),
            )
            for q in range(4):
                scale = np.int32(np.int8(row[sc + j // 16 + 2 * q]))
                total += scale * (quarter[q] - 32)
    v = np.uint32(np.int32(128 * total))
    for b in range(4):
        grp[dst + Q6_OFFSETS + 4 * i + b] = (v >> np.uint32(8 * b)) & np.uint32(255)


@njit(cache=True, inline="always")
def _plan(kind):
    """A file block's unit copies: (file offset, unit size, units, group offset), padded with
    empty ones. Q5_0/Q5_1's fifth bits and Q4_K/Q5_K's scales move apart (_special)."""
    none = (0, 0, 0, 0)
    if kind == 2:
        return (0, 2, 1, 0), (2, 4, 8, 16), none, none
    if kind == 3:
        return (0, 2, 1, 0), (2, 4, 4, 16), none, none
    if kind == 5:
        return (0, 2, 1, 0), (2, 2, 1, 16), (4, 4, 4, 32), none
    if kind == 6:
        return (0, 2, 1, 0), (6, 4, 4, 48), none, none
    if kind == 7:
        return (0, 2, 1, 0), (2, 2, 1, 16), (8, 4, 4, 64), none
    if kind == 4:
        return (0, 2, 1, 0), (2, 2, 1, 16), (16, 4, 32, 160), none
    if kind == 8:
        return (0, 2, 1, 0), (2, 2, 1, 16), (16, 4, 8, 160), (48, 4, 32, 416)
    if kind == 9:
        return (208, 2, 1, 0), (192, 1, 16, 16), (0, 4, 32, 144), (128, 4, 16, 1168)
    return (64, 2, 1, 0), (0, 4, 16, 16), none, none


@njit(cache=True, inline="always")
def _place(kind, row, src, grp, dst, i):
    """Row i's file block at row[src] into the group block at grp[dst]."""
    for at, size, count, to in _plan(kind):
        flip = _q8_0_flip() if kind == 2 and size == 4 else 0
        _units(row, src + at, size, count, grp, dst + to, i, flip)
    if kind == 6 or kind == 7:
        at, to = (2, 16) if kind == 6 else (4, 32)
        _high_in(row, src + at, grp, dst + to, i)
    if kind == 4 or kind == 8:
        _k_scales_in(row, src + 4, grp, dst + 32, i)
    if kind == 9:
        _q6_offset_in(row, src, grp, dst, i)


@njit(cache=True, inline="always")
def _place_back(kind, grp, dst, i, row, src):
    """The inverse of _place."""
    for at, size, count, to in _plan(kind):
        flip = _q8_0_flip() if kind == 2 and size == 4 else 0
        _units_back(grp, dst + to, size, count, row, src + at, i, flip)
    if kind == 6 or kind == 7:
        at, to = (2, 16) if kind == 6 else (4, 32)
        _high_back(grp, dst + to, i, row, src + at)
    if kind == 4 or kind == 8:
        _k_scales_back(grp, dst + 32, i, row, src + 4)


@njit(cache=True, nogil=True)
def interleave(kind, raw, packed):
    """Rows of kind (GROUPED) in the file's layout (rows, blocks * BLOCK_BYTES) into the
    grouped layout above. Serial: a parallel kernel at load would start numba's OpenMP
    runtime before the caller's first product, and in a process that imported torch after
    that (bench_embed's peer), torch ran 10x slower."""
    size, step = _file_block(kind), _STEP[kind]
    nb = raw.shape[1] // size
    for g in range(packed.shape[0]):
        for i in range(GROUP):
            row = raw[g * GROUP + i]
            for b in range(nb):
                _place(kind, row, b * size, packed[g], b * step, i)


@njit(cache=True, nogil=True)
def deinterleave(kind, packed, raw):
    """The inverse of interleave, for packed's groups into raw's rows. A twin of interleave
    rather than one function with a direction: the file's rows are a read-only mapping,
    which numba will not type in a function that also writes to them."""
    size, step = _file_block(kind), _STEP[kind]
    nb = raw.shape[1] // size
    for g in range(packed.shape[0]):
        for i in range(GROUP):
            row = raw[g * GROUP + i]
            for b in range(nb):
                _place_back(kind, packed[g], b * step, i, row, b * size)


_FILE_BLOCK = tuple(BLOCK_BYTES.get(k, 0) for k in range(11))


@njit(cache=True, inline="always")
def _file_block(kind):
    return _FILE_BLOCK[kind]
