"""SearchResults and Selection on their own: a batch's results as a list of lists of Hit and as
padded columns, Hits built only when a query's list is read, and the checked with_* arguments."""

import numpy as np
import pytest

import vdb
from vdb.results import Hit, SearchResults, Selection

NAN = np.float32(np.nan)


def _results(fields=None, object_ids=False) -> SearchResults:
    """Three queries with 2, 0 and 1 hits in rows of width 2."""
    ids = np.array([[7, 3], [-1, -1], [5, -1]], np.int64)  # (3, 2)
    if object_ids:
        ids = np.array([["a", 3], [None, None], ["b", None]], object)
    scores = np.array([[0.5, 0.25], [NAN, NAN], [1.5, NAN]], np.float32)  # (3, 2)
    return SearchResults(ids, scores, np.array([2, 0, 1], np.int64), fields)


def _lists(object_ids=False) -> list:
    first, last = ("a", "b") if object_ids else (7, 5)
    return [
        [Hit(first, 0.5, None, None), Hit(3, 0.25, None, None)],
        [],
        [Hit(last, 1.5, None, None)],
    ]


@pytest.mark.parametrize("object_ids", [False, True])
def test_equal_to_the_list_of_lists(object_ids):
    results = _results(object_ids=object_ids)
    want = _lists(object_ids)
    assert results == want and want == results and results == tuple(want)
    assert results == _results(object_ids=object_ids)
    assert list(results) == want and len(results) == 3
    assert results != want[:2] and results != [*want[:2], []]
    assert results != "abc" and results != 3
    assert isinstance(results, vdb.SearchResults)
    assert repr(results) == "SearchResults(3 queries, 3 hits)"


def test_hits_carry_python_values():
    hit = _results()[0][0]
    assert type(hit.id) is int and type(hit.score) is float and hit.score == 0.5
    hit = _results(object_ids=True)[0][1]
    assert type(hit.id) is int and hit.id == 3


def test_indexing_and_slicing():
    results, want = _results(), _lists()
    assert results[0] == want[0] and results[-1] == want[2] and results[1] == []
    assert results[1:] == want[1:] and results[::2] == want[::2] and results[::-1] == want[::-1]
    assert results[5:] == [] and isinstance(results[0:2], list)
    assert results[0] is results[0]  # built once
    with pytest.raises(IndexError):
        results[3]
    with pytest.raises(IndexError):
        results[-4]
    assert results.index(want[2]) == 2 and want[1] in results


def test_columns_are_padded():
    results = _results()
    assert results.ids.shape == results.scores.shape == (3, 2)
    assert results.ids.dtype == np.int64 and results.scores.dtype == np.float32
    assert results.counts.dtype == np.int64 and results.counts.tolist() == [2, 0, 1]
    found = np.arange(2) < results.counts[:, None]
    assert (results.ids[~found] == -1).all() and np.isnan(results.scores[~found]).all()
    assert not np.isnan(results.scores[found]).any()


def test_hits_are_built_when_first_read():
    """fields(q) runs the first time query q's list is read, once, and its payloads,
    documents and vectors land in the Hits; a None list means none for every hit."""
    calls = []

    def fields(q):
        calls.append(q)
        n = [2, 0, 1][q]
        vectors = [np.full(2, q, np.float32)] * n
        return [{"q": q}] * n, None, vectors

    results = _results(fields)
    assert results.ids[0, 0] == 7 and results.counts.sum() == 3 and calls == []
    last = results[2]
    assert calls == [2]
    assert last[0].payload == {"q": 2} and last[0].document is None
    np.testing.assert_array_equal(last[0].vector, [2, 2])
    results[2], results[-1], results[1:]
    assert calls == [2, 1]
    assert [h.id for h in results[0]] == [7, 3] and calls == [2, 1, 0]


def test_empty_batch_and_no_hits():
    empty = SearchResults(
        np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    )
    assert empty == [] and len(empty) == 0 and list(empty) == []
    none = SearchResults(
        np.zeros((2, 0), np.int64), np.zeros((2, 0), np.float32), np.zeros(2, np.int64)
    )
    assert none == [[], []] and none != []


def test_selection_parse_and_cut():
    assert Selection.parse() == Selection(True, True, False)
    want = Selection.parse(["b", "a", "b"], False, True)
    assert want == Selection(("b", "a"), False, True) and want.reads
    assert not Selection.parse(False, False).reads
    assert not Selection.parse([], False).reads  # no keys: no payload
    assert Selection.parse(np.bool_(False)).payload is False
    assert want.cut({"a": 1, "c": 2}) == {"a": 1} and want.cut({"c": 2}) == {}
    assert want.cut(None) is None
    assert Selection.parse(False).cut({"a": 1}) is None
    assert Selection.parse(True).cut({"a": 1}) == {"a": 1}


@pytest.mark.parametrize(
    "args, name",
    [
        ({"with_payload": "a"}, "with_payload"),
        ({"with_payload": 1}, "with_payload"),
        ({"with_payload": None}, "with_payload"),
        ({"with_payload": ["a", 2]}, "with_payload"),
        ({"with_payload": {"a": 1}}, "with_payload"),
        ({"with_document": "yes"}, "with_document"),
        ({"with_document": 0}, "with_document"),
        ({"with_vectors": None}, "with_vectors"),
    ],
)
def test_selection_refuses_bad_values(args, name):
    with pytest.raises(vdb.InvalidArgumentError, match=name) as info:
        Selection.parse(**args)
    assert isinstance(info.value, ValueError)


def test_long_bad_values_are_not_echoed_whole():
    with pytest.raises(vdb.InvalidArgumentError) as info:
        Selection.parse("x" * 10_000)
    assert len(str(info.value)) < 200


def test_hits_with_vectors_compare_by_value():
    a = Hit(1, 0.5, {"k": 1}, "d", np.array([1.0, 2.0], np.float32))
    assert a == Hit(1, 0.5, {"k": 1}, "d", np.array([1.0, 2.0], np.float32))
    assert a != Hit(1, 0.5, {"k": 1}, "d", np.array([1.0, 3.0], np.float32))
    assert a != Hit(1, 0.5, {"k": 1}, "d", None)
    assert Hit(1, 0.5, None, None) == Hit(1, 0.5, None, None)
    ids = np.array([[1]])
    res = SearchResults(
        ids,
        np.array([[0.5]], np.float32),
        np.array([1]),
        lambda q: ([{"k": 1}], ["d"], [np.array([1.0, 2.0], np.float32)]),
    )
    assert res == [[a]]
