"""Malformed GGUF files get a documented error (the LlmError family, ValueErrors) naming the
field and the value, at load and before any kernel runs: each failure reported in issue 19
(a rotary dimension beyond the head size that corrupted the heap, an unknown-token id of
2^32-1, inflated lengths, tensors contradicting the metadata, sentencepiece's own errors, an
odd tensor type) and the header checks behind them."""

import math
import subprocess
import sys

import numpy as np
import pytest

import embed
import llm
from llm import synthetic, validate
from llm.errors import (
    LlmError,
    MalformedModelError,
    ModelMemoryError,
    PromptError,
    TokenizerError,
    TruncatedModelError,
    UnsupportedModelError,
    VocabularyError,
)
from llm.gguf_file import GGUFFile
from tests.conftest import ROOT, fixture_file
from tests.fuzz import gguf_bytes as gb

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def stories():
    return fixture_file("models", "stories260K.gguf")


def edited(src, dest, change):
    """dest: src with change(doc) applied to its parsed header (see tests/fuzz/gguf_bytes)."""
    doc = gb.parse(src.read_bytes())
    change(doc)
    dest.write_bytes(gb.dump(doc))
    return dest


def set_value(key, value):
    return lambda doc: setattr(doc.kv(key), "value", value)


def set_tensor(tensor, **fields):
    def change(doc):
        for field, value in fields.items():
            setattr(doc.tensor(tensor), field, value)

    return change


@pytest.mark.parametrize(
    "key, value, match",
    [
        # the heap corruption of issue 19: 64 rotary dimensions in a head of 8
        ("llama.rope.dimension_count", 64, r"rope.dimension_count = 64 .* head size 8"),
        ("llama.rope.dimension_count", 2**31, r"rope.dimension_count = 2147483648"),
        ("llama.rope.dimension_count", 7, r"must be even"),
        ("llama.embedding_length", 2**20, r"token_embd.weight has shape \(512, 64\).*1048576"),
        ("llama.embedding_length", 2**21, r"embedding_length = 2097152 is outside"),
        ("llama.attention.head_count_kv", 0, r"head_count_kv = 0"),
        ("llama.attention.head_count_kv", 3, r"head_count_kv = 3 does not divide"),
        ("llama.attention.head_count", 7, r"head_count = 7 does not divide"),
        ("llama.feed_forward_length", 173, r"ffn_gate.weight has shape \(172, 64\)"),
        ("llama.context_length", 2**31, r"context_length = 2147483648"),
        ("llama.context_length", 0, r"context_length = 0"),
        ("llama.attention.layer_norm_rms_epsilon", math.nan, r"layer_norm_rms_epsilon = nan"),
    ],
)
def test_hyper_parameters_contradicting_the_tensors(stories, tmp_path, key, value, match):
    path = edited(stories, tmp_path / "bad.gguf", set_value(key, value))
    with pytest.raises(MalformedModelError, match=match):
        llm.load(path)


def test_values_of_the_wrong_type(stories, tmp_path):
    def as_string(doc):
        kv = doc.kv("llama.block_count")
        kv.vtype, kv.value = gb.STRING, b"5"

    with pytest.raises(MalformedModelError, match="block_count = '5' is not an integer"):
        llm.load(edited(stories, tmp_path / "s.gguf", as_string))

    def tokens_as_numbers(doc):
        kv = doc.kv("tokenizer.ggml.tokens")
        kv.etype, kv.value = gb.INT32, np.arange(512)

    with pytest.raises(VocabularyError, match="tokenizer.ggml.tokens"):
        llm.load(edited(stories, tmp_path / "t.gguf", tokens_as_numbers))


def test_special_token_ids_outside_the_vocabulary_are_ignored(stories, tmp_path):
    """2^32-1 is what converters write for "none": ignored as llama.cpp ignores it (it raised
    IndexError); the unknown token falls back to id 0."""
    path = edited(
        stories, tmp_path / "unk.gguf", set_value("tokenizer.ggml.unknown_token_id", 2**32 - 1)
    )
    model = llm.load(path)
    assert model.generate(PROMPT, max_tokens=4, temperature=0)
    assert model.tokenizer._sp.unk_id() == 0

    def eos_as_text(doc):
        kv = doc.kv("tokenizer.ggml.eos_token_id")
        kv.vtype, kv.value = gb.STRING, b"2"

    with pytest.raises(VocabularyError, match="eos_token_id = '2' is not an integer"):
        llm.load(edited(stories, tmp_path / "eos.gguf", eos_as_text))


def test_vocabulary_errors(stories, tmp_path):
    def duplicate_byte_piece(doc):  # sentencepiece: "<0x21> is already defined"
        doc.kv("tokenizer.ggml.tokens").value[40] = b"<0x21>"

    with pytest.raises(VocabularyError, match="sentencepiece refused"):
        llm.load(edited(stories, tmp_path / "dup.gguf", duplicate_byte_piece))
    assert issubclass(VocabularyError, TokenizerError) and issubclass(VocabularyError, ValueError)

    def bad_byte_token(doc):
        doc.kv("tokenizer.ggml.tokens").value[3] = b"<0xZZ>"

    with pytest.raises(VocabularyError, match=r"tokens\[3\] = '<0xZZ>' is a byte token"):
        llm.load(edited(stories, tmp_path / "byte.gguf", bad_byte_token))

    def nan_score(doc):
        doc.kv("tokenizer.ggml.scores").value[7] = np.nan

    with pytest.raises(VocabularyError, match=r"scores\[7\] = nan is not finite"):
        llm.load(edited(stories, tmp_path / "nan.gguf", nan_score))

    def short_types(doc):
        kv = doc.kv("tokenizer.ggml.token_type")
        kv.value = kv.value[:100]

    with pytest.raises(VocabularyError, match="not an array of 512 numbers"):
        llm.load(edited(stories, tmp_path / "types.gguf", short_types))


def test_a_tokenizer_of_the_wrong_kind(stories, tmp_path, bert_file):
    path = edited(stories, tmp_path / "wp.gguf", set_value("tokenizer.ggml.model", b"bert"))
    with pytest.raises(UnsupportedModelError, match="tokenizer 'bert' does not fit"):
        llm.load(path)
    path = edited(bert_file, tmp_path / "spm.gguf", set_value("tokenizer.ggml.model", b"llama"))
    with pytest.raises(UnsupportedModelError, match="tokenizer 'llama' does not fit"):
        embed.Embedder(path)


def test_bpe_and_wordpiece_vocabulary_errors(tmp_path):
    bpe = fixture_file("models", "vocab", "gpt2-2k.gguf")
    for merge, match in ((b"abc", "two pieces"), (b"zz qq", "tokenizers refused")):

        def bad_merge(doc, merge=merge):
            doc.kv("tokenizer.ggml.merges").value[5] = merge

        f = GGUFFile(edited(bpe, tmp_path / "bpe.gguf", bad_merge))
        with pytest.raises(VocabularyError, match=match):
            llm.tokenizer.load(f)
    bert = fixture_file("models", "vocab", "ggml-vocab-bert-bge.gguf")

    def tiny_vocab_without_unknown(doc):
        doc.kv("tokenizer.ggml.tokens").value[50:] = []
        doc.kv("tokenizer.ggml.token_type").value = doc.kv("tokenizer.ggml.token_type").value[:50]
        for name in ("cls", "seperator"):
            doc.kv(f"tokenizer.ggml.{name}_token_id").value = 1

    f = GGUFFile(edited(bert, tmp_path / "bert.gguf", tiny_vocab_without_unknown))
    with pytest.raises(VocabularyError, match="unknown_token_id = 100 names no token of the 50"):
        llm.tokenizer.load(f)


def test_tensor_infos(stories, tmp_path):
    cases = [
        # shapes that contradict the metadata failed inside generate with numpy errors
        (set_tensor("blk.0.attn_k.weight", dims=[64, 16]), MalformedModelError, r"\(16, 64\)"),
        (set_tensor("blk.3.ffn_down.weight", dims=[64, 172]), MalformedModelError, "ffn_down"),
        (set_tensor("output_norm.weight", dims=[32, 2]), MalformedModelError, "output_norm"),
        (set_tensor("blk.0.attn_q.weight", dims=[64, 0]), MalformedModelError, r"\(64, 0\)"),
        (set_tensor("blk.0.attn_q.weight", dims=[64] * 5), MalformedModelError, "5 dimensions"),
        (set_tensor("blk.0.attn_q.weight", ttype=9), UnsupportedModelError, "Q8_1"),  # known
        (set_tensor("blk.0.attn_q.weight", ttype=99), UnsupportedModelError, "not a GGML type"),
        (set_tensor("blk.0.attn_q.weight", ttype=12), MalformedModelError, "Q4_K blocks of 256"),
        (set_tensor("blk.0.attn_q.weight", offset=2**63), TruncatedModelError, "runs past"),
        (set_tensor("blk.0.attn_q.weight", offset=8), MalformedModelError, "alignment 32"),
        (set_tensor("blk.0.attn_q.weight", offset=0), MalformedModelError, "overlap"),
        (
            set_tensor("blk.1.attn_q.weight", name=b"blk.0.attn_q.weight"),
            MalformedModelError,
            "appears twice",
        ),
    ]
    for i, (change, error, match) in enumerate(cases):
        with pytest.raises(error, match=match):
            llm.load(edited(stories, tmp_path / f"t{i}.gguf", change))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflows in the halved norm's layer
def test_an_odd_but_valid_tensor_type_loads(stories, tmp_path):
    """A type byte set to 30 is BF16, a type the kernels run: the norm reads as other numbers
    and the model still generates (numba compiles the BF16 path once, then caches it)."""
    path = edited(stories, tmp_path / "bf16.gguf", set_tensor("blk.0.attn_norm.weight", ttype=30))
    model = llm.load(path)
    assert model.net.layers[0].attn_norm.shape == (64,)
    try:
        model.generate(PROMPT, max_tokens=2, temperature=0)
    except MalformedModelError as exc:  # the halved norm may overflow to non-finite logits
        assert "non-finite logits" in str(exc)


def test_header_counts_and_layout(stories, tmp_path):
    raw = bytearray(stories.read_bytes())
    raw[8:16] = (1 << 60).to_bytes(8, "little")  # 2^60 tensors: refused before any loop
    (tmp_path / "n.gguf").write_bytes(bytes(raw))
    with pytest.raises(TruncatedModelError, match="1152921504606846976 tensors"):
        GGUFFile(tmp_path / "n.gguf")

    def duplicate_key(doc):
        doc.kvs.append(doc.kv("llama.block_count"))

    with pytest.raises(MalformedModelError, match="'llama.block_count' appears twice"):
        GGUFFile(edited(stories, tmp_path / "dup.gguf", duplicate_key))

    def alignment(doc):
        doc.kvs.append(gb.KV(b"general.alignment", gb.UINT32, 24))

    with pytest.raises(MalformedModelError, match="general.alignment = 24 is not a power of two"):
        GGUFFile(edited(stories, tmp_path / "align.gguf", alignment))

    def nested(doc):
        kv = doc.kv("general.name")
        kv.vtype, kv.value, kv.etype = gb.ARRAY, [(gb.UINT8, np.zeros(2))], gb.ARRAY

    with pytest.raises(MalformedModelError, match="array of arrays"):
        GGUFFile(edited(stories, tmp_path / "nested.gguf", nested))

    def not_utf8(doc):
        doc.kv("general.name").value = b"\xff\xfe"

    with pytest.raises(MalformedModelError, match="not UTF-8"):
        GGUFFile(edited(stories, tmp_path / "utf8.gguf", not_utf8))


def test_memory_is_computed_before_the_kv_cache_is_allocated(stories, tmp_path, monkeypatch):
    monkeypatch.setattr(validate, "memory_limit", lambda: 1 << 20)
    with pytest.raises(ModelMemoryError, match="KV cache for a context of 2048 positions"):
        llm.load(stories)
    model = llm.load(stories, n_ctx=32)  # 20 KiB of cache
    assert model.generate(PROMPT, max_tokens=4, temperature=0)
    with pytest.raises(ModelMemoryError):
        model.net.new_cache(2048)
    with pytest.raises(LlmError, match="n_ctx must be a positive integer"):
        llm.load(stories, n_ctx=-5)


def test_memory_limit_follows_the_address_space_limit():
    script = (
        "import resource; from llm import validate; "
        "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
        "print(validate.memory_limit() < 4 << 30, validate.memory_limit() > 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "True"]


def test_non_finite_weights(stories, tmp_path):
    """NaN weights: a documented error at generation, not NaN text or a sampler error."""
    doc = gb.parse(stories.read_bytes())
    t = doc.tensor("output_norm.weight")
    data = bytearray(doc.data)
    data[t.offset : t.offset + 4] = np.float32(np.nan).tobytes()
    doc.data = bytes(data)
    (tmp_path / "nan.gguf").write_bytes(gb.dump(doc))
    model = llm.load(tmp_path / "nan.gguf")
    for sampler in ({"temperature": 0}, {"seed": 1}):
        with pytest.raises(MalformedModelError, match="non-finite logits"):
            model.generate(PROMPT, max_tokens=2, **sampler)


def test_chat_template_errors_are_prompt_errors(stories, tmp_path):
    def template(doc):
        doc.kvs.append(gb.KV(b"tokenizer.chat_template", gb.STRING, b"{{ messages[0] + 1 }}"))

    model = llm.load(edited(stories, tmp_path / "tpl.gguf", template))
    with pytest.raises(PromptError, match="TypeError"):
        model.chat([{"role": "user", "content": "Hi"}], max_tokens=2)

    def not_text(doc):
        doc.kvs.append(gb.KV(b"tokenizer.chat_template", gb.UINT32, 7))

    with pytest.raises(MalformedModelError, match="chat_template = 7 is not a string"):
        llm.load(edited(stories, tmp_path / "tpl7.gguf", not_text))


@pytest.fixture(scope="module")
def bert_file(tmp_path_factory):
    vocab = fixture_file("models", "vocab", "ggml-vocab-bert-bge.gguf")
    out = tmp_path_factory.mktemp("bert")
    return synthetic.write_bert(out / "bert.gguf", vocab, n_vocab=2048, seed=1)


def test_bert_shapes(bert_file, tmp_path):
    model = embed.Embedder(bert_file)
    assert model.embed(["a text"]).shape == (1, 64)
    cases = [
        (set_value("bert.embedding_length", 32), "token_embd.weight has shape"),
        (set_tensor("blk.1.ffn_up.bias", dims=[64]), r"ffn_up.bias has shape \(64,\)"),
        (set_tensor("position_embd.weight", dims=[32, 64]), "position_embd.weight"),
        (set_value("bert.attention.head_count", 5), "head_count = 5 does not divide"),
    ]
    for i, (change, match) in enumerate(cases):
        with pytest.raises(MalformedModelError, match=match):
            embed.Embedder(edited(bert_file, tmp_path / f"b{i}.gguf", change))


def test_bert_mixed_types_in_a_layer(bert_file, tmp_path):
    """q and v in F32 with k in F16: the layer is not fused (one product of three F32
    matrices), and the vectors match the F32 file's closely."""
    doc = gb.parse(bert_file.read_bytes())
    t = doc.tensor("blk.0.attn_k.weight")
    data = bytearray(doc.data)
    weights = np.frombuffer(doc.data, np.float32, 64 * 64, t.offset)
    data[t.offset : t.offset + 64 * 64 * 2] = weights.astype(np.float16).tobytes()
    data[t.offset + 64 * 64 * 2 : t.offset + 64 * 64 * 4] = bytes(64 * 64 * 2)
    t.ttype = 1
    doc.data = bytes(data)
    (tmp_path / "mixed.gguf").write_bytes(gb.dump(doc))
    texts = ["a text", "another text"]
    mixed = embed.Embedder(tmp_path / "mixed.gguf").embed(texts)
    assert (mixed * embed.Embedder(bert_file).embed(texts)).sum(axis=1).min() > 0.999


def test_cli_prints_one_line_errors(stories, tmp_path):
    """`vdb llm generate` on the file that crashed with SIGABRT, and `vdb llm info` on a
    damaged one: exit status 1 and one line on stderr."""
    rope = edited(stories, tmp_path / "rope.gguf", set_value("llama.rope.dimension_count", 64))
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(stories.read_bytes()[:5000])
    for args, error in (
        (["llm", "generate", str(rope), PROMPT, "-n", "4"], "MalformedModelError"),
        (["llm", "info", str(cut)], "TruncatedModelError"),
        (
            ["llm", "bench", str(rope), "--prompt-tokens", "4", "--gen-tokens", "2"],
            "MalformedModelError",
        ),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "vdb", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, done.stderr[-2000:]
        assert lines[0].startswith(f"Error: {error}: ") and len(lines[0]) < 400
