"""The integer kernels of every type in a K-quant mix against their twins: gguf.quants'
dequantized weights times the input rounded as llama.cpp rounds it for that type (Q8_0, Q8_1,
Q8_K: emulated here in numpy, from ggml's quantize_row_q8_0 / q8_1 (AVX2) and
quantize_row_q8_K_ref), multiplied in float64."""

import os
import subprocess
import sys
import textwrap

import gguf.quants as gq
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

from llm import i8dot, i8group, quants
from llm.gguf_file import Tensor
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not i8dot.AVAILABLE, reason="no AVX2")

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


# ------------------------------------------------------------------ the roundings


def test_roundings_are_llama_cpps(rng):
    """quantize (Q8_0), quantize_q8_1 and quantize_k against the numpy emulations above,
    exactly: zero blocks, one dominant value, a negative extreme, ties at .5."""
    x = rng.standard_normal((3, 512)).astype(F32) * F32(3)
    x[0, :256] = 0  # an all-zero block of 256 (and 8 of 32)
    x[1, 300] = -1e4  # the extreme: Q8_K's q is -127 whatever its sign (d has the sign)
    x[2, :32] = np.arange(32, dtype=F32) - F32(15.5)  # scaled halves: ties
    n = x.shape[0]
    xq, xd, xsum = np.empty(x.shape, np.int8), np.empty((n, 16), F32), np.empty((n, 16), F32)
    i8dot.quantize(x, xq, xd, xsum)
    q, d, dh = q8_0(x)
    np.testing.assert_array_equal(xq.reshape(q.shape), q)
    np.testing.assert_array_equal(xd, dh)
    np.testing.assert_array_equal(xsum, q.sum(axis=-1))
    xs = np.empty_like(xd)
    i8dot.quantize_q8_1(x, xq, xd, xs)
    np.testing.assert_array_equal(xs, (d * q.sum(axis=-1).astype(F32)).astype(np.float16))
    kd, bsums = np.empty((n, 2), F32), np.empty((n, 32), np.int32)
    i8dot.quantize_k(x, xq, kd, bsums)
    q, d, sums = q8_k(x)
    np.testing.assert_array_equal(xq.reshape(q.shape), q)
    np.testing.assert_array_equal(kd, d)
    np.testing.assert_array_equal(bsums, sums)
    assert not xq[0, :256].any() and kd[0, 0] == 0 and xq[1, 300] == -127 and kd[1, 1] > 0


# ------------------------------------------------------------------ the products


@pytest.mark.parametrize("qtype", ALL, ids=lambda q: q.name)
@pytest.mark.parametrize("n", [1, 3, 4, 9])
def test_grouped_matches_twin(qtype, n, rng, monkeypatch):
    """Regrouped matrices, decode (1 row) and prefill (4 rows at a time and the rest), 768
    columns (3 blocks of 256: an odd count), against the twin; the layout round-trips."""
    monkeypatch.setattr(quants, "SLAB_BYTES", 4 * 768 * 8)
    t, w = blocks(qtype, 24, 768, rng)
    kind = quants._KIND[qtype]
    grouped = quants.interleave(t)
    assert grouped.packed is not None
    weights = 768 // i8group.BLOCK_WEIGHTS[kind]
    assert grouped.packed.shape == (3, weights * i8group.GROUP_BLOCK[kind])
    back = np.empty_like(t.raw)
    i8group.deinterleave(kind, grouped.packed, back)
    np.testing.assert_array_equal(back, t.raw)
    x = rng.standard_normal((n, 768)).astype(F32)
    x[:, 256:512] *= 40  # blocks of different scales
    got = quants.matmul(x, grouped, int8=True)
    assert_twin(got, x, t, w)
    for i in range(n):  # a row alone gives exactly what it gives among others
        np.testing.assert_array_equal(quants.matmul(x[i : i + 1], grouped, int8=True)[0], got[i])
    if kind in quants.INT8_KINDS:  # the row-at-a-time kernel, same rounding
        assert_twin(quants.matmul(x, t, int8=True, direct_rows=n), x, t, w)
    exact = x.astype(np.float64) @ w.T  # without int8, the input as it is
    np.testing.assert_allclose(quants.matmul(x, grouped), exact, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("qtype", NEW, ids=lambda q: q.name)
def test_extreme_weights_and_inputs(qtype, rng):
    """The largest weight values with the largest scales and inputs at +-127 (no sum may
    overflow or saturate), and input blocks of zeros."""
    t, _ = blocks(qtype, 8, 512, rng)
    raw = np.asarray(t.raw).reshape(8, -1, GGML_QUANT_SIZES[qtype][1]).copy()
    keep = np.zeros(raw.shape[2], bool)
    for at in SCALES[qtype]:
        keep[at : at + 2] = True
    raw[:, :, ~keep] = 0xFF if qtype != Q.Q6_K else 0x7F  # Q6_K: scales of 127, q of 63
    raw[:4, :, ~keep] = 0x80  # Q6_K's most negative scale; others: mixed bits
    t = Tensor("w", qtype, t.shape, raw.reshape(8, -1))
    w = gq.dequantize(t.raw, qtype).reshape(t.shape).astype(np.float64)
    x = np.where(rng.random((5, 512)) < 0.5, F32(-1), F32(1))
    x[1, :256] = 0
    x[2] = 1
    got = quants.matmul(x, quants.interleave(t), int8=True)
    assert_twin(got, x, t, w)


def test_interleave_needs_groups_of_eight(rng):
    """12 rows: not groups of 8, the matrix is left as it is (float kernels, BLAS slabs)."""
    for qtype in NEW:
        t, w = blocks(qtype, 12, 256, rng)
        assert quants.interleave(t) is t
        x = rng.standard_normal((2, 256)).astype(F32)
        exact = x.astype(np.float64) @ w.T
        np.testing.assert_allclose(quants.matmul(x, t, int8=True), exact, rtol=1e-4, atol=2e-3)


def test_integer_kinds_without_vnni(tmp_path):
    """The new kinds on the AVX2 path CPUs without VNNI take (byte products paired into
    saturating int16 sums), compiled afresh in a process that turns VNNI off: the largest
    unsigned weights (Q6_K's 63, Q5's 31) against inputs of +-127 stay exact."""
    script = textwrap.dedent(
        """
        import numpy as np
        from llm import i8dot
        i8dot.VNNI = False
        from llm import quants
        from tests.test_kquants import NEW, assert_twin, blocks
        rng = np.random.default_rng(5)
        for q in NEW:
            t, w = blocks(q, 16, 512, rng)
            x = rng.standard_normal((5, 512)).astype(np.float32)
            x[:, ::2] = np.sign(x[:, ::2]) * 1e3  # pairs of large inputs of one sign
            x[:, 1::2] = np.sign(x[:, ::2]) * 1e3
            grouped = quants.interleave(t)
            assert grouped.packed is not None, q
            assert_twin(quants.matmul(x, grouped, int8=True), x, t, w)
        print("ok")
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
