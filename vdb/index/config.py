"""How a collection indexes its vectors: the one place the choice of index is configured."""

from dataclasses import dataclass, field, fields

from vdb.errors import InvalidArgumentError
from vdb.index.flat import FlatIndex
from vdb.index.hnsw import HnswConfig, HnswIndex

INDEX_KINDS = ("auto", "flat", "hnsw")
# Upper bounds, so a value that cannot work is refused when the collection is created rather
# than failing every later write (memory for candidate lists grows with ef).
MAX_EF = 65_536  # ef_construction, ef_search, and ef per search call
MAX_BATCH = 1 << 20  # HNSW insertion batch
MAX_COUNT = 1 << 62  # hnsw_threshold
MAX_SEED = (1 << 63) - 1
MAX_SHARE = 1e6  # compact_share: deleted points per live point before compaction


@dataclass(frozen=True)
class IndexConfig:
    kind: str = "auto"  # flat | hnsw | auto: exact below hnsw_threshold points, HNSW from there
    hnsw_threshold: int = 20_000  # auto switches to HNSW when the collection reaches this size
    hnsw: HnswConfig = field(default_factory=HnswConfig)

    @classmethod
    def parse(cls, value) -> "IndexConfig":
        """From None, a kind name, a dict (kind, hnsw_threshold, and HNSW parameters M,
        ef_construction, ef_search, seed, flat or under "hnsw"), or an IndexConfig."""
        if value is None:
            return cls()
        if isinstance(value, IndexConfig):
            return _checked(value)
        if isinstance(value, str):
            return _checked(cls(kind=value))
        if not isinstance(value, dict):
            raise InvalidArgumentError(
                f"index must be one of {INDEX_KINDS}, a dict or an IndexConfig, got {value!r}"
            )
        value = dict(value)
        hnsw_names = {f.name for f in fields(HnswConfig)}
        hnsw = dict(value.pop("hnsw", None) or {})
        hnsw.update({k: value.pop(k) for k in list(value) if k in hnsw_names})
        unknown = set(value) - {"kind", "hnsw_threshold"}
        if unknown:
            raise InvalidArgumentError(f"unknown index option(s): {', '.join(sorted(unknown))}")
        bad = set(hnsw) - hnsw_names
        if bad:
            raise InvalidArgumentError(f"unknown HNSW option(s): {', '.join(sorted(bad))}")
        return _checked(cls(hnsw=HnswConfig(**hnsw), **value))

    def make(self, dim: int, metric: str) -> FlatIndex:
        if self.kind == "hnsw":
            return HnswIndex(dim, metric, self.hnsw)
        return FlatIndex(dim, metric)

    def wants_hnsw(self, index: FlatIndex) -> bool:
        """True when an auto collection has grown past the threshold on a flat index."""
        return (
            self.kind == "auto"
            and not isinstance(index, HnswIndex)
            and len(index) >= self.hnsw_threshold
        )


def _checked(cfg: IndexConfig) -> IndexConfig:
    if cfg.kind not in INDEX_KINDS:
        raise InvalidArgumentError(
            f"unknown index kind {cfg.kind!r}; expected one of {INDEX_KINDS}"
        )
    _positive("hnsw_threshold", cfg.hnsw_threshold, 0, MAX_COUNT)
    h = cfg.hnsw
    _positive("M", h.M, 2, 256)
    _positive("ef_construction", h.ef_construction, 1, MAX_EF)
    _positive("ef_search", h.ef_search, 1, MAX_EF)
    _positive("max_batch", h.max_batch, 1, MAX_BATCH)
    _positive("seed", h.seed, 0, MAX_SEED)
    if h.int8 not in (None, True, False):
        raise InvalidArgumentError(f"int8 must be true, false or null, got {h.int8!r}")
    _fraction("compact_share", h.compact_share, MAX_SHARE)
    _fraction("batch_fraction", h.batch_fraction, 1.0)
    return cfg


def _fraction(name: str, value, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise InvalidArgumentError(f"{name} must be a number in (0, {high:g}], got {value!r}")


def _positive(name, value, low, high=None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        span = f"from {low} to {high}" if high is not None else f">= {low}"
        raise InvalidArgumentError(f"{name} must be an integer {span}, got {value!r}")
