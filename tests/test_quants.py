"""Weight kernels against gguf.quants (the reference twin) and numpy products."""

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
from llm.errors import UnsupportedModelError
from llm.gguf_file import Tensor
from tests.conftest import ROOT
from tests.helpers.quant_twins import rounded_input

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


def _kernels():
    """(qtype, int8): every type through the float kernels, and through the integer ones the
    types that have them."""
    for qtype in quants.SUPPORTED:
        yield pytest.param(qtype, False, id=f"float-{qtype.name}")
        if quants._KIND.get(qtype) in quants.INT8_KINDS:
            yield pytest.param(qtype, True, id=f"int8-{qtype.name}")


@pytest.mark.parametrize("qtype, int8", list(_kernels()))
@pytest.mark.parametrize("n", [1, quants.DIRECT_MAX_ROWS, 33])
def test_matmul_matches_numpy(qtype, n, int8, rng, monkeypatch):
    if int8 and not i8dot.AVAILABLE:
        pytest.skip("no AVX2")
    monkeypatch.setattr(quants, "SLAB_BYTES", 4 * COLS * 7)  # several slabs, one short
    monkeypatch.setattr(i8dot, "AVAILABLE", int8)
    t, ref = _tensor(qtype, rng)
    x = rng.standard_normal((n, COLS)).astype(np.float32)
    # the input as the integer kernels round it for this type (Q8_0, or Q8_K for Q4_K, Q6_K, TQ2_0)
    xin = rounded_input(x, qtype) if int8 and n <= quants.DIRECT_MAX_ROWS else x.astype(np.float64)
    expected = xin @ ref.T.astype(np.float64)
    np.testing.assert_allclose(quants.matmul(x, t, int8=True), expected, rtol=1e-4, atol=1e-3)
    if int8:  # without int8=True the input is used as it is
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
    expected = rounded_input(x, Q.Q8_0)
    np.testing.assert_array_equal(xq * np.repeat(xd, 32, axis=1).astype(np.float64), expected)
    assert np.abs(xq).max() == 127 and not xq[1, :32].any()


def test_unsupported_type_and_shape(rng):
    W = rng.standard_normal((4, 256)).astype(np.float32)
    t = Tensor("w", Q.Q2_K, W.shape, np.zeros((4, 84), np.uint8))
    with pytest.raises(UnsupportedModelError, match="Q2_K"):
        quants.matmul(W, t)
    with pytest.raises(ValueError, match="columns"):
        quants.matmul(np.ones((2, 32), np.float32), Tensor("w", Q.F32, W.shape, W))


@pytest.mark.skipif(not i8dot.AVAILABLE, reason="no AVX2")
@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q8_0, Q.TQ2_0], ids=lambda q: q.name)
@pytest.mark.parametrize("n", [1, 3, 6, quants.DIRECT_MAX_ROWS + 1])
def test_interleaved_matches_row_kernels(qtype, n, rng, monkeypatch):
    """The 8-row layouts: the same products as the row-at-a-time kernels (integer) or the
    dequantized weights (many rows), and the layout round-trips exactly."""
    monkeypatch.setattr(quants, "SLAB_BYTES", 4 * COLS * 12)  # slabs rounded to 8 rows
    t, ref = _tensor(qtype, rng)
    kind = quants._KIND[qtype]
    packed = quants.interleave(t)
    size = i8group.GROUP_BLOCK[kind]
    blocks = COLS // i8group.BLOCK_WEIGHTS[kind]
    assert packed.packed is not None and packed.packed.shape == (ROWS // 8, blocks * size)
    back = np.empty_like(t.raw)
    i8group.deinterleave(kind, packed.packed, back)
    np.testing.assert_array_equal(back, t.raw)
    x = rng.standard_normal((n, COLS)).astype(np.float32)
    integer = quants.matmul(x, packed, int8=True)  # at every row count
    expected = rounded_input(x, qtype) @ ref.T.astype(np.float64)
    np.testing.assert_allclose(integer, expected, rtol=1e-4, atol=1e-3)
    for i in range(n):  # a row alone gives exactly what it gives among others
        np.testing.assert_array_equal(quants.matmul(x[i : i + 1], packed, int8=True)[0], integer[i])
    if n <= quants.DIRECT_MAX_ROWS:
        rows = quants.matmul(x, t, int8=True)
        np.testing.assert_allclose(integer, rows, rtol=1e-5, atol=1e-4)
    exact = x.astype(np.float64) @ ref.T.astype(np.float64)
    np.testing.assert_allclose(quants.matmul(x, packed), exact, rtol=1e-4, atol=1e-3)
    big = max(n, quants.DIRECT_MAX_ROWS + 1)
    xb = rng.standard_normal((big, COLS)).astype(np.float32)
    np.testing.assert_array_equal(quants.matmul(xb, packed), quants.matmul(xb, t))


@pytest.mark.skipif(not i8dot.AVAILABLE, reason="no AVX2")
def test_integer_kernels_without_vnni(tmp_path):
    """The AVX2 path CPUs without VNNI take (byte products paired into saturating int16 sums,
    then int32), compiled afresh in a process that turns VNNI off: every integer kind gives
    the products of its dequantized weights and the 8-bit input, regrouped or not (regrouped
    Q8_0 keeps its weights signed there: w + 128 would overflow the int16 pairs)."""
    script = textwrap.dedent(
        """
        import gguf.quants as gq, numpy as np
        from gguf import GGMLQuantizationType as Q
        from llm import i8dot
        i8dot.VNNI = False
        from llm import quants
        from llm.gguf_file import Tensor
        from tests.helpers.quant_twins import rounded_input
        rng = np.random.default_rng(7)
        W = rng.standard_normal((16, 512)).astype(np.float32)
        x = rng.standard_normal((5, 512)).astype(np.float32) * 3
        for q in (Q.Q8_0, Q.Q4_0, Q.TQ2_0):
            raw = gq.quantize(W, q)
            t = Tensor("w", q, W.shape, raw)
            w = gq.dequantize(raw, q).reshape(W.shape).astype(np.float64)
            ref = rounded_input(x, q) @ w.T
            grouped = quants.interleave(t)
            assert grouped.packed is not None, q
            for w in (t, grouped):
                got = quants.matmul(x, w, int8=True, direct_rows=8)
                np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3, err_msg=q.name)
        print("ok")
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_interleave_leaves_other_tensors(rng):
    for qtype in (Q.F16, Q.BF16, Q.TQ1_0):
        t, _ = _tensor(qtype, rng)
        assert quants.interleave(t) is t
    W = rng.standard_normal((12, 64)).astype(np.float32)  # 12 rows: not groups of 8
    t = Tensor("w", Q.Q4_0, W.shape, gq.quantize(W, Q.Q4_0))
    assert quants.interleave(t) is t


def test_release_pages_keeps_memory_mapped_values(tmp_path, rng):
    """Released pages of a read-only file mapping read back the same; an array in ordinary
    memory is not touched."""
    data = rng.integers(0, 256, size=5 * 4096 + 123, dtype=np.uint8)
    path = tmp_path / "blob"
    data.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    assert (mapped == data).all()
    quants.release_pages(mapped[100:])
    np.testing.assert_array_equal(mapped, data)
    plain = data.copy()
    quants.release_pages(plain)
    np.testing.assert_array_equal(plain, data)
