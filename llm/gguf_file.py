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
"""

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from llm.errors import ModelNotFoundError, NotGGUFError, TruncatedModelError, UnsupportedModelError

MAGIC = b"GGUF"
_MISSING = object()


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
            raise ModelNotFoundError(f"no model file at {str(self.path)!r}")
        with open(self.path, "rb") as f:
            head = f.read(4)
        if head != MAGIC:
            raise NotGGUFError(f"{str(self.path)!r} is not a GGUF file (it starts with {head!r})")
        data = np.memmap(self.path, dtype=np.uint8, mode="r")
        try:
            self.metadata, infos, end = _parse(memoryview(data))
        except (struct.error, ValueError, UnicodeDecodeError, IndexError, KeyError) as exc:
            raise TruncatedModelError(
                f"{str(self.path)!r} is damaged or truncated: {type(exc).__name__}: {exc}"
            ) from None
        align = self.metadata.get("general.alignment", 32)
        if not isinstance(align, int) or align <= 0:
            raise TruncatedModelError(f"{str(self.path)!r}: bad general.alignment {align!r}")
        start = -(-end // align) * align
        self.tensors: dict[str, Tensor] = {}
        for name, dims, qtype, offset in infos:
            try:
                self.tensors[name] = _tensor(self.path, data, start + offset, name, dims, qtype)
            except (ValueError, OverflowError) as exc:
                if isinstance(exc, TruncatedModelError):
                    raise
                raise TruncatedModelError(
                    f"{str(self.path)!r}: tensor {name} has impossible dimensions {dims}"
                ) from None
        self.architecture = self.metadata.get("general.architecture")
        if not isinstance(self.architecture, str):
            raise UnsupportedModelError(f"{str(self.path)!r} names no general.architecture")

    def get(self, key: str, default=_MISSING):
        """A metadata value; UnsupportedModelError when it is missing and no default is given."""
        value = self.metadata.get(key, default)
        if value is _MISSING:
            raise UnsupportedModelError(f"{self.path.name}: metadata key {key!r} is missing")
        return value

    def arch_get(self, key: str, default=_MISSING):
        """A metadata value under the architecture's prefix, e.g. arch_get("block_count")."""
        return self.get(f"{self.architecture}.{key}", default)

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
_DTYPES = {t: np.dtype(fmt) for t, fmt in _SCALARS.items()}
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
    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise ValueError("a string runs past the end of the file")
        text = bytes(self.buf[self.pos : self.pos + n]).decode("utf-8")
        self.pos += n
        return text

    def value(self, vtype: int):
        vtype = GGUFValueType(vtype)
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            etype, count = GGUFValueType(self.take("<I")), self.take("<Q")
            if etype in _DTYPES:
                size = _DTYPES[etype].itemsize * count
                if self.pos + size > len(self.buf):
                    raise ValueError("an array runs past the end of the file")
                arr = np.frombuffer(self.buf, _DTYPES[etype], count, self.pos).copy()
                self.pos += size
                return arr
            return [self.value(etype) for _ in range(count)]
        return self.take(_SCALARS[vtype])


def _parse(buf: memoryview):
    """(metadata, [(name, dims innermost first, type, offset)], end of the header)."""
    c = _Cursor(buf)
    if bytes(buf[:4]) != MAGIC:
        raise ValueError("no GGUF magic")
    c.pos = 4
    version = c.take("<I")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} (supported: 2 and 3)")
    n_tensors, n_kv = c.take("<Q"), c.take("<Q")
    metadata = {}
    for _ in range(n_kv):
        key = c.string()
        metadata[key] = c.value(c.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        dims = tuple(c.take("<Q") for _ in range(c.take("<I")))
        infos.append((name, dims, GGMLQuantizationType(c.take("<I")), c.take("<Q")))
    return metadata, infos, c.pos


def _tensor(path, data, at, name, dims, qtype) -> Tensor:
    shape = tuple(reversed(dims))
    block, size = GGML_QUANT_SIZES[qtype]
    if dims and dims[0] % block:
        raise TruncatedModelError(f"{str(path)!r}: tensor {name} rows are not whole blocks")
    count = int(np.prod(dims, dtype=np.int64))
    nbytes = count // block * size
    if at + nbytes > data.shape[0]:
        raise TruncatedModelError(f"{str(path)!r}: tensor {name} is cut short")
    raw = data[at : at + nbytes]
    if qtype in _ELEMENTS:
        raw = raw.view(_ELEMENTS[qtype]).reshape(shape)
    else:
        raw = raw.reshape(*shape[:-1], dims[0] // block * size)
    return Tensor(name, qtype, shape, raw)
