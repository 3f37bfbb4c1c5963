"""Compiled loops of the keyword index's queries (vdb.index.sparse), one call per segment for
all of a query's terms: one pass over each term's postings counts its live ones (its document
frequency), a second adds each live, allowed posting's BM25 part into a per-thread score
array, noting the slots it touches. The
arithmetic is the same expression, in the same order, as the reference in tests/reference.py,
so scores are bit-identical to it (no fastmath)."""

import numpy as np
from numba import njit

from vdb.index.sparse_params import K1, B


@njit(cache=True, nogil=True)
def live_counts(vids, starts, stops, slot_of, vid_of, df) -> None:
    """df[t] += the postings vids[starts[t]:stops[t]] (one term's, in one segment) of current
    versions: vid_of[slot_of[vid]] == vid."""
    for t in range(len(starts)):
        n = 0
        for j in range(starts[t], stops[t]):
            v = vids[j]
            if vid_of[slot_of[v]] == v:
                n += 1
        df[t] += n


@njit(cache=True, nogil=True)
def accumulate(
    vids, tfs, starts, stops, weights, slot_of, vid_of, length, allowed, avgdl, acc, seen,
    touched, n,
):  # fmt: skip
    """For each term t in order, add weights[t] * tf / (tf + K1 * (1 - B + B * dl / avgdl))
    into acc[slot] for each of its live postings vids[starts[t]:stops[t]] (tfs alike) whose
    slot is allowed (allowed (m,) bool; slots from m on are not); a slot touched for the
    first time is appended to touched at n. Returns the new n. (A slot's live postings all
    sit in one segment, so its sum takes its terms in order whatever the segments are.)"""
    m = len(allowed)
    for t in range(len(starts)):
        weight = weights[t]
        for j in range(starts[t], stops[t]):
            v = vids[j]
            s = slot_of[v]
            if vid_of[s] != v or s >= m or not allowed[s]:
                continue
            tf = np.float64(tfs[j])
            dl = np.float64(length[s])
            acc[s] += weight * (tf / (tf + K1 * (1 - B + B * dl / avgdl)))
            if not seen[s]:
                seen[s] = True
                touched[n] = s
                n += 1
    return n


@njit(cache=True, nogil=True)
def collect(acc, seen, touched, n, scores):
    """scores[:n] = acc[touched[:n]], and acc and seen cleared there for the next query."""
    for i in range(n):
        s = touched[i]
        scores[i] = acc[s]
        acc[s] = 0.0
        seen[s] = False
