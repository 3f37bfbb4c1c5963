"""Hugging Face BERT-family directories (config.json, vocab, safetensors) -> GGUF.

The file follows llama.cpp's conventions for `bert` GGUFs (tensor names, metadata keys, the
vocabulary with U+2581 marking word starts), so llama.cpp can load what we write and we can
load what llama.cpp's converter writes.
"""

import json
import os
import tempfile
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

from llm.errors import ModelNotFoundError, UnsupportedModelError
from llm.tokenizer import WORD_START

TYPES = {"f32": Q.F32, "f16": Q.F16, "q8_0": Q.Q8_0}
FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")

_LAYER_NAMES = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_TOP_NAMES = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.LayerNorm": "token_embd_norm",
}


def gguf_name(hf_name: str) -> str | None:
    """The GGUF tensor name for a Hugging Face BERT tensor name (None: not needed)."""
    name = hf_name
    for prefix in ("bert.", "model."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    stem, _, kind = name.rpartition(".")
    if kind == "gamma":
        kind = "weight"
    elif kind == "beta":
        kind = "bias"
    if kind not in ("weight", "bias"):
        return None
    if stem in _TOP_NAMES:
        return f"{_TOP_NAMES[stem]}.{kind}"
    if stem.startswith("encoder.layer."):
        rest = stem[len("encoder.layer.") :]
        index, _, sub = rest.partition(".")
        if sub in _LAYER_NAMES:
            return f"blk.{int(index)}.{_LAYER_NAMES[sub]}.{kind}"
    return None


def convert(src, dest, qtype: str = "f32", name: str | None = None) -> Path:
    """Write the GGUF of the model in directory src to dest; qtype: f32, f16 or q8_0."""
    src, dest = Path(src), Path(dest)
    if qtype not in TYPES:
        raise UnsupportedModelError(f"unknown type {qtype!r}; expected one of {', '.join(TYPES)}")
    config = _json(src / "config.json")
    if config.get("model_type") != "bert":
        raise UnsupportedModelError(
            f"{src}: model_type {config.get('model_type')!r} is not supported (bert only)"
        )
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise UnsupportedModelError(f"{src / 'config.json'} lacks {', '.join(missing)}")
    vocab = _vocab(src)
    tensors = _tensors(src)
    pooling = _pooling(src)
    context = int(config.get("max_position_embeddings", 512))
    st_config = src / "sentence_bert_config.json"
    if st_config.exists():  # the length the sentence model was trained and is used with
        context = min(context, int(_json(st_config).get("max_seq_length", context)))

    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    writer_path = Path(tmp_name)
    w = gguf.GGUFWriter(writer_path, "bert")
    try:
        w.add_name(name or src.name)
        w.add_context_length(context)
        w.add_embedding_length(int(config["hidden_size"]))
        w.add_feed_forward_length(int(config["intermediate_size"]))
        w.add_block_count(int(config["num_hidden_layers"]))
        w.add_head_count(int(config["num_attention_heads"]))
        w.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
        w.add_causal_attention(False)
        w.add_pooling_type(pooling)
        w.add_file_type(FILE_TYPES[qtype])
        w.add_tokenizer_model("bert")
        w.add_token_list([_gguf_piece(t) for t in vocab])
        w.add_token_types(
            [gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in vocab]
        )
        w.add_token_type_count(int(config.get("type_vocab_size", 2)))
        index = {t: i for i, t in enumerate(vocab)}
        for token, add in (
            ("[UNK]", w.add_unk_token_id),
            ("[SEP]", w.add_sep_token_id),
            ("[SEP]", w.add_eos_token_id),
            ("[PAD]", w.add_pad_token_id),
            ("[CLS]", w.add_bos_token_id),  # where current llama.cpp reads BERT's CLS
            ("[CLS]", lambda i: w.add_uint32("tokenizer.ggml.cls_token_id", i)),  # and older
            ("[MASK]", w.add_mask_token_id),
        ):
            if token in index:
                add(index[token])
        for gname, array in tensors:
            if gname == "position_embd.weight":  # llama.cpp wants one row per context position
                array = array[:context]
            array = np.ascontiguousarray(array, dtype=np.float32)
            target = TYPES[qtype] if _quantizable(gname, array) else Q.F32
            if target == Q.F32:
                w.add_tensor(gname, array)
            elif target == Q.F16:
                w.add_tensor(gname, array.astype(np.float16))
            else:
                w.add_tensor(gname, gguf.quants.quantize(array, target), raw_dtype=target)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(writer_path, dest)
    finally:
        w.close()
        writer_path.unlink(missing_ok=True)
    return dest


def _quantizable(name: str, array: np.ndarray) -> bool:
    """Weight matrices of the linear layers and the token embeddings; norms, biases and
    position embeddings stay float32."""
    return (
        array.ndim == 2
        and array.shape[1] % 32 == 0
        and not name.startswith(("position_embd", "token_types"))
    )


def _json(path: Path) -> dict:
    if not path.exists():
        raise ModelNotFoundError(f"{path} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedModelError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UnsupportedModelError(f"{path} does not hold a JSON object")
    return data


def _vocab(src: Path) -> list[str]:
    if (src / "vocab.txt").exists():
        return (src / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    if (src / "tokenizer.json").exists():
        model = _json(src / "tokenizer.json").get("model", {})
        if model.get("type") == "WordPiece":
            return [t for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])]
    raise UnsupportedModelError(f"{src}: no WordPiece vocabulary (vocab.txt or tokenizer.json)")


def _gguf_piece(token: str) -> str:
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return WORD_START + token


def _tensors(src: Path) -> list[tuple[str, np.ndarray]]:
    from safetensors.numpy import load_file

    files = sorted(src.glob("*.safetensors"))
    if not files:
        raise ModelNotFoundError(f"{src}: no .safetensors weights")
    out = []
    for path in files:
        for hf_name, array in load_file(path).items():
            gname = gguf_name(hf_name)
            if gname is not None:
                out.append((gname, array))
    if not any(n == "token_embd.weight" for n, _ in out):
        raise UnsupportedModelError(f"{src}: no BERT word embeddings in the safetensors files")
    return sorted(out)


def _pooling(src: Path) -> gguf.PoolingType:
    path = src / "1_Pooling" / "config.json"
    if path.exists():
        cfg = _json(path)
        if cfg.get("pooling_mode_cls_token"):
            return gguf.PoolingType.CLS
        if cfg.get("pooling_mode_mean_tokens"):
            return gguf.PoolingType.MEAN
        raise UnsupportedModelError(f"{path}: only mean and CLS pooling are supported")
    return gguf.PoolingType.MEAN
