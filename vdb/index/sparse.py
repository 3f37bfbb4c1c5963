"""The keyword index of a collection: BM25 over an inverted index from term to postings, kept
in step with writes (a batch costs work proportional to its postings, never a rebuild).

Layout:
- Terms get dense ids (tid) as they are first indexed (a batch's new terms in sorted order):
  `terms` maps term -> tid, `term_list` the reverse.
- Every text indexed into a slot is a *version* with a number of its own (vid, dense int32).
  Postings name versions, not slots: replacing or removing a slot's text changes only the
  per-slot arrays, and the old version's postings become stale. vid_of[slot] is the slot's
  current version (-1: none) and slot_of[vid] the slot of a version; a posting is live when
  vid_of[slot_of[vid]] == vid.
- Postings sit in immutable segments (vdb.index.segments), one per batch, merged as a binary
  counter merges (the newest into the one before while that one is less than twice its
  size): amortized O(log n) work per posting, O(log n) segments for a query to look at.
  Merges drop stale postings. When stale postings outnumber live ones, or versions run far
  ahead of slots, everything is merged into one segment, unused terms are dropped and versions
  renumbered (vid = slot).
- Statistics for BM25: the number of indexed texts and their total length (avgdl), the length
  and number of distinct terms of each slot's text. A term's document frequency is counted at
  query time from its live postings, which the query reads anyway: exact, with no forward
  index to keep.

Scoring is bm25s's default method, "lucene" (Lucene's BM25 since version 8), in float64:
  idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))
  score(d, q) = sum over the distinct terms t of q, in order of first appearance, of
                (count(t, q) * idf(t)) * (tf / (tf + k1 * (1 - b + b * dl / avgdl)))
with k1 = 1.5 and b = 0.75. (The classic factor (k1 + 1) scales every score alike; Lucene and
bm25s leave it out.) Each document's sum is taken in that order, so equal states give
bit-identical scores however their segments happen to be laid out.
"""

import itertools
import math
import threading

import numpy as np

from vdb.index import sparse_kernels as kernels
from vdb.index.segments import Segment, check, merge, segment

MAX_VID = (1 << 31) - 1  # versions are int32
MERGE_RATIO = 2  # the newest segment is merged into the one before while that is smaller
MIN_STALE = 1 << 16  # stale postings always tolerated before merging everything
VERSIONS_PER_SLOT = 4  # versions numbered per slot before they are renumbered
EMPTY_I64 = np.zeros(0, np.int64)


class SparseIndex:
    """Analyzed texts (lists of terms) addressed by slot, scored with BM25.

    Example:
        >>> index = SparseIndex()
        >>> index.set(np.array([0, 1, 2]), [["cat", "sat"], ["dog", "bark"], None])
        >>> index.search(["dog"], k=5)[1].tolist()
        [1]
    """

    def __init__(self):
        self.terms: dict[str, int] = {}  # term -> tid
        self.term_list: list[str] = []  # tid -> term
        self.segments: list[Segment] = []  # oldest first
        self.vid_of = np.full(0, -1, np.int32)  # (capacity,) the slot's version, -1 for none
        self.length = np.zeros(0, np.int32)  # (capacity,) terms in the slot's text
        self.n_unique = np.zeros(0, np.int32)  # (capacity,) distinct terms: its postings
        self._slot_of = np.zeros(0, np.int32)  # (>= next_vid,) the slot of each version
        self.next_vid = 0
        self.size = 0  # slots [0, size) may hold a text
        self.n_docs = 0  # slots holding a text
        self.total_length = 0  # their lengths summed
        self.live = 0  # postings of current versions
        self.stale = 0  # postings of replaced or removed versions, still in segments

    def __len__(self) -> int:
        return self.n_docs

    @property
    def capacity(self) -> int:
        return len(self.vid_of)

    @property
    def slot_of(self) -> np.ndarray:
        """(next_vid,) int32: the slot of each version."""
        return self._slot_of[: self.next_vid]

    @property
    def n_postings(self) -> int:
        return sum(seg.size for seg in self.segments)

    def reserve(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        capacity = max(capacity, 2 * self.capacity, 1024)
        for name, fill in (("vid_of", -1), ("length", 0), ("n_unique", 0)):
            old = getattr(self, name)
            grown = np.full(capacity, fill, np.int32)
            grown[: len(old)] = old
            setattr(self, name, grown)

    # ------------------------------------------------------------ writes

    def set(self, rows: np.ndarray, docs: list) -> None:
        """Slots rows (n,) int64, distinct, now hold docs: for each a list of terms, or None
        for a point without text (which leaves the index)."""
        self._clear(rows)
        keep = [i for i, doc in enumerate(docs) if doc is not None]
        if keep:
            self._add(rows[keep], [docs[i] for i in keep])
        self._maybe_merge_all()

    def clear(self, rows: np.ndarray) -> None:
        """Slots rows (any int64 array) hold no text any more."""
        self._clear(rows)
        self._maybe_merge_all()

    def _clear(self, rows: np.ndarray) -> None:
        rows = rows[(rows >= 0) & (rows < self.size)]
        rows = np.unique(rows[self.vid_of[rows] >= 0])
        if not len(rows):
            return
        postings = int(self.n_unique[rows].sum())
        self.n_docs -= len(rows)
        self.total_length -= int(self.length[rows].sum(dtype=np.int64))
        self.live -= postings
        self.stale += postings
        self.vid_of[rows] = -1
        self.length[rows] = 0
        self.n_unique[rows] = 0

    def _add(self, rows: np.ndarray, docs: list[list[str]]) -> None:
        """Index docs at slots rows that hold none."""
        n = len(docs)
        if self.next_vid + n > MAX_VID:
            self.merge_all()
            if self.next_vid + n > MAX_VID:
                raise OverflowError("more texts than a keyword index holds")
        self.reserve(int(rows.max()) + 1)
        vids = np.arange(self.next_vid, self.next_vid + n, dtype=np.int32)  # (n,)
        self._number(rows, vids)
        tids, lengths = self._term_ids(docs)  # (m,), (n,)
        doc = np.repeat(np.arange(n, dtype=np.int64), lengths)  # (m,) the text of each term
        pairs, tfs = np.unique(tids * n + doc, return_counts=True)  # by tid, then text
        p_tid, p_doc = np.divmod(pairs, n)
        self.vid_of[rows] = vids
        self.length[rows] = lengths
        self.n_unique[rows] = np.bincount(p_doc, minlength=n)
        self.n_docs += n
        self.total_length += int(lengths.sum())
        self.live += len(pairs)
        self.size = max(self.size, int(rows.max()) + 1)
        if len(pairs):
            self._push(segment(p_tid.astype(np.int32), vids[p_doc], tfs.astype(np.int32)))

    def _number(self, rows: np.ndarray, vids: np.ndarray) -> None:
        """Record the slots of new versions vids (n,) int32."""
        end = int(vids[-1]) + 1
        if end > len(self._slot_of):
            grown = np.zeros(max(end, 2 * len(self._slot_of), 1024), np.int32)
            grown[: self.next_vid] = self._slot_of[: self.next_vid]
            self._slot_of = grown
        self._slot_of[vids] = rows
        self.next_vid = end

    def _term_ids(self, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(tid of every term of docs, one after another (m,) int64; lengths (n,) int64),
        new terms getting new ids."""
        terms = self.terms
        flat = list(itertools.chain.from_iterable(docs))
        new = set(flat) - terms.keys()
        for term in sorted(new):
            terms[term] = len(self.term_list)
            self.term_list.append(term)
        tids = np.fromiter(map(terms.__getitem__, flat), np.int64, len(flat))
        lengths = np.fromiter(map(len, docs), np.int64, len(docs))
        return tids, lengths

    def _push(self, seg: Segment) -> None:
        """Add the newest segment, then merge as a binary counter would."""
        segs = self.segments
        segs.append(seg)
        while len(segs) > 1 and segs[-2].size < MERGE_RATIO * segs[-1].size:
            newest = segs.pop()
            merged = self._merged([segs.pop(), newest])
            if merged is not None:
                segs.append(merged)

    def _merged(self, segs: list[Segment]) -> Segment | None:
        """segs as one segment without their stale postings (None when nothing is left)."""
        before = sum(s.size for s in segs)
        out = merge(segs, self.vid_of, self.slot_of)
        self.stale -= before - (0 if out is None else out.size)
        return out

    def _maybe_merge_all(self) -> None:
        if self.stale > max(self.live, MIN_STALE) or self.next_vid > VERSIONS_PER_SLOT * max(
            self.size, MIN_STALE
        ):
            self.merge_all()

    def merge_all(self) -> None:
        """Merge every segment into one without stale postings or unused terms, and number
        each text's version as its slot."""
        merged = self._merged(self.segments) if self.segments else None
        self.segments = []
        indexed = self.vid_of[: self.size] >= 0
        if merged is not None:
            used = np.zeros(len(self.term_list), np.bool_)
            used[merged.tids] = True
            new_tid = (np.cumsum(used) - 1).astype(np.int32)  # (terms,) for the used ones
            vids = self.slot_of[merged.vids]  # version -> slot, which is its new number
            merged = Segment(new_tid[merged.tids], merged.starts, vids, merged.tfs)
            self.term_list = [t for t, u in zip(self.term_list, used.tolist(), strict=True) if u]
            self.segments = [merged]
        else:
            self.term_list = []
        self.terms = {term: tid for tid, term in enumerate(self.term_list)}
        slots = np.arange(self.size, dtype=np.int32)
        self.vid_of[: self.size] = np.where(indexed, slots, -1)
        self._slot_of = slots.copy()
        self.next_vid = self.size
        self.stale = 0

    # ------------------------------------------------------------ checkpoints

    def state(self) -> tuple[dict, dict]:
        """(metadata, arrays) for a checkpoint; the per-slot arrays are copies (segments never
        change, so theirs are not). Call under the collection's lock."""
        n, v = self.size, self.next_vid
        meta = {
            "size": n,
            "next_vid": v,
            "n_docs": self.n_docs,
            "total_length": self.total_length,
            "live": self.live,
            "stale": self.stale,
            "segments": len(self.segments),
            "terms": len(self.term_list),
        }
        arrays = {
            "vid_of": self.vid_of[:n].copy(),
            "length": self.length[:n].copy(),
            "n_unique": self.n_unique[:n].copy(),
            "slot_of": self._slot_of[:v].copy(),
            "terms": "\0".join(self.term_list).encode("utf-8", "surrogatepass"),
        }
        for i, seg in enumerate(self.segments):
            arrays.update({f"s{i}.{name}": arr for name, arr in zip(seg._fields, seg, strict=True)})
        return meta, arrays

    @classmethod
    def restore(cls, meta: dict, arrays: dict) -> "SparseIndex":
        """From state(); ValueError when the parts do not fit together."""
        counts = {name: meta.get(name) for name in SparseIndex._COUNTS}
        for name, value in counts.items():
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} {value!r} is not a count")
        n, v, n_terms = counts["size"], counts["next_vid"], counts["terms"]
        index = cls()
        for name, length in (("vid_of", n), ("length", n), ("n_unique", n), ("slot_of", v)):
            arr = arrays.get(name)
            if not isinstance(arr, np.ndarray) or arr.dtype != np.int32 or arr.shape != (length,):
                raise ValueError(f"array {name} is not int32 ({length},)")
        index.vid_of, index.length, index.n_unique = (
            arrays["vid_of"],
            arrays["length"],
            arrays["n_unique"],
        )
        index._slot_of = arrays["slot_of"]
        text = arrays.get("terms")
        if not isinstance(text, bytes):
            raise ValueError("the terms are missing")
        index.term_list = text.decode("utf-8", "surrogatepass").split("\0") if n_terms else []
        index.terms = {term: tid for tid, term in enumerate(index.term_list)}
        if len(index.term_list) != n_terms or len(index.terms) != n_terms:
            raise ValueError(f"the terms are not {n_terms} distinct strings")
        for i in range(counts["segments"]):
            seg = Segment(*(arrays.get(f"s{i}.{name}") for name in Segment._fields))
            if any(not isinstance(arr, np.ndarray) for arr in seg):
                raise ValueError(f"segment {i} is missing")
            check(seg, n_terms, v)
            index.segments.append(seg)
        index.size, index.next_vid = n, v
        index.n_docs, index.total_length = counts["n_docs"], counts["total_length"]
        index.live, index.stale = counts["live"], counts["stale"]
        index._check()
        return index

    _COUNTS = ("size", "next_vid", "n_docs", "total_length", "live", "stale", "segments", "terms")

    def _check(self) -> None:
        """ValueError unless the per-slot arrays, the versions, the statistics and the
        postings agree with each other."""
        n, v = self.size, self.next_vid
        vid_of, length, n_unique = self.vid_of[:n], self.length[:n], self.n_unique[:n]
        slot_of = self.slot_of
        if len(vid_of) != n or (self.vid_of[n:] != -1).any():
            raise ValueError("slots beyond the index's size hold texts")
        if (vid_of < -1).any() or (vid_of >= v).any() or (slot_of < 0).any():
            raise ValueError("versions or slots are out of range")
        if v and slot_of.max() >= n:
            raise ValueError("a version names a slot beyond the index's")
        indexed = np.flatnonzero(vid_of >= 0)
        if (slot_of[vid_of[indexed]] != indexed).any():
            raise ValueError("a slot's version belongs to another slot")
        if (length < 0).any() or (n_unique < 0).any() or (n_unique > length).any():
            raise ValueError("text lengths are negative or below their distinct terms")
        empty = vid_of < 0
        if length[empty].any() or n_unique[empty].any():
            raise ValueError("a slot without a text has a length")
        if self.n_docs != len(indexed) or self.total_length != int(length.sum(dtype=np.int64)):
            raise ValueError("the text count or total length does not match the slots")
        per_slot = np.zeros(n, np.int64)
        total = 0
        for seg in self.segments:
            slots = slot_of[seg.vids]
            live = vid_of[slots] == seg.vids
            per_slot += np.bincount(slots[live], minlength=n)
            total += seg.size
        if (per_slot != n_unique).any() or self.live != int(n_unique.sum(dtype=np.int64)):
            raise ValueError("the postings do not match the distinct terms of the texts")
        if self.stale != total - self.live:
            raise ValueError("the count of stale postings does not match the segments")

    # ------------------------------------------------------------ reads

    def search(self, terms: list[str], k: int, mask: np.ndarray | None = None):
        """(scores (k',) float64, slots (k',) int64): the k' <= k best slots holding at least
        one of terms and passing mask ((m,) bool over slots, slots from m on failing; None
        for all), best first, equal scores by slot."""
        slots, scores = self._scored(terms, mask)
        return top(scores, slots, k)

    def scores(self, terms: list[str], mask: np.ndarray | None = None):
        """(slots (c,) int64 ascending, their BM25 scores (c,) float64) of every slot holding
        at least one of terms and passing mask."""
        slots, scores = self._scored(terms, mask)
        order = np.argsort(slots)
        return slots[order], scores[order]

    def _scored(self, terms: list[str], mask: np.ndarray | None):
        """(slots (c,) int64, scores (c,) float64) in no particular order: each live posting
        of each distinct term, in order of first appearance, adds its part to its slot's
        score (compiled loops, vdb.index.sparse_kernels)."""
        counts: dict[str, int] = {}
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
        n = self.n_docs
        known = [(self.terms[t], c) for t, c in counts.items() if t in self.terms]
        if not n or not known:
            return EMPTY_I64, np.zeros(0)
        tids = np.array([tid for tid, _ in known], np.int32)
        repeats = [c for _, c in known]
        slot_of, vid_of, length = self.slot_of, self.vid_of, self.length
        spans = [(seg, *seg.spans(tids)) for seg in self.segments]
        df = np.zeros(len(tids), np.int64)
        for seg, starts, stops in spans:
            kernels.live_counts(seg.vids, starts, stops, slot_of, vid_of, df)
        weights = np.array(
            [c * math.log(1 + (n - d + 0.5) / (d + 0.5)) if d else 0.0
             for c, d in zip(repeats, df.tolist(), strict=True)],
        )  # fmt: skip
        avgdl = self.total_length / n
        allowed = mask if mask is not None else self.vid_of[: self.size] >= 0
        acc, seen, touched = _scratch(self.size)
        found = 0
        for seg, starts, stops in spans:
            found = kernels.accumulate(
                seg.vids, seg.tfs, starts, stops, weights, slot_of, vid_of, length, allowed,
                avgdl, acc, seen, touched, found,
            )  # fmt: skip
        scores = np.empty(found)
        kernels.collect(acc, seen, touched, found, scores)
        return touched[:found].copy(), scores

    def stats(self) -> dict:
        """Figures for info(): texts, terms, postings (live and stale), segments, bytes."""
        arrays = [self.vid_of, self.length, self.n_unique, self._slot_of]
        arrays += [a for seg in self.segments for a in seg]
        return {
            "documents": self.n_docs,
            "terms": len(self.term_list),
            "postings": self.live,
            "stale_postings": self.stale,
            "segments": len(self.segments),
            "array_bytes": sum(a.nbytes for a in arrays),
        }


_local = threading.local()


def _scratch(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's (scores (>= size,) float64 zeros, seen (>= size,) bool False, touched
    (>= size,) int64), kept between queries (a query leaves the first two cleared)."""
    held = getattr(_local, "arrays", None)
    if held is None or len(held[0]) < size:
        cap = max(size, 1024, 0 if held is None else 2 * len(held[0]))
        held = _local.arrays = (np.zeros(cap), np.zeros(cap, np.bool_), np.empty(cap, np.int64))
    return held


def top(scores: np.ndarray, slots: np.ndarray, k: int):
    """(scores, slots) of the k best, best first, equal scores by slot."""
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        sel = np.flatnonzero(scores >= kth)
        scores, slots = scores[sel], slots[sel]
    order = np.lexsort((slots, -scores))[:k]
    return scores[order], slots[order]
