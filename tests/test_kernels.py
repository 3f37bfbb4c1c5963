"""The numba top-k kernels against a numpy twin, for every metric and scan path."""

import numpy as np
import pytest

from vdb.index import FlatIndex, kernels


def numpy_topk(Q, X, k, metric, allowed):
    if metric == "l2":
        S = -(((Q[:, None, :].astype(np.float64) - X[None, :, :]) ** 2).sum(-1))
    else:
        S = Q.astype(np.float64) @ X.T.astype(np.float64)
    S = np.where(allowed[None, :], S, -np.inf)
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(S, order, axis=1)
    if metric == "l2":
        scores = np.sqrt(-scores)
    return scores, order


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("nq", [1, 2, 5, 8, 20])
@pytest.mark.parametrize("dim", [1, 3, 17, 64])
@pytest.mark.parametrize("path", ["all", "mask", "rows"])
def test_flat_index_matches_numpy(metric, nq, dim, path, rng):
    n, k = 700, 7
    X = rng.standard_normal((n, dim)).astype(np.float32)
    if metric == "cosine":
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = rng.standard_normal((nq, dim)).astype(np.float32)
    index = FlatIndex(dim, metric)
    index.set(np.arange(n, dtype=np.int64), X)
    allowed = np.ones(n, bool)
    mask = None
    if path != "all":
        share = 0.8 if path == "mask" else 0.05
        allowed = rng.random(n) < share
        mask = allowed.copy()
    scores, ids = index.search(Q, k, mask)
    ref_scores, ref_ids = numpy_topk(Q, X, min(k, allowed.sum()), metric, allowed)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-4)
    gaps = np.abs(np.diff(ref_scores, axis=1)) > 1e-4
    clear = np.concatenate([gaps[:, :1], gaps[:, 1:] & gaps[:, :-1], gaps[:, -1:]], axis=1)
    assert (ids[clear] == ref_ids[clear]).all()
    assert allowed[ids].all()


def test_k_larger_than_rows_and_deleted_rows(rng):
    X = rng.standard_normal((10, 4)).astype(np.float32)
    index = FlatIndex(4, "dot")
    index.set(np.arange(10, dtype=np.int64), X)
    index.remove(np.array([2, 5], dtype=np.int64))
    scores, ids = index.search(rng.standard_normal((3, 4)).astype(np.float32), 50)
    assert ids.shape == (3, 8)
    assert not np.isin(ids, [2, 5]).any()
    assert (np.diff(scores, axis=1) <= 0).all()


def test_empty_index_returns_nothing():
    index = FlatIndex(3, "l2")
    scores, ids = index.search(np.ones((2, 3), np.float32), 5)
    assert scores.shape == (2, 0) and ids.shape == (2, 0)


def test_raw_kernel_pads_when_fewer_rows_qualify(rng):
    X = rng.standard_normal((300, 8)).astype(np.float32)
    mask = np.zeros(300, bool)
    mask[[3, 100, 299]] = True
    scores, ids = kernels.topk(rng.standard_normal((4, 8)).astype(np.float32), X, 5, mask=mask)
    assert sorted(ids[0, :3]) == [3, 100, 299]
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


def test_ties_resolve_to_lower_id():
    X = np.ones((600, 4), np.float32)
    scores, ids = kernels.topk(np.ones((1, 4), np.float32), X, 5)
    assert ids[0].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("dim", [8, 384, 1100])  # tiles of 256, 16 and 4 rows
@pytest.mark.parametrize("layout", ["spread", "clustered", "all"])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("width, nq", [(0, 7), (8, 7), (8, 37), (16, 37)])
def test_tiles_and_chunks_match_numpy(metric, dim, layout, threads, width, nq, rng):
    """Many tiles per chunk, partial tiles, query blocks or panels with a remainder, matches
    that all fall in one chunk: either scan keeps the exact top k whatever the split."""
    n, k = 1500, 9
    X = rng.standard_normal((n, dim)).astype(np.float32)
    if metric == "cosine":
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = rng.standard_normal((nq, dim)).astype(np.float32)
    allowed = {
        "spread": rng.random(n) < 0.3,
        "clustered": np.arange(n) >= n - 301,  # 301 rows, all in the last chunk
        "all": np.ones(n, bool),
    }[layout]
    bias, scale = (np.einsum("ij,ij->i", X, X), 2.0) if metric == "l2" else (None, 1.0)
    rows = np.flatnonzero(allowed).astype(np.int64)
    args = dict(bias=bias, scale=scale, threads=threads, width=width)
    results = [
        kernels.topk(Q, X, k, rows=rows, **args),
        kernels.topk(Q, X, k, mask=allowed, **args),
    ]
    # one more than k: the k-th is clear only when the (k+1)-th is not as close as a rounding
    ref_scores, ref_ids = numpy_topk(Q, X, k + 1, metric, allowed)
    if metric == "l2":  # the kernel's score is |q|^2 - |q - x|^2
        ref_scores = (Q * Q).sum(1, keepdims=True) - ref_scores**2
    gaps = np.abs(np.diff(ref_scores, axis=1)) > 1e-3  # (nq, k): between j and j + 1
    clear = np.concatenate([gaps[:, :1], gaps[:, 1:] & gaps[:, :-1]], axis=1)
    ref_scores, ref_ids = ref_scores[:, :k], ref_ids[:, :k]
    for scores, ids in results:
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-3)
        assert (ids[clear] == ref_ids[clear]).all()
        assert allowed[ids].all() and (np.diff(scores, axis=1) <= 0).all()


@pytest.mark.parametrize("path", ["rows", "mask"])
@pytest.mark.parametrize("width", [0, 8, 16])
def test_ties_resolve_to_lower_id_when_filtered(path, width, rng):
    X = np.ones((3000, 4), np.float32)
    allowed = rng.random(3000) < 0.3  # ~900 rows: several chunks either way
    rows = np.flatnonzero(allowed).astype(np.int64)
    args = {"rows": rows} if path == "rows" else {"mask": allowed}
    scores, ids = kernels.topk(np.ones((20, 4), np.float32), X, 5, threads=2, width=width, **args)
    assert (ids == rows[:5]).all()
