"""The llama-family decoder forward pass on GGUF weights: llama, qwen2 (q/k/v biases),
qwen3 (q/k norms), gemma3, phi3 (fused matrices) and bitnet (BitNet b1.58: ternary weights,
per-matrix scales, sub-norms).

Per layer (pre-norm):  h = x + W_o Attn(RoPE(W_q n), RoPE(W_k n), W_v n)  with n = RMSNorm(x)
                       x = h + W_down (SiLU(W_gate m) * W_up m)           with m = RMSNorm(h)
Attention is causal and grouped-query (n_heads query heads share n_kv_heads key/value heads).
RoPE rotates the first rope_dim dimensions of each head: adjacent pairs (2i, 2i+1) for llama,
halves (i, i + rope_dim/2) for NeoX-style architectures (qwen2, bitnet). bitnet also
RMS-normalizes the attention output before W_o and the SwiGLU output before W_down (the
sub-norms), multiplies each matrix product by the matrix's scale when the file has one, and
always uses the token embedding as the output matrix. qwen3 and gemma3 RMS-normalize each
head of q and k (before RoPE). gemma3 (as llama.cpp runs it) scales the token embedding by
sqrt(embedding_length), scales q by 1/sqrt(key_length) before it meets the keys, normalizes
the attention and feed-forward outputs before their residual adds, uses a GELU-gated
feed-forward (GELU through llama.cpp's float16 table), and attends within a sliding window
on five layers of every six (RoPE base 10,000 there, the file's base on the others). phi3
stores q, k and v in one matrix and the gate and up matrices in another; they are split at
load. Prefill runs the prompt as matrix products; each generated token is a matrix-vector
step against the KV cache.
"""

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
from numba.typed import List

from llm import attention, ops, qdot, quants, validate
from llm.config import ModelConfig
from llm.errors import (
    ContextOverflowError,
    MalformedModelError,
    ModelMemoryError,
    PromptError,
    UnsupportedModelError,
)
from llm.gguf_file import GGUFFile
from llm.validate import LLAMA_MATRICES as MATRICES
from llm.validate import TIED_OUTPUT

ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3", "phi3", "bitnet")
NEOX_ROPE = ("qwen2", "qwen3", "gemma3", "phi3", "bitnet")
GEMMA3_PATTERN = 6  # gemma3: every 6th layer attends globally, the others in a window
GEMMA3_LOCAL_BASE = 10000.0  # ... with this RoPE base on the windowed layers
PREFILL_ROWS = 64  # prompt tokens per forward pass when every matrix is integer (forward)
CHECKED_PASS_BYTES = 1 << 26  # passes that may need more are checked against memory first


@dataclass
class KVCache:
    """Keys and values of every layer, allocated once for n_ctx positions. float16, as
    llama.cpp keeps them by default: half the memory, and the same rounding (the queries and
    attention weights meet them in float16 too), so logits agree with llama.cpp's."""

    k: np.ndarray  # (layers, kv_heads, n_ctx, head_dim)
    v: np.ndarray
    length: int = 0  # positions filled

    @property
    def n_ctx(self) -> int:
        return self.k.shape[2]

    @property
    def k16(self) -> np.ndarray:
        """The keys' float16 bits as uint16 (a view), for the decode kernel."""
        return self.k.view(np.uint16)

    @property
    def v16(self) -> np.ndarray:
        return self.v.view(np.uint16)


class _Layer:
    def __init__(self, f: GGUFFile, i: int, cfg: ModelConfig):
        def t(name, required=True):
            full = f"blk.{i}.{name}"
            if not required and full not in f.tensors:
                return None
            tensor = f.tensor(full)
            quants.check(tensor)
            return tensor

        self.copied = []  # tensors whose file pages are not read once loaded

        def vec(name, required=True):
            tensor = t(name, required)
            if tensor is None:
                return None
            self.copied.append(tensor)
            return np.array(quants.dequantize(tensor)[0])  # a copy, not a view of the file

        self.attn_norm, self.ffn_norm = vec("attn_norm.weight"), vec("ffn_norm.weight")

        def matrix(name, tensor=None):
            tensor = quants.interleave(tensor if tensor is not None else t(name))
            if tensor.packed is not None:
                self.copied.append(tensor)
            return tensor

        if f.architecture in validate.FUSED:  # split by rows: q | k | v and gate | up
            qkv, up = t("attn_qkv.weight"), t("ffn_up.weight")
            q, kv, ff = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim, cfg.d_ff
            self.q, self.k, self.v = (
                matrix(None, _rows(qkv, a, b, name))
                for a, b, name in ((0, q, "q"), (q, q + kv, "k"), (q + kv, q + 2 * kv, "v"))
            )
            self.gate = matrix(None, _rows(up, 0, ff, "gate"))
            self.up = matrix(None, _rows(up, ff, 2 * ff, "up"))
        else:
            self.q, self.k, self.v = (
                matrix("attn_q.weight"),
                matrix("attn_k.weight"),
                matrix("attn_v.weight"),
            )
            self.gate, self.up = matrix("ffn_gate.weight"), matrix("ffn_up.weight")
        self.q_bias = vec("attn_q.bias", False)
        self.k_bias = vec("attn_k.bias", False)
        self.v_bias = vec("attn_v.bias", False)
        self.o = matrix("attn_output.weight")
        self.down = matrix("ffn_down.weight")
        self.attn_sub_norm = vec("attn_sub_norm.weight", False)
        self.ffn_sub_norm = vec("ffn_sub_norm.weight", False)
        self.q_norm = vec("attn_q_norm.weight", False)
        self.k_norm = vec("attn_k_norm.weight", False)
        self.post_attn_norm = vec("post_attention_norm.weight", False)
        self.post_ffn_norm = vec("post_ffw_norm.weight", False)
        self.scale = {name: vec(f"{name}.scale", False) for name in MATRICES}
        self.window = 0  # attend to this many latest positions (0: all)
        self.rope = (10000.0, 1.0)  # this layer's RoPE (base, position scale)


class LlamaModel:
    def __init__(self, f: GGUFFile):
        if f.architecture not in ARCHITECTURES:
            raise UnsupportedModelError(
                f"{f.path.name}: architecture {f.architecture!r} is not supported for "
                f"generation (supported: {', '.join(ARCHITECTURES)})"
            )
        self.config = cfg = ModelConfig.from_gguf(f)
        validate.check_tensors(f, validate.llama_tensors(cfg, f.architecture))
        self.name = f.path.name
        arch = f.architecture
        for name in ("rope_factors_long.weight", "rope_factors_short.weight"):
            if name in f.tensors:
                raise UnsupportedModelError(
                    f"{self.name}: RoPE frequency factors ({name}, long-context scaling) are not "
                    "supported"
                )
        if arch == "gemma3" and cfg.sliding_window < 1:
            f.malformed(f.arch_key("attention.sliding_window"), cfg.sliding_window, "is missing")
        self.rope_dim = cfg.rope_dim
        self.rope_base = float(cfg.rope_base or 10000.0)
        self.rope_factors = None  # (rope_dim / 2,): each frequency divided by its factor
        if "rope_freqs.weight" in f.tensors:  # Llama 3.1-style long-context frequencies
            t = f.tensor("rope_freqs.weight")
            quants.check(t)
            factors = np.array(quants.dequantize(t)[0], np.float32)
            if t.shape != (cfg.rope_dim // 2,) or not (np.isfinite(factors) & (factors > 0)).all():
                raise MalformedModelError(
                    f"{self.name}: rope_freqs.weight must hold {cfg.rope_dim // 2} positive "
                    f"factors (half of rope.dimension_count), got shape {t.shape}"
                )
            self.rope_factors = factors
        self.neox = arch in NEOX_ROPE
        self.gelu = arch == "gemma3"  # GELU-gated feed-forward, else SwiGLU
        # the token embedding's scale (gemma3), and where 1/sqrt(head size) meets attention:
        # on q before it is rounded to float16 (q_scale: gemma3, phi3), or on the scores
        self.embed_scale = np.float32(np.sqrt(np.float32(cfg.d_model))) if self.gelu else None
        self.q_scale = None
        if arch == "gemma3":  # 27B (62 layers) scales by the embedding per head instead
            size = cfg.d_model // cfg.n_heads if cfg.n_layers == 62 else cfg.head_dim
            self.q_scale = np.float32(1.0 / np.sqrt(np.float32(size)))
        elif arch == "phi3":
            self.q_scale = np.float32(1.0 / np.sqrt(np.float32(cfg.head_dim)))
        kq = 1.0 if self.q_scale is not None else 1.0 / np.sqrt(cfg.head_dim)
        self.kq_scale = np.float32(kq)
        self.tok_embd = f.tensor("token_embd.weight")
        quants.check(self.tok_embd)
        self.output = self.tok_embd  # tied when output.weight is absent
        if f.architecture not in TIED_OUTPUT:
            self.output = f.tensors.get("output.weight", self.tok_embd)
        self.output = quants.interleave(self.output)
        self.output_norm = np.array(quants.dequantize(f.tensor("output_norm.weight"))[0])
        self.layers = [_Layer(f, i, cfg) for i in range(cfg.n_layers)]
        full = (self.rope_base, _rope_freq_scale(f))
        local = (GEMMA3_LOCAL_BASE, 1.0)
        for i, layer in enumerate(self.layers):
            windowed = arch == "gemma3" and i % GEMMA3_PATTERN < GEMMA3_PATTERN - 1
            layer.window = cfg.sliding_window if windowed else 0
            layer.rope = local if windowed else full
        # The file's pages of copied vectors and regrouped matrices are never read again; the
        # kernel maps several around each read, so pages released early may have come back.
        done = [t for layer in self.layers for t in layer.copied]
        for tensor in done + ([self.output] if self.output.packed is not None else []):
            quants.release_pages(tensor.raw)
        # The token table is then read only a row per token: its pages go after each lookup.
        self.lookup_only = self.output is not self.tok_embd
        self.integer = all(t.packed is not None for t in [self.output, *self._matrices()])

    def cache_bytes(self, n_ctx: int) -> int:
        """Bytes of the KV cache for n_ctx positions (keys and values, float16)."""
        cfg = self.config
        return 2 * cfg.n_layers * cfg.n_kv_heads * n_ctx * cfg.head_dim * 2

    def check_cache(self, n_ctx: int) -> None:
        """ModelMemoryError, before anything is allocated, when the KV cache for n_ctx
        positions does not fit in the memory this process may allocate."""
        validate.check_memory(
            self.name, f"the KV cache for a context of {n_ctx} positions", self.cache_bytes(n_ctx)
        )

    def new_cache(self, n_ctx: int | None = None) -> KVCache:
        cfg = self.config
        n_ctx = n_ctx or cfg.context_length
        self.check_cache(n_ctx)
        shape = (cfg.n_layers, cfg.n_kv_heads, n_ctx, cfg.head_dim)
        try:
            return KVCache(np.zeros(shape, np.float16), np.zeros(shape, np.float16))
        except MemoryError:
            raise ModelMemoryError(
                f"{self.name}: no memory for the KV cache of {n_ctx} positions "
                f"({self.cache_bytes(n_ctx) / 2**20:.0f} MiB)"
            ) from None

    def _matrices(self):
        for layer in self.layers:
            yield from (layer.q, layer.k, layer.v, layer.o, layer.gate, layer.up, layer.down)

    def forward(self, tokens, cache: KVCache, all_logits: bool = False) -> np.ndarray:
        """Run tokens after the cache's positions; returns the logits of the last token (or of
        every token with all_logits=True) and extends the cache.

        When every matrix multiplies in integers (self.integer), a long prompt runs
        PREFILL_ROWS tokens per pass: those kernels read the weights without decoding them,
        so a pass costs about the same per token whatever its length, and the activations'
        memory stays bounded (TinyLlama Q4_0, 512 tokens: 748 MiB peak resident in passes of
        64 against 795 MiB in one pass, and 132-137 against 116-118 prompt tokens/s)."""
        cfg = self.config
        tokens = np.asarray(tokens, dtype=np.int64)
        n, start = len(tokens), cache.length
        if start + n > cache.n_ctx:
            raise ContextOverflowError(
                f"{start + n} positions do not fit in the context of {cache.n_ctx}"
            )
        if tokens.size and (tokens.min() < 0 or tokens.max() >= cfg.vocab_size):
            raise PromptError(f"token ids must be in [0, {cfg.vocab_size})")
        step = PREFILL_ROWS if self.integer else max(n, 1)
        need = self._pass_bytes(min(step, n), start + n, all_logits)
        if need > CHECKED_PASS_BYTES:
            validate.check_memory(
                self.name, f"a pass of {min(step, n)} tokens over {start + n} positions", need
            )
        passes = range(0, max(n, 1), step)
        logits = [self._pass(tokens[a : a + step], cache, all_logits) for a in passes]
        out = np.concatenate(logits) if all_logits else logits[-1]
        if not np.isfinite(out).all():
            raise MalformedModelError(
                f"{self.name}: the weights give non-finite logits (NaN or infinity) at "
                f"position {start + n - 1}: they are damaged or out of range"
            )
        return out

    def forward_batch(self, tokens, caches: list) -> np.ndarray:
        """One new token for each of several sequences, each after its own cache's positions,
        in one pass: the matrix products take every sequence's row at once (the weights are
        read once for all of them) and attention runs per sequence over its own cache.
        Returns (B, vocab) logits and extends each cache by one position. Row i equals
        forward([tokens[i]], caches[i]): the integer kernels round and multiply each row on
        its own; a model with float matrices (whose products would sum in another order for
        several rows) steps the sequences one at a time."""
        cfg = self.config
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if len(tokens) != len(caches) or len({id(c) for c in caches}) != len(caches):
            raise ValueError("forward_batch takes one token for each of distinct caches")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= cfg.vocab_size):
            raise PromptError(f"token ids must be in [0, {cfg.vocab_size})")
        for c in caches:
            if c.length + 1 > c.n_ctx:
                raise ContextOverflowError(
                    f"{c.length + 1} positions do not fit in the context of {c.n_ctx}"
                )
        if len(tokens) == 1 or not self.integer:
            return np.stack([self.forward([t], c) for t, c in zip(tokens, caches, strict=True)])
        out = self._batch_pass(tokens, caches)
        if not np.isfinite(out).all():
            raise MalformedModelError(
                f"{self.name}: the weights give non-finite logits (NaN or infinity): they are "
                "damaged or out of range"
            )
        return out

    def _batch_pass(self, tokens: np.ndarray, caches: list) -> np.ndarray:
        """forward_batch's pass, as _pass steps one token (n == 1) but with a row per cache."""
        cfg = self.config
        b = len(tokens)
        x = self._embed(tokens)  # (b, d)
        positions = np.array([c.length for c in caches], np.int64)
        heads, hd = cfg.n_heads, cfg.head_dim
        ropes: dict[tuple, tuple] = {}
        ks, vs = List([c.k16 for c in caches]), List([c.v16 for c in caches])
        ends = positions + 1
        for li, layer in enumerate(self.layers):
            q, k, v = self._qkv(x, layer, positions, ropes)
            ops.round_half(q.reshape(b, heads * hd))
            ctx = np.empty((b, heads, hd), np.float32)
            attention.decode_rows(
                q, k, v, ks, vs, li, ends, layer.window or 0, self.kq_scale, ctx
            )  # one parallel region for every sequence's heads
            x = self._after_attention(x, ctx.reshape(b, heads * hd), layer)
        for c in caches:
            c.length += 1
        return quants.matmul(
            _rms_norm(x, self.output_norm, cfg.norm_eps), self.output, int8=_int8(b, self.output)
        )

    def _pass_bytes(self, rows: int, end: int, all_logits: bool) -> int:
        """About the most memory a pass of rows tokens over end positions holds at once:
        activations, one KV head's scores, mask and float32 keys and values, logits."""
        cfg = self.config
        group = cfg.n_heads // cfg.n_kv_heads
        q, kv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim  # q may exceed d_model
        widths = 2 * cfg.d_model + 2 * q + 2 * kv + 3 * cfg.d_ff
        logits = (rows if all_logits else 1) * cfg.vocab_size
        scores = rows * end * (group + 1) + 2 * end * cfg.head_dim
        return 4 * (rows * widths + logits + scores)

    def _embed(self, tokens) -> np.ndarray:
        """(n, d) float32: the tokens' embedding rows (scaled where the architecture does)."""
        x = quants.dequantize(self.tok_embd, tokens)
        if self.lookup_only:
            quants.release_pages(self.tok_embd.raw)
        if self.embed_scale is not None:
            x *= self.embed_scale
        return x

    def _qkv(self, x, layer, positions, ropes: dict):
        """q (n, heads, hd), k and v (n, kv_heads, hd) of layer for rows x at positions: the
        projections, q/k norms, RoPE and q's scale. ropes caches (cos, sin) by (base, scale)."""
        cfg = self.config
        n, heads, kv_heads, hd = len(x), cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        h = _rms_norm(x, layer.attn_norm, cfg.norm_eps)
        sc, memo = layer.scale, {}
        q = _linear(h, layer.q, layer.q_bias, sc["attn_q"], memo).reshape(n, heads, hd)
        k = _linear(h, layer.k, layer.k_bias, sc["attn_k"], memo).reshape(n, kv_heads, hd)
        v = _linear(h, layer.v, layer.v_bias, sc["attn_v"], memo).reshape(n, kv_heads, hd)
        if layer.q_norm is not None:  # each head normalized over its own dimensions
            q = _rms_norm(q, layer.q_norm, cfg.norm_eps)
            k = _rms_norm(k, layer.k_norm, cfg.norm_eps)
        if layer.rope not in ropes:
            ropes[layer.rope] = _rope(positions, *layer.rope, self.rope_dim, self.rope_factors)
        cos, sin = ropes[layer.rope]
        ops.rope(q, cos, sin, self.neox)
        ops.rope(k, cos, sin, self.neox)
        if self.q_scale is not None:
            q *= self.q_scale
        return q, k, v

    def _pass(self, tokens, cache: KVCache, all_logits: bool) -> np.ndarray:
        cfg = self.config
        n, start = len(tokens), cache.length
        x = self._embed(tokens)  # (n, d)
        positions = np.arange(start, start + n)
        heads, kv_heads, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        group = heads // kv_heads
        end = start + n
        ropes: dict[tuple, tuple] = {}  # (base, scale) -> (cos, sin), (n, rope_dim / 2)
        masks: dict[int, np.ndarray | None] = {}  # window -> (n, end) mask
        for li, layer in enumerate(self.layers):
            q, k, v = self._qkv(x, layer, positions, ropes)
            ops.store_half(k, cache.k16[li, :, start:end])
            ops.store_half(v, cache.v16[li, :, start:end])
            ops.round_half(q.reshape(n, heads * hd))  # as llama.cpp multiplies by f16 keys
            if n == 1:
                ctx = np.empty((heads, hd), np.float32)
                first = max(0, end - layer.window) if layer.window else 0
                k16, v16 = cache.k16[li], cache.v16[li]
                attention.decode(q[0], k16, v16, first, end, self.kq_scale, ctx)
                x = self._after_attention(x, ctx.reshape(1, heads * hd), layer)
                continue
            if layer.window not in masks:
                masks[layer.window] = _mask(start, end, layer.window)
            qg = q.transpose(1, 0, 2).reshape(kv_heads, group * n, hd)  # heads grouped by kv head
            ctx = np.empty((kv_heads, group * n, hd), np.float32)
            self._prefill_attention(qg, cache, li, end, masks[layer.window], ctx)
            attn = ctx.reshape(heads, n, hd).transpose(1, 0, 2).reshape(n, heads * hd)
            del q, k, v, qg, ctx  # a long prompt's activations, freed before the FFN
            x = self._after_attention(x, attn, layer)
        cache.length = end
        last = x if all_logits else x[-1:]
        logits = quants.matmul(
            _rms_norm(last, self.output_norm, cfg.norm_eps), self.output, int8=_int8(n, self.output)
        )
        return logits if all_logits else logits[0]

    def _prefill_attention(self, qg, cache, li, end, mask, ctx):
        """Causal attention of several new tokens, one KV head at a time (which bounds the
        scores' memory): qg (kv_heads, group * n, hd) holds each KV head's queries.

        A model whose matrices all multiply in integers runs these products in our float32
        kernel too, not BLAS: BLAS's idle workers, spinning after each call, took the cores
        from the numba kernels that follow (TinyLlama Q4_0 prefill ran 1.3-2x slower)."""
        cfg = self.config
        scale = self.kq_scale
        group = cfg.n_heads // cfg.n_kv_heads
        n = qg.shape[1] // group
        masked = (mask, True) if mask is not None else (np.zeros((1, end), np.float32), False)
        keys = np.empty((end, cfg.head_dim), np.float32)
        values = np.empty((end, cfg.head_dim), np.float32)
        for g in range(qg.shape[0]):
            ops.half_to_f32(cache.k16[li, g, :end], keys)  # (end, hd)
            if self.integer:
                scores = np.empty((group * n, end), np.float32)
                qdot.product_f32(qg[g], keys, scores)
            else:
                scores = qg[g] @ keys.T  # (group * n, end)
            ops.attention_weights(scores, np.float32(scale), *masked)
            ops.half_to_f32(cache.v16[li, g, :end], values)  # (end, hd)
            if self.integer:
                qdot.product_f32(scores, np.ascontiguousarray(values.T), ctx[g])
            else:
                np.matmul(scores, values, out=ctx[g])

    def _after_attention(self, x, attn, layer):
        """The attention output projection and the feed-forward block, with residuals (x is
        updated in place and returned)."""
        eps, sc = self.config.norm_eps, layer.scale
        if layer.attn_sub_norm is not None:
            attn = _rms_norm(attn, layer.attn_sub_norm, eps)
        out = _linear(attn, layer.o, None, sc["attn_output"])
        del attn
        if layer.post_attn_norm is not None:
            out = _rms_norm(out, layer.post_attn_norm, eps)
        x += out
        h = _rms_norm(x, layer.ffn_norm, eps)
        memo = {}
        act = _linear(h, layer.gate, None, sc["ffn_gate"], memo)
        up = _linear(h, layer.up, None, sc["ffn_up"], memo)
        del h
        if self.gelu:
            act = _geglu(act, up)
        else:
            act = np.ascontiguousarray(act, dtype=np.float32)
            ops.swiglu(act, np.ascontiguousarray(up, dtype=np.float32))
        del up
        if layer.ffn_sub_norm is not None:
            act = _rms_norm(act, layer.ffn_sub_norm, eps)
        out = _linear(act, layer.down, None, sc["ffn_down"])
        if layer.post_ffn_norm is not None:
            out = _rms_norm(out, layer.post_ffn_norm, eps)
        x += out
        return x


def _rope(positions: np.ndarray, base: float, freq_scale: float, rope_dim: int, factors=None):
    """(cos, sin), each (n, rope_dim / 2) float32, of the angles scale * p * base^(-2i / d)
    (divided by factors[i] when given) computed as llama.cpp does: in float32, each
    dimension's angle the previous one's times base^(-2 / d); the cosines and sines then
    correctly rounded."""
    step = np.float32(base) ** np.float32(-2.0 / rope_dim)
    angles = np.empty((len(positions), rope_dim // 2), np.float32)
    use = factors is not None
    ops.rope_angles(positions, step, freq_scale, factors if use else angles[0], use, angles)
    wide = angles.astype(np.float64)
    return np.cos(wide).astype(np.float32), np.sin(wide).astype(np.float32)


def _rope_freq_scale(f: GGUFFile) -> float:
    """The RoPE position scale of {arch}.rope.scaling: 1 / factor for linear scaling, 1 for
    none; any other kind is refused."""
    kind = f.text(f.arch_key("rope.scaling.type"), "none")
    if kind == "none":
        return 1.0
    if kind != "linear":
        raise UnsupportedModelError(f"{f.path.name}: RoPE scaling {kind!r} is not supported")
    return 1.0 / f.number(f.arch_key("rope.scaling.factor"), 1.0, low=1e-6, high=1e6)


def _mask(start: int, end: int, window: int) -> np.ndarray:
    """(end - start, end) float32, 0 where query start + i sees key j, -inf elsewhere: the keys
    up to the query (causal), and within window positions of it when window > 0."""
    keys = np.arange(end)[None, :]
    queries = np.arange(start, end)[:, None]
    seen = keys <= queries
    if window:
        seen &= queries - keys < window
    return np.where(seen, 0, -np.inf).astype(np.float32)


@functools.cache
def _gelu_table() -> np.ndarray:
    """(65536,) float32: GELU (tanh form) of every float16 value, rounded to float16, as
    llama.cpp tabulates it (ggml_table_gelu_f16)."""
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    with np.errstate(all="ignore"):  # the table's infinities and NaNs are never looked up
        # 1 + a x x with the multiply-add fused, as llama.cpp's build does; tanh rounded once
        cubic = (np.float32(0.044715) * x).astype(np.float64) * x + 1.0
        inner = np.float32(0.7978845608028654) * x * cubic.astype(np.float32)
        tanh = np.tanh(inner.astype(np.float64)).astype(np.float32)
        y = np.float32(0.5) * x * (np.float32(1.0) + tanh)
    return y.astype(np.float16).astype(np.float32)


def _geglu(x: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """GELU(x) * gate as llama.cpp computes it (ops.geglu), in x's place."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    ops.geglu(x, np.ascontiguousarray(gate, dtype=np.float32), _gelu_table())
    return x


def _rows(t, a: int, b: int, part: str):
    """Rows a..b of a matrix, as a tensor of its own (a part of a fused matrix)."""
    return dataclasses.replace(
        t, name=f"{t.name}[{part}]", shape=(b - a, t.shape[1]), raw=t.raw[a:b]
    )


def _int8(n, w) -> bool:
    """Whether n input rows may be rounded to 8 bits for w: in single-token steps, and in
    every step for a regrouped matrix (any integer type, llm/i8group.py), whose integer kernel
    takes any number of rows. Either way each row's result depends on that row alone, so a
    prompt gives the same logits however it is cut into chunks."""
    return n == 1 or w.packed is not None


def _linear(x, w, bias, scale=None, memo=None):
    """x @ w.T (+ bias, * scale); memo: a dict kept for x across the matrices it meets."""
    y = quants.matmul(x, w, int8=_int8(x.shape[0], w), memo=memo)
    if scale is not None:
        y *= scale
    return y if bias is None else y + bias


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """RMSNorm over the last axis as ggml computes it (ops.rms_norm). Gemma 3 turns a
    last-bit difference here into logits a whole unit apart (measured), so the order of
    operations is llama.cpp's own."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    flat = x.reshape(-1, x.shape[-1])
    out = np.empty_like(flat)
    ops.rms_norm(flat, weight, np.float32(eps), out)
    return out.reshape(x.shape)
