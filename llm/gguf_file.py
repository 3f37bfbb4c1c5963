"""GGUF files through the `gguf` package's memory-mapped reader: metadata as Python values,
tensors as raw blocks that stay mapped (nothing is copied or dequantized here)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType

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
        try:
            reader = GGUFReader(self.path, "r")
        except (ValueError, IndexError, OSError, KeyError) as exc:
            raise TruncatedModelError(
                f"{str(self.path)!r} is damaged or truncated: {type(exc).__name__}: {exc}"
            ) from None
        self.metadata = {}
        for key, field in reader.fields.items():
            if key.startswith("GGUF."):
                continue
            self.metadata[key] = _value(field)
        self.tensors: dict[str, Tensor] = {}
        for t in reader.tensors:
            shape = tuple(int(n) for n in reversed(t.shape.tolist()))
            self.tensors[t.name] = Tensor(
                t.name, GGMLQuantizationType(t.tensor_type), shape, t.data
            )
            if t.data.nbytes != t.n_bytes:
                raise TruncatedModelError(f"{str(self.path)!r}: tensor {t.name} is cut short")
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


def _value(field):
    """A reader field as a Python value: str, int, float, bool, or a list of them."""
    types = field.types
    if types and types[0] == GGUFValueType.ARRAY:
        if len(types) > 1 and types[1] in (GGUFValueType.STRING, GGUFValueType.ARRAY):
            return field.contents()
        return np.concatenate([field.parts[i] for i in field.data]) if field.data else np.array([])
    return field.contents()
