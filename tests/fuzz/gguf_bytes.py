"""A GGUF file as an editable document: parse the header into plain values, change them, and
write the bytes back (the tensor data is carried over untouched).

It is written apart from llm/gguf_file.py on purpose, so that the fuzzer does not share the
reader's assumptions: it keeps whatever the header says (counts, types, offsets) and writes
back whatever the document holds, consistent or not.
"""

import struct
from dataclasses import dataclass, field

import numpy as np

# GGUF value types
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64 = range(12)
FLOAT64 = 12
SCALAR = {
    UINT8: "<B",
    INT8: "<b",
    UINT16: "<H",
    INT16: "<h",
    UINT32: "<I",
    INT32: "<i",
    FLOAT32: "<f",
    BOOL: "<?",
    UINT64: "<Q",
    INT64: "<q",
    FLOAT64: "<d",
}
INTEGER = (UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64)
DTYPE = {t: np.dtype(fmt) for t, fmt in SCALAR.items()}


@dataclass
class KV:
    """One metadata pair. value: int/float/bool for scalars, bytes for a string, a list of
    bytes for an array of strings, a numpy array for an array of numbers."""

    key: bytes
    vtype: int
    value: object
    etype: int | None = None  # element type of an array
    at: int = -1  # where its type field sits in the parsed file (for byte edits)


@dataclass
class TensorInfo:
    name: bytes
    dims: list[int]  # innermost first, as stored
    ttype: int
    offset: int  # from the start of the data section
    at: int = -1  # where its dimension count sits in the parsed file (for byte edits)


@dataclass
class Doc:
    version: int
    kvs: list[KV]
    tensors: list[TensorInfo]
    data: bytes  # the data section
    alignment: int = 32
    counts: tuple[int, int] | None = field(default=None)  # (tensors, kvs) written instead
    header_end: int = 0  # where the parsed file's header ended

    def kv(self, key: str) -> KV | None:
        for item in self.kvs:
            if item.key == key.encode():
                return item
        return None

    def tensor(self, name: str) -> TensorInfo | None:
        for t in self.tensors:
            if t.name == name.encode():
                return t
        return None


class _Reader:
    def __init__(self, raw: bytes):
        self.raw, self.pos = raw, 0

    def take(self, fmt: str):
        value = struct.unpack_from(fmt, self.raw, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def bytes_(self) -> bytes:
        n = self.take("<Q")
        out = self.raw[self.pos : self.pos + n]
        self.pos += n
        return out

    def value(self, vtype: int):
        if vtype == STRING:
            return self.bytes_(), None
        if vtype == ARRAY:
            etype, count = self.take("<I"), self.take("<Q")
            if etype == STRING:
                return [self.bytes_() for _ in range(count)], etype
            if etype == ARRAY:  # arrays of arrays: (element type, values) each
                return [self.value(ARRAY)[::-1] for _ in range(count)], etype
            arr = np.frombuffer(self.raw, DTYPE[etype], count, self.pos).copy()
            self.pos += arr.nbytes
            return arr, etype
        return self.take(SCALAR[vtype]), None


def parse(raw: bytes) -> Doc:
    """The document of a well-formed GGUF file (the fuzzer's starting points)."""
    r = _Reader(raw)
    assert raw[:4] == b"GGUF"
    r.pos = 4
    version, n_tensors, n_kv = r.take("<I"), r.take("<Q"), r.take("<Q")
    kvs = []
    for _ in range(n_kv):
        key = r.bytes_()
        at = r.pos
        vtype = r.take("<I")
        value, etype = r.value(vtype)
        kvs.append(KV(key, vtype, value, etype, at))
    tensors = []
    for _ in range(n_tensors):
        name = r.bytes_()
        at = r.pos
        dims = [r.take("<Q") for _ in range(r.take("<I"))]
        tensors.append(TensorInfo(name, dims, r.take("<I"), r.take("<Q"), at))
    alignment = 32
    for item in kvs:
        if item.key == b"general.alignment":
            alignment = int(item.value)
    start = -(-r.pos // alignment) * alignment if tensors else r.pos
    return Doc(version, kvs, tensors, raw[start:], alignment, header_end=r.pos)


def _string(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b


def _value(vtype: int, value, etype) -> bytes:
    if vtype == STRING:
        return _string(value)
    if vtype == ARRAY:
        out = struct.pack("<IQ", etype, len(value))
        if etype == STRING:
            return out + b"".join(_string(v) for v in value)
        if etype == ARRAY:
            return out + b"".join(_value(ARRAY, v, e) for e, v in value)
        with np.errstate(all="ignore"):
            return out + np.asarray(value).astype(DTYPE[etype]).tobytes()
    return struct.pack(SCALAR[vtype], value)


def header(doc: Doc) -> bytes:
    """The header bytes (without the padding before the data)."""
    n_tensors, n_kv = doc.counts or (len(doc.tensors), len(doc.kvs))
    out = [b"GGUF", struct.pack("<IQQ", doc.version, n_tensors, n_kv)]
    for item in doc.kvs:
        out += [_string(item.key), struct.pack("<I", item.vtype)]
        out.append(_value(item.vtype, item.value, item.etype))
    for t in doc.tensors:
        out += [_string(t.name), struct.pack("<I", len(t.dims))]
        out += [struct.pack("<Q", d) for d in t.dims]
        out.append(struct.pack("<IQ", t.ttype, t.offset))
    return b"".join(out)


def dump(doc: Doc) -> bytes:
    head = header(doc)
    pad = -len(head) % doc.alignment if doc.tensors or doc.data else 0  # vocab-only: none
    return head + b"\0" * pad + doc.data


def pack_scalar(vtype: int, value) -> object:
    """value made to fit vtype (integers wrap, as a byte edit would leave them)."""
    if vtype in INTEGER:
        size = DTYPE[vtype].itemsize * 8
        value = int(value) % (1 << size)
        if vtype in (INT8, INT16, INT32, INT64) and value >= 1 << (size - 1):
            value -= 1 << size
        return value
    if vtype == BOOL:
        return bool(value)
    return float(value)
