"""Transformer kernels against numpy twins."""

import math

import numpy as np

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
    ops.exp_neg_inplace(got, np.empty(len(xs), np.int32))
    np.testing.assert_allclose(got, np.exp(xs.astype(np.float64)), rtol=3e-7)
    tiny = np.array([-100, -87.5, 0], np.float32)
    ops.exp_neg_inplace(tiny, np.empty(3, np.int32))
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
