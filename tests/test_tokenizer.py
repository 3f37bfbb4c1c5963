"""WordPiece from a GGUF vocabulary: llama.cpp's fixtures and the original tokenizer.json."""

import json
import warnings

import pytest
from tokenizers import Tokenizer

from llm.errors import TokenizerError
from llm.gguf_file import GGUFFile
from llm.tokenizer import TruncationWarning, load
from tests.conftest import ROOT, fixture_file
from tests.fixtures.cut_vocab import read_cases

GOLDEN = json.loads((ROOT / "tests" / "golden" / "minilm.json").read_text(encoding="utf-8"))


def _fixture_cases(name):
    """[(text, expected ids)] of llama.cpp's NAME.inp/NAME.out pair."""
    vocab = ("models", "vocab")
    return read_cases(fixture_file(*vocab, f"{name}.inp"), fixture_file(*vocab, f"{name}.out"))


@pytest.mark.parametrize(
    "gguf_name",
    [
        "ggml-vocab-llama-spm.gguf",
        "ggml-vocab-phi-3.gguf",
        "gpt-2-cases.gguf",
        "llama-bpe-cases.gguf",
        "qwen2-cases.gguf",
    ],
)
def test_generative_vocab_fixtures(gguf_name):
    """llama.cpp's tokenizer fixtures: SentencePiece (llama-spm, phi-3) and byte-level BPE
    (gpt-2, llama-bpe, qwen2, their vocabularies cut to the tokens and merges of the cases by
    tests/fixtures/cut_vocab.py), each id for id, and back to the same text."""
    tok = load(GGUFFile(fixture_file("models", "vocab", gguf_name)))
    cases = _fixture_cases(gguf_name)
    assert len(cases) > 40
    for text, expected in cases:
        ids = tok.encode(text, bos=False)
        assert ids == expected, text
        assert tok.decode(ids) == text
        assert b"".join(tok.piece_bytes(i) for i in ids).decode("utf-8") in (text, " " + text)


def test_special_tokens_and_bos():
    tok = load(GGUFFile(fixture_file("models", "vocab", "ggml-vocab-phi-3.gguf")))
    text = "<|user|>\nHi there<|end|>\n<|assistant|>"
    assert tok.encode(text, special=True) == [1, 32010, 13, 18567, 727, 32007, 13, 32001]
    assert 32010 not in tok.encode(text)  # without special=True the markers are plain text
    assert tok.decode(tok.encode(text, special=True)) == "\nHi there\n"
    stories = load(GGUFFile(fixture_file("models", "stories260K.gguf")))
    assert stories.encode("Once upon a time") == [1, 403, 407, 261, 378]
    assert stories.encode("Once upon a time", bos=False)[0] == 403
    gpt2 = load(GGUFFile(fixture_file("models", "vocab", "gpt-2-cases.gguf")))
    assert not gpt2.add_bos and gpt2.encode("Hello")[0] != gpt2.bos_id


def test_bert_bge_fixture():
    tok = load(GGUFFile(fixture_file("models", "vocab", "ggml-vocab-bert-bge.gguf")))
    cases = _fixture_cases("ggml-vocab-bert-bge.gguf")
    assert len(cases) > 40
    for text, expected in cases:
        assert tok.encode(text, special=False) == expected, text


def test_minilm_ids_match_the_original_tokenizer(minilm, minilm_dir):
    tok = load(GGUFFile(minilm["f32"]))
    original = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    original.no_truncation()
    original.no_padding()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = tok.encode_batch(GOLDEN["texts"], max_tokens=GOLDEN["max_seq_length"])
    assert [type(w.message) for w in caught] == [TruncationWarning]
    assert ours == GOLDEN["ids"]  # sentence-transformers' ids, truncated as it does
    for text in GOLDEN["texts"]:
        assert tok.encode(text) == original.encode(text).ids, text
    assert tok.decode(tok.encode("Hello, World!")) == "hello, world!"
    assert tok.count("Hello world") == 4


def test_bad_texts(minilm):
    tok = load(GGUFFile(minilm["f32"]))
    for bad in ("a string", [1, "x"], None, ["ok", None]):
        with pytest.raises(TokenizerError):
            tok.encode_batch(bad)
