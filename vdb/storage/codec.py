"""Encoding of external ids and point records.

Record layout (little-endian):
  u8   version (2)
  u16  length of the encoded external id
  u32  length of the payload JSON (0 = no payload)
  u32  length of the document UTF-8 + 1 (0 = no document)
  f32  vector[dim]
  ...  encoded external id, payload JSON, document
  u32  CRC-32 of the record's key and everything above (seal.py)

Version 1 records (schema 1) had no checksum; the schema 2 migration rewrites them.
Reading a record checks its checksum and that its lengths add up; anything else is
DataCorruptedError, never a wrong record.
"""

import json
import struct

import numpy as np
import orjson

from vdb.errors import DataCorruptedError, InvalidIdError, InvalidPayloadError
from vdb.storage import keys
from vdb.storage.seal import CRC, is_sound

RECORD_VERSION = 2
HEADER = struct.Struct("<BHII")

PointId = int | str


def encode_id(pid) -> bytes:
    """External id -> sortable key bytes. Accepts str and int (numpy ints too), not bool."""
    if isinstance(pid, str):
        raw = pid.encode("utf-8")
        if not raw:
            raise InvalidIdError("point id must not be an empty string")
        if len(raw) > keys.MAX_STR_ID_BYTES:
            raise InvalidIdError(
                f"point id {pid[:40]!r}... is {len(raw)} bytes; the limit is "
                f"{keys.MAX_STR_ID_BYTES} UTF-8 bytes"
            )
        return keys.ID_TAG_STR + raw
    if isinstance(pid, bool) or not isinstance(pid, int | np.integer):
        raise InvalidIdError(f"point id {pid!r} must be a str or an int, not {type(pid).__name__}")
    value = int(pid)
    if not -(1 << 63) <= value < (1 << 63):
        raise InvalidIdError(f"point id {value} is outside the signed 64-bit range")
    return keys.ID_TAG_INT + keys.INT_ID.pack(value + keys.INT_ID_BIAS)


def decode_id(raw: bytes) -> PointId:
    tag, body = raw[:1], raw[1:]
    if tag == keys.ID_TAG_INT:
        return keys.INT_ID.unpack(body)[0] - keys.INT_ID_BIAS
    return body.decode("utf-8")


def stored_id(raw: bytes) -> PointId:
    """An encoded id read from the database: DataCorruptedError when it does not decode."""
    tag, body = raw[:1], raw[1:]
    try:
        if tag == keys.ID_TAG_INT and len(body) == keys.INT_ID.size:
            return keys.INT_ID.unpack(body)[0] - keys.INT_ID_BIAS
        if tag == keys.ID_TAG_STR and 0 < len(body) <= keys.MAX_STR_ID_BYTES:
            return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    raise DataCorruptedError(f"a stored point id does not decode ({bytes(raw[:24])!r})")


# Floats whose repr has no exponent: orjson writes these exactly as json.dumps does (it writes
# some exponents differently: 1e-05 as 0.00001, 1e-07 as 1e-7).
PLAIN_FLOATS = (1e-4, 1e16)
PLAIN_DEPTH = 32  # nesting the fast path walks; deeper payloads take json.dumps


def encode_payload(payload) -> bytes:
    """A payload (dict or None) -> compact JSON bytes (empty for None).

    The bytes are json.dumps(payload, separators=(",", ":"), ensure_ascii=False) in UTF-8.
    Payloads of plain types only (dict, list, tuple, str, int, finite float, bool, None; str
    keys) are written by orjson, which gives those same bytes; anything else goes through
    json.dumps and its checks, so what is refused and the messages stay those of json.
    JSON that would not read back (an integer beyond a double's range) is refused too."""
    if type(payload) is dict and _plain(payload, 0):
        try:
            return orjson.dumps(payload)
        except orjson.JSONEncodeError:  # ints beyond 64 bits, surrogates in strings
            pass
    return _encode_payload_json(payload)


def _plain(value, depth: int) -> bool:
    """Whether a dict or list holds only values that orjson and json.dumps write alike."""
    if depth > PLAIN_DEPTH:
        return False
    if type(value) is dict:
        for key in value:
            if type(key) is not str:
                return False
        items = value.values()
    else:
        items = value
    low, high = PLAIN_FLOATS
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if not (low <= abs(item) < high or item == 0.0):  # also refuses NaN
                return False
        elif kind is dict or kind is list or kind is tuple:
            if not _plain(item, depth + 1):
                return False
        else:
            return False
    return True


def _encode_payload_json(payload) -> bytes:
    """encode_payload through json.dumps, for any value."""
    if payload is None:
        return b""
    if not isinstance(payload, dict):
        raise InvalidPayloadError(
            f"payload must be a JSON object (dict) or None, not {type(payload).__name__}: "
            f"{_short(payload)}"
        )
    try:
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidPayloadError(f"payload {_short(payload)} is not JSON: {exc}") from None
    # json.dumps turns non-str keys (ints, bools) into strings silently; refuse them instead.
    _check_keys(payload, payload)
    raw = text.encode("utf-8")
    try:  # what is stored must read back: integers beyond a double's range would not
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayloadError(f"payload {_short(payload)} cannot be stored: {exc}") from None
    return raw


def _check_keys(value, root) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPayloadError(
                    f"payload keys must be strings; {key!r} in {_short(root)} is not"
                )
            _check_keys(item, root)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(item, root)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def encode_record(vector: np.ndarray, id_key: bytes, payload_json: bytes, document) -> bytes:
    """The body of a record, to be sealed under its key when it is stored."""
    doc = b"" if document is None else document.encode("utf-8")
    doc_len = 0 if document is None else len(doc) + 1
    header = HEADER.pack(RECORD_VERSION, len(id_key), len(payload_json), doc_len)
    return b"".join((header, vector.astype("<f4", copy=False).tobytes(), id_key, payload_json, doc))


class Record:
    """A decoded record: external id, payload, document and vector (float32, as stored)."""

    __slots__ = ("id", "payload", "document", "vector")

    def __init__(self, id, payload, document, vector):
        self.id = id
        self.payload = payload
        self.document = document
        self.vector = vector

    def __repr__(self) -> str:
        return f"Record(id={self.id!r}, payload={self.payload!r}, document={self.document!r})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        same_vec = (self.vector is None and other.vector is None) or (
            self.vector is not None
            and other.vector is not None
            and np.array_equal(self.vector, other.vector)
        )
        return (self.id, self.payload, self.document) == (
            other.id,
            other.payload,
            other.document,
        ) and same_vec


def open_record(key: bytes, raw, dim: int):
    """A stored record after its checks: checksum, version and lengths agree with a
    collection of dimension dim (DataCorruptedError otherwise). Returns raw itself: the
    fields sit at the same offsets, the 4-byte checksum after them."""
    if not is_sound(key, raw):
        raise DataCorruptedError(f"{keys.describe_record(key)} fails its checksum")
    n = len(raw) - CRC.size
    if n < HEADER.size:
        raise DataCorruptedError(f"{keys.describe_record(key)} is cut short ({n} bytes)")
    version, id_len, payload_len, doc_len = HEADER.unpack_from(raw, 0)
    size = HEADER.size + 4 * dim + id_len + payload_len + max(doc_len - 1, 0)
    if version != RECORD_VERSION or size != n or id_len == 0:
        raise DataCorruptedError(
            f"{keys.describe_record(key)} has a bad header (version {version}, {n} bytes "
            f"for {size})"
        )
    return raw


def decode_record(key: bytes, raw, dim: int, with_vector: bool = True) -> Record:
    """A stored record, checked (see open_record)."""
    payload, document, vector = record_fields(key, raw, dim, with_vector)
    return Record(stored_id(record_id_key(raw, dim)), payload, document, vector)


def record_fields(key: bytes, raw, dim: int, with_vector: bool = False):
    """(payload, document, vector or None) of a stored record, checked as open_record does;
    the id is left undecoded (a search knows it already)."""
    raw = open_record(key, raw, dim)
    _, id_len, payload_len, doc_len = HEADER.unpack_from(raw, 0)
    pos = HEADER.size + 4 * dim + id_len
    payload = _payload(raw[pos : pos + payload_len], key) if payload_len else None
    pos += payload_len
    document = None
    if doc_len:
        try:
            document = str(raw[pos : pos + doc_len - 1], "utf-8")
        except UnicodeDecodeError:
            raise DataCorruptedError(
                f"{keys.describe_record(key)}: its document is not UTF-8"
            ) from None
    vector = None
    if with_vector:
        vector = np.frombuffer(raw, dtype="<f4", count=dim, offset=HEADER.size).astype(np.float32)
    return payload, document, vector


def _payload(raw, key: bytes):
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise DataCorruptedError(f"{keys.describe_record(key)}: its payload is not a JSON object")
    return payload


def record_vector(body, dim: int) -> np.ndarray:
    """The vector of a checked record (open_record), as a zero-copy float32 view."""
    return np.frombuffer(body, dtype="<f4", count=dim, offset=HEADER.size)


def record_payload(body, dim: int, key: bytes = b""):
    """The payload of a checked record body."""
    _, id_len, payload_len, _ = HEADER.unpack_from(body, 0)
    pos = HEADER.size + 4 * dim + id_len
    return _payload(body[pos : pos + payload_len], key) if payload_len else None


def record_document(body, dim: int, key: bytes = b"") -> str | None:
    """The document of a checked record body."""
    _, id_len, payload_len, doc_len = HEADER.unpack_from(body, 0)
    if not doc_len:
        return None
    pos = HEADER.size + 4 * dim + id_len + payload_len
    try:
        return str(body[pos : pos + doc_len - 1], "utf-8")
    except UnicodeDecodeError:
        raise DataCorruptedError(
            f"{keys.describe_record(key)}: its document is not UTF-8"
        ) from None


def record_id_key(body, dim: int) -> bytes:
    """The encoded external id stored in a checked record body."""
    _, id_len, _, _ = HEADER.unpack_from(body, 0)
    pos = HEADER.size + 4 * dim
    return bytes(body[pos : pos + id_len])
