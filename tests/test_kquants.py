"""The integer kernels of every type in a K-quant mix against their twins
(tests/helpers/quant_twins.py: gguf.quants' dequantized weights times the input rounded as
llama.cpp rounds it for that type, in float64)."""

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
from tests.helpers.quant_twins import ALL, F32, NEW, SCALES, assert_twin, blocks, q8_0, q8_k

pytestmark = pytest.mark.skipif(not i8dot.AVAILABLE, reason="no AVX2")

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
    if kind in i8group.K_KINDS and i8group.WIDE:  # the 8-row kernel of CPUs without AVX-512
        monkeypatch.setattr(i8group, "WIDE", False)
        assert_twin(quants.matmul(x, grouped, int8=True), x, t, w)
        monkeypatch.setattr(i8group, "WIDE", True)
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
    t, _ = blocks(qtype, 16, 512, rng)  # two groups: the K kinds' 16-row kernel too
    raw = np.asarray(t.raw).reshape(16, -1, GGML_QUANT_SIZES[qtype][1]).copy()
    keep = np.zeros(raw.shape[2], bool)
    for at in SCALES[qtype]:
        keep[at : at + 2] = True
    raw[:, :, ~keep] = 0xFF if qtype != Q.Q6_K else 0x7F  # Q6_K: scales of 127, q of 63
    raw[:4, :, ~keep] = 0x80  # Q6_K's most negative scale; others: mixed bits
    raw[12:, :, ~keep] = 0x80
    t = Tensor("w", qtype, t.shape, raw.reshape(16, -1))
    w = gq.dequantize(t.raw, qtype).reshape(t.shape).astype(np.float64)
    x = np.where(rng.random((5, 512)) < 0.5, F32(-1), F32(1))
    x[1, :256] = 0
    x[2] = 1
    got = quants.matmul(x, quants.interleave(t), int8=True)
    assert_twin(got, x, t, w)


def test_interleave_needs_groups_of_eight(rng):
    """12 rows: not groups of 8, the matrix is left as it is: Q4_K and Q6_K multiply in the
    row-at-a-time integer kernels (Q8_K input), the others in floats."""
    for qtype in NEW:
        t, w = blocks(qtype, 12, 256, rng)
        assert quants.interleave(t) is t
        x = rng.standard_normal((2, 256)).astype(F32)
        got = quants.matmul(x, t, int8=True)
        if quants._KIND[qtype] in quants.INT8_KINDS:
            assert_twin(got, x, t, w)
        else:
            np.testing.assert_allclose(got, x.astype(np.float64) @ w.T, rtol=1e-4, atol=2e-3)


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
        from tests.helpers.quant_twins import NEW, assert_twin, blocks
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


@pytest.mark.parametrize("qtype", [q.name for q in ALL])
def test_first_logits_are_llama_cpps(qtype, tmp_path):
    """End to end: a synthetic llama model in qtype, its logits for the prompt's first token
    (a 10-token prefill) against llama.cpp's stored ones (tests/golden/synthetic.npz, made by
    llama.cpp's plain kernels): the same input roundings and integer sums leave only float32
    summation order (llama.cpp's Q8_0 rounding in place of Q8_K, or the reverse, gives 3e-2)."""
    import llm
    from tests.conftest import fixture_file
    from tests.golden import make_synthetic as cases

    golden = np.load(ROOT / "tests" / "golden" / "synthetic.npz")
    path = cases.model_path(tmp_path, "llama", qtype, fixture_file("models", "stories260K.gguf"))
    ref = golden[f"llama-{qtype}"][0]
    net = llm.load(path).net
    ours = net.forward(cases.PROMPT[:10], net.new_cache(16), all_logits=True)[0]
    assert np.abs(ours - ref).max() / ref.std() < 1e-5
