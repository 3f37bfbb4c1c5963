"""Model hyper-parameters read from GGUF metadata: one dataclass for every architecture.

Every value is type- and range-checked as it is read (MalformedModelError names the key and
the value), and the values are checked against each other: the head count divides the
embedding length, the KV head count divides the head count, the rotary dimensions fit in a
head. The tensors' shapes are checked against these in llm/validate.py.
"""

from dataclasses import dataclass

from llm.errors import UnsupportedModelError
from llm.gguf_file import GGUFFile

POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}
# Bounds that no real model reaches and that keep every product of them far from overflow.
MAX_CONTEXT = 1 << 24  # positions (Llama 4 Scout: 10,485,760)
MAX_WIDTH = 1 << 20  # embedding and feed-forward lengths
MAX_LAYERS = 1 << 12
MAX_TOKEN_TYPES = 1 << 16
OWN_HEAD_SIZE = ("gemma3", "qwen3", "qwen2", "llama", "phi3")  # may set attention.key_length


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    name: str
    n_layers: int
    d_model: int  # embedding length
    n_heads: int
    n_kv_heads: int
    d_ff: int  # feed-forward length
    context_length: int
    norm_eps: float
    causal: bool
    pooling: str  # none | mean | cls | last | rank
    vocab_size: int
    token_type_count: int
    rope_base: float | None = None
    rope_dim: int | None = None  # rotated dimensions of each head (llama family)
    head_size: int | None = None  # attention.key_length when it differs from d_model / heads
    sliding_window: int = 0  # attention.sliding_window (0: none)

    @property
    def head_dim(self) -> int:
        return self.head_size or self.d_model // self.n_heads

    @classmethod
    def from_gguf(cls, f: GGUFFile) -> "ModelConfig":
        key = f.arch_key
        name = f.path.name
        eps_key = key("attention.layer_norm_epsilon")
        if eps_key not in f.metadata:
            eps_key = key("attention.layer_norm_rms_epsilon")
        eps = f.number(eps_key, 1e-5, low=0.0, high=1.0)
        # BERT files without a pooling type are sentence encoders used with mean pooling.
        pooling = f.integer(key("pooling_type"), 1 if f.architecture == "bert" else 0, high=2**32)
        if pooling not in POOLING:
            raise UnsupportedModelError(f"{name}: unknown pooling_type {pooling}")
        d_model = f.integer(key("embedding_length"), low=1, high=MAX_WIDTH)
        n_heads = f.integer(key("attention.head_count"), low=1, high=MAX_WIDTH)
        k_len, v_len = key("attention.key_length"), key("attention.value_length")
        head_size = None
        if f.architecture in OWN_HEAD_SIZE and k_len in f.metadata:
            # heads of their own size: q and k project to n_heads * key_length
            head_size = f.integer(k_len, low=1, high=MAX_WIDTH // n_heads)
            if f.integer(v_len, head_size, low=1, high=MAX_WIDTH) != head_size:
                raise UnsupportedModelError(
                    f"{name}: {v_len} = {f.get(v_len)} differs from {k_len} = {head_size}; "
                    "not supported"
                )
        elif n_heads > d_model or d_model % n_heads:
            f.malformed(
                key("attention.head_count"),
                n_heads,
                f"does not divide embedding_length {d_model}",
            )
        head_dim = head_size or d_model // n_heads
        for k in (k_len, v_len):
            if f.integer(k, head_dim, low=1, high=MAX_WIDTH) != head_dim:
                raise UnsupportedModelError(
                    f"{name}: {k} = {f.get(k)} differs from the head size {head_dim} "
                    f"(embedding_length {d_model} / head_count {n_heads}); not supported"
                )
        n_kv_heads = f.integer(key("attention.head_count_kv"), n_heads, low=1, high=n_heads)
        if n_heads % n_kv_heads:
            f.malformed(
                key("attention.head_count_kv"),
                n_kv_heads,
                f"does not divide attention.head_count {n_heads}",
            )
        rope_dim = f.integer(key("rope.dimension_count"), head_dim, low=0, high=2**32)
        if rope_dim < 2 or rope_dim > head_dim or rope_dim % 2:
            f.malformed(
                key("rope.dimension_count"),
                rope_dim,
                f"must be even, at least 2 and at most the head size {head_dim}",
            )
        tokens = f.get("tokenizer.ggml.tokens", [])
        if not isinstance(tokens, list):
            f.malformed("tokenizer.ggml.tokens", tokens, "is not an array of strings")
        vocab_size = len(tokens)
        declared = f.integer(key("vocab_size"), vocab_size, high=2**32)
        if declared != vocab_size:
            f.malformed(key("vocab_size"), declared, f"differs from the {vocab_size} tokens")
        base_key = key("rope.freq_base")
        rope_base = f.number(base_key, low=1e-6) if base_key in f.metadata else None
        return cls(
            architecture=f.architecture,
            name=str(f.get("general.name", f.path.stem))[:256],
            n_layers=f.integer(key("block_count"), low=1, high=MAX_LAYERS),
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            d_ff=f.integer(key("feed_forward_length"), low=1, high=MAX_WIDTH),
            context_length=f.integer(key("context_length"), low=1, high=MAX_CONTEXT),
            norm_eps=eps,
            causal=f.flag(key("attention.causal"), True),
            pooling=POOLING[pooling],
            vocab_size=vocab_size,
            token_type_count=f.integer(
                "tokenizer.ggml.token_type_count", 1, low=1, high=MAX_TOKEN_TYPES
            ),
            rope_base=rope_base,
            rope_dim=rope_dim,
            head_size=head_size,
            sliding_window=f.integer(key("attention.sliding_window"), 0, high=MAX_CONTEXT),
        )
