"""Transformer kernels against numpy twins."""

import math

import numpy as np
import pytest

from llm import ops

_erf = np.vectorize(math.erf)


def test_layer_norms(rng):
    x = rng.standard_normal((17, 48)).astype(np.float32) * 3 + 1
    res = rng.standard_normal((17, 48)).astype(np.float32)
    w, b = rng.standard_normal(48).astype(np.float32), rng.standard_normal(48).astype(np.float32)

    def ref(v):
        v = v.astype(np.float64)
        return (v - v.mean(1, keepdims=True)) / np.sqrt(v.var(1, keepdims=True) + 1e-12) * w + b

    got = x.copy()
    ops.layer_norm(got, w, b, 1e-12)
    np.testing.assert_allclose(got, ref(x), rtol=1e-5, atol=1e-5)
    got = x.copy()
    ops.add_layer_norm(got, res, w, b, 1e-12)
    np.testing.assert_allclose(got, ref(x + res), rtol=1e-5, atol=1e-5)


def test_gelu_and_softmax(rng):
    x = rng.standard_normal((9, 30)).astype(np.float32) * 4
    bias = rng.standard_normal(30).astype(np.float32)
    got = x.copy()
    ops.add_bias_gelu(got, bias)
    v = (x + bias).astype(np.float64)
    np.testing.assert_allclose(got, 0.5 * v * (1 + _erf(v / math.sqrt(2))), rtol=1e-5, atol=1e-6)
    xs = np.linspace(-6, 6, 2001).astype(np.float32)
    got = np.array([ops.erf(np.float32(v)) for v in xs[::40]])
    np.testing.assert_allclose(got, _erf(xs[::40].astype(np.float64)), atol=2e-7)
    xs = -np.geomspace(1e-6, 86.9, 5000).astype(np.float32)
    got = xs.copy()
    ops.exp_neg_inplace(got)
    np.testing.assert_allclose(got, np.exp(xs.astype(np.float64)), rtol=3e-7)
    tiny = np.array([-100, -87.5, 0], np.float32)
    ops.exp_neg_inplace(tiny)
    assert tiny.tolist() == [0, 0, 1]
    s = rng.standard_normal((2, 3, 5, 7)).astype(np.float32) * 10
    got = s.copy()
    ops.softmax(got)
    e = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_rope_rotates_pairs_in_both_layouts(rng):
    n, heads, hd, rope_dim = 5, 3, 16, 12  # the last 4 dimensions stay as they are
    x = rng.standard_normal((n, heads, hd)).astype(np.float32)
    angles = np.arange(n)[:, None] * 10000.0 ** (-np.arange(rope_dim // 2) * 2 / rope_dim)
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    for neox in (False, True):
        want = x.astype(np.float64)
        if neox:
            a, b = slice(0, rope_dim // 2), slice(rope_dim // 2, rope_dim)
        else:
            a, b = slice(0, rope_dim, 2), slice(1, rope_dim, 2)
        xa, xb = want[..., a].copy(), want[..., b].copy()
        c, s = cos[:, None, :], sin[:, None, :]
        want[..., a], want[..., b] = xa * c - xb * s, xa * s + xb * c
        got = x.copy()
        ops.rope(got, cos, sin, neox)
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert np.array_equal(got[..., rope_dim:], x[..., rope_dim:])


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 70000 -> inf, as wanted
def test_float16_steps_equal_numpys_conversions():
    from llm import ops

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((7, 33)) * 300).astype(np.float32)
    x[0, :4] = [np.inf, -np.inf, 70000.0, 1e-8]  # overflow to inf, and a subnormal
    y = x.copy()
    ops.round_half(y)
    np.testing.assert_array_equal(y, x.astype(np.float16).astype(np.float32))
    bits = x.astype(np.float16).view(np.uint16)
    out = np.empty_like(x)
    ops.half_to_f32(bits, out)
    np.testing.assert_array_equal(out, x.astype(np.float16).astype(np.float32))
    src = x[:6].reshape(3, 2, 33)  # (n, heads, d)
    cache = np.zeros((2, 5, 33), np.uint16)  # (heads, n_ctx, d)
    ops.store_half(src, cache[:, 1:4])
    np.testing.assert_array_equal(
        cache[:, 1:4], src.transpose(1, 0, 2).astype(np.float16).view(np.uint16)
    )
    assert not cache[:, [0, 4]].any()


def test_geglu_and_rms_norm_equal_their_numpy_twins():
    from llm import llama, ops

    rng = np.random.default_rng(4)
    x = (rng.standard_normal((5, 64)) * 6).astype(np.float32)
    x[0, :3] = [10.0, -10.0, 12.5]
    g = rng.standard_normal((5, 64)).astype(np.float32)
    table = llama._gelu_table()
    want = np.where(x >= 10, x, np.where(x <= -10, 0, table[x.astype(np.float16).view(np.uint16)]))
    got = x.copy()
    ops.geglu(got, g, table)
    np.testing.assert_array_equal(got, want.astype(np.float32) * g)
    w = rng.standard_normal(64).astype(np.float32)
    sums = np.array([sum(float(v) for v in row) for row in np.square(x)])  # float64, in order
    mean = (sums / 64).astype(np.float32)[:, None] + np.float32(1e-6)
    want = (x * (np.float32(1) / np.sqrt(mean))) * w
    out = np.empty_like(x)
    ops.rms_norm(x, w, np.float32(1e-6), out)
    np.testing.assert_array_equal(out, want)


def test_swiglu_attention_weights_and_row_max_equal_their_numpy_twins():
    from llm import ops

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 77)) * 8).astype(np.float32)
    x[0, :4] = [100.0, -100.0, 0.0, -0.0]
    up = rng.standard_normal((4, 77)).astype(np.float32)
    got = x.copy()
    ops.swiglu(got, up)
    v = x.astype(np.float64)
    np.testing.assert_allclose(got, v / (1 + np.exp(-v)) * up, rtol=1e-6, atol=1e-30)
    scores = (rng.standard_normal((6, 41)) * 5).astype(np.float32)  # 2 heads x 3 tokens
    mask = np.where(np.arange(41)[None, :] <= np.arange(3)[:, None] + 38, 0, -np.inf)
    mask = mask.astype(np.float32)
    for masked in (True, False):
        got = scores.copy()
        ops.attention_weights(got, np.float32(0.3), mask, masked)
        s = scores.reshape(2, 3, 41).astype(np.float64) * np.float32(0.3) + (mask if masked else 0)
        e = np.exp(s - s.max(-1, keepdims=True))
        want = (e / e.sum(-1, keepdims=True)).reshape(6, 41)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7)  # float16 weights
        assert (got[:, 40] == 0).sum() == (4 if masked else 0)
        assert np.array_equal(got, got.astype(np.float16).astype(np.float32))
    for n in (1, 7, 8, 9, 300):
        row = rng.standard_normal(n).astype(np.float32)
        assert ops.row_max(row) == row.max()
    special = np.array([-np.inf, np.nan, -90, 0, -1], np.float32)
    ops.exp_neg_inplace(special)
    assert special[0] == 0 and np.isnan(special[1]) and special[2] == 0 and special[3] == 1
