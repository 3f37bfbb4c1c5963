"""Pure-Python twins of the fast paths: filter evaluation, exact top-k and BM25."""

import math

import numpy as np

RANGE = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def resolve(value, segs):
    """(present, scalar values) at a dotted path, looking through lists like MongoDB."""
    if isinstance(value, list):
        present, values = (not segs), []
        for item in value:
            if isinstance(item, dict | list):
                p, v = resolve(item, segs)
                present |= p
                values += v
            elif not segs:
                values.append(item)
        return present, values
    if not segs:
        return True, ([] if isinstance(value, dict) else [value])
    if isinstance(value, dict) and segs[0] in value:
        return resolve(value[segs[0]], segs[1:])
    return False, []


def _kind(x):
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int | float):
        return "num"
    if isinstance(x, str):
        return "str"
    return "null" if x is None else "other"


def _eq(x, v):
    return _kind(x) == _kind(v) and x == v


def matches(payload, flt) -> bool:
    if flt is None:
        return True
    payload = payload or {}
    for key, cond in flt.items():
        if key == "$and":
            ok = all(matches(payload, f) for f in cond)
        elif key == "$or":
            ok = any(matches(payload, f) for f in cond)
        elif key == "$not":
            ok = not matches(payload, cond)
        else:
            ops = cond if isinstance(cond, dict) else {"$eq": cond}
            ok = all(_field(payload, key, op, v) for op, v in ops.items())
        if not ok:
            return False
    return True


def _field(payload, path, op, v) -> bool:
    present, values = resolve(payload, path.split("."))
    if op == "$exists":
        return present == v
    if op == "$eq":
        return any(_eq(x, v) for x in values) or (v is None and not present)
    if op == "$ne":
        return not _field(payload, path, "$eq", v)
    if op == "$in":
        return any(_field(payload, path, "$eq", item) for item in v)
    if op == "$nin":
        return not _field(payload, path, "$in", v)
    return any(_kind(x) == _kind(v) and RANGE[op](x, v) for x in values)


def exact_scores(X: np.ndarray, Q: np.ndarray, metric: str) -> np.ndarray:
    """(nq, n) scores in float64: similarity for cosine/dot, Euclidean distance for l2."""
    X = X.astype(np.float64)
    Q = Q.astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    if metric == "l2":
        return np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    return Q @ X.T


def assert_hits_exact(hits, ids, X, q, metric, k, allowed=None, atol=1e-4):
    """hits must be the true top-k of rows (ids, X) for query q, tie-robust.

    Every returned score equals the true score of its id, and the returned scores equal the
    best k true scores.
    """
    allowed = np.ones(len(ids), bool) if allowed is None else np.asarray(allowed, bool)
    ids = [i for i, a in zip(ids, allowed, strict=True) if a]
    X = X[allowed]
    assert len(hits) == min(k, len(ids))
    if not len(ids):
        return
    true = exact_scores(X, np.asarray(q)[None, :], metric)[0]
    by_id = dict(zip(ids, true, strict=True))
    best = np.sort(true) if metric == "l2" else -np.sort(-true)
    got = np.array([h.score for h in hits])
    assert np.allclose(got, best[: len(hits)], atol=atol), (got, best[: len(hits)])
    for h in hits:
        assert abs(by_id[h.id] - h.score) <= atol, (h.id, h.score, by_id[h.id])
    assert len({h.id for h in hits}) == len(hits)


def bm25_scores(docs: dict, terms: list[str], k1: float = 1.5, b: float = 0.75) -> dict:
    """BM25 scores ("lucene" as bm25s scores, in float64) of every doc holding a query term:
    docs maps a key to its list of terms. Each sum runs over the distinct query terms in order
    of first appearance, each counted as often as it appears in the query."""
    n = len(docs)
    if not n:
        return {}
    avgdl = sum(len(d) for d in docs.values()) / n
    counts: dict = {}
    for t in terms:
        counts[t] = counts.get(t, 0) + 1
    out: dict = {}
    for t, count in counts.items():
        holding = {key: d.count(t) for key, d in docs.items() if t in d}
        if not holding:
            continue
        df = len(holding)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for key, tf in holding.items():
            dl = len(docs[key])
            part = (count * idf) * (tf / (tf + k1 * (1 - b + b * dl / avgdl)))
            out[key] = out.get(key, 0.0) + part
    return out
