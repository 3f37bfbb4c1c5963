"""Fusing a dense and a BM25 ranking of the same texts: convex combination, reciprocal rank
fusion (rrf), or distribution-based score fusion (dbsf).

The default is a convex combination of min-max normalized scores, DENSE_WEIGHT for the
dense side: on SQuAD part A it beat reciprocal rank fusion and both retrievers alone on
recall@1, @5, @10 and MRR@10 (bench/eval_retrieval.py measures every option; the table is
in README). Reciprocal rank fusion throws the score gaps away, and on this data a clear BM25
match (a rare name or number) is worth more than a rank.
"""

import math
import numbers
import statistics

from vdb.errors import InvalidArgumentError, shown

DENSE_WEIGHT = 0.4
DBSF_WEIGHT = 0.5  # equal weights: the order of Qdrant's DBSF, which sums the two
RRF_K = 60
POOL = 100  # candidates taken from each half of a hybrid query before fusion (at least k)
FUSIONS = ("convex", "rrf", "dbsf")


def _normalized(hits):
    if not hits:
        return {}
    scores = [s for _, s in hits]
    low, high = min(scores), max(scores)
    span = high - low
    return {i: (s - low) / span if span > 0 else 1.0 for i, s in hits}


def convex(dense, sparse, dense_weight: float = DENSE_WEIGHT):
    """[(id, fused score)] best first, from two [(id, score)] lists (either may be empty);
    an id missing from one list gets 0 from it."""
    d, s = _normalized(dense), _normalized(sparse)
    fused = {
        i: dense_weight * d.get(i, 0.0) + (1 - dense_weight) * s.get(i, 0.0)
        for i in d.keys() | s.keys()
    }
    return sorted(fused.items(), key=lambda kv: (-kv[1], str(kv[0])))


def rrf(dense, sparse, k: int = RRF_K):
    """Reciprocal rank fusion: sum over the lists of 1 / (k + rank)."""
    fused: dict = {}
    for hits in (dense, sparse):
        for rank, (i, _) in enumerate(hits, 1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], str(kv[0])))


def _distribution(hits):
    """Qdrant's DBSF normalization: (s - (mean - 3 std)) / (6 std), with the sample standard
    deviation; 0.5 for a lone hit or scores that do not spread. Not clipped, as in Qdrant."""
    if len(hits) < 2:
        return {i: 0.5 for i, _ in hits}
    scores = [s for _, s in hits]
    mean, std = statistics.fmean(scores), statistics.stdev(scores)
    low, high = mean - 3.0 * std, mean + 3.0 * std
    if low == high:
        return {i: 0.5 for i, _ in hits}
    return {i: (s - low) / (high - low) for i, s in hits}


def dbsf(dense, sparse, dense_weight: float = DBSF_WEIGHT):
    """Distribution-based score fusion as Qdrant defines it: each list normalized by its mean
    plus and minus three standard deviations, then the weighted sum (an id missing from one
    list gets 0 from it). At the default weight the order is Qdrant's, the scores half of its."""
    d, s = _distribution(dense), _distribution(sparse)
    fused = {
        i: dense_weight * d.get(i, 0.0) + (1 - dense_weight) * s.get(i, 0.0)
        for i in d.keys() | s.keys()
    }
    return sorted(fused.items(), key=lambda kv: (-kv[1], str(kv[0])))


def checked(fusion, dense_weight) -> tuple[str, float | None]:
    """(fusion, dense_weight) of a hybrid query after their checks, the weight defaulted per
    fusion: InvalidArgumentError for an unknown fusion, a weight outside [0, 1], or a weight
    given to rrf (which fuses ranks, unweighted)."""
    if not isinstance(fusion, str) or fusion not in FUSIONS:
        raise InvalidArgumentError(
            f"unknown fusion {shown(fusion)}; expected one of {', '.join(FUSIONS)}"
        )
    if dense_weight is None:
        return fusion, {"convex": DENSE_WEIGHT, "dbsf": DBSF_WEIGHT}.get(fusion)
    if (
        isinstance(dense_weight, bool)
        or not isinstance(dense_weight, numbers.Real)
        or not math.isfinite(dense_weight)
        or not 0 <= dense_weight <= 1
    ):
        raise InvalidArgumentError(
            f"dense_weight must be a number in [0, 1], got {shown(dense_weight)}"
        )
    if fusion == "rrf":
        raise InvalidArgumentError("dense_weight applies to convex and dbsf fusion, not rrf")
    return fusion, float(dense_weight)


def fuse(fusion: str, dense, sparse, dense_weight: float | None):
    """[(id, fused score)] best first, from two [(id, score)] lists, higher scores better,
    with checked arguments."""
    if fusion == "rrf":
        return rrf(dense, sparse)
    if fusion == "dbsf":
        return dbsf(dense, sparse, dense_weight)
    return convex(dense, sparse, dense_weight)
