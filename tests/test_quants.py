"""Weight kernels against gguf.quants (the reference twin) and numpy products."""

import gguf.quants as gq
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

from llm import quants
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


@pytest.mark.parametrize("qtype", quants.SUPPORTED, ids=lambda q: q.name)
@pytest.mark.parametrize("n", [1, quants.DIRECT_MAX_ROWS, 33])
def test_matmul_matches_numpy(qtype, n, rng, monkeypatch):
    monkeypatch.setattr(quants, "SLAB_BYTES", 4 * COLS * 7)  # several slabs, one short
    t, ref = _tensor(qtype, rng)
    x = rng.standard_normal((n, COLS)).astype(np.float32)
    expected = x.astype(np.float64) @ ref.T.astype(np.float64)
    np.testing.assert_allclose(quants.matmul(x, t), expected, rtol=1e-4, atol=1e-3)


def test_unsupported_type_and_shape(rng):
    W = rng.standard_normal((4, 256)).astype(np.float32)
    t = Tensor("w", Q.Q2_K, W.shape, np.zeros((4, 84), np.uint8))
    with pytest.raises(UnsupportedModelError, match="Q2_K"):
        quants.matmul(W, t)
    with pytest.raises(ValueError, match="columns"):
        quants.matmul(np.ones((2, 32), np.float32), Tensor("w", Q.F32, W.shape, W))
