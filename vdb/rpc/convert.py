"""Python values <-> vdb.v1 messages, used by both the server and the remote client.

Vectors cross as one packed little-endian float32 block per message (no per-element loops);
payloads and filter operands as Value messages that keep integers and floats apart.
"""

from dataclasses import asdict, fields
from itertools import repeat

import numpy as np
from google.protobuf import unknown_fields
from google.protobuf.descriptor import FieldDescriptor

from vdb import filters
from vdb.errors import (
    DimensionError,
    FilterError,
    InvalidArgumentError,
    InvalidIdError,
    InvalidPayloadError,
    InvalidVectorError,
    ServerError,
    shown,
)
from vdb.index.config import IndexConfig
from vdb.index.hnsw import HnswConfig
from vdb.results import SearchResults, Selection
from vdb.rpc._gen import collections_pb2 as cpb
from vdb.rpc._gen import common_pb2 as pb
from vdb.storage.codec import Record

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

# ---------------------------------------------------------------- vectors


def pack(arr: np.ndarray) -> pb.Vectors:
    """(n, dim) array -> Vectors."""
    arr = np.asarray(arr, dtype="<f4")
    return pb.Vectors(dim=arr.shape[1], data=arr.tobytes())


def unpack(msg: pb.Vectors, what: str = "vectors") -> np.ndarray:
    """Vectors -> (n, dim) float32 array (read-only view of the message bytes). what names
    the field in errors, e.g. "queries"."""
    data, dim = msg.data, msg.dim
    if dim == 0:
        if data:
            raise DimensionError(f"{what}: Vectors.dim is 0 but data holds {len(data)} bytes")
        return np.empty((0, 0), dtype=np.float32)
    if len(data) % (4 * dim):
        raise InvalidVectorError(
            f"{what}: {len(data)} bytes is not a whole number of rows of {dim} float32 values"
        )
    return np.frombuffer(data, dtype="<f4").reshape(-1, dim)


# ---------------------------------------------------------------- ids


def set_id(msg: pb.PointId, pid) -> None:
    if isinstance(pid, str):
        msg.str = pid
    elif isinstance(pid, int | np.integer) and not isinstance(pid, bool):
        msg.num = int(pid)
    else:
        raise InvalidIdError(
            f"point id {shown(pid)} must be a str or an int, not {type(pid).__name__}"
        )


def id_from(msg: pb.PointId):
    kind = msg.WhichOneof("kind")
    if kind is None:
        raise InvalidIdError("a PointId has neither num nor str set")
    return msg.num if kind == "num" else msg.str


def id_list(pids) -> list[pb.PointId]:
    out = []
    for pid in pids:
        msg = pb.PointId()
        set_id(msg, pid)
        out.append(msg)
    return out


# ---------------------------------------------------------------- JSON values


def set_value(msg: pb.Value, value, error=InvalidPayloadError) -> None:
    """Write a JSON-like Python value into a Value message."""
    if value is None:
        msg.null_value = pb.NULL_VALUE
    elif isinstance(value, bool):
        msg.bool_value = value
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise error(f"integer {value} does not fit in 64 bits")
        msg.int_value = value
    elif isinstance(value, float):
        msg.double_value = value
    elif isinstance(value, str):
        msg.string_value = value
    elif isinstance(value, dict):
        set_struct(msg.struct_value, value, error)
    elif isinstance(value, list | tuple):
        items = msg.list_value.values
        msg.list_value.SetInParent()
        for item in value:
            set_value(items.add(), item, error)
    else:
        raise error(f"{type(value).__name__} value {value!r} is not JSON")


def set_struct(msg: pb.Struct, obj: dict, error=InvalidPayloadError) -> None:
    msg.SetInParent()
    target = msg.fields
    for key, item in obj.items():
        if not isinstance(key, str):
            raise error(f"object keys must be strings; {key!r} is not")
        set_value(target[key], item, error)


def value_from(msg: pb.Value):
    kind = msg.WhichOneof("kind")
    if kind == "string_value":
        return msg.string_value
    if kind == "int_value":
        return msg.int_value
    if kind == "double_value":
        return msg.double_value
    if kind == "bool_value":
        return msg.bool_value
    if kind == "struct_value":
        return struct_from(msg.struct_value)
    if kind == "list_value":
        return [value_from(v) for v in msg.list_value.values]
    return None


def struct_from(msg: pb.Struct) -> dict:
    return {key: value_from(v) for key, v in msg.fields.items()}


# ---------------------------------------------------------------- points and records


def set_point(msg: pb.Point, pid, payload, document) -> None:
    set_id(msg.id, pid)
    if payload is not None:
        set_struct(msg.payload, payload)
    if document is not None:
        msg.document = document


def point_fields(msg: pb.Point) -> tuple:
    """(id, payload, document) of a Point."""
    payload = struct_from(msg.payload) if msg.HasField("payload") else None
    document = msg.document if msg.HasField("document") else None
    return id_from(msg.id), payload, document


def set_vectors(msg: pb.Vectors, items, with_vectors: bool, dim: int) -> None:
    """The vectors of Records or Hits, packed (nothing when they were not asked for)."""
    if with_vectors:
        msg.dim = dim
        if items:
            msg.data = np.stack([item.vector for item in items]).astype("<f4").tobytes()


def records_from(msg) -> list[Record]:
    vecs = unpack(msg.vectors) if msg.vectors.data else None
    out = []
    for i, point in enumerate(msg.records):
        pid, payload, document = point_fields(point)
        out.append(Record(pid, payload, document, None if vecs is None else vecs[i].copy()))
    return out


# ---------------------------------------------------------------- search results

_WIRE_TYPES = {
    0: "a varint",
    1: "a 64-bit value",
    2: "a length-delimited value",
    5: "a 32-bit value",
}
_TYPE_NAMES = {
    FieldDescriptor.TYPE_BOOL: "a bool",
    FieldDescriptor.TYPE_STRING: "a string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_MESSAGE: "a message",
    FieldDescriptor.TYPE_UINT32: "a uint32",
}


def check_wire_types(msg) -> None:
    """InvalidArgumentError when a message carries one of its own fields with another wire
    type than the field's (a string where a bool belongs, a number in a list of strings):
    protobuf would set it aside as unknown and leave the field at its default, silently
    changing what the request asks for."""
    by_number = msg.DESCRIPTOR.fields_by_number
    for item in unknown_fields.UnknownFieldSet(msg):
        field = by_number.get(item.field_number)
        if field is not None:
            raise InvalidArgumentError(
                f"{msg.DESCRIPTOR.name}.{field.name} (field {field.number}) must be "
                f"{_TYPE_NAMES.get(field.type, 'of its declared type')}, got "
                f"{_WIRE_TYPES.get(item.wire_type, f'wire type {item.wire_type}')}"
            )


def set_selection(msg, want: Selection) -> None:
    """What a search returns, into a SearchRequest; the defaults (whole payloads, documents)
    are left unset."""
    if want.payload is not True:
        if want.payload:
            msg.payload_keys.extend(want.payload)
        else:
            msg.with_payload = False
    if not want.document:
        msg.with_document = False
    msg.with_vectors = want.vectors


def selection_from(msg) -> Selection:
    """The Selection a SearchRequest asks for (InvalidArgumentError for a contradiction or a
    field of the wrong type)."""
    check_wire_types(msg)
    payload = msg.with_payload if msg.HasField("with_payload") else True
    if msg.payload_keys:
        if not payload:
            raise InvalidArgumentError(
                f"with_payload is false but payload_keys names {len(msg.payload_keys)} key(s); "
                "leave with_payload unset (or true) to keep only those keys"
            )
        payload = list(msg.payload_keys)
    document = msg.with_document if msg.HasField("with_document") else True
    return Selection.parse(payload, document, msg.with_vectors)


def set_ids(msg, ids: np.ndarray) -> None:
    """Ids (n,) into a SearchResponse's id columns: int64 ids packed at once; an object array
    of ints and strs split by kind (isinstance mapped in C, no Python loop per id)."""
    if ids.dtype != object:
        msg.int_ids.extend(ids.tolist())
        return
    is_str = np.fromiter(map(isinstance, ids, repeat(str)), np.bool_, len(ids))  # (n,)
    if is_str.all():
        msg.str_ids.extend(ids.tolist())
    elif not is_str.any():
        msg.int_ids.extend(ids.tolist())
    else:
        msg.str_ids.extend(ids[is_str].tolist())
        msg.int_ids.extend(ids[~is_str].tolist())
        msg.id_kinds = is_str.astype(np.uint8).tobytes()


def ids_from(msg, n: int) -> np.ndarray:
    """A SearchResponse's n ids: int64 when all are integers, else an object array."""
    if msg.id_kinds:
        is_str = np.frombuffer(msg.id_kinds, np.uint8).astype(np.bool_)  # (n,)
        n_str = int(np.count_nonzero(is_str))
        if len(is_str) != n or n_str != len(msg.str_ids) or n - n_str != len(msg.int_ids):
            raise ServerError(f"a search response's id columns do not hold {n} ids")
        out = np.empty(n, object)
        out[~is_str] = np.array(msg.int_ids, np.int64).astype(object)
        out[is_str] = list(msg.str_ids)
        return out
    if msg.str_ids:
        if len(msg.str_ids) != n:
            raise ServerError(f"a search response holds {len(msg.str_ids)} ids for {n} hits")
        out = np.empty(n, object)
        out[:] = list(msg.str_ids)
        return out
    if len(msg.int_ids) != n:
        raise ServerError(f"a search response holds {len(msg.int_ids)} ids for {n} hits")
    return np.array(msg.int_ids, np.int64)


def results_from(msg, want: Selection) -> SearchResults:
    """A SearchResponse as the SearchResults the embedded search returns: ids and scores
    padded to (queries, width) from the packed columns; Hits (with payloads decoded) built
    when a query's list is first read."""
    counts = np.array(msg.counts, np.int64)  # (nq,)
    n = int(counts.sum())
    if len(msg.scores) != 4 * n or np.any(counts > msg.width):
        raise ServerError(f"a search response holds {len(msg.scores)} score bytes for {n} hits")
    scores = np.frombuffer(msg.scores, "<f4")  # (n,)
    found = np.arange(msg.width) < counts[:, None]  # (nq, width): hits first in every row
    if msg.string_ids:
        ids = np.full(found.shape, None, object)
    else:
        ids = np.full(found.shape, -1, np.int64)
    flat = ids_from(msg, n)  # (n,)
    ids[found] = flat
    padded = np.full(found.shape, np.nan, np.float32)
    padded[found] = scores
    fields = _fields(msg, flat, counts, want) if want.reads else None
    return SearchResults(ids, padded, counts, fields)


def _fields(msg, ids: np.ndarray, counts: np.ndarray, want: Selection):
    """fields(q) for SearchResults: the payloads, documents and vectors of query q's hits.
    A point found by several queries has its payload decoded once (its Hits share the dict,
    as the embedded search's do)."""
    starts = [0, *np.cumsum(counts).tolist()]
    n = starts[-1]
    data = msg.data if want.payload or want.document else None
    if data is not None and len(data) != n:
        raise ServerError(f"a search response holds {len(data)} payloads for {n} hits")
    vectors = unpack(msg.vectors) if want.vectors else None  # (n, dim)
    if vectors is not None and len(vectors) != n:
        raise ServerError(f"a search response holds {len(vectors)} vectors for {n} hits")
    decoded: dict = {}  # id -> (payload, document)

    def one(pid, item) -> tuple:
        got = decoded.get(pid)
        if got is None:
            payload = struct_from(item.payload) if item.HasField("payload") else None
            document = item.document if item.HasField("document") else None
            got = decoded[pid] = (payload, document)
        return got

    def fields(q: int):
        a, b = starts[q], starts[q + 1]
        recs = list(map(one, ids[a:b].tolist(), data[a:b])) if data is not None else ()
        return (
            [r[0] for r in recs] if want.payload else None,
            [r[1] for r in recs] if want.document else None,
            list(vectors[a:b].copy()) if vectors is not None else None,
        )

    return fields


# ---------------------------------------------------------------- filters

_OPS = {
    "$eq": pb.EQ,
    "$ne": pb.NE,
    "$gt": pb.GT,
    "$gte": pb.GTE,
    "$lt": pb.LT,
    "$lte": pb.LTE,
    "$in": pb.IN,
    "$nin": pb.NIN,
    "$exists": pb.EXISTS,
}
_OP_NAMES = {code: name for name, code in _OPS.items()}


def set_filter(msg: pb.Filter, flt) -> None:
    """Validate an embedded-language filter (the same errors as the embedded API) and write it
    into msg."""
    _set_node(msg, filters.parse(flt))


def _set_node(msg: pb.Filter, node) -> None:
    kind = node[0]
    if kind in ("and", "or"):
        group = getattr(msg, kind)
        group.SetInParent()
        for child in node[1]:
            _set_node(group.filters.add(), child)
    elif kind == "not":
        _set_node(getattr(msg, "not"), node[1])
    else:
        _, path, op, operand = node
        cond = msg.condition
        cond.key = path
        cond.op = _OPS[op]
        set_value(cond.value, operand, FilterError)


def filter_from(msg: pb.Filter) -> dict:
    """A Filter message -> the embedded filter language (validated later by filters.parse)."""
    kind = msg.WhichOneof("kind")
    if kind == "condition":
        cond = msg.condition
        op = _OP_NAMES.get(cond.op)
        if op is None:
            raise FilterError(f"condition on {cond.key!r} has no operator")
        if not cond.HasField("value"):
            raise FilterError(f"condition {op} on {cond.key!r} has no value")
        return {cond.key: {op: value_from(cond.value)}}
    if kind == "and":
        items = [filter_from(f) for f in getattr(msg, "and").filters]
        return {"$and": items} if items else {}
    if kind == "or":
        return {"$or": [filter_from(f) for f in getattr(msg, "or").filters]}
    if kind == "not":
        return {"$not": filter_from(getattr(msg, "not"))}
    raise FilterError("a Filter message has no condition, and, or, or not set")


def optional_filter(request, field: str = "filter"):
    return filter_from(getattr(request, field)) if request.HasField(field) else None


# ---------------------------------------------------------------- collections

_HNSW_FIELDS = {f.name: f.name.lower() for f in fields(HnswConfig)}  # M -> m


def set_index(msg: cpb.IndexParams, cfg: IndexConfig) -> None:
    msg.kind = cfg.kind
    msg.hnsw_threshold = cfg.hnsw_threshold
    for name, proto_name in _HNSW_FIELDS.items():
        value = getattr(cfg.hnsw, name)
        if value is not None:
            setattr(msg, proto_name, value)


def index_from(msg: cpb.IndexParams) -> dict:
    out = {"kind": msg.kind or "auto"}
    if msg.HasField("hnsw_threshold"):
        out["hnsw_threshold"] = msg.hnsw_threshold
    for name, proto_name in _HNSW_FIELDS.items():
        if msg.HasField(proto_name):
            out[name] = getattr(msg, proto_name)
    return out


def set_info(msg: cpb.CollectionInfo, info: dict) -> None:
    msg.name, msg.dim, msg.metric = info["name"], info["dim"], info["metric"]
    msg.count, msg.lsn, msg.cid = info["count"], info["lsn"], info["cid"]
    msg.buffered = info["buffered"]
    msg.index_in_use, msg.loaded_from = info["index_in_use"], info["loaded_from"]
    msg.created_at = info["created_at"]
    msg.embedder = info.get("embedder") or ""
    msg.damage.extend(info.get("damage", ()))
    set_index(msg.index, IndexConfig.parse(info["index"]))
    if info.get("text") is not None:
        set_text(msg.text, info["text"])


def set_text(msg: cpb.TextParams, text: dict) -> None:
    """TextParams from a TextConfig's dict ({"analyzer": ..., "field": ...})."""
    msg.analyzer = text["analyzer"]
    if text.get("field") is not None:
        msg.field = text["field"]


def text_from(msg: cpb.TextParams) -> dict:
    """The dict TextConfig.parse takes, from TextParams."""
    return {
        "analyzer": msg.analyzer or "en",
        "field": msg.field if msg.HasField("field") else None,
    }


def info_from(msg: cpb.CollectionInfo) -> dict:
    """The same dict as Collection.info()."""
    index = IndexConfig.parse(index_from(msg.index))
    return {
        "name": msg.name,
        "dim": msg.dim,
        "metric": msg.metric,
        "cid": msg.cid,
        "created_at": msg.created_at,
        "index": asdict(index),
        "embedder": msg.embedder or None,
        "count": msg.count,
        "lsn": msg.lsn,
        "index_in_use": msg.index_in_use,
        "buffered": msg.buffered,
        "loaded_from": msg.loaded_from,
        "damage": list(msg.damage),
        "text": text_from(msg.text) if msg.HasField("text") else None,
        "text_index": None,  # the keyword index's figures stay in the server
    }


def require(value, what: str):
    """A required string field of a request."""
    if not value:
        raise InvalidArgumentError(f"{what} is required")
    return value


# ---------------------------------------------------------------- sampler settings

_SAMPLER_FIELDS = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "tfs_z",
    "repeat_penalty",
    "frequency_penalty",
    "presence_penalty",
    "repeat_last_n",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "seed",
)


def set_sampler(msg, settings: dict) -> None:
    """Sampler keyword arguments (already checked by llm.generate.Sampler) -> SamplerSettings;
    settings left out stay unset, so the server applies the same defaults."""
    for name, value in settings.items():
        if name == "logit_bias":
            for token, bias in value.items():
                msg.logit_bias[int(token)] = float(bias)
        elif value is not None:
            setattr(msg, name, value)


def sampler_from(msg) -> dict:
    """SamplerSettings -> keyword arguments for Sampler (only the fields that are set)."""
    settings = {name: getattr(msg, name) for name in _SAMPLER_FIELDS if msg.HasField(name)}
    if msg.logit_bias:
        settings["logit_bias"] = dict(msg.logit_bias)
    return settings
