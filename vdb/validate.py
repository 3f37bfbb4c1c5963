"""Checks applied once at the API boundary; everything inside trusts their output."""

import math
import re
from typing import NamedTuple

import numpy as np
from numba import njit

from vdb.errors import (
    DimensionError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidVectorError,
    shown,
)
from vdb.index import METRICS
from vdb.storage.codec import encode_id, encode_payload
from vdb.storage.keys import ID_TAG_INT, INT_ID_BIAS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAX_DIM = 65536


def collection_name(name) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidNameError(
            f"invalid collection name {shown(name)}: use 1-63 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def dimension(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 1 <= dim <= MAX_DIM:
        raise InvalidArgumentError(f"dim must be an integer from 1 to {MAX_DIM}, got {dim!r}")
    return int(dim)


def metric(name) -> str:
    if name not in METRICS:
        raise InvalidArgumentError(
            f"unknown metric {shown(name)}; expected one of {', '.join(METRICS)}"
        )
    return name


def top_k(k, name: str = "k", high: int | None = None) -> int:
    if type(k) is int and 0 < k and (high is None or k <= high):
        return k
    if (
        isinstance(k, bool)
        or not isinstance(k, int | np.integer)
        or k <= 0
        or (high is not None and k > high)
    ):
        span = "a positive integer" if high is None else f"an integer from 1 to {high}"
        raise InvalidArgumentError(f"{name} must be {span}, got {shown(k)}")
    return int(k)


def limit(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise InvalidArgumentError(f"limit must be a positive integer, got {value!r}")
    return int(value)


def id_list(ids) -> tuple[list, bool]:
    """ids as a list, and whether a single id (not a list) was given."""
    if isinstance(ids, str | int | np.integer) and not isinstance(ids, bool):
        return [ids], True
    if isinstance(ids, np.ndarray):
        return ids.tolist(), False
    if not isinstance(ids, list | tuple):
        raise InvalidArgumentError(
            f"ids must be a str, an int or a list of them, got {type(ids).__name__}"
        )
    return list(ids), False


def unique_id_keys(ids: list) -> list[bytes]:
    keys = _int_id_keys(ids)
    if keys is None:
        keys = [encode_id(pid) for pid in ids]
    if len(set(keys)) != len(keys):
        seen = set()
        for pid, key in zip(ids, keys, strict=True):
            if key in seen:
                raise DuplicateIdError(f"point id {shown(pid)} appears more than once in the batch")
            seen.add(key)
    return keys


_INT_KEY = np.dtype([("tag", "S1"), ("value", ">u8")])  # encode_id of an int, as a record


def _int_id_keys(ids: list) -> list[bytes] | None:
    """encode_id of every id at once when all are Python ints within int64, else None."""
    for pid in ids:
        if type(pid) is not int:
            return None
    try:
        values = np.array(ids, dtype=np.int64)
    except OverflowError:
        return None
    packed = np.empty(len(ids), dtype=_INT_KEY)
    packed["tag"] = ID_TAG_INT
    packed["value"] = values.view(np.uint64) ^ np.uint64(INT_ID_BIAS)  # value + 2^63 (mod 2^64)
    raw = packed.tobytes()
    size = _INT_KEY.itemsize
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def vectors(values, dim: int, metric_name: str, ids: list | None = None, what="vector"):
    """(n, dim) float32 C-contiguous rows, checked finite (and non-zero under cosine)."""
    if (
        type(values) is np.ndarray
        and values.dtype == np.float32
        and values.shape == (dim,)
        and values.flags.c_contiguous
        and _plain_row(values)
    ):  # one query as a vector: the common call, checked in one pass (_plain_row)
        return values.reshape(1, dim)
    many = what[:-1] + "ies" if what.endswith("y") else what + "s"
    if isinstance(values, np.ndarray) and values.dtype == np.float32:
        arr = values
    else:
        try:
            with np.errstate(over="ignore"):
                arr = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidVectorError(f"{many} must be numeric arrays: {exc}") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidVectorError(f"{many} must be one row or a 2-D array, got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise DimensionError(f"{many} have dimension {arr.shape[1]}; the collection has {dim}")
    arr = np.ascontiguousarray(arr)
    if _plain(arr, metric_name == "cosine"):
        return arr
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InvalidVectorError(
            f"{what} {_label(row, ids)} holds NaN or infinite values (or values beyond float32)"
        )
    if metric_name == "cosine":
        # zero exactly where np.linalg.norm is: sums of squares, which are never negative
        norms = np.einsum("ij,ij->i", arr, arr)  # (n,)
        if (norms == 0).any():
            row = int(np.flatnonzero(norms == 0)[0])
            raise InvalidVectorError(
                f"{what} {_label(row, ids)} is all zeros, which has no direction under cosine"
            )
    return arr


def _plain(arr: np.ndarray, nonzero: bool) -> bool:
    """True when every row is finite (and clearly non-zero when asked), from one float64 sum
    of squares per row, which no finite float32 row overflows; otherwise the caller checks
    row by row."""
    sq = np.vecdot(arr, arr, dtype=np.float64)  # (n,)
    if len(sq) == 0:
        return True
    if len(sq) == 1:  # a single query: Python floats are quicker than array reductions
        total = least = float(sq[0])
    else:
        total, least = float(sq.sum()), float(sq.min()) if nonzero else 1.0
    return math.isfinite(total) and (not nonzero or least > 1e-30)


@njit(cache=True)
def _plain_row(row: np.ndarray) -> bool:
    """True when a row's float64 sum of squares (no finite float32 row overflows it) is
    finite and clearly non-zero; False sends the caller through the full checks."""
    total = 0.0
    for x in row:
        total += np.float64(x) * x
    return 1e-30 < total < np.inf


def _label(row: int, ids) -> str:
    return f"for id {ids[row]!r}" if ids is not None else f"at row {row}"


def normalized(arr: np.ndarray) -> np.ndarray:
    """(n, dim) float32 rows scaled to unit length: arr / np.linalg.norm(arr, axis=1), to the
    bit, with one scratch array instead of four."""
    if arr.dtype != np.float32:
        return (arr / np.linalg.norm(arr, axis=1, keepdims=True)).astype(np.float32)
    out = np.multiply(arr, arr)  # (n, dim), then the result in place
    norms = np.sqrt(np.add.reduce(out, axis=1, keepdims=True))  # (n, 1), as linalg.norm
    return np.divide(arr, norms, out=out)


def per_point(values, n: int, name: str, single_type) -> list:
    """payloads / documents: None, one value for a single point, or a list of n values."""
    if values is None:
        return [None] * n
    if isinstance(values, single_type):
        if n != 1:
            raise InvalidArgumentError(f"got one {name[:-1]} for {n} ids; pass a list of {n}")
        return [values]
    if not isinstance(values, list | tuple):
        raise InvalidArgumentError(f"{name} must be a list, got {type(values).__name__}")
    if len(values) != n:
        raise InvalidArgumentError(f"got {len(values)} {name} for {n} ids")
    return list(values)


def payloads(values, n: int) -> tuple[list, list[bytes]]:
    items = per_point(values, n, "payloads", dict)
    return items, [encode_payload(p) for p in items]


class Batch(NamedTuple):
    """A checked upsert batch."""

    ids: list
    id_keys: list[bytes]  # encoded ids
    vectors: np.ndarray  # (n, dim) float32
    payloads: list  # dict or None per point
    payload_json: list[bytes]
    documents: list  # str or None per point


def upsert_batch(ids, vectors_in, payloads_in, documents_in, dim: int, metric_name: str) -> Batch:
    """Every check of an upsert, so that a bad item rejects the whole batch before any write.
    vectors_in=None checks everything but the vectors (vectors in the Batch is then None)."""
    ids, _ = id_list(ids)
    n = len(ids)
    id_keys = unique_id_keys(ids)
    vecs = None
    if vectors_in is not None:
        vecs = vectors(vectors_in, dim, metric_name, ids)
        if vecs.shape[0] != n:
            raise InvalidArgumentError(f"got {n} ids but {vecs.shape[0]} vectors")
    pay_items, pay_json = payloads(payloads_in, n)
    return Batch(ids, id_keys, vecs, pay_items, pay_json, documents(documents_in, n))


BATCH_FIELDS = ("ids", "vectors", "payloads", "documents")


def batch_args(batch) -> dict:
    """One batch of a bulk upsert: a tuple (ids, vectors[, payloads[, documents]]) or a dict
    with those keys -> keyword arguments of upsert."""
    if isinstance(batch, dict):
        unknown = set(batch) - set(BATCH_FIELDS)
        if unknown:
            raise InvalidArgumentError(f"unknown batch key(s): {', '.join(sorted(unknown))}")
        if "ids" not in batch:
            raise InvalidArgumentError("a batch needs ids")
        return batch
    if isinstance(batch, tuple | list) and 2 <= len(batch) <= 4:
        return dict(zip(BATCH_FIELDS, batch, strict=False))
    raise InvalidArgumentError(
        "a batch is a tuple (ids, vectors[, payloads[, documents]]) or a dict with those keys, "
        f"got {type(batch).__name__}"
    )


def has_embedder(config) -> None:
    if config.embedder is None:
        raise InvalidArgumentError(
            f"collection {config.name!r} has no embedder: give vectors, or create it with "
            "embedder=..."
        )


def texts_to_embed(ids, values) -> list[str]:
    """The documents of an upsert without vectors: one str per id."""
    if values is None:
        raise InvalidArgumentError("vectors are required (or documents, with an embedder)")
    docs = documents(values, len(id_list(ids)[0]))
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise InvalidArgumentError(
                f"document {i} is None; every point needs a document when vectors are not given"
            )
    return docs


def documents(values, n: int) -> list:
    items = per_point(values, n, "documents", str)
    for i, doc in enumerate(items):
        if doc is not None and not isinstance(doc, str):
            raise InvalidArgumentError(
                f"document {i} must be a str or None, got {type(doc).__name__}"
            )
    return items
