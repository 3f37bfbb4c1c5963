"""What a search returns: Hit for one point, SearchResults for a batch of queries (the same
list of lists of Hit as ever, also held as columns, the Hits built only when read)."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vdb.errors import InvalidArgumentError, shown


@dataclass(slots=True, eq=False)
class Hit:
    """One search result. score: similarity (higher is better) for cosine and dot, Euclidean
    distance (lower is better) for l2."""

    id: int | str
    score: float
    payload: dict | None
    document: str | None
    vector: np.ndarray | None = None

    def __eq__(self, other) -> bool:
        if not isinstance(other, Hit):
            return NotImplemented
        if (self.vector is None) != (other.vector is None):
            return False
        return (self.id, self.score, self.payload, self.document) == (
            other.id,
            other.score,
            other.payload,
            other.document,
        ) and (self.vector is None or np.array_equal(self.vector, other.vector))


@dataclass(slots=True)
class HalvesHit:
    """One point of Collection.search_halves: its Hit (score the dense half's), and both
    halves' scores unfused: dense (the vector metric's score, taken from the index's vector
    when only the keyword half found the point) and keyword (BM25, 0.0 when only the dense
    half found it)."""

    hit: Hit
    dense: float
    keyword: float


@dataclass(frozen=True, slots=True)
class Selection:
    """What a search returns beside ids and scores: payload (True, False, or the tuple of
    top-level keys to keep), document and vector."""

    payload: bool | tuple = True
    document: bool = True
    vectors: bool = False

    @classmethod
    def parse(cls, with_payload=True, with_document=True, with_vectors=False) -> "Selection":
        """Checked arguments: InvalidArgumentError (a ValueError) for anything but a bool
        (or, for with_payload, a list of key strings)."""
        if (
            type(with_payload) is bool
            and type(with_document) is bool
            and type(with_vectors) is bool
        ):
            return _PLAIN[with_payload, with_document, with_vectors]
        for name, value in (("with_document", with_document), ("with_vectors", with_vectors)):
            if not isinstance(value, bool | np.bool_):
                raise InvalidArgumentError(f"{name} must be true or false, got {shown(value)}")
        if isinstance(with_payload, bool | np.bool_):
            payload = bool(with_payload)
        elif isinstance(with_payload, list | tuple) and all(
            isinstance(key, str) for key in with_payload
        ):
            payload = tuple(dict.fromkeys(with_payload))
        else:
            raise InvalidArgumentError(
                f"with_payload must be true, false or a list of payload keys, got "
                f"{shown(with_payload)}"
            )
        return cls(payload, bool(with_document), bool(with_vectors))

    @property
    def reads(self) -> bool:
        """Whether the records must be read at all."""
        return bool(self.payload) or self.document or self.vectors

    def cut(self, payload: dict | None) -> dict | None:
        """The payload as selected: whole, None, or only the chosen keys (an empty selection
        of a payload that has none of them gives {})."""
        if payload is None or self.payload is True:
            return payload
        if not self.payload:
            return None
        return {key: payload[key] for key in self.payload if key in payload}


_PLAIN = {
    (p, d, v): Selection(p, d, v)
    for p in (True, False)
    for d in (True, False)
    for v in (True, False)
}


class SearchResults(Sequence):
    """The results of a batch of queries: a sequence with one list of Hit per query (best
    first), equal to that list of lists, and the same results as columns:

        ids     (n_queries, k) int64 while the collection holds only integer ids (padded
                with -1), else an object array of int and str (padded with None)
        scores  (n_queries, k) float32, padded with NaN
        counts  (n_queries,) int64: hits per query; row q's first counts[q] entries are hits

    Hit objects (and their payloads and documents, read with the search) are built the first
    time a query's list is read.
    """

    def __init__(self, ids: np.ndarray, scores: np.ndarray, counts: np.ndarray, fields=None):
        """fields(q) -> (payloads, documents, vectors), one entry per hit of query q (lists,
        or None for all-None), when the search read any of them."""
        self.ids = ids
        self.scores = scores
        self.counts = counts
        self._fields = fields
        self._hits: list = [None] * len(counts)

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, q):
        if isinstance(q, slice):
            return [self[i] for i in range(*q.indices(len(self)))]
        hits = self._hits[q]
        if hits is None:
            hits = self._hits[q] = self._build(range(len(self))[q])
        return hits

    def _build(self, q: int) -> list[Hit]:
        n = int(self.counts[q])
        ids = self.ids[q, :n].tolist()
        scores = self.scores[q, :n].tolist()
        if self._fields is None:
            return [Hit(i, s, None, None) for i, s in zip(ids, scores, strict=True)]
        payloads, documents, vectors = self._fields(q)
        none = [None] * n
        return list(map(Hit, ids, scores, payloads or none, documents or none, vectors or none))

    def __eq__(self, other) -> bool:
        if isinstance(other, SearchResults | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __repr__(self) -> str:
        return f"SearchResults({len(self)} queries, {int(self.counts.sum())} hits)"
