"""The columnar filter evaluator against the pure-Python reference, and filter validation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import reference, strategies
from vdb import filters
from vdb.errors import FilterError


@settings(max_examples=300, deadline=None)
@given(st.lists(strategies.payloads, min_size=1, max_size=12), strategies.filters, st.data())
def test_mask_matches_reference(payloads, flt, data):
    index = filters.PayloadIndex(len(payloads))
    index.set(range(len(payloads)), payloads)
    # overwrite and clear some rows, as upserts and deletes do
    changed = data.draw(st.lists(st.integers(0, len(payloads) - 1), max_size=3))
    for row in changed:
        payloads[row] = data.draw(strategies.payloads)
        index.set([row], [payloads[row]])
    mask = index.mask(filters.parse(flt), len(payloads))
    expected = [reference.matches(p, flt) for p in payloads]
    assert mask.tolist() == expected, (flt, payloads)


def test_examples():
    rows = [
        {"genre": "drama", "year": 1995, "tags": ["a", "b"], "meta": {"lang": "en"}},
        {"genre": "comedy", "year": 2005, "tags": ["c"], "meta": {"lang": "fr"}},
        {"genre": "drama", "year": 2015, "draft": True},
        None,
    ]
    index = filters.PayloadIndex(4)
    index.set(range(4), rows)

    def rows_of(flt):
        return np.flatnonzero(index.mask(filters.parse(flt), 4)).tolist()

    assert rows_of({"genre": "drama"}) == [0, 2]
    assert rows_of({"year": {"$gte": 2000, "$lt": 2010}}) == [1]
    assert rows_of({"tags": "b"}) == [0]
    assert rows_of({"tags": {"$in": ["c", "x"]}}) == [1]
    assert rows_of({"tags": {"$nin": ["a"]}}) == [1, 2, 3]
    assert rows_of({"meta.lang": "fr"}) == [1]
    assert rows_of({"draft": {"$exists": True}}) == [2]
    assert rows_of({"$not": {"genre": "drama"}}) == [1, 3]
    assert rows_of({"$or": [{"year": {"$lt": 2000}}, {"draft": True}]}) == [0, 2]
    assert rows_of({"genre": {"$ne": "drama"}}) == [1, 3]
    assert rows_of({"genre": {"$gt": "d"}}) == [0, 2]
    assert rows_of({"draft": None}) == [0, 1, 3]
    assert rows_of({}) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "flt, fragment",
    [
        ("genre", "must be an object"),
        ({"$foo": 1}, "unknown operator '$foo'"),
        ({"x": {"$regex": "a"}}, "unknown operator '$regex'"),
        ({"x": {"$gt": "a", "y": 1}}, "dotted keys"),
        ({"x": {"$gt": True}}, "number or a string"),
        ({"x": {"$gt": None}}, "number or a string"),
        ({"x": {"$gt": [1]}}, "number or a string"),
        ({"x": {"$in": 3}}, "list of values"),
        ({"x": {"$in": [{"a": 1}]}}, "string, number, boolean or null"),
        ({"x": {"$exists": "yes"}}, "true or false"),
        ({"x": [1, 2]}, "use $in"),
        ({"x": {"$eq": float("nan")}}, "not finite"),
        ({"$and": []}, "non-empty list"),
        ({"$or": {"a": 1}}, "non-empty list"),
        ({"$not": []}, "non-empty filter object"),
        ({"x": {}}, "empty operator object"),
        ({"a..b": 1}, "non-empty segments"),
        ({1: 2}, "keys must be strings"),
    ],
)
def test_malformed_filters_raise(flt, fragment):
    with pytest.raises(FilterError, match=None) as info:
        filters.parse(flt)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def columns(index: filters.PayloadIndex) -> dict:
    """Everything a PayloadIndex holds, in comparable form (field and vocabulary order too)."""
    out = {"paths_of": {row: list(paths) for row, paths in index.paths_of.items() if paths}}
    for path, field in index.fields.items():
        arrays = [field.present, field.num, field.sid, field.bval, field.null]
        pairs = [g.view() for g in (field.p_row, field.p_num, field.p_sid, field.p_bval)]
        out[path] = (
            [a.tobytes() for a in arrays + pairs],
            list(field.words),
            {row: list(pos) for row, pos in field.pairs_of.items() if pos},
        )
    return out


flat_payloads = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), strategies.scalars, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(flat_payloads, strategies.payloads), min_size=1, max_size=10),
    st.lists(st.one_of(flat_payloads, strategies.payloads), max_size=10),
    st.lists(st.integers(0, 9), max_size=10),
    st.data(),
)
def test_batch_writes_equal_row_by_row_writes(first, second, rows2, data):
    """set() of a batch (columns written at once when every payload is flat) and clear()
    leave exactly the state of the row-at-a-time path, duplicates in a batch included."""
    second = second[: len(rows2)]
    rows2 = rows2[: len(second)]
    cleared = data.draw(st.lists(st.integers(0, 12), max_size=5))
    batch, single = filters.PayloadIndex(12), filters.PayloadIndex(12)
    batch.set(np.arange(len(first)), first)
    batch.set(rows2, second)
    batch.clear(np.array(cleared, dtype=np.int64))
    for row, payload in [*enumerate(first), *zip(rows2, second, strict=True)]:
        single.clear([row])
        single._add_payload(row, payload)
    for row in cleared:
        single.clear([row])
    assert columns(batch) == columns(single)
