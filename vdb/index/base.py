"""The VectorIndex interface shared by the exact and the HNSW index."""

from typing import Protocol

import numpy as np

METRICS = ("cosine", "dot", "l2")


class VectorIndex(Protocol):
    """Vectors addressed by dense internal ids (row numbers), kept apart from external ids."""

    dim: int
    metric: str

    def set(self, iids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace rows iids (n,) int64 with vectors (n, dim) float32."""

    def remove(self, iids: np.ndarray) -> None:
        """Remove rows; they are never returned again."""

    def search(
        self, queries: np.ndarray, k: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: (scores (nq, k) float32, iids (nq, k) int64), -1 padded.

        Scores follow the metric: similarity (higher is better) for cosine and dot, Euclidean
        distance (lower is better) for l2. mask (capacity,) bool restricts the candidates.
        """

    def __len__(self) -> int: ...
