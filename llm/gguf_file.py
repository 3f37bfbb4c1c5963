"""GGUF files, memory-mapped: metadata as Python values, tensors as raw blocks that stay
mapped (nothing is copied or dequantized here).

The header is parsed here rather than by `gguf`'s GGUFReader, which builds numpy views for
every field and took 7 s on the 151,000-token vocabulary of a qwen2 file; this takes a tenth
of a second. tests/test_gguf_file.py checks both agree on every file at hand.

Layout (GGUF v2 and v3, little-endian): magic, uint32 version, uint64 tensor count, uint64
key/value count; key/value pairs (string key, uint32 type, value; strings are a uint64
length and UTF-8 bytes; arrays a uint32 element type, uint64 count and the elements); tensor
infos (name, uint32 dims, uint64 sizes innermost first, uint32 type, uint64 offset); then
the tensor data from the next multiple of general.alignment (default 32).

Nothing in the header is trusted: every count and length is checked against the bytes left
before it is used (a count of 2^60 tensors fails at once rather than looping), every string
must be UTF-8, keys and tensor names must be unique, and every tensor must have 1 to 4
dimensions of at least 1, whole blocks of a known GGML type, an aligned offset, and bytes
inside the file that no other tensor claims. Metadata values are read through typed getters
(integer(), number(), flag(), text()) that name the key and the value when either is wrong.
What the values must be for an architecture is checked in llm/validate.py.
"""

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from llm.errors import (
    MalformedModelError,
    ModelNotFoundError,
    NotGGUFError,
    TruncatedModelError,
    UnsupportedModelError,
)

MAGIC = b"GGUF"
VERSIONS = (2, 3)
MAX_DIMS = 4  # as ggml
MAX_NAME = 256  # bytes in a tensor name (ggml allows 63)
_MISSING = object()
# the fewest bytes a metadata pair (empty key, type, one-byte value) and a tensor info (empty
# name, one dimension, type, offset) take: a count beyond what the rest of the file could
# hold is refused before anything is read
MIN_KV_BYTES = 8 + 4 + 1
MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8


def show(value, limit: int = 48) -> str:
    """A bounded repr of a metadata value for error messages."""
    if isinstance(value, np.ndarray | list | tuple) and not isinstance(value, str):
        return f"[{type(value).__name__} of {len(value)} values]"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Tensor:
    """One tensor: its type, its logical shape in numpy order (rows, columns) and its raw data,
    a read-only memory-mapped array of (rows, bytes per row) for block types."""

    name: str
    qtype: GGMLQuantizationType
    shape: tuple[int, ...]
    raw: np.ndarray
    packed: np.ndarray | None = field(default=None, repr=False, compare=False)  # quants.interleave

    @property
    def type_name(self) -> str:
        return self.qtype.name

    @property
    def nbytes(self) -> int:
        return int(self.raw.nbytes)


class GGUFFile:
    """An open GGUF file.

    Example:
        >>> f = GGUFFile("model.gguf")  # doctest: +SKIP
        >>> f.architecture, f.get("bert.block_count"), f.tensor("token_embd.weight").shape
        ... # doctest: +SKIP
        ('bert', 6, (30522, 384))
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelNotFoundError(f"no model file at {show(str(self.path), 200)}")
        with open(self.path, "rb") as f:
            head = f.read(4)
        if head != MAGIC:
            raise NotGGUFError(
                f"{show(str(self.path), 200)} is not a GGUF file (it starts with {head!r})"
            )
        data = np.memmap(self.path, dtype=np.uint8, mode="r")
        name = self.path.name
        self.metadata, infos, end = _parse(memoryview(data), name)
        align = self.metadata.get("general.alignment", 32)
        if type(align) is not int or align < 1 or align & (align - 1):
            raise MalformedModelError(
                f"{name}: general.alignment = {show(align)} is not a power of two"
            )
        start = -(-end // align) * align
        if infos and start > data.shape[0]:
            raise TruncatedModelError(f"{name}: the file ends before its tensor data")
        self.tensors: dict[str, Tensor] = {}
        spans = []
        for info in infos:
            tensor, offset = _tensor(name, data, start, align, *info)
            self.tensors[tensor.name] = tensor
            spans.append((offset, offset + tensor.nbytes, tensor.name))
        _check_overlaps(name, spans)
        self.architecture = self.metadata.get("general.architecture")
        if not isinstance(self.architecture, str) or not self.architecture:
            raise UnsupportedModelError(
                f"{name}: general.architecture = {show(self.architecture)} names no architecture"
            )

    def get(self, key: str, default=_MISSING):
        """A metadata value; UnsupportedModelError when it is missing and no default is given."""
        value = self.metadata.get(key, default)
        if value is _MISSING:
            raise UnsupportedModelError(f"{self.path.name}: metadata key {key!r} is missing")
        return value

    def arch_get(self, key: str, default=_MISSING):
        """A metadata value under the architecture's prefix, e.g. arch_get("block_count")."""
        return self.get(f"{self.architecture}.{key}", default)

    def arch_key(self, key: str) -> str:
        """The full name of a key under the architecture's prefix."""
        return f"{self.architecture}.{key}"

    def integer(self, key: str, default=_MISSING, low: int = 0, high: int = 2**63 - 1) -> int:
        """An integer value in [low, high]; MalformedModelError naming key and value if the
        value is not an integer or out of range."""
        value = self.get(key, default)
        if type(value) is not int:
            self.malformed(key, value, "is not an integer")
        if not low <= value <= high:
            self.malformed(key, value, f"is outside [{low}, {high}]")
        return value

    def number(self, key: str, default=_MISSING, low=-math.inf, high=math.inf) -> float:
        """A finite number in [low, high]."""
        value = self.get(key, default)
        if type(value) not in (int, float):
            self.malformed(key, value, "is not a number")
        if not (math.isfinite(value) and low <= value <= high):
            self.malformed(key, value, f"is not a finite number in [{low}, {high}]")
        return float(value)

    def flag(self, key: str, default=_MISSING) -> bool:
        value = self.get(key, default)
        if type(value) is not bool:
            self.malformed(key, value, "is not a boolean")
        return value

    def text(self, key: str, default=_MISSING) -> str | None:
        value = self.get(key, default)
        if value is not None and not isinstance(value, str):
            self.malformed(key, value, "is not a string")
        return value

    def malformed(self, key: str, value, problem: str):
        raise MalformedModelError(f"{self.path.name}: {key} = {show(value)} {problem}")

    def tensor(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise UnsupportedModelError(f"{self.path.name}: tensor {name!r} is missing") from None

    def __repr__(self) -> str:
        return f"GGUFFile({str(self.path)!r}, {self.architecture}, {len(self.tensors)} tensors)"


_SCALARS = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
_DTYPES = {int(t): np.dtype(fmt) for t, fmt in _SCALARS.items()}
_FORMATS = {int(t): (fmt, struct.calcsize(fmt)) for t, fmt in _SCALARS.items()}
_STRING, _ARRAY = int(GGUFValueType.STRING), int(GGUFValueType.ARRAY)
# Tensor types stored one element per value (the rest are blocks, kept as bytes per row).
_ELEMENTS = {
    GGMLQuantizationType.F32: np.float32,
    GGMLQuantizationType.F16: np.float16,
    GGMLQuantizationType.F64: np.float64,
    GGMLQuantizationType.I8: np.int8,
    GGMLQuantizationType.I16: np.int16,
    GGMLQuantizationType.I32: np.int32,
    GGMLQuantizationType.I64: np.int64,
}


class _Cursor:
    """Reads the header; every read is checked against the bytes left. `field` says what is
    being read, for the error messages."""

    def __init__(self, buf: memoryview, name: str):
        self.buf, self.pos, self.name, self.field = buf, 0, name, "the header"

    def need(self, n: int, what: str = "") -> None:
        if n > len(self.buf) - self.pos:
            raise TruncatedModelError(
                f"{self.name}: {what or self.field} runs past the end of the file "
                f"({n} bytes at offset {self.pos}, the file has {len(self.buf)})"
            )

    def take(self, vtype: int):
        fmt, size = _FORMATS[vtype]
        self.need(size)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def u32(self) -> int:
        return self.take(int(GGUFValueType.UINT32))

    def u64(self) -> int:
        return self.take(int(GGUFValueType.UINT64))

    def string(self) -> str:
        n = self.u64()
        if n > len(self.buf) - self.pos:
            self.need(n, f"a string of {n} bytes in {self.field}")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedModelError(
                f"{self.name}: a string in {self.field} is not UTF-8 ({show(raw)})"
            ) from None

    def value(self, vtype: int):
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.u32(), self.u64()
            if etype == _ARRAY:
                raise MalformedModelError(f"{self.name}: {self.field} is an array of arrays")
            if etype != _STRING and etype not in _DTYPES:
                raise MalformedModelError(
                    f"{self.name}: {self.field} is an array of unknown value type {etype}"
                )
            size = 8 if etype == _STRING else _DTYPES[etype].itemsize
            if count > (len(self.buf) - self.pos) // size:
                self.need(count * size, f"an array of {count} values in {self.field}")
            if etype == _STRING:
                return [self.string() for _ in range(count)]
            arr = np.frombuffer(self.buf, _DTYPES[etype], count, self.pos).copy()
            self.pos += count * size
            return arr
        if vtype not in _FORMATS:
            raise MalformedModelError(f"{self.name}: {self.field} has unknown value type {vtype}")
        return self.take(vtype)


def _parse(buf: memoryview, name: str):
    """(metadata, [(name, dims innermost first, type number, offset)], end of the header)."""
    c = _Cursor(buf, name)
    c.pos = 4
    version = c.u32()
    if version not in VERSIONS:
        raise UnsupportedModelError(f"{name}: GGUF version {version} (supported: 2 and 3)")
    n_tensors, n_kv = c.u64(), c.u64()
    left = len(buf) - c.pos
    if n_kv > left // MIN_KV_BYTES or n_tensors > left // MIN_TENSOR_INFO_BYTES:
        raise TruncatedModelError(
            f"{name}: the header counts {n_kv} metadata keys and {n_tensors} tensors, more "
            f"than the file's {len(buf)} bytes can hold"
        )
    metadata = {}
    for i in range(n_kv):
        c.field = f"metadata key {i}"
        key = c.string()
        c.field = f"metadata key {show(key)}"
        if key in metadata:
            raise MalformedModelError(f"{name}: {c.field} appears twice")
        metadata[key] = c.value(c.u32())
    infos = []
    seen = set()
    for i in range(n_tensors):
        c.field = f"tensor info {i}"
        tname = c.string()
        c.field = f"tensor {show(tname)}"
        if len(tname.encode()) > MAX_NAME or tname in seen:
            problem = "appears twice" if tname in seen else f"has a name over {MAX_NAME} bytes"
            raise MalformedModelError(f"{name}: {c.field} {problem}")
        seen.add(tname)
        n_dims = c.u32()
        if not 1 <= n_dims <= MAX_DIMS:
            raise MalformedModelError(
                f"{name}: {c.field} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )
        dims = tuple(c.u64() for _ in range(n_dims))
        infos.append((tname, dims, c.u32(), c.u64()))
    return metadata, infos, c.pos


def _tensor(name, data, start, align, tname, dims, type_number, offset) -> tuple[Tensor, int]:
    """The tensor an info describes, and its offset in the file, once every field checks."""
    try:
        qtype = GGMLQuantizationType(type_number)
        block, size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise UnsupportedModelError(
            f"{name}: tensor {tname} has type {type_number}, which is not a GGML type"
        ) from None
    if min(dims) < 1:
        raise MalformedModelError(f"{name}: tensor {tname} has dimensions {dims}")
    if dims[0] % block:
        raise MalformedModelError(
            f"{name}: tensor {tname} has rows of {dims[0]} values, not whole {qtype.name} "
            f"blocks of {block}"
        )
    nbytes = math.prod(dims) // block * size
    if offset % align:
        raise MalformedModelError(
            f"{name}: tensor {tname} has offset {offset}, not a multiple of the alignment {align}"
        )
    at = start + offset
    if at + nbytes > data.shape[0]:
        raise TruncatedModelError(
            f"{name}: tensor {tname} ({nbytes} bytes at offset {offset} of the data) runs past "
            f"the end of the file ({data.shape[0]} bytes)"
        )
    shape = tuple(reversed(dims))
    raw = data[at : at + nbytes]
    if qtype in _ELEMENTS:
        raw = raw.view(_ELEMENTS[qtype]).reshape(shape)
    else:
        raw = raw.reshape(*shape[:-1], dims[0] // block * size)
    return Tensor(tname, qtype, shape, raw), at


def _check_overlaps(name: str, spans) -> None:
    spans = sorted(spans)
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:], strict=False):
        if begin < end:
            raise MalformedModelError(f"{name}: the data of tensors {a} and {b} overlap")
