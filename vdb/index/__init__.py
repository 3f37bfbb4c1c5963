"""Vector indexes behind one interface: FlatIndex (exact) and HnswIndex (approximate)."""

from vdb.index.base import METRICS, VectorIndex
from vdb.index.flat import FlatIndex
from vdb.index.hnsw import HnswConfig, HnswIndex

__all__ = ["METRICS", "FlatIndex", "HnswConfig", "HnswIndex", "VectorIndex"]
