"""The checks a model file passes at load, before any kernel reads its weights.

llm/gguf_file.py has checked the file's structure (counts, lengths, offsets, dimensions and
types against the file size) and llm/config.py the hyper-parameters against each other.
Here every tensor an architecture uses is checked against the shape those hyper-parameters
imply and against the types our kernels run, and the memory a context needs is computed
before it is allocated. The kernels then trust what they are given: a rotary dimension, a
head count or a row length that disagrees with a tensor never reaches them.

Example:
    >>> check_tensors(f, llama_tensors(ModelConfig.from_gguf(f), "llama"))  # doctest: +SKIP
"""

import os

from llm.config import ModelConfig
from llm.errors import MalformedModelError, ModelMemoryError, UnsupportedModelError
from llm.gguf_file import GGUFFile

# name -> (shape in numpy order, required)
Spec = dict[str, tuple[tuple[int, ...], bool]]
LLAMA_MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
TIED_OUTPUT = ("bitnet",)  # the token embedding is the output matrix even if output.weight exists
LLAMA_LIKE = ("llama", "qwen2", "bitnet")  # may carry biases, matrix scales and sub-norms
FUSED = ("phi3",)  # attn_qkv holds q, k and v; ffn_up holds the gate and up matrices
QK_NORM = ("qwen3", "gemma3")  # attn_q_norm and attn_k_norm, per head
POST_NORMS = ("gemma3",)  # post_attention_norm and post_ffw_norm


def llama_tensors(cfg: ModelConfig, arch: str) -> Spec:
    """The tensors of a llama-family model (llama, qwen2, qwen3, gemma3, phi3, bitnet) and
    their shapes. phi3 fuses q, k and v into attn_qkv and the gate and up matrices into
    ffn_up; qwen3 and gemma3 RMS-normalize each head of q and k; gemma3 also normalizes the
    attention and feed-forward outputs (post-norms)."""
    d, ff, v, hd = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.head_dim
    q, kv = cfg.n_heads * hd, cfg.n_kv_heads * hd
    spec: Spec = {"token_embd.weight": ((v, d), True), "output_norm.weight": ((d,), True)}
    if arch not in TIED_OUTPUT:
        spec["output.weight"] = ((v, d), False)
    if arch in FUSED:
        matrices = {"attn_qkv": (q + 2 * kv, d), "ffn_up": (2 * ff, d)}
    else:
        matrices = {"attn_q": (q, d), "attn_k": (kv, d), "attn_v": (kv, d)}
        matrices.update(ffn_gate=(ff, d), ffn_up=(ff, d))
    matrices.update(attn_output=(d, q), ffn_down=(d, ff))
    for i in range(cfg.n_layers):
        b = f"blk.{i}."
        spec[b + "attn_norm.weight"] = ((d,), True)
        spec[b + "ffn_norm.weight"] = ((d,), True)
        for name, shape in matrices.items():
            spec[b + name + ".weight"] = (shape, True)
            if arch in LLAMA_LIKE:
                spec[b + name + ".scale"] = ((1,), False)
        if arch in LLAMA_LIKE:
            for name, n in (("attn_q", q), ("attn_k", kv), ("attn_v", kv)):
                spec[b + name + ".bias"] = ((n,), False)
            spec[b + "attn_sub_norm.weight"] = ((d,), False)
            spec[b + "ffn_sub_norm.weight"] = ((ff,), False)
        if arch in QK_NORM:
            spec[b + "attn_q_norm.weight"] = ((hd,), True)
            spec[b + "attn_k_norm.weight"] = ((hd,), True)
        if arch in POST_NORMS:
            spec[b + "post_attention_norm.weight"] = ((d,), True)
            spec[b + "post_ffw_norm.weight"] = ((d,), True)
    return spec


def bert_tensors(f: GGUFFile, cfg: ModelConfig) -> Spec:
    """The tensors of a BERT encoder and their shapes (position and token type tables may have
    any number of rows: their lengths are read from the tensors)."""
    d, ff, v = cfg.d_model, cfg.d_ff, cfg.vocab_size
    if cfg.n_kv_heads != cfg.n_heads:
        raise UnsupportedModelError(
            f"{f.path.name}: a BERT model with {cfg.n_kv_heads} KV heads for {cfg.n_heads} "
            "heads is not supported"
        )
    positions = f.tensors.get("position_embd.weight")
    types = f.tensors.get("token_types.weight")
    spec: Spec = {
        "token_embd.weight": ((v, d), True),
        "position_embd.weight": ((_rows(positions), d), True),
        "token_types.weight": ((_rows(types), d), False),
        "token_embd_norm.weight": ((d,), True),
        "token_embd_norm.bias": ((d,), True),
    }
    for i in range(cfg.n_layers):
        b = f"blk.{i}."
        for name, shape in (
            ("attn_q", (d, d)),
            ("attn_k", (d, d)),
            ("attn_v", (d, d)),
            ("attn_output", (d, d)),
            ("ffn_up", (ff, d)),
            ("ffn_down", (d, ff)),
        ):
            spec[b + name + ".weight"] = (shape, True)
            spec[b + name + ".bias"] = ((shape[0],), True)
        for norm in ("attn_output_norm", "layer_output_norm"):
            spec[b + norm + ".weight"] = ((d,), True)
            spec[b + norm + ".bias"] = ((d,), True)
    return spec


def _rows(t) -> int:
    """A table's row count, or 0 (no valid shape) when it is not a matrix."""
    return t.shape[0] if t is not None and len(t.shape) == 2 else 0


def check_tensors(f: GGUFFile, spec: Spec) -> None:
    """Every required tensor is present; every tensor of the spec has its shape and a type
    our kernels run."""
    from llm.quants import check

    for name, (shape, required) in spec.items():
        t = f.tensors.get(name)
        if t is None:
            if required:
                f.tensor(name)  # UnsupportedModelError: missing
            continue
        check(t)
        if t.shape != shape or 0 in shape:
            raise MalformedModelError(
                f"{f.path.name}: tensor {name} has shape {t.shape}; the metadata implies "
                f"{shape} {_legend(name)}"
            )


def _legend(name: str) -> str:
    """What the dimensions of an expected shape stand for, for the error message."""
    if name.startswith(("token_embd.weight", "output.weight")):
        return "(tokens, embedding_length)"
    if name.endswith(("attn_k.weight", "attn_v.weight")):
        return "(head_count_kv x head size, embedding_length)"
    if name.endswith(("ffn_gate.weight", "ffn_up.weight")):
        return "(feed_forward_length, embedding_length)"
    if name.endswith("ffn_down.weight"):
        return "(embedding_length, feed_forward_length)"
    if name.endswith(".scale"):
        return "(one scale)"
    return "(from embedding_length, feed_forward_length and the head counts)"


def memory_limit() -> int:
    """Bytes this process may still allocate: the machine's memory and swap, less what an
    address-space or data limit (RLIMIT_AS, RLIMIT_DATA) leaves."""
    limit = _physical_memory()
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as f:
            size, _, _, _, _, data = (int(x) for x in f.read().split()[:6])
        page = os.sysconf("SC_PAGE_SIZE")
        for which, used in ((resource.RLIMIT_AS, size), (resource.RLIMIT_DATA, data)):
            soft = resource.getrlimit(which)[0]
            if soft != resource.RLIM_INFINITY:
                limit = min(limit, soft - used * page)
    except (ImportError, OSError, ValueError):
        pass
    return max(limit, 0)


def _physical_memory() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("SwapTotal:"):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return total


def check_memory(name: str, what: str, nbytes: int) -> None:
    """ModelMemoryError when nbytes (for what) exceed memory_limit()."""
    limit = memory_limit()
    if nbytes > limit:
        raise ModelMemoryError(
            f"{name}: {what} needs {_gib(nbytes)}, more than the {_gib(limit)} this process "
            "may allocate"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"
