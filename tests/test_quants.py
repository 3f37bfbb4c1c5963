"""Weight kernels against gguf.quants (the reference twin) and numpy products."""

import gguf.quants as gq
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from llm import quants
from llm.errors import UnsupportedModelError
from llm.gguf_file import Tensor

ROWS, COLS = 40, 512


def _tensor(qtype, rng):
    W = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    if qtype == Q.F32:
        return Tensor("w", qtype, W.shape, W), W
    if qtype == Q.F16:
        raw = W.astype(np.float16)
        return Tensor("w", qtype, W.shape, raw), raw.astype(np.float32)
    if qtype == Q.Q4_K:  # gguf.quants cannot quantize K types: random blocks, finite scales
        blocks = rng.integers(0, 256, size=(ROWS, COLS // 256, 144), dtype=np.uint8)
        blocks[:, :, 0:2] = np.frombuffer(np.float16(0.013).tobytes(), np.uint8)
        blocks[:, :, 2:4] = np.frombuffer(np.float16(0.021).tobytes(), np.uint8)
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


@pytest.mark.parametrize("qtype", quants.SUPPORTED, ids=lambda q: q.name)
@pytest.mark.parametrize("n", [1, quants.DIRECT_MAX_ROWS, 33])
def test_matmul_matches_numpy(qtype, n, rng, monkeypatch):
    monkeypatch.setattr(quants, "SLAB_BYTES", 4 * COLS * 7)  # several slabs, one short
    t, ref = _tensor(qtype, rng)
    x = rng.standard_normal((n, COLS)).astype(np.float32)
    expected = x.astype(np.float64) @ ref.T.astype(np.float64)
    np.testing.assert_allclose(quants.matmul(x, t), expected, rtol=1e-4, atol=1e-3)


def test_unsupported_type_and_shape(rng):
    W = rng.standard_normal((4, 64)).astype(np.float32)
    t = Tensor("w", Q.Q4_1, W.shape, gq.quantize(W, Q.Q4_1))
    with pytest.raises(UnsupportedModelError, match="Q4_1"):
        quants.matmul(W, t)
    with pytest.raises(ValueError, match="columns"):
        quants.matmul(np.ones((2, 32), np.float32), Tensor("w", Q.F32, W.shape, W))
