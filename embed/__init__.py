"""Embedding models read from GGUF files (BERT family), computed by our own kernels.

>>> import embed
>>> model = embed.load()                      # the default: all-MiniLM-L6-v2  # doctest: +SKIP
>>> vectors = model.embed(["a text", "another"])   # (2, 384) float32, unit length  # doctest: +SKIP
"""

import threading

import numpy as np

from embed.bert import TOKENS_PER_PASS, BertModel
from embed.models import DEFAULT_MODEL, resolve
from llm.errors import (
    ModelError,
    ModelNotFoundError,
    NotGGUFError,
    TokenizerError,
    TruncatedModelError,
    UnsupportedModelError,
)
from llm.gguf_file import GGUFFile
from llm.tokenizer import EMBEDDING, TruncationWarning
from llm.tokenizer import load as load_tokenizer


class Embedder:
    """Text in, L2-normalized float32 vectors out. Thread-safe: calls share only read-only
    weights."""

    def __init__(self, path, name: str | None = None):
        self.file = GGUFFile(path)
        # the vocabulary is checked here and the model's shapes in BertModel, before a kernel
        self.tokenizer = load_tokenizer(self.file, EMBEDDING)
        self.model = BertModel(self.file)
        self.path = self.file.path
        self.name = name or str(self.path)
        self.config = self.model.config

    @property
    def dim(self) -> int:
        return self.config.d_model

    @property
    def max_tokens(self) -> int:
        """Texts longer than this many tokens (specials included) are truncated."""
        return min(self.config.context_length, self.model.max_positions)

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, dim={self.dim}, max_tokens={self.max_tokens})"

    def count_tokens(self, text: str) -> int:
        """Tokens the model would see for text, specials included, before truncation."""
        return self.tokenizer.count(text)

    def embed(self, texts, batch_size: int = 256, progress=None) -> np.ndarray:
        """(len(texts), dim) float32 vectors, row i for texts[i]. Texts over max_tokens are
        truncated with a TruncationWarning. progress(done) is called after each batch."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(texts, str):
            raise TokenizerError("texts must be a list of strings; wrap one text in a list")
        texts = list(texts) if isinstance(texts, tuple) else texts
        if isinstance(texts, list) and not texts:
            raise TokenizerError("no texts to embed")
        ids = self.tokenizer.encode_batch(texts, max_tokens=self.max_tokens)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        done, start = 0, 0
        while start < len(order):
            stop, tokens = start, 0
            while stop < len(order) and stop - start < batch_size:
                tokens += len(ids[order[stop]])
                stop += 1
                if tokens >= TOKENS_PER_PASS:
                    break
            chunk = order[start:stop]
            out[chunk] = self.model.encode([ids[i] for i in chunk])
            done += len(chunk)
            start = stop
            if progress is not None:
                progress(done)
        return out


_cache: dict = {}
_cache_lock = threading.Lock()


def load(name_or_path=None) -> Embedder:
    """An Embedder for a GGUF path, a cached model name (NAME or NAME:TYPE), or the default
    model all-MiniLM-L6-v2 (converted from its PyPI package on first use). Loaded once per
    process and file, and shared."""
    spec = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    path = resolve(spec).resolve()  # may convert; outside the lock, so loads of others go on
    with _cache_lock:
        embedder = _cache.get(path)
        if embedder is None:
            embedder = _cache[path] = Embedder(path, name=spec)
    return embedder


__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "ModelError",
    "ModelNotFoundError",
    "NotGGUFError",
    "TokenizerError",
    "TruncatedModelError",
    "TruncationWarning",
    "UnsupportedModelError",
    "load",
]
