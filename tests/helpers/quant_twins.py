"""Twins of the integer kernels: gguf.quants' dequantized weights times the input rounded as
llama.cpp rounds it for each weight type (Q8_0, Q8_1, Q8_K: emulated in numpy from ggml's
quantize_row_q8_0 / q8_1 (AVX2) and quantize_row_q8_K_ref), multiplied in float64; and
tensors of every type to feed them."""

import gguf.quants as gq
import numpy as np
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

from llm.gguf_file import Tensor

# Where the float16 scales (d, and m / dmin) sit in a block: set finite, the rest random bytes
SCALES = {
    Q.Q4_1: (0, 2),
    Q.Q5_0: (0,),
    Q.Q5_1: (0, 2),
    Q.Q4_K: (0, 2),
    Q.Q5_K: (0, 2),
    Q.Q6_K: (208,),
}
NEW = (Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K)
ALL = (Q.Q8_0, Q.Q4_0, Q.TQ2_0, *NEW)
Q8_1 = (Q.Q4_1, Q.Q5_1)
Q8_K = (Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.TQ2_0)
F32 = np.float32


def blocks(qtype, rows, cols, rng, scale=0.013):
    """A (rows, cols) tensor of qtype: random bytes with finite float16 scales (every weight
    value and every sub-block scale occurs), or gguf.quants' own (Q8_0, Q4_0, TQ2_0: its
    2-bit fields must not be 3); and its weights, dequantized by gguf.quants, as float64."""
    if qtype in SCALES:
        block, size = GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
        for at in SCALES[qtype]:
            values = (rng.uniform(0.5, 1.5, raw.shape[:2]) * scale).astype(np.float16)
            raw[:, :, at : at + 2] = values[..., None].view(np.uint8)
        raw = raw.reshape(rows, -1)
    else:
        raw = gq.quantize(rng.standard_normal((rows, cols)).astype(F32), qtype)
    w = gq.dequantize(raw, qtype).reshape(rows, cols).astype(np.float64)
    return Tensor("w", qtype, (rows, cols), raw), w


# ------------------------------------------------------------------ llama.cpp's roundings


def q8_0(x):
    """quantize_row_q8_0 (AVX2): per 32, q = rint(x (127 / amax)) (float32 products, ties to
    even), d = amax / 127 kept as float16. Returns q (n, blocks, 32), float32 d before its
    float16 rounding, and the kept d (float64), both (n, blocks)."""
    b = x.reshape(x.shape[0], -1, 32).astype(F32)
    amax = np.abs(b).max(axis=-1)
    d = amax / F32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(amax != 0, F32(127) / amax, F32(0)).astype(F32)
    q = np.rint(b * inv[..., None])
    return q, d, d.astype(np.float16).astype(np.float64)


def q8_k(x):
    """quantize_row_q8_K_ref: per 256, max = the first value of largest magnitude, q =
    min(127, rint(x (-127 / max))), d = 1 / (-127 / max) in float32. Returns q (n, blocks,
    256), d (n, blocks) and the sums of q per 16 (n, blocks * 16)."""
    b = x.reshape(x.shape[0], -1, 256).astype(F32)
    top = np.take_along_axis(b, np.abs(b).argmax(axis=-1)[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore"):
        iscale = np.where(top != 0, F32(-127) / top, F32(0)).astype(F32)
        d = np.where(top != 0, F32(1) / iscale, F32(0)).astype(F32)
    q = np.minimum(127, np.rint(b * iscale[..., None]))
    sums = q.reshape(x.shape[0], -1, 16).sum(axis=-1)
    return q, d, sums.astype(np.int32)


def rounded_input(x, qtype):
    """x as the integer kernels for qtype see it, float64 (n, cols)."""
    if qtype in Q8_K:
        q, d, _ = q8_k(x)
        return (q * d[..., None].astype(np.float64)).reshape(x.shape)
    q, _, dh = q8_0(x)
    return (q * dh[..., None]).reshape(x.shape)


def reference(x, t, w):
    """The twin of quants.matmul(x, t, int8=True): the rounded input times the dequantized
    weights in float64, and the size of the sum's terms, (n, rows) each. Q4_1/Q5_1: llama.cpp
    multiplies each block's min by the input block's s (Q8_1: float16(d sum(q)), d unrounded),
    not by the rounded d times sum(q)."""
    xin = rounded_input(x, t.qtype)
    out = xin @ w.T
    if t.qtype in Q8_1:
        q, d, dh = q8_0(x)
        isum = q.sum(axis=-1)
        s = (d * isum.astype(F32)).astype(np.float16).astype(np.float64)  # (n, blocks)
        size = GGML_QUANT_SIZES[t.qtype][1]
        raw = np.asarray(t.raw).reshape(t.shape[0], -1, size)
        m = raw[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float64)  # (rows, blocks)
        out += s @ m.T - (dh * isum) @ m.T
    return out, np.abs(xin) @ np.abs(w).T


def assert_twin(got, x, t, w, rtol=2e-6):
    """got agrees with the twin to float32 summation order: within rtol of the sum of the
    terms' magnitudes, row by row."""
    expected, size = reference(x, t, w)
    err = np.abs(got - expected)
    worst = (err / size).max()
    assert worst <= rtol, f"{t.qtype.name}: {worst:.2e} of the terms' size"
