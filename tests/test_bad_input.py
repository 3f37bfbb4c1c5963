"""Every bad input gets a specific ValueError/KeyError subclass naming the value, and writes
nothing."""

import numpy as np
import pytest

import vdb


@pytest.fixture
def col(db):
    c = db.create_collection("c", dim=3)
    c.upsert(["keep"], [[1, 2, 3]], payloads=[{"x": 1}])
    return c


def unchanged(col):
    assert col.count() == 1 and col.lsn == 1
    assert col.get("keep").payload == {"x": 1}


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(ids=["a"], vectors=[[1, 2]]), vdb.DimensionError, "dimension 2"),
        (dict(ids=["a", "b"], vectors=[[1, 2, 3], [1, np.nan, 3]]), vdb.InvalidVectorError, "'b'"),
        (dict(ids=["a"], vectors=[[1, np.inf, 3]]), vdb.InvalidVectorError, "infinite"),
        (dict(ids=["a"], vectors=[[1e39, 0, 0]]), vdb.InvalidVectorError, "float32"),
        (dict(ids=["a", "z"], vectors=[[1, 1, 1], [0, 0, 0]]), vdb.InvalidVectorError, "zeros"),
        (dict(ids=["a", "a"], vectors=[[1, 1, 1], [1, 2, 1]]), vdb.DuplicateIdError, "'a'"),
        (dict(ids=[1, np.int64(1)], vectors=np.ones((2, 3))), vdb.DuplicateIdError, "1"),
        (dict(ids=["a", "b"], vectors=[[1, 1, 1]]), vdb.InvalidArgumentError, "2 ids but 1"),
        (
            dict(ids=["a"], vectors=[[1, 1, 1]], payloads=[{}, {}]),
            vdb.InvalidArgumentError,
            "2 payloads",
        ),
        (
            dict(ids=["a"], vectors=[[1, 1, 1]], payloads=["x"]),
            vdb.InvalidPayloadError,
            "JSON object",
        ),
        (
            dict(ids=["a"], vectors=[[1, 1, 1]], payloads=[{"k": {1, 2}}]),
            vdb.InvalidPayloadError,
            "not JSON",
        ),
        (
            dict(ids=["a"], vectors=[[1, 1, 1]], payloads=[{"k": float("nan")}]),
            vdb.InvalidPayloadError,
            "not JSON",
        ),
        (
            dict(ids=["a"], vectors=[[1, 1, 1]], payloads=[{1: "x"}]),
            vdb.InvalidPayloadError,
            "keys must be strings",
        ),
        (
            dict(ids=["a"], vectors=[[1, 1, 1]], documents=[5]),
            vdb.InvalidArgumentError,
            "document 0",
        ),
        (dict(ids=[1.5], vectors=[[1, 1, 1]]), vdb.InvalidIdError, "1.5"),
        (dict(ids=[True], vectors=[[1, 1, 1]]), vdb.InvalidIdError, "True"),
        (dict(ids=[""], vectors=[[1, 1, 1]]), vdb.InvalidIdError, "empty"),
        (dict(ids=[2**63], vectors=[[1, 1, 1]]), vdb.InvalidIdError, "64-bit"),
        (dict(ids=["x" * 300], vectors=[[1, 1, 1]]), vdb.InvalidIdError, "bytes"),
        (dict(ids=["a"], vectors=[["x", 1, 1]]), vdb.InvalidVectorError, "numeric"),
        (dict(ids=["a"], vectors=None), vdb.InvalidArgumentError, "required"),
        (dict(ids={"a": 1}, vectors=[[1, 1, 1]]), vdb.InvalidArgumentError, "dict"),
    ],
)
def test_bad_upserts_write_nothing(col, kwargs, error, fragment):
    with pytest.raises(error) as info:
        col.upsert(**kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
    unchanged(col)


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda c: c.search([1, 2, 3], k=0), vdb.InvalidArgumentError, "k must be"),
        (lambda c: c.search([1, 2, 3], k=-1), vdb.InvalidArgumentError, "-1"),
        (lambda c: c.search([1, 2, 3], k=2.5), vdb.InvalidArgumentError, "2.5"),
        (lambda c: c.search([1, 2], k=1), vdb.DimensionError, "dimension 2"),
        (lambda c: c.search([0, 0, 0]), vdb.InvalidVectorError, "zeros"),
        (lambda c: c.search([np.nan, 0, 0]), vdb.InvalidVectorError, "NaN"),
        (
            lambda c: c.search([1, 2, 3], filter={"x": {"$gt": "a", "$in": 1}}),
            vdb.FilterError,
            "$in",
        ),
        (lambda c: c.search([1, 2, 3], filter={"x": {"$gt": True}}), vdb.FilterError, "True"),
        (lambda c: c.count({"$bad": 1}), vdb.FilterError, "$bad"),
        (lambda c: c.delete(filter={"x": {"$exists": 1}}), vdb.FilterError, "$exists"),
        (lambda c: c.scroll(limit=0), vdb.InvalidArgumentError, "limit"),
        (lambda c: c.scroll(after=1.5), vdb.InvalidIdError, "1.5"),
        (lambda c: c.delete(ids=[None]), vdb.InvalidIdError, "None"),
    ],
)
def test_bad_reads_and_deletes(col, call, error, fragment):
    with pytest.raises(error) as info:
        call(col)
    assert fragment in str(info.value)
    unchanged(col)


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda db: db.create_collection("c", dim=3), vdb.CollectionExistsError, "'c'"),
        (lambda db: db.create_collection("bad name", dim=3), vdb.InvalidNameError, "bad name"),
        (lambda db: db.create_collection("", dim=3), vdb.InvalidNameError, "''"),
        (lambda db: db.create_collection("../x", dim=3), vdb.InvalidNameError, "../x"),
        (lambda db: db.create_collection("d", dim=0), vdb.InvalidArgumentError, "dim"),
        (lambda db: db.create_collection("d", dim="3"), vdb.InvalidArgumentError, "'3'"),
        (
            lambda db: db.create_collection("d", dim=3, metric="ip"),
            vdb.InvalidArgumentError,
            "'ip'",
        ),
        (lambda db: db.get_collection("nope"), vdb.CollectionNotFoundError, "'nope'"),
        (lambda db: db.drop_collection("nope"), vdb.CollectionNotFoundError, "'nope'"),
    ],
)
def test_bad_collection_calls(db, col, call, error, fragment):
    with pytest.raises(error) as info:
        call(db)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError | KeyError)
    assert db.list_collections() == ["c"]
    unchanged(col)


@pytest.mark.parametrize(
    "option, value",
    [
        ("ef_construction", 2**32 - 1),
        ("ef_construction", 0),
        ("ef_search", 2**40),
        ("M", 1000),
        ("hnsw_threshold", 2**70),
        ("seed", 2**64),
        ("seed", -1),
        ("max_batch", 2**40),
        ("compact_share", float("inf")),
        ("compact_share", float("nan")),
        ("batch_fraction", 0.0),
        ("int8", "yes"),
    ],
)
def test_index_options_out_of_range_are_refused_at_create(db, option, value):
    """A value that cannot work fails the create, never a later write after its commit."""
    with pytest.raises(vdb.InvalidArgumentError, match=option):
        db.create_collection("h", dim=3, index={"kind": "hnsw", option: value})
    assert "h" not in db.list_collections()


def test_search_ef_is_bounded(col):
    with pytest.raises(vdb.InvalidArgumentError, match="ef must be an integer from 1 to"):
        col.search(np.ones(3), k=1, ef=2**40)


@pytest.mark.parametrize("depth", [65, 1000, 5000])
def test_deep_filters_are_a_filter_error_not_a_recursion_error(col, depth):
    flt = {"a": 1}
    for i in range(depth):
        flt = {"$not": flt} if i % 2 else {"$and": [flt]}
    with pytest.raises(vdb.FilterError, match="more than 64 deep"):
        col.search(np.ones(3), k=1, filter=flt)
    with pytest.raises(vdb.FilterError):
        col.count(flt)


def test_huge_filters_are_refused_while_parsing(col):
    with pytest.raises(vdb.FilterError, match="more than 100,000"):
        col.count({"a": {"$in": list(range(200_000))}})
    with pytest.raises(vdb.FilterError, match="more than 100,000"):
        col.count({"$or": [{"a": i} for i in range(100_001)]})
    long_key = "k" * 10_000
    with pytest.raises(vdb.FilterError) as info:
        col.count({long_key: {"$gt": [1]}})
    assert len(str(info.value)) < 300


def test_deep_filters_through_the_client(remote):
    col = remote.create_collection("c", dim=3)
    flt = {"a": 1}
    for _ in range(1000):
        flt = {"$not": flt}
    with pytest.raises(vdb.FilterError, match="more than 64 deep"):
        col.search(np.ones(3), k=1, filter=flt)
