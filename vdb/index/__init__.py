"""Vector indexes behind one interface: FlatIndex (exact); HNSW builds on the same contract."""

from vdb.index.base import METRICS, VectorIndex
from vdb.index.flat import FlatIndex

__all__ = ["METRICS", "FlatIndex", "VectorIndex"]
