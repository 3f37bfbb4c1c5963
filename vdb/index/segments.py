"""Immutable blocks of postings for the keyword index (vdb.index.sparse): each a compressed
sparse row layout sorted by term id."""

from typing import NamedTuple

import numpy as np


class Segment(NamedTuple):
    tids: np.ndarray  # (t,) int32 strictly ascending term ids
    starts: np.ndarray  # (t + 1,) int64: term i's postings are [starts[i], starts[i + 1])
    vids: np.ndarray  # (p,) int32 text versions holding the term
    tfs: np.ndarray  # (p,) int32 how often the term occurs in each (>= 1)

    @property
    def size(self) -> int:
        return len(self.vids)

    def spans(self, tids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(starts, stops), each (t,) int64: the span of each term's postings (empty when
        the segment has none)."""
        i = np.searchsorted(self.tids, tids)
        held = i < len(self.tids)
        held[held] = self.tids[i[held]] == tids[held]
        starts = np.where(held, self.starts[np.minimum(i, len(self.tids) - 1)], 0)
        stops = np.where(held, self.starts[np.minimum(i, len(self.tids) - 1) + 1], 0)
        return starts, stops

    def posting_tids(self) -> np.ndarray:
        """(p,) int32: the term of every posting."""
        return np.repeat(self.tids, np.diff(self.starts))


def segment(tids: np.ndarray, vids: np.ndarray, tfs: np.ndarray) -> Segment:
    """A segment from postings (p,) sorted by term id (tids int32, vids int32, tfs int32)."""
    cut = np.flatnonzero(tids[1:] != tids[:-1]) + 1  # where a new term starts
    starts = np.concatenate(([0], cut, [len(tids)])).astype(np.int64)
    return Segment(tids[starts[:-1]], starts, vids, tfs)


def merge(segs: list[Segment], vid_of: np.ndarray, slot_of: np.ndarray) -> Segment | None:
    """segs as one segment, keeping the live postings only (those whose version is its slot's
    current one: vid_of[slot_of[vid]] == vid); None when none is live."""
    tids = np.concatenate([s.posting_tids() for s in segs])  # (p,) each segment's ascending
    vids = np.concatenate([s.vids for s in segs])
    tfs = np.concatenate([s.tfs for s in segs])
    live = vid_of[slot_of[vids]] == vids
    if not live.all():
        tids, vids, tfs = tids[live], vids[live], tfs[live]
    if not len(tids):
        return None
    if len(segs) > 1:  # sorted runs, one per segment: a stable sort merges them
        order = np.argsort(tids, kind="stable")
        tids, vids, tfs = tids[order], vids[order], tfs[order]
    return segment(tids, vids, tfs)


def check(seg: Segment, n_terms: int, next_vid: int) -> None:
    """ValueError unless seg's arrays fit together and name terms below n_terms and versions
    below next_vid."""
    for name, arr, dtype in (
        ("tids", seg.tids, np.int32),
        ("starts", seg.starts, np.int64),
        ("vids", seg.vids, np.int32),
        ("tfs", seg.tfs, np.int32),
    ):
        if arr.dtype != dtype or arr.ndim != 1:
            raise ValueError(f"segment array {name} is {arr.dtype} {arr.shape}")
    t, p = len(seg.tids), len(seg.vids)
    if len(seg.starts) != t + 1 or len(seg.tfs) != p or t == 0:
        raise ValueError("a segment's arrays have lengths that do not fit together")
    if seg.starts[0] != 0 or seg.starts[-1] != p or (np.diff(seg.starts) <= 0).any():
        raise ValueError("a segment's term offsets are not ascending from 0 to its postings")
    if seg.tids[0] < 0 or seg.tids[-1] >= n_terms or (np.diff(seg.tids) <= 0).any():
        raise ValueError("a segment's term ids are not ascending below the number of terms")
    if p and (seg.vids.min() < 0 or seg.vids.max() >= next_vid or seg.tfs.min() < 1):
        raise ValueError("a segment names versions out of range or counts below 1")
