"""Model hyper-parameters read from GGUF metadata: one dataclass for every architecture."""

from dataclasses import dataclass

from llm.errors import UnsupportedModelError
from llm.gguf_file import GGUFFile

POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


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

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_gguf(cls, f: GGUFFile) -> "ModelConfig":
        n_heads = int(f.arch_get("attention.head_count"))
        eps = f.arch_get("attention.layer_norm_epsilon", None)
        if eps is None:
            eps = f.arch_get("attention.layer_norm_rms_epsilon", 1e-5)
        # BERT files without a pooling type are sentence encoders used with mean pooling.
        pooling = int(f.arch_get("pooling_type", 1 if f.architecture == "bert" else 0))
        if pooling not in POOLING:
            raise UnsupportedModelError(f"{f.path.name}: unknown pooling_type {pooling}")
        d_model = int(f.arch_get("embedding_length"))
        if n_heads <= 0 or d_model % n_heads:
            raise UnsupportedModelError(
                f"{f.path.name}: embedding_length {d_model} is not a multiple of {n_heads} heads"
            )
        return cls(
            architecture=f.architecture,
            name=str(f.get("general.name", f.path.stem)),
            n_layers=int(f.arch_get("block_count")),
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=int(f.arch_get("attention.head_count_kv", n_heads)),
            d_ff=int(f.arch_get("feed_forward_length")),
            context_length=int(f.arch_get("context_length")),
            norm_eps=float(eps),
            causal=bool(f.arch_get("attention.causal", True)),
            pooling=POOLING[pooling],
            vocab_size=len(f.get("tokenizer.ggml.tokens", ())),
            token_type_count=int(f.get("tokenizer.ggml.token_type_count", 1)),
            rope_base=f.arch_get("rope.freq_base", None),
        )
