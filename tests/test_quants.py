"""Weight kernels against gguf.quants (the reference twin) and numpy products."""

import gguf.quants as gq
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

from llm import i8dot, quants
from llm.errors import UnsupportedModelError
from llm.gguf_file import Tensor

ROWS, COLS = 40, 512


# Where the f16 scales sit in blocks gguf.quants cannot make (K types): set them finite.
SCALE_BYTES = {Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208,)}


def _tensor(qtype, rng):
    W = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    if qtype == Q.F32:
        return Tensor("w", qtype, W.shape, W), W
    if qtype == Q.F16:
        raw = W.astype(np.float16)
        return Tensor("w", qtype, W.shape, raw), raw.astype(np.float32)
    if qtype in SCALE_BYTES:
        block, size = GGML_QUANT_SIZES[qtype]
        blocks = rng.integers(0, 256, size=(ROWS, COLS // block, size), dtype=np.uint8)
        for at in SCALE_BYTES[qtype]:
            blocks[:, :, at : at + 2] = np.frombuffer(np.float16(0.013).tobytes(), np.uint8)
        raw = blocks.reshape(ROWS, -1)
    else:
        raw = gq.quantize(W, qtype)
    return Tensor("w", qtype, W.shape, raw), gq.dequantize(raw, qtype).reshape(ROWS, COLS)


@pytest.mark.parametrize("qtype", quants.SUPPORTED, ids=lambda q: q.name)
def test_dequantize_matches_gguf(qtype, rng):
    t, ref = _tensor(qtype, rng)
    np.testing.assert_array_equal(quants.dequantize(t), ref)
    rows = np.array([3, 0, 39, 3])
    np.testing.assert_array_equal(quants.dequantize(t, rows), ref[rows])
    np.testing.assert_array_equal(quants.dequantize(t, slice(5, 9)), ref[5:9])


def _int8_input(x):
    """The input as the integer kernels see it: blocks of 32 rounded to 8 bits with a
    float16 scale (llama.cpp's Q8_0)."""
    blocks = x.reshape(x.shape[0], -1, 32)
    d = np.abs(blocks).max(axis=-1, keepdims=True) / np.float32(127)
    inv = np.divide(1, d, out=np.zeros_like(d), where=d > 0)
    q = np.rint(blocks * inv)
    return (q * d.astype(np.float16).astype(np.float64)).reshape(x.shape)


@pytest.mark.parametrize("qtype", quants.SUPPORTED, ids=lambda q: q.name)
@pytest.mark.parametrize("n", [1, quants.DIRECT_MAX_ROWS, 33])
@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float"])
def test_matmul_matches_numpy(qtype, n, int8, rng, monkeypatch):
    integer = int8 and i8dot.AVAILABLE and quants._KIND.get(qtype) in quants.INT8_KINDS
    if int8 and not integer:
        pytest.skip("no integer kernel for this type here")
    monkeypatch.setattr(quants, "SLAB_BYTES", 4 * COLS * 7)  # several slabs, one short
    monkeypatch.setattr(i8dot, "AVAILABLE", int8 and i8dot.AVAILABLE)
    t, ref = _tensor(qtype, rng)
    x = rng.standard_normal((n, COLS)).astype(np.float32)
    xin = _int8_input(x) if integer and n <= quants.DIRECT_MAX_ROWS else x.astype(np.float64)
    expected = xin @ ref.T.astype(np.float64)
    np.testing.assert_allclose(quants.matmul(x, t, int8=True), expected, rtol=1e-4, atol=1e-3)
    if integer:  # without int8=True the input is used as it is
        exact = x.astype(np.float64) @ ref.T.astype(np.float64)
        np.testing.assert_allclose(quants.matmul(x, t), exact, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("n", [1, 2, 3, 15, quants.F32_DIRECT_MAX_ROWS, 65])
@pytest.mark.parametrize("rows", [1, 4, 7, 40])
def test_float32_matmul_matches_numpy(n, rows, rng):
    """The float32 kernel (odd input rows, a partial last block of weight rows) and BLAS."""
    w = rng.standard_normal((rows, 384)).astype(np.float32)
    x = rng.standard_normal((n, 384)).astype(np.float32)
    expected = x.astype(np.float64) @ w.T.astype(np.float64)
    np.testing.assert_allclose(quants.matmul_f32(x, w), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(not i8dot.AVAILABLE, reason="no AVX2")
def test_int8_input_rounding(rng):
    x = rng.standard_normal((3, 256)).astype(np.float32) * np.float32(3)
    x[1, :32] = 0  # an all-zero block
    x[2, 40] = 1e4  # one block dominated by a large value
    xq, xd, xsum = np.empty(x.shape, np.int8), np.empty((3, 8), np.float32), np.empty((3, 8))
    i8dot.quantize(x, xq, xd, xsum)
    np.testing.assert_array_equal(xsum, xq.reshape(3, 8, 32).sum(axis=-1))
    np.testing.assert_array_equal(xq * np.repeat(xd, 32, axis=1).astype(np.float64), _int8_input(x))
    assert np.abs(xq).max() == 127 and not xq[1, :32].any()


def test_unsupported_type_and_shape(rng):
    W = rng.standard_normal((4, 256)).astype(np.float32)
    t = Tensor("w", Q.Q2_K, W.shape, np.zeros((4, 84), np.uint8))
    with pytest.raises(UnsupportedModelError, match="Q2_K"):
        quants.matmul(W, t)
    with pytest.raises(ValueError, match="columns"):
        quants.matmul(np.ones((2, 32), np.float32), Tensor("w", Q.F32, W.shape, W))
