"""The llama-family decoder forward pass on GGUF weights: llama, qwen2 (q/k/v biases) and
bitnet (BitNet b1.58: ternary weights, per-matrix scales, sub-norms).

Per layer (pre-norm):  h = x + W_o Attn(RoPE(W_q n), RoPE(W_k n), W_v n)  with n = RMSNorm(x)
                       x = h + W_down (SiLU(W_gate m) * W_up m)           with m = RMSNorm(h)
Attention is causal and grouped-query (n_heads query heads share n_kv_heads key/value heads).
RoPE rotates the first rope_dim dimensions of each head: adjacent pairs (2i, 2i+1) for llama,
halves (i, i + rope_dim/2) for NeoX-style architectures (qwen2, bitnet). bitnet also
RMS-normalizes the attention output before W_o and the SwiGLU output before W_down (the
sub-norms), multiplies each matrix product by the matrix's scale when the file has one, and
always uses the token embedding as the output matrix. Prefill runs the prompt as
matrix products; each generated token is a matrix-vector step against the KV cache.
"""

from dataclasses import dataclass

import numpy as np

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

ARCHITECTURES = ("llama", "qwen2", "bitnet")
NEOX_ROPE = ("qwen2", "bitnet")
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
    def __init__(self, f: GGUFFile, i: int):
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

        def matrix(name):
            tensor = quants.interleave(t(name))
            if tensor.packed is not None:
                self.copied.append(tensor)
            return tensor

        self.q, self.k, self.v = (
            matrix("attn_q.weight"),
            matrix("attn_k.weight"),
            matrix("attn_v.weight"),
        )
        self.q_bias = vec("attn_q.bias", False)
        self.k_bias = vec("attn_k.bias", False)
        self.v_bias = vec("attn_v.bias", False)
        self.o = matrix("attn_output.weight")
        self.gate, self.up, self.down = (
            matrix("ffn_gate.weight"),
            matrix("ffn_up.weight"),
            matrix("ffn_down.weight"),
        )
        self.attn_sub_norm = vec("attn_sub_norm.weight", False)
        self.ffn_sub_norm = vec("ffn_sub_norm.weight", False)
        self.scale = {name: vec(f"{name}.scale", False) for name in MATRICES}


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
        self.rope_dim = cfg.rope_dim
        self.rope_base = float(cfg.rope_base or 10000.0)
        self.neox = f.architecture in NEOX_ROPE
        self.tok_embd = f.tensor("token_embd.weight")
        quants.check(self.tok_embd)
        self.output = self.tok_embd  # tied when output.weight is absent
        if f.architecture not in TIED_OUTPUT:
            self.output = f.tensors.get("output.weight", self.tok_embd)
        self.output = quants.interleave(self.output)
        self.output_norm = np.array(quants.dequantize(f.tensor("output_norm.weight"))[0])
        self.layers = [_Layer(f, i) for i in range(cfg.n_layers)]
        # The file's pages of copied vectors and regrouped matrices are never read again; the
        # kernel maps several around each read, so pages released early may have come back.
        done = [t for layer in self.layers for t in layer.copied]
        for tensor in done + ([self.output] if self.output.packed is not None else []):
            quants.release_pages(tensor.raw)
        # The token table is then read only a row per token: its pages go after each lookup.
        self.lookup_only = self.output is not self.tok_embd
        self.integer = all(t.packed is not None for t in [self.output, *self._matrices()])
        half = self.rope_dim // 2
        self.inv_freq = self.rope_base ** (-np.arange(half, dtype=np.float64) * 2 / self.rope_dim)

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

    def _pass_bytes(self, rows: int, end: int, all_logits: bool) -> int:
        """About the most memory a pass of rows tokens over end positions holds at once:
        activations, one KV head's scores, mask and float32 keys and values, logits."""
        cfg = self.config
        group = cfg.n_heads // cfg.n_kv_heads
        widths = 4 * cfg.d_model + 2 * cfg.n_kv_heads * cfg.head_dim + 3 * cfg.d_ff
        logits = (rows if all_logits else 1) * cfg.vocab_size
        scores = rows * end * (group + 1) + 2 * end * cfg.head_dim
        return 4 * (rows * widths + logits + scores)

    def _pass(self, tokens, cache: KVCache, all_logits: bool) -> np.ndarray:
        cfg = self.config
        n, start = len(tokens), cache.length
        x = quants.dequantize(self.tok_embd, tokens)  # (n, d)
        if self.lookup_only:
            quants.release_pages(self.tok_embd.raw)
        cos, sin = self._rope(np.arange(start, start + n))
        heads, kv_heads, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        group = heads // kv_heads
        scale = np.float32(1.0 / np.sqrt(hd))
        end = start + n
        # causal mask over the positions seen so far: query i (absolute start + i) sees <= it;
        # a single new token sees every position, so it needs none
        mask = (
            None
            if n == 1
            else np.where(
                np.arange(end)[None, :] <= np.arange(start, end)[:, None], 0, -np.inf
            ).astype(np.float32)
        )
        for li, layer in enumerate(self.layers):
            h = _rms_norm(x, layer.attn_norm, cfg.norm_eps)
            sc = layer.scale
            q = _linear(h, layer.q, layer.q_bias, sc["attn_q"]).reshape(n, heads, hd)
            k = _linear(h, layer.k, layer.k_bias, sc["attn_k"]).reshape(n, kv_heads, hd)
            v = _linear(h, layer.v, layer.v_bias, sc["attn_v"]).reshape(n, kv_heads, hd)
            ops.rope(q, cos, sin, self.neox)
            ops.rope(k, cos, sin, self.neox)
            cache.k[li, :, start:end] = k.transpose(1, 0, 2)
            cache.v[li, :, start:end] = v.transpose(1, 0, 2)
            q = q.astype(np.float16).astype(np.float32)  # as llama.cpp multiplies by f16 keys
            if n == 1:
                ctx = np.empty((heads, hd), np.float32)
                attention.decode(q[0], cache.k16[li], cache.v16[li], end, scale, ctx)
                x = self._after_attention(x, ctx.reshape(1, heads * hd), layer)
                continue
            qg = q.transpose(1, 0, 2).reshape(kv_heads, group * n, hd)  # heads grouped by kv head
            ctx = np.empty((kv_heads, group * n, hd), np.float32)
            self._prefill_attention(qg, cache, li, end, mask, ctx)
            attn = ctx.reshape(heads, n, hd).transpose(1, 0, 2).reshape(n, heads * hd)
            del h, q, k, v, qg, ctx  # a long prompt's activations, freed before the FFN
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
        scale = np.float32(1.0 / np.sqrt(cfg.head_dim))
        group = cfg.n_heads // cfg.n_kv_heads
        n = qg.shape[1] // group
        for g in range(qg.shape[0]):
            keys = cache.k[li, g, :end].astype(np.float32)  # (end, hd)
            if self.integer:
                scores = np.empty((group * n, end), np.float32)
                qdot.product_f32(qg[g], keys, scores)
            else:
                scores = qg[g] @ keys.T  # (group * n, end)
            scores *= scale
            if mask is not None:
                scores.reshape(group, n, end)[:] += mask
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            scores[:] = scores.astype(np.float16)  # rounded as they meet the f16 values
            values = cache.v[li, g, :end].astype(np.float32)  # (end, hd)
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
        x += _linear(attn, layer.o, None, sc["attn_output"])
        del attn
        h = _rms_norm(x, layer.ffn_norm, eps)
        act = _linear(h, layer.gate, None, sc["ffn_gate"])
        up = _linear(h, layer.up, None, sc["ffn_up"])
        del h
        t = np.negative(act)  # SwiGLU in place: act = act / (1 + exp(-act)) * up
        np.exp(t, out=t)
        t += 1.0
        act /= t
        act *= up
        del t, up
        if layer.ffn_sub_norm is not None:
            act = _rms_norm(act, layer.ffn_sub_norm, eps)
        x += _linear(act, layer.down, None, sc["ffn_down"])
        return x

    def _rope(self, positions: np.ndarray):
        angles = positions[:, None].astype(np.float64) * self.inv_freq[None, :]  # (n, half)
        return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def _int8(n, w) -> bool:
    """Whether n input rows may be rounded to 8 bits for w: in single-token steps, and in
    every step for a regrouped Q4_0, Q8_0 or TQ2_0 matrix, whose integer kernel takes any number of
    rows. Either way each row's result depends on that row alone, so a prompt gives the same
    logits however it is cut into chunks."""
    return n == 1 or w.packed is not None


def _linear(x, w, bias, scale=None):
    y = quants.matmul(x, w, int8=_int8(x.shape[0], w))
    if scale is not None:
        y *= scale
    return y if bias is None else y + bias


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    # numpy's pairwise float32 sum: with a float64 or a sequential float32 sum, norms one ulp
    # apart moved stories260K's logits by 1.4e-3 (through the float16 and 8-bit roundings)
    x = np.asarray(x, dtype=np.float32)
    ms = np.add.reduce(np.square(x), axis=-1, keepdims=True)
    ms /= np.float32(x.shape[-1])
    ms += np.float32(eps)
    out = x / np.sqrt(ms, out=ms)
    out *= weight
    return out
