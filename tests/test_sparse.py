"""The keyword index on its own: BM25 scores against a plain-Python twin and against bm25s
through writes, merges and checkpoints; the analyzers; the fusion functions."""

import random

import numpy as np
import pytest

from tests.reference import bm25_scores
from vdb.errors import InvalidArgumentError
from vdb.index import sparse
from vdb.index.sparse import SparseIndex
from vdb.text import analyzer, hybrid
from vdb.text.config import TextConfig

VOCAB = [f"w{i}" for i in range(40)]


def random_doc(rnd: random.Random) -> list[str]:
    """Terms with a skewed distribution, so that some are common and some rare."""
    top = rnd.randint(1, len(VOCAB))
    return [rnd.choice(VOCAB[:top]) for _ in range(rnd.randint(0, 15))]


def restored(index: SparseIndex) -> SparseIndex:
    meta, arrays = index.state()
    return SparseIndex.restore(meta, arrays)


def assert_twin(index: SparseIndex, docs: dict, rnd: random.Random) -> None:
    """Scores and top-k of a few queries equal the twin's exactly."""
    assert len(index) == len(docs)
    for _ in range(3):
        query = [rnd.choice(VOCAB) for _ in range(rnd.randint(1, 5))]
        slots, scores = index.scores(query)
        assert dict(zip(slots.tolist(), scores.tolist(), strict=True)) == bm25_scores(docs, query)
        mask = np.array([rnd.random() < 0.5 for _ in range(max(index.size, 1))])
        top_scores, top_slots = index.search(query, 5, mask)
        want = sorted((-s, slot) for slot, s in bm25_scores(docs, query).items() if mask[slot])
        assert list(zip((-top_scores).tolist(), top_slots.tolist(), strict=True)) == want[:5]


@pytest.mark.parametrize("steps", [pytest.param(300), pytest.param(3000, marks=pytest.mark.slow)])
def test_index_matches_the_twin_through_writes_merges_and_checkpoints(monkeypatch, steps):
    monkeypatch.setattr(sparse, "MIN_STALE", 8)  # merge everything often
    rnd = random.Random(5)
    index, docs = SparseIndex(), {}
    for _ in range(steps):
        op = rnd.random()
        if op < 0.6:  # new and replaced texts, and points without one
            rows = rnd.sample(range(60), rnd.randint(1, 12))
            batch = [None if rnd.random() < 0.1 else random_doc(rnd) for _ in rows]
            for row, doc in zip(rows, batch, strict=True):
                docs.pop(row, None)
                if doc is not None:
                    docs[row] = doc
            index.set(np.array(rows, np.int64), batch)
        elif op < 0.8:
            rows = rnd.sample(range(70), rnd.randint(1, 10))
            for row in rows:
                docs.pop(row, None)
            index.clear(np.array(rows, np.int64))
        elif op < 0.9:
            index = restored(index)
        else:
            index.merge_all()
        index._check()
        assert_twin(index, docs, rnd)
    assert len(index.segments) <= 2 + int(np.log2(max(index.n_postings, 1)))


def test_scores_match_bm25s():
    import bm25s
    import Stemmer

    texts = [
        "The quick brown fox jumps over the lazy dog",
        "Zebras have black and white stripes. Each pattern is unique.",
        "the and of",  # nothing but stop words: indexed, with length 0
        "The error code XK-4471 means the disk is full. Free some space.",
        "Foxes and dogs: a fox is quicker than most dogs, and dogs bark.",
    ]
    an = analyzer.get("en")
    stem = Stemmer.Stemmer("english").stemWords
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False)
    words = bm25s.tokenize(
        texts, stopwords="en", stemmer=stem, return_ids=False, show_progress=False
    )
    assert an.analyze(texts) == words
    peer = bm25s.BM25()
    peer.index(tokens, show_progress=False)
    index = SparseIndex()
    index.set(np.arange(len(texts)), an.analyze(texts))
    for query in ("fox dog", "disk errors", "stripes zebra pattern", "quick quick fox"):
        slots, scores = index.scores(an.terms(query))
        theirs = peer.get_scores(an.terms(query))
        ours = np.zeros(len(texts))
        ours[slots] = scores
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_upsert_work_is_proportional_to_the_batch():
    """A batch adds one segment and merges only segments no larger than about twice its size
    (the postings rewritten per batch stay a small multiple of its own)."""
    rnd = random.Random(1)
    index = SparseIndex()
    index.set(np.arange(5000), [random_doc(rnd) for _ in range(5000)])
    big = index.segments[0].size
    for start in range(5000, 5400, 20):
        index.set(np.arange(start, start + 20), [random_doc(rnd) for _ in range(20)])
        assert index.segments[0].size == big  # the large segment is never rewritten
    assert len(index.segments) < 12


def test_analyzers():
    assert analyzer.get("en").terms("The cats are SITTING on mats!") == ["cat", "sit", "mat"]
    assert analyzer.get("simple").terms("The cats, the mats") == ["the", "cats", "the", "mats"]
    assert analyzer.get("de").terms("Die Häuser und die Bäume") == ["haus", "baum"]
    assert analyzer.get("en").terms("a an the ! ?") == []
    for bad in ("xx", "", None, 3, "EN"):
        with pytest.raises(InvalidArgumentError, match="unknown analyzer"):
            analyzer.get(bad)


def test_text_config_parsing():
    assert TextConfig.parse(None) is None and TextConfig.parse(False) is None
    assert TextConfig.parse(True) == TextConfig("en", None)
    assert TextConfig.parse("fr") == TextConfig("fr", None)
    assert TextConfig.parse({"field": "meta.title"}) == TextConfig("en", "meta.title")
    cfg = TextConfig.parse({"analyzer": "en", "field": "meta.title"})
    assert cfg.text_of({"meta": {"title": "Hello"}}, "doc") == "Hello"
    assert cfg.text_of({"meta": {"title": 3}}, "doc") is None
    assert cfg.text_of({"meta": "x"}, "doc") is None and cfg.text_of(None, "doc") is None
    assert TextConfig().text_of({"a": 1}, "") is None and TextConfig().text_of(None, "d") == "d"
    bad = [{"analyzer": "nope"}, {"field": ""}, {"field": "a..b"}, {"field": 3}, {"x": 1}, 7]
    for value in bad + [{"field": "f" * 300}]:
        with pytest.raises(InvalidArgumentError) as info:
            TextConfig.parse(value)
        assert len(str(info.value)) < 300


def test_dbsf_as_qdrant_defines_it():
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]  # mean 0.5, sample std 0.4
    keyword = [("c", 12.0)]  # one hit: 0.5
    fused = dict(hybrid.dbsf(dense, keyword))
    low, high = 0.5 - 1.2, 0.5 + 1.2
    assert fused["a"] == pytest.approx(0.5 * (0.9 - low) / (high - low))
    assert fused["c"] == pytest.approx(0.5 * (0.1 - low) / (high - low) + 0.5 * 0.5)
    assert [i for i, _ in hybrid.dbsf(dense, keyword)] == ["c", "a", "b"]
    same = hybrid.dbsf([("x", 2.0), ("y", 2.0)], [], dense_weight=1.0)  # no spread: 0.5 each
    assert same == [("x", 0.5), ("y", 0.5)]
    assert hybrid.dbsf([], []) == []


def test_fusion_arguments_are_checked():
    assert hybrid.checked("convex", None) == ("convex", hybrid.DENSE_WEIGHT)
    assert hybrid.checked("dbsf", None) == ("dbsf", 0.5)
    assert hybrid.checked("rrf", None) == ("rrf", None)
    assert hybrid.checked("convex", np.float32(0.25)) == ("convex", 0.25)
    assert hybrid.checked("dbsf", 1) == ("dbsf", 1.0)
    for fusion, weight in [
        ("max", None),
        (None, None),
        ("convex", -0.1),
        ("convex", 1.5),
        ("convex", float("nan")),
        ("convex", True),
        ("convex", "0.5"),
        ("rrf", 0.5),
    ]:
        with pytest.raises(InvalidArgumentError):
            hybrid.checked(fusion, weight)
