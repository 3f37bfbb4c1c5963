"""The BERT encoder forward pass on GGUF weights.

Sequences of a batch are packed end to end (no padding): every dense layer runs once over all
the tokens of the batch as one matrix product, and attention runs per group of sequences of
equal length, so no work is spent on padding and no mask is needed.

Per layer (post-norm):  x = LN(x + Attn(x));  x = LN(x + W_down GELU(W_up x))
"""

import dataclasses

import numpy as np
from gguf import GGMLQuantizationType as Q

from llm import ops, quants, validate
from llm.config import ModelConfig
from llm.errors import MalformedModelError, UnsupportedModelError
from llm.gguf_file import GGUFFile

TOKENS_PER_PASS = 8192  # tokens of one forward pass at most (embed.Embedder batches by it)


class _Layer:
    def __init__(self, f: GGUFFile, i: int):
        def t(name):
            return f.tensor(f"blk.{i}.{name}")

        def vec(name):
            return quants.dequantize(t(name))[0]

        def weight(name):  # float32 weights as arrays (views of the file), others as blocks
            w = t(name)
            quants.check(w)
            return quants.dequantize(w) if w.qtype == Q.F32 else quants.interleave(w)

        self.qkv_bias = np.concatenate([vec("attn_q.bias"), vec("attn_k.bias"), vec("attn_v.bias")])
        qkv = quants.stacked([t("attn_q.weight"), t("attn_k.weight"), t("attn_v.weight")])
        qkv = None if qkv is None else quants.interleave(qkv)
        if qkv is not None and qkv.packed is not None:
            # one integer product, not three (each output row is its own); the products read
            # only the regrouped copy, so the stacked blocks are not kept beside it
            self.qkv = [dataclasses.replace(qkv, raw=qkv.raw[:, :0])]
        else:
            q, k, v = weight("attn_q.weight"), weight("attn_k.weight"), weight("attn_v.weight")
            if all(isinstance(w, np.ndarray) for w in (q, k, v)):  # float32: one product
                self.qkv = [np.concatenate([q, k, v])]
            else:
                self.qkv = [q, k, v]
        self.out, self.out_bias = weight("attn_output.weight"), vec("attn_output.bias")
        self.norm1 = vec("attn_output_norm.weight"), vec("attn_output_norm.bias")
        self.up, self.up_bias = weight("ffn_up.weight"), vec("ffn_up.bias")
        self.down, self.down_bias = weight("ffn_down.weight"), vec("ffn_down.bias")
        self.norm2 = vec("layer_output_norm.weight"), vec("layer_output_norm.bias")


# Quantized weights that are not regrouped: a question's rows multiply on the blocks (measured
# when Q8_0 still ran this way: a 14-token question 9 ms, against 21 ms dequantizing every
# weight for BLAS; they met at 32-48 rows).
DIRECT_ROWS = 32


def _mm(x, w) -> np.ndarray:
    """x @ w.T: float32 weights through our kernel for a question's few rows and BLAS for a
    batch's many; regrouped weights of the integer kinds (quants.interleave: Q8_0, Q4_0, Q4_1,
    Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, TQ2_0) in integers at any row count, as llama.cpp computes
    them (each row rounded to 8 bits on its own, so a text's vector does not depend on its
    batch)."""
    if isinstance(w, np.ndarray):
        return quants.matmul_f32(np.ascontiguousarray(x, dtype=np.float32), w)
    return quants.matmul(x, w, int8=w.packed is not None, direct_rows=DIRECT_ROWS)


class BertModel:
    """Weights and configuration of a `bert` GGUF; encode() maps token ids to vectors."""

    def __init__(self, f: GGUFFile):
        if f.architecture != "bert":
            raise UnsupportedModelError(
                f"{f.path.name}: architecture {f.architecture!r} is not an embedding model "
                "this engine runs (supported: bert)"
            )
        self.name = f.path.name
        self.config = cfg = ModelConfig.from_gguf(f)
        if cfg.pooling not in ("mean", "cls"):
            raise UnsupportedModelError(f"{f.path.name}: pooling {cfg.pooling!r} not supported")
        validate.check_tensors(f, validate.bert_tensors(f, cfg))
        validate.check_memory(f.path.name, "a pass of the encoder", self.pass_bytes(f, cfg))
        self.tok_embd = f.tensor("token_embd.weight")
        quants.check(self.tok_embd)
        self.pos_embd = quants.dequantize(f.tensor("position_embd.weight"))
        types = f.tensors.get("token_types.weight")
        self.type0 = (
            quants.dequantize(types)[0] if types is not None else np.zeros(cfg.d_model, np.float32)
        )
        norm = f.tensor("token_embd_norm.weight"), f.tensor("token_embd_norm.bias")
        self.embd_norm = tuple(quants.dequantize(t)[0] for t in norm)
        self.layers = [_Layer(f, i) for i in range(cfg.n_layers)]
        self.max_positions = self.pos_embd.shape[0]

    @staticmethod
    def pass_bytes(f: GGUFFile, cfg: ModelConfig) -> int:
        """About the most memory one encoder pass of TOKENS_PER_PASS tokens holds: the position
        table (as float32), activations (q, k, v, the feed-forward's width) and one group's
        attention scores."""
        n, d = TOKENS_PER_PASS, cfg.d_model
        positions = f.tensor("position_embd.weight").shape[0]
        scores = n * cfg.n_heads * min(positions, n)
        return 4 * (positions * d + n * (8 * d + 2 * cfg.d_ff) + scores)

    def _embed_tokens(self, ids: np.ndarray) -> np.ndarray:
        t = self.tok_embd
        if t.qtype == Q.F32:
            return np.asarray(t.raw).reshape(t.shape)[ids]
        return quants.dequantize(t, ids)

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        """Pooled, L2-normalized vectors (n, d) for sequences of token ids (specials included)."""
        cfg = self.config
        lengths = np.array([len(s) for s in batch], dtype=np.int64)
        if lengths.max(initial=0) > self.max_positions:
            raise ValueError(f"a sequence is longer than {self.max_positions} positions")
        ids = np.concatenate([np.asarray(s, dtype=np.int64) for s in batch])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        positions = np.arange(len(ids)) - np.repeat(starts, lengths)
        x = self._embed_tokens(ids) + self.pos_embd[positions] + self.type0  # (N, d)
        x = np.ascontiguousarray(x, dtype=np.float32)
        ops.layer_norm(x, *self.embd_norm, cfg.norm_eps)
        groups = _equal_length_groups(lengths, starts)
        for layer in self.layers:
            qkv = (
                _mm(x, layer.qkv[0])
                if len(layer.qkv) == 1
                else np.concatenate([_mm(x, w) for w in layer.qkv], axis=1)
            )
            qkv += layer.qkv_bias
            attn = self._attention(qkv, groups, len(ids))
            h = _mm(attn, layer.out)
            h += layer.out_bias
            ops.add_layer_norm(x, h, *layer.norm1, cfg.norm_eps)
            h = _mm(x, layer.up)
            ops.add_bias_gelu(h, layer.up_bias)
            h = _mm(h, layer.down)
            h += layer.down_bias
            ops.add_layer_norm(x, h, *layer.norm2, cfg.norm_eps)
        return self._pool(x, lengths, starts)

    def _attention(self, qkv: np.ndarray, groups, n_tokens: int) -> np.ndarray:
        cfg = self.config
        d, heads, hd = cfg.d_model, cfg.n_heads, cfg.head_dim
        scale = np.float32(1.0 / np.sqrt(hd))
        out = np.empty((n_tokens, d), dtype=np.float32)
        for length, rows in groups:  # rows: (b, length) token indices of b sequences
            b = rows.shape[0]
            # (3, b, heads, T, hd), contiguous so that each product is a BLAS call
            part = qkv[rows.ravel()].reshape(b, length, 3, heads, hd).transpose(2, 0, 3, 1, 4)
            q, k, v = np.ascontiguousarray(part)
            q *= scale
            scores = q @ k.transpose(0, 1, 3, 2)  # (b, heads, T, T)
            ops.softmax(scores)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b * length, d)
            out[rows.ravel()] = ctx
        return out

    def _pool(self, x: np.ndarray, lengths, starts) -> np.ndarray:
        if self.config.pooling == "cls":
            pooled = x[starts]
        else:
            pooled = np.add.reduceat(x, starts, axis=0) / lengths[:, None].astype(np.float32)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        if not np.isfinite(norms).all():
            raise MalformedModelError(
                f"{self.name}: the weights give non-finite vectors (NaN or infinity): they are "
                "damaged or out of range"
            )
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _equal_length_groups(lengths: np.ndarray, starts: np.ndarray):
    """[(length, (b, length) token rows)] for the sequences of each length."""
    groups = []
    for length in np.unique(lengths):
        seq = np.flatnonzero(lengths == length)
        rows = starts[seq][:, None] + np.arange(length)[None, :]
        groups.append((int(length), rows))
    return groups
