"""Synthetic models: seeded random weights in any supported type, at any shape, with the
tokenizer of a real GGUF file. For tests against llama.cpp, fuzzing and speed measurements.

Example:
    >>> write("tiny.gguf", vocab="stories260K.gguf", arch="qwen2", qtype="Q4_K")  # doctest: +SKIP
    >>> write_bert("bert.gguf", vocab="ggml-vocab-bert-bge.gguf", n_vocab=2048)  # doctest: +SKIP
"""

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, GGUFWriter, PoolingType, quants

from llm.errors import UnsupportedModelError

ARCHITECTURES = ("llama", "qwen2", "bitnet", "qwen3", "gemma3", "phi3")
# per architecture: heads of their own size (attention.key_length), more layers (gemma3: five
# windowed, one global), a short sliding window so a 12-token prompt crosses it, tied output
ARCH_SHAPES = {
    "qwen3": dict(head_size=128),
    "gemma3": dict(head_size=128, n_layers=6, sliding_window=4),
}
TIED = ("bitnet", "gemma3")
SHAPES = {
    # TinyLlama-1.1B
    "tinyllama": dict(
        n_layers=22, d_model=2048, n_heads=32, n_kv_heads=4, d_ff=5632, context_length=2048
    ),
    # small enough for tests, wide enough for the 256-weight blocks of the K and ternary types
    "tiny": dict(n_layers=2, d_model=256, n_heads=4, n_kv_heads=2, d_ff=512, context_length=128),
}
# Where the f16 scales sit in each 256-weight block of the types gguf cannot quantize, and
# the zero point that keeps random weights centred: (byte offsets of d and dmin, zero point).
_K_SCALES = {Q.Q4_K: ((0, 2), 7.5), Q.Q5_K: ((0, 2), 15.5), Q.Q6_K: ((208,), 0.0)}
PER_TOKEN = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")


def write(
    path,
    vocab,
    arch: str = "llama",
    qtype: str = "Q8_0",
    shape: str | dict = "tiny",
    seed: int = 0,
    embd_qtype: str | None = None,
    tied: bool = False,
    rope_factors=None,
    metadata: dict | None = None,
    extra_tensors: dict | None = None,
) -> Path:
    """Write a model with random weights. Layer matrices are in qtype, the token embedding and
    output matrix in embd_qtype (default qtype), norms, biases and scales in F32. vocab: a GGUF
    file whose tokenizer.* metadata is copied (its vocabulary sets the embedding rows). tied:
    no output.weight, the token embedding serves as the output matrix (bitnet always ties).
    rope_factors: a rope_freqs.weight tensor; metadata: more {arch}.KEY values (str or
    number); extra_tensors: more F32 tensors by name."""
    if arch not in ARCHITECTURES:
        raise UnsupportedModelError(f"architecture {arch!r}: choose one of {ARCHITECTURES}")
    dims = dict(SHAPES[shape] if isinstance(shape, str) else shape)
    if isinstance(shape, str):
        dims.update(ARCH_SHAPES.get(arch, {}))
    kind = _qtype(qtype)
    embd_kind = _qtype(embd_qtype or qtype)
    rng = np.random.default_rng(seed)
    d, ff = dims["d_model"], dims["d_ff"]
    hd = dims.get("head_size") or d // dims["n_heads"]
    q, kv = dims["n_heads"] * hd, dims["n_kv_heads"] * hd

    path = Path(path)
    w = GGUFWriter(str(path), arch)
    w.add_name(f"synthetic-{arch}-{qtype}")
    w.add_context_length(dims["context_length"])
    w.add_embedding_length(d)
    w.add_block_count(dims["n_layers"])
    w.add_feed_forward_length(ff)
    w.add_head_count(dims["n_heads"])
    w.add_head_count_kv(dims["n_kv_heads"])
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(1e6 if arch == "gemma3" else 10000.0)
    w.add_layer_norm_rms_eps(1e-6 if arch == "gemma3" else 1e-5)
    if dims.get("head_size"):
        w.add_key_length(hd)
        w.add_value_length(hd)
    if dims.get("sliding_window"):
        w.add_sliding_window(dims["sliding_window"])
    n_vocab = _copy_tokenizer(vocab, w)

    def matrix(name, rows, cols, k=kind, std=None):
        data, raw_dtype = _encode(rng, rows, cols, k, std or 1 / np.sqrt(cols))
        w.add_tensor(name, data, raw_dtype=raw_dtype)

    def vector(name, n, centre=1.0, spread=0.1):
        w.add_tensor(name, (centre + spread * rng.standard_normal(n)).astype(np.float32))

    matrix("token_embd.weight", n_vocab, d, embd_kind, std=1.0)
    vector("output_norm.weight", d)
    if rope_factors is not None:  # Llama 3.1-style: each RoPE frequency divided by its factor
        w.add_tensor("rope_freqs.weight", np.asarray(rope_factors, np.float32))
    for key, value in (metadata or {}).items():  # more keys, e.g. to test what is refused
        if isinstance(value, str):
            w.add_string(f"{arch}.{key}", value)
        else:
            w.add_float32(f"{arch}.{key}", float(value))
    for name, data in (extra_tensors or {}).items():
        w.add_tensor(name, np.asarray(data, np.float32))
    if not tied and arch not in TIED:
        matrix("output.weight", n_vocab, d, embd_kind)
    if arch == "phi3":  # q, k, v in one matrix; the gate and up matrices in another
        matrices = [("attn_qkv", q + 2 * kv, d), ("attn_output", d, q), ("ffn_up", 2 * ff, d)]
    else:
        matrices = [("attn_q", q, d), ("attn_k", kv, d), ("attn_v", kv, d)]
        matrices += [("attn_output", d, q), ("ffn_gate", ff, d), ("ffn_up", ff, d)]
    matrices.append(("ffn_down", d, ff))
    for i in range(dims["n_layers"]):
        b = f"blk.{i}."
        vector(b + "attn_norm.weight", d)
        vector(b + "ffn_norm.weight", d)
        for name, rows, cols in matrices:
            matrix(b + name + ".weight", rows, cols)
            if arch == "bitnet":
                vector(b + name + ".scale", 1, centre=1.0, spread=0.3)
        if arch in ("qwen3", "gemma3"):
            vector(b + "attn_q_norm.weight", hd)
            vector(b + "attn_k_norm.weight", hd)
        if arch == "gemma3":
            vector(b + "post_attention_norm.weight", d)
            vector(b + "post_ffw_norm.weight", d)
        if arch == "qwen2":
            for name, n in (("attn_q", d), ("attn_k", kv), ("attn_v", kv)):
                vector(b + name + ".bias", n, centre=0.0, spread=0.5)
        if arch == "bitnet":
            vector(b + "attn_sub_norm.weight", d)
            vector(b + "ffn_sub_norm.weight", ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


BERT_SHAPE = dict(n_layers=2, d_model=64, n_heads=4, d_ff=128, context_length=64)


def write_bert(
    path, vocab, qtype: str = "F32", shape: dict | None = None, seed: int = 0, n_vocab=None
) -> Path:
    """Write a BERT encoder with random weights in llama.cpp's layout (embed/convert.py's):
    matrices in qtype, embeddings, norms and biases in F32. vocab: a GGUF file with a bert
    (WordPiece) vocabulary, whose tokenizer.* metadata is copied, cut to its first n_vocab
    tokens when given (the special token ids must fall below it)."""
    dims = dict(BERT_SHAPE, **(shape or {}))
    kind = _qtype(qtype)
    rng = np.random.default_rng(seed)
    d, ff, ctx = dims["d_model"], dims["d_ff"], dims["context_length"]
    path = Path(path)
    w = GGUFWriter(str(path), "bert")
    w.add_name(f"synthetic-bert-{qtype}")
    w.add_context_length(ctx)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_block_count(dims["n_layers"])
    w.add_head_count(dims["n_heads"])
    w.add_layer_norm_eps(1e-12)
    w.add_causal_attention(False)
    w.add_pooling_type(PoolingType.MEAN)
    n = _copy_tokenizer(vocab, w, n_vocab)

    def matrix(name, rows, cols, k=kind):
        data, raw_dtype = _encode(rng, rows, cols, k, 1 / np.sqrt(cols))
        w.add_tensor(name, data, raw_dtype=raw_dtype)

    def vector(name, size, centre=0.0, spread=0.1):
        w.add_tensor(name, (centre + spread * rng.standard_normal(size)).astype(np.float32))

    matrix("token_embd.weight", n, d, Q.F32)
    matrix("position_embd.weight", ctx, d, Q.F32)
    matrix("token_types.weight", 2, d, Q.F32)
    vector("token_embd_norm.weight", d, 1.0)
    vector("token_embd_norm.bias", d)
    for i in range(dims["n_layers"]):
        b = f"blk.{i}."
        for name, rows, cols in (
            ("attn_q", d, d),
            ("attn_k", d, d),
            ("attn_v", d, d),
            ("attn_output", d, d),
            ("ffn_up", ff, d),
            ("ffn_down", d, ff),
        ):
            matrix(b + name + ".weight", rows, cols)
            vector(b + name + ".bias", rows)
        for norm in ("attn_output_norm", "layer_output_norm"):
            vector(b + norm + ".weight", d, 1.0)
            vector(b + norm + ".bias", d)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _qtype(name: str) -> Q:
    try:
        return Q[name.upper()]
    except KeyError:
        raise UnsupportedModelError(f"unknown quantization type {name!r}") from None


def _copy_tokenizer(vocab, w: GGUFWriter, cut: int | None = None) -> int:
    """Copy vocab's tokenizer.* metadata into w (its per-token arrays cut to the first cut
    entries when given); returns the number of tokens."""
    reader = GGUFReader(str(vocab), "r")
    n_vocab = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        value = field.contents()
        if cut is not None and key in PER_TOKEN:
            value = value[:cut]
        if field.types[0] == GGUFValueType.ARRAY:
            w.add_key_value(key, value, GGUFValueType.ARRAY, field.types[-1])
        else:
            w.add_key_value(key, value, field.types[0])
        if key == "tokenizer.ggml.tokens":
            n_vocab = len(value)
    if not n_vocab:
        raise UnsupportedModelError(f"{vocab}: no tokenizer.ggml.tokens to copy")
    return n_vocab


def _encode(rng, rows: int, cols: int, kind: Q, std: float):
    """(data, raw_dtype) for GGUFWriter.add_tensor: random weights of this std."""
    if kind in _K_SCALES:
        return _random_k_blocks(rng, rows, cols, kind, std)
    x = (std * rng.standard_normal((rows, cols))).astype(np.float32)
    if kind == Q.F32:
        return x, None
    return quants.quantize(x, kind), kind


def _random_k_blocks(rng, rows, cols, kind, std):
    """Random bytes are valid K-type blocks once their f16 scales are set: set them so the
    weights have the given spread around zero (gguf cannot quantize these types)."""
    block, size = 256, quants.GGML_QUANT_SIZES[kind][1]
    raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    offsets, zero = _K_SCALES[kind]

    def set_scales(d):
        for off, value in zip(offsets, (d, d * zero), strict=False):
            raw[:, :, off : off + 2] = np.full(2, value, np.float16).view(np.uint8)[:2]

    set_scales(1.0)
    sample = quants.dequantize(raw[: min(rows, 8)].reshape(min(rows, 8), -1), kind)
    set_scales(std / float(sample.std()))
    return raw.reshape(rows, -1), kind
