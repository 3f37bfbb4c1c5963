"""Weights in their GGUF blocks: numba kernels that dequantize them and multiply by them.

matmul(x, W) computes x @ W.T for a weight tensor W of shape (out, in) in any supported type.
Few input rows (decoding) run a numba kernel straight on the blocks, parallel over output
rows (llm/i8dot.py: integer products for Q8_0, Q4_0, Q4_K, Q6_K and TQ2_0 on AVX2 CPUs;
llm/qdot.py: float products for every type); many rows (prefill, embedding batches)
dequantize W a slab of rows at a time into float32 and hand each slab to BLAS, so the block
decoding is paid once per weight row, not once per input. Matrices of the integer kinds
(Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, TQ2_0) that interleave() has regrouped
multiply in integers at any row count (llm/i8group.py).

The integer products round the input as llama.cpp rounds it for each weight type (its
vec_dot_type; llm/i8dot.py): Q8_0 blocks for Q8_0, Q4_0 and Q5_0, Q8_1 for Q4_1 and Q5_1,
Q8_K (blocks of 256, a float32 scale) for Q4_K, Q5_K, Q6_K and TQ2_0.

Block layouts (llama.cpp's ggml-common.h; d, m: f16 scale and offset):
  F16/BF16  one 16-bit value per weight
  Q8_0      32 weights: d, 32 x int8 q;                          w = d q
  Q4_0      32 weights: d, 16 bytes of 4-bit q (low nibbles first);  w = d (q - 8)
  Q4_1      32 weights: d, m, 16 bytes of 4-bit q;               w = d q + m
  Q5_0/Q5_1 as Q4_0/Q4_1 with a fifth bit per weight in 4 bytes qh;  w = d (q - 16) / d q + m
  Q4_K      256 weights: d, dmin, 12 bytes of 6-bit scales and mins of 8 sub-blocks of 32,
            128 bytes of 4-bit q;                                 w = d sc q - dmin m
  Q5_K      as Q4_K with 32 bytes of fifth bits
  Q6_K      256 weights: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, d;
            w = d sc (q - 32)
  TQ2_0     256 ternary weights, 2 bits each, then d;            w = d (q - 1), q in {0,1,2}
  TQ1_0     256 ternary weights, 5 per byte in base 3 (48 bytes) and 4 per byte (4 bytes), d
"""

import ctypes
import dataclasses
import functools
import mmap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from gguf import GGMLQuantizationType as Q
from numba import njit, prange

from llm import i8dot, i8group, qdot
from llm.errors import UnsupportedModelError
from llm.gguf_file import Tensor
from llm.qdot import _bits_f32, _f16, _i8, _k4_scale_min, _trit

SUPPORTED = (
    Q.F32,
    Q.F16,
    Q.BF16,
    Q.Q8_0,
    Q.Q4_0,
    Q.Q4_1,
    Q.Q5_0,
    Q.Q5_1,
    Q.Q4_K,
    Q.Q5_K,
    Q.Q6_K,
    Q.TQ1_0,
    Q.TQ2_0,
)
_SLABS = ThreadPoolExecutor(1, thread_name_prefix="llm-dequantize")
DIRECT_MAX_ROWS = 8  # up to this many input rows multiply on the blocks directly
F32_DIRECT_MAX_ROWS = 64  # float32 weights: our kernel up to this many rows, BLAS beyond
INT8_KINDS = (2, 3, 4, 9, 10)  # Q8_0, Q4_0, Q4_K, Q6_K, TQ2_0: row-at-a-time integer kernels
Q8_1_KINDS = (5, 7)  # Q4_1, Q5_1: their input rounded as Q8_1
Q8_K_KINDS = (4, 8, 9, 10)  # Q4_K, Q5_K, Q6_K, TQ2_0: as Q8_K
SLAB_BYTES = 8 << 20  # float32 bytes of weight rows dequantized per BLAS call


# ---------------------------------------------------------------- one row of each type


@njit(cache=True, inline="always")
def _row_f16(row, out):
    """row: uint8 bytes of one weight row."""
    for i in range(out.shape[0]):
        out[i] = _f16(row, 2 * i)


@njit(cache=True, inline="always")
def _row_bf16(row, out):
    for i in range(out.shape[0]):
        bits = (np.uint32(row[2 * i]) << 16) | (np.uint32(row[2 * i + 1]) << 24)
        out[i] = _bits_f32(bits)


@njit(cache=True, inline="always")
def _row_q8_0(row, out):
    for b in range(out.shape[0] // 32):
        base = b * 34
        d = _f16(row, base)
        for j in range(32):
            out[b * 32 + j] = d * np.float32(np.int8(row[base + 2 + j]))


@njit(cache=True, inline="always")
def _row_q4_0(row, out):
    for b in range(out.shape[0] // 32):
        base = b * 18
        d = _f16(row, base)
        for j in range(16):
            byte = np.int32(row[base + 2 + j])
            out[b * 32 + j] = d * np.float32((byte & 0xF) - 8)
            out[b * 32 + 16 + j] = d * np.float32((byte >> 4) - 8)


@njit(cache=True, inline="always")
def _row_q4_k(row, out):
    for b in range(out.shape[0] // 256):
        base = b * 144
        d = _f16(row, base)
        dmin = _f16(row, base + 2)
        qs = base + 16
        for pair in range(4):  # 64 weights: low nibbles, then high nibbles, of 32 bytes
            sc1, m1 = _k4_scale_min(2 * pair, row, base + 4)
            sc2, m2 = _k4_scale_min(2 * pair + 1, row, base + 4)
            d1, dm1 = d * np.float32(sc1), dmin * np.float32(m1)
            d2, dm2 = d * np.float32(sc2), dmin * np.float32(m2)
            o = b * 256 + pair * 64
            for l in range(32):
                byte = np.int32(row[qs + pair * 32 + l])
                out[o + l] = d1 * np.float32(byte & 0xF) - dm1
                out[o + 32 + l] = d2 * np.float32(byte >> 4) - dm2


@njit(cache=True, inline="always")
def _row_q4_1(row, out):
    for b in range(out.shape[0] // 32):
        base = b * 20
        d, m = _f16(row, base), _f16(row, base + 2)
        for j in range(16):
            byte = np.int32(row[base + 4 + j])
            out[b * 32 + j] = d * np.float32(byte & 0xF) + m
            out[b * 32 + 16 + j] = d * np.float32(byte >> 4) + m


@njit(cache=True, inline="always")
def _high_bits(row, pos):
    return (
        np.uint32(row[pos])
        | (np.uint32(row[pos + 1]) << 8)
        | (np.uint32(row[pos + 2]) << 16)
        | (np.uint32(row[pos + 3]) << 24)
    )


@njit(cache=True, inline="always")
def _row_q5(row, out, with_min):
    """Q5_0 (w = d (q - 16)) and Q5_1 (w = d q + m): 4 low bits in nibbles, the fifth in qh."""
    size = 24 if with_min else 22
    for b in range(out.shape[0] // 32):
        base = b * size
        d = _f16(row, base)
        m = _f16(row, base + 2) if with_min else np.float32(0.0)
        qh = _high_bits(row, base + (4 if with_min else 2))
        qs = base + (8 if with_min else 6)
        for j in range(16):
            byte = np.int32(row[qs + j])
            lo = (byte & 0xF) | np.int32(((qh >> np.uint32(j)) << np.uint32(4)) & np.uint32(0x10))
            hi = (byte >> 4) | np.int32((qh >> np.uint32(j + 12)) & np.uint32(0x10))
            if with_min:
                out[b * 32 + j] = d * np.float32(lo) + m
                out[b * 32 + 16 + j] = d * np.float32(hi) + m
            else:
                out[b * 32 + j] = d * np.float32(lo - 16)
                out[b * 32 + 16 + j] = d * np.float32(hi - 16)


@njit(cache=True, inline="always")
def _row_q5_k(row, out):
    for b in range(out.shape[0] // 256):
        base = b * 176
        d = _f16(row, base)
        dmin = _f16(row, base + 2)
        qh = base + 16
        qs = base + 48
        for pair in range(4):
            sc1, m1 = _k4_scale_min(2 * pair, row, base + 4)
            sc2, m2 = _k4_scale_min(2 * pair + 1, row, base + 4)
            d1, dm1 = d * np.float32(sc1), dmin * np.float32(m1)
            d2, dm2 = d * np.float32(sc2), dmin * np.float32(m2)
            u1, u2 = 1 << (2 * pair), 2 << (2 * pair)
            o = b * 256 + pair * 64
            for l in range(32):
                byte = np.int32(row[qs + pair * 32 + l])
                high = np.int32(row[qh + l])
                out[o + l] = d1 * np.float32((byte & 0xF) + (16 if high & u1 else 0)) - dm1
                out[o + 32 + l] = d2 * np.float32((byte >> 4) + (16 if high & u2 else 0)) - dm2


@njit(cache=True, inline="always")
def _row_q6_k(row, out):
    for b in range(out.shape[0] // 256):
        base = b * 210
        d = _f16(row, base + 208)
        for half in range(2):
            ql = base + half * 64
            qh = base + 128 + half * 32
            sc = base + 192 + half * 8
            o = b * 256 + half * 128
            for l in range(32):
                s = l // 16
                a, c = np.int32(row[ql + l]), np.int32(row[ql + l + 32])
                h = np.int32(row[qh + l])
                q1 = ((a & 0xF) | (((h >> 0) & 3) << 4)) - 32
                q2 = ((c & 0xF) | (((h >> 2) & 3) << 4)) - 32
                q3 = ((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                q4 = ((c >> 4) | (((h >> 6) & 3) << 4)) - 32
                out[o + l] = d * (_i8(row[sc + s]) * np.float32(q1))
                out[o + l + 32] = d * (_i8(row[sc + s + 2]) * np.float32(q2))
                out[o + l + 64] = d * (_i8(row[sc + s + 4]) * np.float32(q3))
                out[o + l + 96] = d * (_i8(row[sc + s + 6]) * np.float32(q4))


@njit(cache=True, inline="always")
def _row_tq2_0(row, out):
    """Ternary, 2 bits per weight: w = d (q - 1) with q in {0, 1, 2}."""
    for b in range(out.shape[0] // 256):
        base = b * 66
        d = _f16(row, base + 64)
        for j in range(0, 64, 32):
            for l in range(4):
                for m in range(32):
                    q = (np.int32(row[base + j + m]) >> (2 * l)) & 3
                    out[b * 256 + j * 4 + l * 32 + m] = d * np.float32(q - 1)


@njit(cache=True, inline="always")
def _row_tq1_0(row, out):
    """Ternary, 5 weights per byte in base 3 (48 bytes), then 4 per byte (4 bytes)."""
    one = np.float32(1.0)
    for b in range(out.shape[0] // 256):
        base = b * 54
        d = _f16(row, base + 52)
        o = b * 256
        power = 1
        for n in range(5):
            for m in range(32):
                out[o + n * 32 + m] = d * (_trit(np.float32(row[base + m]), power) - one)
            for m in range(16):
                trit = _trit(np.float32(row[base + 32 + m]), power)
                out[o + 160 + n * 16 + m] = d * (trit - one)
            power *= 3
        power = 1
        for n in range(4):
            for j in range(4):
                trit = _trit(np.float32(row[base + 48 + j]), power)
                out[o + 240 + n * 4 + j] = d * (trit - one)
            power *= 3


# ---------------------------------------------------------------- kernels
# One dequantizer (rows in parallel), dispatching on the type per row. The direct product
# for few input rows is in llm/qdot.py.

_KIND = {
    Q.F16: 0,
    Q.BF16: 1,
    Q.Q8_0: 2,
    Q.Q4_0: 3,
    Q.Q4_K: 4,
    Q.Q4_1: 5,
    Q.Q5_0: 6,
    Q.Q5_1: 7,
    Q.Q5_K: 8,
    Q.Q6_K: 9,
    Q.TQ2_0: 10,
    Q.TQ1_0: 11,
}


@njit(cache=True, inline="always")
def _row(kind, row, out):
    if kind == 0:
        _row_f16(row, out)
    elif kind == 1:
        _row_bf16(row, out)
    elif kind == 2:
        _row_q8_0(row, out)
    elif kind == 3:
        _row_q4_0(row, out)
    elif kind == 4:
        _row_q4_k(row, out)
    elif kind == 5:
        _row_q4_1(row, out)
    elif kind == 6:
        _row_q5(row, out, False)
    elif kind == 7:
        _row_q5(row, out, True)
    elif kind == 8:
        _row_q5_k(row, out)
    elif kind == 9:
        _row_q6_k(row, out)
    elif kind == 10:
        _row_tq2_0(row, out)
    else:
        _row_tq1_0(row, out)


@njit(cache=True, parallel=True)
def _dequant(kind, raw, out):
    for r in prange(out.shape[0]):
        _row(kind, raw[r], out[r])


@njit(cache=True, nogil=True)
def _dequant_serial(kind, raw, out):
    for r in range(out.shape[0]):
        _row(kind, raw[r], out[r])


def _bytes(t: Tensor) -> np.ndarray:
    """The raw data as (rows, bytes per row) uint8."""
    rows = t.shape[0] if len(t.shape) > 1 else 1
    return np.ascontiguousarray(t.raw).view(np.uint8).reshape(rows, -1)


def stacked(ts: list[Tensor]) -> Tensor | None:
    """Matrices of one block type and width as one matrix, their rows one after another (a
    copy in memory), or None when their types or widths differ or they are float32."""
    first = ts[0]
    for t in ts:
        check(t)
    if first.qtype == Q.F32 or any(
        t.qtype != first.qtype or len(t.shape) != 2 or t.shape[1] != first.shape[1] for t in ts
    ):
        return None
    raw = np.concatenate([_bytes(t) for t in ts])
    rows = sum(t.shape[0] for t in ts)
    return Tensor("+".join(t.name for t in ts), first.qtype, (rows, first.shape[1]), raw)


def interleave(t: Tensor) -> Tensor:
    """t ready for integer products. A matrix of an integer kind (i8group.GROUPED: Q8_0, Q4_0,
    Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, TQ2_0) whose rows come in groups of 8
    gets its weights regrouped for the 8-row integer kernel (llm/i8group.py) in t.packed, and
    the file's pages it came from leave this process's resident memory (the copy replaces
    them, so memory stays near the file size); products then use only the copy. Any other
    tensor, or a CPU without AVX2, comes back unchanged."""
    check(t)
    kind = _KIND.get(t.qtype)
    eligible = kind in i8group.GROUPED and len(t.shape) == 2 and t.shape[0] % i8group.GROUP == 0
    if not (eligible and i8dot.AVAILABLE) or t.packed is not None:
        return t
    raw = _bytes(t)
    blocks = raw.shape[1] // i8group.BLOCK_BYTES[kind]
    packed = np.empty((raw.shape[0] // i8group.GROUP, blocks * i8group.GROUP_BLOCK[kind]), np.uint8)
    i8group.interleave(kind, raw, packed)
    release_pages(t.raw)
    return dataclasses.replace(t, packed=packed)


def release_pages(a: np.ndarray) -> None:
    """Drop the whole pages of a read-only memory-mapped array from this process's resident
    set (Linux madvise DONTNEED). The file stays in the page cache and reading the array
    again maps its pages back. Arrays in ordinary memory are left alone: DONTNEED would
    zero them."""
    if not (isinstance(a, np.memmap) and not a.flags.writeable and hasattr(mmap, "MADV_DONTNEED")):
        return
    start, end = a.ctypes.data, a.ctypes.data + a.nbytes
    lo, hi = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE, end // mmap.PAGESIZE * mmap.PAGESIZE
    if hi > lo:
        _libc().madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), mmap.MADV_DONTNEED)


@functools.cache
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def check(t: Tensor) -> None:
    if t.qtype not in SUPPORTED:
        raise UnsupportedModelError(
            f"tensor {t.name} has type {t.qtype.name}; supported: "
            + ", ".join(q.name for q in SUPPORTED)
        )


def dequantize(t: Tensor, rows=None) -> np.ndarray:
    """Weights as float32, shape (rows, columns); rows: a slice or an array of row numbers
    to take only those (an embedding lookup)."""
    check(t)
    shape = t.shape if len(t.shape) > 1 else (1, t.shape[0])
    if t.qtype == Q.F32:
        data = np.asarray(t.raw, dtype=np.float32).reshape(shape)
        return data if rows is None else data[rows]
    raw = _bytes(t)
    if rows is not None:
        raw = raw[rows]
    out = np.empty((raw.shape[0], shape[1]), dtype=np.float32)
    _dequant(_KIND[t.qtype], raw, out)
    return out


def matmul_f32(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x @ w.T for float32 x (n, in) and w (out, in), both C-contiguous."""
    if x.shape[0] > F32_DIRECT_MAX_ROWS:
        return x @ w.T
    out = np.empty((x.shape[0], w.shape[0]), dtype=np.float32)
    qdot.product_f32(x, w, out)
    return out


def round_input(x: np.ndarray, kind: int, grouped: bool):
    """x (n, cols) float32 rounded to 8 bits as llama.cpp rounds it for weights of kind:
    (xq (n, cols) int8, scales, sums) as the kernels of llm/i8dot.py (grouped False) or
    llm/i8group.py (grouped True) take them (see i8group.product_grouped)."""
    n, cols = x.shape
    xq = np.empty((n, cols), dtype=np.int8)
    if kind in Q8_K_KINDS:
        xd = np.empty((n, cols // 256), dtype=np.float32)
        bsums = np.empty((n, cols // 16), dtype=np.int32)
        i8dot.quantize_k(x, xq, xd, bsums)
        if grouped and kind in i8group.K_KINDS:
            return xq, xd, bsums
        return (xq, *i8dot.k_blocks32(xd, bsums))
    xd = np.empty((n, cols // 32), dtype=np.float32)
    sums = np.empty_like(xd)
    (i8dot.quantize_q8_1 if kind in Q8_1_KINDS else i8dot.quantize)(x, xq, xd, sums)
    return xq, xd, sums


def _rounded(x, kind: int, grouped: bool, memo: dict | None):
    """round_input(x, kind, grouped), from memo when an earlier matrix rounded x alike."""
    if memo is None:
        return round_input(x, kind, grouped)
    key = (kind in Q8_K_KINDS, kind in Q8_1_KINDS, grouped and kind in i8group.K_KINDS)
    if key not in memo:
        memo[key] = round_input(x, kind, grouped)
    return memo[key]


def matmul(
    x: np.ndarray,
    t: Tensor,
    int8: bool = False,
    direct_rows: int = DIRECT_MAX_ROWS,
    memo: dict | None = None,
) -> np.ndarray:
    """x @ W.T for x (n, in) float32 and W (out, in): (n, out) float32. int8: x may be
    rounded to 8 bits for the integer kernels (llm/i8dot.py, llm/i8group.py), as llama.cpp
    does: up to direct_rows rows for any integer type, any number for a regrouped matrix;
    off, the result does not depend on how many rows come at once. direct_rows: up to this
    many rows multiply on the blocks, beyond it slabs are dequantized for BLAS. memo: a dict
    the caller keeps for one x (never changed meanwhile), in which its 8-bit roundings are
    kept for the next matrices of the same input (q, k and v; gate and up)."""
    check(t)
    x = np.ascontiguousarray(x, dtype=np.float32)
    out_rows, cols = t.shape
    if x.shape[1] != cols:
        raise ValueError(f"matmul: x has {x.shape[1]} columns, {t.name} has {cols}")
    if t.qtype == Q.F32:
        return x @ np.asarray(t.raw).reshape(t.shape).T
    packed = t.packed
    integer = int8 and i8dot.AVAILABLE
    # A regrouped matrix multiplies any number of rows in integers, and never in floats on
    # the blocks (that would read the file's pages again).
    if (packed is not None and integer) or (packed is None and x.shape[0] <= direct_rows):
        out = np.empty((x.shape[0], out_rows), dtype=np.float32)
        kind = _KIND[t.qtype]
        if integer and packed is not None:
            i8group.product_grouped(kind, *_rounded(x, kind, True, memo), packed, out)
        elif integer and kind in INT8_KINDS:
            i8dot.product(kind, *_rounded(x, kind, False, memo), _bytes(t), out)
        else:
            qdot.product(kind, x, _bytes(t), out)
        return out
    # Dequantize the next slab on one helper thread while BLAS multiplies this one: BLAS's
    # threads then never compete with numba's (whose idle workers spin for a while after each
    # parallel kernel, which made prefill 1.5x slower).
    out = np.empty((x.shape[0], out_rows), dtype=np.float32)
    kind = _KIND[t.qtype]
    step = max(1, SLAB_BYTES // (4 * cols))
    if packed is not None:
        step = max(i8group.GROUP, step // i8group.GROUP * i8group.GROUP)
    slabs = [slice(a, min(a + step, out_rows)) for a in range(0, out_rows, step)]
    raw = _bytes(t) if packed is None else None

    def decode(rows):
        w = np.empty((rows.stop - rows.start, cols), dtype=np.float32)
        if packed is None:
            _dequant_serial(kind, raw[rows], w)
        else:  # back to the file's layout, a slab at a time
            size = cols // i8group.BLOCK_WEIGHTS[kind] * i8group.BLOCK_BYTES[kind]
            blocks = np.empty((rows.stop - rows.start, size), dtype=np.uint8)
            g = rows.start // i8group.GROUP
            i8group.deinterleave(kind, packed[g : g + len(blocks) // i8group.GROUP], blocks)
            _dequant_serial(kind, blocks, w)
        return w

    pending = _SLABS.submit(decode, slabs[0])
    for i, rows in enumerate(slabs):
        w = pending.result()
        if i + 1 < len(slabs):
            pending = _SLABS.submit(decode, slabs[i + 1])
        np.matmul(x, w.T, out=out[:, rows])
    return out
