"""HNSW against the flat index: recall, determinism, deletes, filters, growth, concurrency."""

import threading

import numpy as np
import pytest

from vdb.index import FlatIndex
from vdb.index.hnsw import HnswConfig, HnswIndex

N, DIM, NQ = 6000, 24, 200


def clustered(n, dim, seed=0, centres=60):
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((centres, dim)).astype(np.float32) * 3
    spread = rng.uniform(1.0, 1.6, centres).astype(np.float32)
    lab = rng.integers(0, centres, n)
    return (C[lab] + rng.standard_normal((n, dim)).astype(np.float32) * spread[lab, None]).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def data():
    P = clustered(N + NQ, DIM)
    return P[:N], P[N:]


def recall(ids, truth):
    return np.mean(
        [
            len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
            for a, b in zip(ids, truth, strict=True)
        ]
    )


def build(X, metric="l2", **kw):
    kw.setdefault("int8", True)  # these sets are small: force the int8 walk under test
    index = HnswIndex(X.shape[1], metric, HnswConfig(**kw))
    index.set(np.arange(len(X), dtype=np.int64), X)
    return index


def exact(X, Q, k, metric="l2", mask=None, alive=None):
    flat = FlatIndex(X.shape[1], metric)
    flat.set(np.arange(len(X), dtype=np.int64), X)
    if alive is not None:
        flat.remove(np.flatnonzero(~alive).astype(np.int64))
    return flat.search(Q, k, mask)


@pytest.mark.parametrize("metric", ["l2", "cosine", "dot"])
def test_recall_against_flat(data, metric):
    X, Q = data
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    index = build(X, metric)
    true_s, true_i = exact(X, Q, 10, metric)
    s, i = index._graph_search(Q, 10, 64, None)
    assert recall(i, true_i) >= 0.95
    scores, ids = index.search(Q, 10)
    assert recall(ids, true_i) >= 0.95
    order = np.diff(scores, axis=1)
    assert (order >= -1e-5).all() if metric == "l2" else (order <= 1e-5).all()


def test_deterministic_for_a_seed(data):
    X, _ = data
    a, b = build(X[:3000], seed=3), build(X[:3000], seed=3)
    np.testing.assert_array_equal(a.links0, b.links0)
    np.testing.assert_array_equal(a.counts0, b.counts0)
    np.testing.assert_array_equal(a.levels, b.levels)
    c = build(X[:3000], seed=4)
    assert not np.array_equal(a.levels, c.levels)


def test_same_graph_at_any_thread_count(data):
    import numba

    X, _ = data
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = build(X[:2500])
        numba.set_num_threads(saved)
        many = build(X[:2500])
    finally:
        numba.set_num_threads(saved)
    np.testing.assert_array_equal(one.links0, many.links0)
    np.testing.assert_array_equal(one.links_up, many.links_up)


def test_incremental_adds_grow_without_limit(data):
    X, Q = data
    index = HnswIndex(DIM, "l2")
    for start in range(0, N, 700):
        index.set(np.arange(start, min(N, start + 700), dtype=np.int64), X[start : start + 700])
    assert index.capacity >= N and len(index) == N
    _, true_i = exact(X, Q, 10)
    assert recall(index._graph_search(Q, 10, 64, None)[1], true_i) >= 0.95


def test_deletes_are_never_returned_and_reinsert_keeps_recall(data):
    X, Q = data
    fresh = build(X)
    _, true_i = exact(X, Q, 10)
    base = recall(fresh._graph_search(Q, 10, 64, None)[1], true_i)
    index = build(X)
    gone = np.random.default_rng(1).choice(N, int(0.3 * N), replace=False).astype(np.int64)
    index.remove(gone)
    alive = np.ones(N, bool)
    alive[gone] = False
    _, i = index.search(Q, 10)
    assert not np.isin(i, gone).any()
    _, true_alive = exact(X, Q, 10, alive=alive)
    assert recall(i, true_alive) >= 0.95
    index.set(gone, X[gone])
    after = recall(index._graph_search(Q, 10, 64, None)[1], true_i)
    assert after >= base - 0.01


def test_upsert_moves_a_vector(data):
    X, Q = data
    index = build(X)
    index.set(np.array([5], np.int64), Q[:1])
    _, i = index.search(Q[:1], 1)
    assert i[0, 0] == 5


@pytest.mark.parametrize("share", [0.5, 0.1, 0.01])
def test_filtered_recall_and_always_k(data, share):
    X, Q = data
    index = build(X)
    rng = np.random.default_rng(2)
    mask = rng.random(N) < share
    _, true_i = exact(X, Q, 10, mask=mask)
    s, i = index.search(Q, 10, mask=mask)
    assert recall(i, true_i) >= 0.95
    assert (i >= 0).all() and mask[i].all()
    tiny = np.zeros(N, bool)
    tiny[[7, 99, 4000]] = True
    _, i = index.search(Q, 10, mask=tiny)
    assert i.shape == (NQ, 3) and set(i[0]) == {7, 99, 4000}


def test_filtered_graph_walk_finds_k(data):
    X, Q = data
    index = build(X)
    mask = np.random.default_rng(3).random(N) < 0.5
    _, i = index._graph_search(Q, 10, 200, mask)
    assert ((i >= 0).sum(axis=1) == 10).mean() > 0.99
    assert mask[i[i >= 0]].all()


def test_search_while_inserting(data):
    X, Q = data
    index = build(X[:2000])
    lock = threading.Lock()  # the collection serializes writers against readers this way
    errors = []

    def insert():
        for start in range(2000, N, 500):
            with lock:
                index.set(np.arange(start, start + 500, dtype=np.int64), X[start : start + 500])

    def search():
        try:
            for _ in range(30):
                with lock:
                    n = index.size
                    s, i = index.search(Q[:20], 10)
                assert (i < n).all() and (i >= 0).all()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert)] + [
        threading.Thread(target=search) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(index) == N


def test_int8_walk_handles_dimensions_of_different_ranges(data):
    X, Q = data
    scale = np.ones(DIM, np.float32)
    scale[0] = 1000.0  # one dimension spans a far larger range than the rest
    Xs, Qs = X * scale, Q * scale
    index = build(Xs)
    _, true_i = exact(Xs, Qs, 10)
    assert recall(index._graph_search(Qs, 10, 64, None)[1], true_i) >= 0.95


def test_int8_codes_widen_when_new_data_falls_outside(data):
    X, Q = data
    index = build(X[:3000])
    index.set(np.arange(3000, N, dtype=np.int64), X[3000:] * 3)
    both = np.concatenate([X[:3000], X[3000:] * 3])
    assert (index.code_hi >= both.max(axis=0) - 1e-5).all()
    _, true_i = exact(both, Q, 10)
    assert recall(index._graph_search(Q, 10, 64, None)[1], true_i) >= 0.95


@pytest.mark.parametrize("int8", [True, False, None])
def test_walk_scores_are_exact(data, int8):
    X, Q = data
    index = build(X, int8=int8)
    s, i = index._graph_search(Q, 10, 64, None)
    exact_s = -(((X[i] - Q[:, None, :]) ** 2).sum(-1))
    np.testing.assert_allclose(s, exact_s, rtol=1e-4, atol=1e-3)
    _, true_i = exact(X, Q, 10)
    assert recall(i, true_i) >= 0.95


@pytest.mark.parametrize("int8", [True, False])
@pytest.mark.parametrize("filtered", [False, True])
def test_one_query_at_a_time_matches_the_batch(data, int8, filtered):
    """A single query runs the serial kernel; a batch runs the parallel one. Same walk, the
    same ids. The two kernels are compiled apart under fastmath, so LLVM may sum a distance
    in another order in each (seen on some fresh compiles): scores agree to an ulp or two."""
    X, Q = data
    index = build(X, int8=int8)
    mask = np.random.default_rng(5).random(N) < 0.5 if filtered else None
    batch_s, batch_i = index._graph_search(Q[:40], 10, 64, mask)
    for j in range(40):
        s, i = index._graph_search(Q[j : j + 1], 10, 64, mask)
        np.testing.assert_array_equal(i[0], batch_i[j])
        np.testing.assert_allclose(s[0], batch_s[j], rtol=4e-7, atol=0)


def test_compaction_unlinks_deleted_nodes_and_keeps_recall(data):
    X, Q = data
    fresh = build(X)
    _, true_i = exact(X, Q, 10)
    base = recall(fresh._graph_search(Q, 10, 64, None)[1], true_i)
    index = build(X, compact_share=1.0)  # no automatic compaction: call it explicitly
    gone = np.random.default_rng(5).choice(N, int(0.3 * N), replace=False).astype(np.int64)
    index.remove(gone)
    assert index.tombstones() == len(gone)
    assert index.compact() == len(gone) and index.tombstones() == 0
    live = np.flatnonzero(index.alive[:N])
    for node in live:
        assert index.alive[index.links0[node, : index.counts0[node]]].all()
        row = index.upper_row[node]
        if row >= 0:
            for level in range(1, index.levels[node] + 1):
                nbrs = index.links_up[level - 1, row, : index.counts_up[level - 1, row]]
                assert index.alive[nbrs].all()
    assert index.alive[index.entry]
    alive = np.ones(N, bool)
    alive[gone] = False
    _, true_alive = exact(X, Q, 10, alive=alive)
    _, i = index._graph_search(Q, 10, 64, None)
    assert recall(i, true_alive) >= 0.95
    index.set(gone, X[gone])  # the freed slots come back as fresh nodes
    assert (index.levels[gone] >= 0).all()
    assert recall(index._graph_search(Q, 10, 64, None)[1], true_i) >= base - 0.01


def test_automatic_compaction_and_deleting_everything(data):
    X, Q = data
    index = build(X[:3000])
    index.remove(np.arange(0, 1000, dtype=np.int64))  # 1000 of 2000 live: past the 20% share
    assert index.tombstones() == 0
    index.remove(np.arange(1000, 3000, dtype=np.int64))
    assert index.entry == -1 and len(index) == 0
    s, i = index.search(Q[:3], 5)
    assert i.shape == (3, 0)
    index.set(np.arange(10, dtype=np.int64), X[:10])
    assert sorted(index.search(X[:1], 10)[1][0]) == list(range(10))


def test_short_walks_fall_back_to_the_scan_in_the_same_units(data, monkeypatch):
    X, Q = data
    index = build(X)
    mask = np.random.default_rng(9).random(N) < 0.5
    walk = index._graph_search

    def short_walk(queries, k, ef, live):
        s, i = walk(queries, k, ef, live)
        s[0, -1], i[0, -1] = -np.inf, -1  # pretend the first query's walk came up short
        return s, i

    monkeypatch.setattr(index, "_graph_search", short_walk)
    scores, ids = index.search(Q[:4], 10, mask=mask)
    true_s, true_i = exact(X, Q[:4], 10, mask=mask)
    np.testing.assert_allclose(scores[0], true_s[0], rtol=1e-4)
    assert (ids >= 0).all()
    expected = np.sqrt(((X[ids] - Q[:4, None, :]) ** 2).sum(-1))
    np.testing.assert_allclose(scores, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("metric", ["l2", "dot"])
def test_int8_walk_scores_rank_like_the_decoded_vectors(data, metric):
    """The walk scores a node as <code, q'> - norm (l2) or <code, q'> (dot): the similarity of
    the vector its codes stand for, up to a constant of the query."""
    X, Q = data
    index = build(X[:2000], metric)
    index.set(np.arange(2000, N, dtype=np.int64), X[2000:] * 2)  # widens some dimensions
    n = index.size
    codes = index.codes[:n].astype(np.float64)
    np.testing.assert_allclose(
        index.code_norms[:n],
        (codes**2) @ (index._code_frame()[1].astype(np.float64) ** 2),
        rtol=1e-5,
    )
    mid, step = (a.astype(np.float64) for a in index._code_frame())
    decoded = mid + step * codes
    walk = index._code_queries(Q).astype(np.float64) @ codes.T
    if metric == "l2":
        walk -= index.code_norms[:n]
        want = -((decoded[None] - Q[:, None].astype(np.float64)) ** 2).sum(-1)
    else:
        want = Q.astype(np.float64) @ decoded.T
    shift = (want - walk).mean(axis=1, keepdims=True)  # the query's constant
    np.testing.assert_allclose(walk + shift, want, rtol=0, atol=1e-3 * np.abs(want).max())


def test_code_norms_survive_a_checkpoint(data):
    X, _ = data
    index = build(X)
    back = HnswIndex.restore(*index.state())
    np.testing.assert_array_equal(back.code_norms[: index.size], index.code_norms[: index.size])


def test_visited_marks_wrap_around(data):
    """The walk marks visited nodes with a uint16 tag per search; past 65,535 searches on a
    thread the marks are cleared and the tags start again, with the same results."""
    import numba

    X, Q = data
    index = build(X[:500])
    queries = np.tile(Q, (70_000 // len(Q) + 1, 1))[:70_000]
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        _, ids = index._graph_search(queries, 5, 16, None)
        _, again = index._graph_search(Q, 5, 16, None)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(ids[-len(Q) :], again[np.arange(70_000)[-len(Q) :] % len(Q)])
    np.testing.assert_array_equal(ids[: len(Q)], again)
