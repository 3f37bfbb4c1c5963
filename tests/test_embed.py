"""The embedding engine against sentence-transformers' vectors (tests/golden), plus the
model cache, the converter and bad inputs."""

import json
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import embed
import llm.errors
from embed.convert import convert
from embed.models import list_models, remove, resolve
from llm.gguf_file import GGUFFile
from tests.conftest import ROOT, fixture_file

GOLDEN = json.loads((ROOT / "tests" / "golden" / "minilm.json").read_text(encoding="utf-8"))
REFERENCE = np.array(GOLDEN["vectors"], dtype=np.float32)


# Q8_0 multiplies in integers with each input row rounded to 8 bits, as llama.cpp does: its
# own Q8_0 vectors of these texts agree with its F32 ones to a cosine of 0.99767 at worst
# (ours: 0.99758, a one-character text), 0.99952 on average.
@pytest.mark.parametrize("qtype, floor", [("f32", 0.99999), ("q8_0", 0.997)])
def test_vectors_match_sentence_transformers(minilm, qtype, floor):
    model = embed.Embedder(minilm[qtype])
    assert (model.dim, model.max_tokens) == (384, GOLDEN["max_seq_length"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", embed.TruncationWarning)
        vectors = model.embed(GOLDEN["texts"], batch_size=7)
    assert vectors.shape == REFERENCE.shape and vectors.dtype == np.float32
    cosines = (vectors * REFERENCE).sum(axis=1)
    assert cosines.min() >= floor, (cosines.min(), GOLDEN["texts"][int(cosines.argmin())])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("qtype", ["f32", "q8_0"])
def test_batching_and_threads_do_not_change_results(minilm, qtype):
    """One text alone runs our small-batch kernels, a batch runs BLAS (F32) or the same
    integer kernels (Q8_0): the same vectors."""
    model = embed.Embedder(minilm[qtype])
    texts = GOLDEN["texts"][:30]
    one = np.stack([model.embed([t])[0] for t in texts])
    np.testing.assert_allclose(model.embed(texts, batch_size=64), one, atol=2e-6)
    results = [None] * 4

    def run(i):
        results[i] = model.embed(texts, batch_size=3 + i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for r in results:
        np.testing.assert_allclose(r, one, atol=2e-6)


def test_truncation_warns_and_counts(minilm):
    model = embed.Embedder(minilm["f32"])
    long_text = "word " * 1000
    assert model.count_tokens(long_text) == 1002
    with pytest.warns(embed.TruncationWarning, match="truncated"):
        model.embed([long_text, "short"])
    progress = []
    model.embed(["a", "b", "c"], batch_size=2, progress=progress.append)
    assert progress == [2, 3]


def test_bad_inputs(minilm, tmp_path):
    model = embed.Embedder(minilm["f32"])
    for texts in ([], "a string", [1, 2], ["ok", None]):
        with pytest.raises(embed.TokenizerError):
            model.embed(texts)
    with pytest.raises(ValueError):
        model.embed(["x"], batch_size=0)
    with pytest.raises(embed.ModelNotFoundError):
        embed.Embedder(tmp_path / "missing.gguf")
    (tmp_path / "text.gguf").write_text("not a model")
    with pytest.raises(embed.NotGGUFError):
        embed.Embedder(tmp_path / "text.gguf")
    raw = minilm["f32"].read_bytes()
    for cut in (20, 5000, len(raw) // 2):
        (tmp_path / "cut.gguf").write_bytes(raw[:cut])
        with pytest.raises(embed.TruncatedModelError):
            embed.Embedder(tmp_path / "cut.gguf")
    for err in (embed.ModelNotFoundError, embed.NotGGUFError, embed.TokenizerError):
        assert issubclass(err, ValueError)


def test_not_an_embedding_model():
    with pytest.raises(embed.UnsupportedModelError, match="llama"):
        embed.Embedder(fixture_file("models", "stories260K.gguf"))
    with pytest.raises(embed.UnsupportedModelError, match="missing"):
        embed.Embedder(fixture_file("models", "vocab", "ggml-vocab-bert-bge.gguf"))  # no weights


def test_converter_output(minilm, minilm_dir, tmp_path):
    f = GGUFFile(minilm["q8_0"])
    assert f.architecture == "bert" and f.get("bert.pooling_type") == 1
    assert f.get("bert.context_length") == 256 and f.get("bert.block_count") == 6
    types = {t.type_name for t in f.tensors.values()}
    assert types == {"F32", "Q8_0"}
    assert f.tensor("blk.0.ffn_up.weight").shape == (1536, 384)
    assert f.tensor("position_embd.weight").type_name == "F32"
    # the vocabulary can come from tokenizer.json alone
    src = tmp_path / "src"
    shutil.copytree(minilm_dir, src)
    (src / "vocab.txt").unlink()
    again = GGUFFile(convert(src, tmp_path / "again.gguf", "f32"))
    assert again.get("tokenizer.ggml.tokens") == GGUFFile(minilm["f32"]).get(
        "tokenizer.ggml.tokens"
    )
    (src / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(embed.UnsupportedModelError):
        convert(src, tmp_path / "x.gguf")
    for text in ('{"model_type": "bert"}', "{not json", "[1]"):
        (src / "config.json").write_text(text)
        with pytest.raises(embed.UnsupportedModelError):
            convert(src, tmp_path / "x.gguf")
    assert not list(tmp_path.glob(".x.gguf.*"))  # no temporary file left behind


def test_model_cache(tmp_path, monkeypatch, minilm):
    monkeypatch.setenv("VDB_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "models").mkdir(parents=True)
    shutil.copy(minilm["q8_0"], tmp_path / "home" / "models" / "mine.q8_0.gguf")
    assert resolve("mine:q8_0").name == "mine.q8_0.gguf"
    assert [(m["name"], m["type"]) for m in list_models()] == [("mine", "q8_0")]
    with pytest.raises(embed.ModelNotFoundError, match="vdb model convert"):
        resolve("mine")  # f32 is not there
    with pytest.raises(embed.ModelNotFoundError):
        resolve("bad name!")
    assert resolve(str(minilm["f32"])) == minilm["f32"]
    shutil.copy(minilm["q8_0"], tmp_path / "home" / "models" / "mine.5.q8_0.gguf")
    assert [p.name for p in remove("mine")] == ["mine.q8_0.gguf"]  # not mine.5
    assert [(m["name"], m["type"]) for m in list_models()] == [("mine.5", "q8_0")]
    with pytest.raises(embed.ModelNotFoundError):
        remove("mine")


def test_default_model_loads_by_name():
    model = embed.load()
    assert model is embed.load("all-MiniLM-L6-v2") is embed.load("all-MiniLM-L6-v2:f32")
    assert model.name == embed.DEFAULT_MODEL and model.dim == 384
    v = model.embed(GOLDEN["texts"][:5])
    assert ((v * REFERENCE[:5]).sum(axis=1) > 0.99999).all()


def _copy_gguf(src, dest, drop=(), requantize=None):
    """Rewrite a GGUF without the metadata keys in drop; requantize: {tensor name: type}
    gives those tensors zero blocks of another type."""
    import gguf

    reader = gguf.GGUFReader(src)
    writer = gguf.GGUFWriter(dest, reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in drop:
            continue
        sub = field.types[1] if len(field.types) > 1 else None
        writer.add_key_value(key, field.contents(), field.types[0], sub)
    for t in reader.tensors:
        shape = tuple(int(n) for n in reversed(t.shape.tolist()))
        qtype = (requantize or {}).get(t.name)
        if qtype is not None:  # zero blocks of the type: enough to be refused by type
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            data = np.zeros((shape[0], shape[1] // block * size), np.uint8)
            writer.add_tensor(t.name, data, raw_dtype=qtype)
        else:
            writer.add_tensor(t.name, np.array(t.data), raw_shape=shape, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_llama_cpp_conventions_load(minilm_dir, tmp_path):
    """A file as llama.cpp's converter writes it: F16 weights, the full 512 positions as the
    context, and CLS only as the BOS token."""
    src = tmp_path / "src"
    shutil.copytree(minilm_dir, src)
    (src / "sentence_bert_config.json").unlink()
    convert(src, tmp_path / "full.gguf", "f16")
    _copy_gguf(
        tmp_path / "full.gguf", tmp_path / "llamacpp.gguf", drop=("tokenizer.ggml.cls_token_id",)
    )
    f = GGUFFile(tmp_path / "llamacpp.gguf")
    assert "tokenizer.ggml.cls_token_id" not in f.metadata
    model = embed.Embedder(tmp_path / "llamacpp.gguf")
    assert model.max_tokens == 512 and model.tokenizer.cls_id == 101
    short = [i for i, ids in enumerate(GOLDEN["ids"]) if len(ids) < 256]
    vectors = model.embed([GOLDEN["texts"][i] for i in short])
    assert (vectors * REFERENCE[short]).sum(axis=1).min() >= 0.9999


def test_unsupported_tensor_type(minilm, tmp_path):
    import gguf

    q3k = {"blk.2.ffn_up.weight": gguf.GGMLQuantizationType.Q3_K}
    _copy_gguf(minilm["f32"], tmp_path / "q3k.gguf", requantize=q3k)
    with pytest.raises(embed.UnsupportedModelError, match="Q3_K"):
        embed.Embedder(tmp_path / "q3k.gguf")


def test_cached_models_are_verified_before_use(tmp_path, monkeypatch):
    """A cached model is a derived file: its size and CRC-32 are recorded beside it; the
    built-in model is converted again when its file is damaged or has no record, any other
    cached model that fails is an error."""
    from embed import models

    made = []

    def fake_convert(src, dest, qtype, name=None):
        made.append(name)
        Path(dest).write_bytes(b"GGUF" + bytes(range(256)) * 64)

    monkeypatch.setenv("VDB_HOME", str(tmp_path))
    monkeypatch.setattr(models, "convert", fake_convert)
    monkeypatch.setattr(models, "default_source", lambda: tmp_path)
    monkeypatch.setattr(models, "_verified", {})
    path = models.resolve("all-MiniLM-L6-v2:q8_0")
    assert made == ["all-MiniLM-L6-v2"] and path.with_name(path.name + ".sum").is_file()
    assert models.resolve("all-MiniLM-L6-v2:q8_0") == path and len(made) == 1
    raw = bytearray(path.read_bytes())
    raw[100] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="damaged; converting it again"):
        models.resolve("all-MiniLM-L6-v2:q8_0")
    assert len(made) == 2 and models._sound(path)
    path.with_name(path.name + ".sum").unlink()  # an older cache: converted again
    models._verified.clear()
    models.resolve("all-MiniLM-L6-v2:q8_0")
    assert len(made) == 3
    other = models.convert_into_cache(tmp_path, "mine", "f32")
    other.write_bytes(other.read_bytes()[:-1])
    with pytest.raises(llm.errors.MalformedModelError, match="does not match its checksum"):
        models.resolve("mine")
