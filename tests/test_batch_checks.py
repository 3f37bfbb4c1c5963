"""The checks and encodings of an upsert batch, done in bulk, give what the item-by-item
versions gave: payload JSON, id keys, unit vectors, and the same errors and messages."""

import enum
import json
import math
import uuid
from collections import OrderedDict
from datetime import datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vdb import validate
from vdb.errors import DuplicateIdError, InvalidIdError, InvalidPayloadError, InvalidVectorError
from vdb.storage import codec


def reference_json(payload) -> bytes:
    """What a stored payload has always been: json.dumps, compact, UTF-8."""
    text = json.dumps(payload, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def outcome(fn, value):
    """(bytes, None) or (None, (error type, message)) of fn(value)."""
    try:
        return fn(value), None
    except Exception as exc:  # noqa: BLE001 - compared, not swallowed
        return None, (type(exc), str(exc))


floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(1e-6, 1e-3),
    st.floats(1e14, 1e18),
    st.sampled_from([0.0, -0.0, 1e-4, 1e16, 9999999999999998.0, 0.1, 1e-5, 1e-7, 1.5e300]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    floats,
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_payload_bytes_are_json_dumps(payload):
    assert codec.encode_payload(payload) == reference_json(payload)


def test_float_edges_and_text_are_json_dumps():
    rng = np.random.default_rng(7)
    values = (10.0 ** rng.uniform(-8, 20, 5000) * rng.choice([-1, 1], 5000)).tolist()
    values += [n / 1000 for n in range(1, 3000)] + [2.0**53, 2.0**53 + 2, 1e16 - 2, 1e-4]
    text = "".join(chr(c) for c in range(0x3000) if not 0xD800 <= c < 0xE000) + "\U0001f600"
    payload = {"f": values, "t": text, "nested": {"x": [values[:50], (1, "a", None)]}}
    assert codec.encode_payload(payload) == reference_json(payload)


class Colour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


circular: dict = {}
circular["self"] = circular
deep: dict = {}
node = deep
for _ in range(100):
    node["d"] = node = {}


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        "x",
        [1, 2],
        {"k": {1, 2}},
        {"k": math.nan},
        {"k": -math.inf},
        {"k": [1.0, math.inf]},
        {1: "x"},
        {"a": {True: 1}},
        {"a": [{None: 1}]},
        {"k": Colour.RED},
        {"k": Level.HIGH},
        {"k": uuid.UUID(int=5)},
        {"k": datetime(2026, 1, 2)},
        {"k": np.int64(3)},
        {"k": np.float64(2.5)},
        {"k": np.float32(2.5)},
        {"k": np.bool_(True)},
        {"k": Name("n")},
        {Name("n"): 1},
        OrderedDict(a=1),
        {"k": 2**64},
        {"k": [10**400]},
        {"k": -(2**63) - 1},
        {"k": "\ud800"},
        {"\udfff": 1},
        {"k": b"bytes"},
        {"k": 1e-5},
        circular,
        deep,
    ],
    ids=repr,
)
def test_other_values_take_the_json_path(payload):
    got = outcome(codec.encode_payload, payload)
    assert got == outcome(codec._encode_payload_json, payload)
    if got[1] is not None and issubclass(got[1][0], ValueError):
        assert got[1][0] is InvalidPayloadError or got[1][0] is UnicodeEncodeError


@pytest.mark.parametrize(
    "ids",
    [
        [],
        [0],
        list(range(-500, 500)),
        [2**63 - 1, -(2**63), 17, -1],
        [3, np.int64(4), 5],  # numpy ints: item by item
        [1, "a", 2],
    ],
)
def test_int_id_keys_match_encode_id(ids):
    assert validate.unique_id_keys(ids) == [codec.encode_id(pid) for pid in ids]


@pytest.mark.parametrize(
    "ids, error, fragment",
    [
        ([1, 2**63], InvalidIdError, "64-bit"),
        ([-(2**63) - 1], InvalidIdError, "64-bit"),
        ([1, True], InvalidIdError, "True"),
        ([4, 5, 4], DuplicateIdError, "point id 4 appears more than once"),
        ([4, np.int64(4)], DuplicateIdError, "(4) appears more than once"),
    ],
)
def test_bad_int_ids_are_refused_as_before(ids, error, fragment):
    with pytest.raises(error) as info:
        validate.unique_id_keys(ids)
    assert fragment in str(info.value)


@pytest.mark.parametrize("scale", [1e-30, 1e-21, 1e-3, 1.0, 1e18])
def test_normalized_rows_are_those_of_linalg_norm(scale, rng):
    arr = (rng.standard_normal((300, 37)) * scale).astype(np.float32)
    with np.errstate(all="ignore"):
        expected = (arr / np.linalg.norm(arr, axis=1, keepdims=True)).astype(np.float32)
        got = validate.normalized(arr)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, expected, equal_nan=True)


@pytest.mark.parametrize("row", [[0.0, 0.0, 0.0], [1e-30, 0.0, -1e-25]])  # squares underflow
def test_vectors_without_a_norm_are_refused_under_cosine(row):
    with pytest.raises(InvalidVectorError, match="for id 'b' is all zeros"):
        validate.vectors([[1.0, 2.0, 3.0], row], 3, "cosine", ["a", "b"])
    assert validate.vectors([row], 3, "dot").shape == (1, 3)


def test_payload_that_would_not_read_back_is_refused_and_nothing_written(db):
    col = db.create_collection("c", dim=3)
    with pytest.raises(InvalidPayloadError, match="cannot be stored"):
        col.upsert(["a", "b"], [[1, 2, 3], [3, 2, 1]], [{"x": 1}, {"x": [-(10**400)]}])
    assert col.count() == 0 and col.lsn == 0
    col.upsert(["a"], [[1, 2, 3]], [{"big": 2**64, "n": 10**300}])  # these read back
    assert col.count() == 1 and set(col.get("a").payload) == {"big", "n"}


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
@pytest.mark.parametrize(
    "row",
    [
        [1.0, 2.0, 3.0],
        [0.0, 0.0, 0.0],
        [1e-30, 0.0, -1e-25],
        [3e38, -3e38, 1.0],  # finite, though its float32 sum of squares is not
        [np.nan, 1.0, 1.0],
        [np.inf, 1.0, 1.0],
        [1.0, -np.inf, 0.0],
    ],
)
def test_one_vector_query_is_checked_as_a_row_of_a_batch(metric, row):
    """A 1-D float32 query takes a shortcut; it must accept and refuse what the batch path
    does, with the same message, and return a C-contiguous (1, dim) row."""
    one = np.array(row, np.float32)
    strided = np.array([[v, 0.0] for v in row], np.float32)[:, 0]  # the same row, not contiguous
    expected = outcome(lambda v: validate.vectors(v, 3, metric, what="query"), one[None, :])
    for query in (one, strided):
        got = outcome(lambda v: validate.vectors(v, 3, metric, what="query"), query)
        assert (got[1] is None) == (expected[1] is None) and got[1] == expected[1]
        if got[0] is not None:
            assert got[0].shape == (1, 3) and got[0].flags.c_contiguous
            assert np.array_equal(got[0], expected[0])
