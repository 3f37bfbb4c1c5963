"""Our GGUF header parser against the gguf package's GGUFReader (the reference twin) on every
GGUF file at hand, and damaged files."""

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType

from llm.errors import TruncatedModelError, UnsupportedModelError
from llm.gguf_file import GGUFFile
from tests.conftest import FIXTURES, fixture_file
from tests.golden import make_synthetic as cases

FIXTURE_FILES = sorted((FIXTURES / "models").rglob("*.gguf"))


def _reference(path):
    """(metadata, {name: (type, shape, bytes)}) as GGUFReader reads them."""
    reader = GGUFReader(path, "r")
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        types = field.types
        if types[0] == GGUFValueType.ARRAY and types[1] not in (
            GGUFValueType.STRING,
            GGUFValueType.ARRAY,
        ):
            meta[key] = np.concatenate([field.parts[i] for i in field.data]) if field.data else []
        else:
            meta[key] = field.contents()
    tensors = {
        t.name: (int(t.tensor_type), tuple(reversed(t.shape.tolist())), t.data.tobytes())
        for t in reader.tensors
    }
    return meta, tensors


def _same(path):
    ours = GGUFFile(path)
    meta, tensors = _reference(path)
    assert ours.metadata.keys() == meta.keys()
    for key, value in meta.items():
        if isinstance(value, np.ndarray):
            assert ours.metadata[key].dtype == value.dtype, key
            np.testing.assert_array_equal(ours.metadata[key], value, err_msg=key)
        else:
            assert ours.metadata[key] == value and type(ours.metadata[key]) is type(value), key
    assert ours.tensors.keys() == tensors.keys()
    for name, (qtype, shape, data) in tensors.items():
        t = ours.tensors[name]
        assert (int(t.qtype), t.shape) == (qtype, shape), name
        assert t.raw.tobytes() == data, name


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_files_read_as_gguf_reads_them(path):
    _same(path)


def test_every_weight_type_reads_as_gguf_reads_it(tmp_path):
    vocab = fixture_file("models", "stories260K.gguf")
    for arch, qtype in cases.CASES:
        if arch == "qwen2":
            _same(cases.model_path(tmp_path, arch, qtype, vocab))


def test_damaged_files(tmp_path):
    raw = fixture_file("models", "stories260K.gguf").read_bytes()
    for cut in (6, 30, 2000, len(raw) // 2, len(raw) - 1):
        path = tmp_path / "cut.gguf"
        path.write_bytes(raw[:cut])
        with pytest.raises(TruncatedModelError):
            GGUFFile(path)
    bad = bytearray(raw)
    bad[4:8] = (7).to_bytes(4, "little")  # an unknown version
    (tmp_path / "v7.gguf").write_bytes(bytes(bad))
    with pytest.raises(UnsupportedModelError, match="version 7"):
        GGUFFile(tmp_path / "v7.gguf")
    bad = bytearray(raw)
    bad[24:32] = (1 << 60).to_bytes(8, "little")  # the first key claims an absurd length
    (tmp_path / "long.gguf").write_bytes(bytes(bad))
    with pytest.raises(TruncatedModelError):
        GGUFFile(tmp_path / "long.gguf")
