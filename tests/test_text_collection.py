"""A collection's keyword index through the store's API: a state machine of upserts, deletes,
compactions, checkpoints and reopenings checked against a plain-Python BM25 twin after every
step; filtered keyword and hybrid queries; bad input."""

import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import vdb
from tests.reference import bm25_scores
from vdb.errors import InvalidArgumentError
from vdb.text import analyzer

DIM = 4
WORDS = ["river", "stone", "rivers", "bridge", "the", "forest", "cloud", "engine", "signal"]
QUERIES = ["river", "stone bridge", "the forest forest", "cloud engine signal river", "zzz"]
point_ids = st.one_of(st.integers(0, 15), st.sampled_from(["a", "b", "c", "d", "e"]))
documents = st.one_of(
    st.none(), st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join)
)  # "" and stop words only: no text, or a text of no terms
groups = st.sampled_from([0, 1, 2])


def twin(model: dict, query: str, group=None) -> dict:
    """{id: float32 score} of the points matching query (and group) by the BM25 twin."""
    an = analyzer.get("en")
    docs = {pid: an.terms(doc) for pid, (_, doc) in model.items() if doc}
    scores = bm25_scores(docs, an.terms(query))
    return {
        pid: float(np.float32(s))
        for pid, s in scores.items()
        if group is None or model[pid][0] == group
    }


class TextMachine(RuleBasedStateMachine):
    @initialize(index=st.sampled_from(["flat", "hnsw"]), field=st.booleans())
    def open_store(self, index, field):
        self.path = tempfile.mkdtemp()
        self.field = field
        self.db = vdb.open(self.path)
        text = {"analyzer": "en", "field": "body" if field else None}
        self.col = self.db.create_collection("c", DIM, index=index, text=text)
        self.model: dict = {}  # id -> (group, text)
        self.rng = np.random.default_rng(0)

    @rule(
        batch=st.lists(
            st.tuples(point_ids, groups, documents), max_size=6, unique_by=lambda t: t[0]
        )
    )
    def upsert(self, batch):
        if not batch:
            return
        ids = [b[0] for b in batch]
        vecs = self.rng.standard_normal((len(batch), DIM)).astype(np.float32) + 0.1
        if self.field:
            pays = [{"g": g, "body": d} if d is not None else {"g": g} for _, g, d in batch]
            self.col.upsert(ids, vecs, payloads=pays)
        else:
            pays = [{"g": g} for _, g, _ in batch]
            self.col.upsert(ids, vecs, payloads=pays, documents=[d for _, _, d in batch])
        for pid, g, doc in batch:
            self.model[pid] = (g, doc)

    @rule(ids=st.lists(point_ids, max_size=4))
    def delete_ids(self, ids):
        if ids:
            self.col.delete(ids=ids)
            for pid in ids:
                self.model.pop(pid, None)

    @rule(g=groups)
    def delete_group(self, g):
        self.col.delete(filter={"g": g})
        self.model = {pid: v for pid, v in self.model.items() if v[0] != g}

    @rule()
    def compact(self):
        self.col.compact()
        self.col._text._check()

    @rule()
    def checkpoint(self):
        self.col.checkpoint()

    @rule()
    def reopen(self):
        self.db.close()
        self.db = vdb.open(self.path)
        self.col = self.db.get_collection("c")
        assert self.col.info()["text_index"]["loaded_from"] == "checkpoint"

    @rule()
    def reopen_without_closing(self):
        """As after kill -9: the keyword index comes from its last checkpoint and the op log."""
        for col in self.db._collections.values():
            col._closed = True
        self.db._collections.clear()
        self.db._store.close()
        self.db = vdb.open(self.path)
        self.col = self.db.get_collection("c")

    @rule(k=st.integers(1, 6), q=st.sampled_from(QUERIES), g=groups)
    def filtered_top_k(self, k, q, g):
        want = twin(self.model, q, g)
        hits = self.col.search(text=q, k=k, filter={"g": g})
        assert len(hits) == min(k, len(want))
        best = sorted(want.values(), reverse=True)[:k]
        assert [h.score for h in hits] == best
        assert all(want[h.id] == h.score for h in hits)
        matching = sum(1 for v in self.model.values() if v[0] == g)
        query = self.rng.standard_normal(DIM).astype(np.float32)
        for fusion in ("convex", "rrf", "dbsf"):
            fused = self.col.search(query, text=q, k=k, filter={"g": g}, fusion=fusion)
            assert len(fused) == min(k, matching)
            assert all(self.model[h.id][0] == g for h in fused)
            assert len({h.id for h in fused}) == len(fused)

    @invariant()
    def scores_match_the_twin(self):
        if not hasattr(self, "col"):
            return
        self.col._text._check()
        for q in QUERIES:
            hits = self.col.search(text=q, k=100, with_payload=False, with_document=False)
            assert {h.id: h.score for h in hits} == twin(self.model, q)

    def teardown(self):
        if hasattr(self, "db"):
            self.db.close()
            shutil.rmtree(self.path, ignore_errors=True)


TextMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)
TestText = TextMachine.TestCase


@pytest.mark.slow
class TestTextLong(TextMachine.TestCase):
    settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


@pytest.fixture
def col(db):
    c = db.create_collection("c", dim=3, text="en")
    rng = np.random.default_rng(3)
    docs = [f"item {i} about rivers" if i % 2 else f"item {i} about stones" for i in range(60)]
    pays = [{"g": i % 3} for i in range(60)]
    c.upsert(list(range(60)), rng.standard_normal((60, 3)), payloads=pays, documents=docs)
    return c


def test_filtered_queries_return_k_hits_when_k_match(col):
    flt = {"g": 1}  # 20 points, 10 of them about rivers
    assert len(col.search(text="river", k=10, filter=flt)) == 10
    assert len(col.search(text="river", k=15, filter=flt)) == 10
    assert {h.id % 2 for h in col.search(text="river", k=10, filter=flt)} == {1}
    q = np.ones(3, np.float32)
    for fusion in ("convex", "rrf", "dbsf"):
        hits = col.search(q, text="river", k=20, filter=flt, fusion=fusion)
        assert len(hits) == 20 and {h.id % 3 for h in hits} == {1}
    batch = col.search([q, -q], text=["river", "stone"], k=5, filter=flt)
    assert [len(hits) for hits in batch] == [5, 5]
    keyword = col.search(text=["river", "stone"], k=5, filter=flt)
    assert [len(hits) for hits in keyword] == [5, 5]


def test_hybrid_fuses_both_halves(col):
    q = np.asarray(col.get(2).vector)  # dense best: point 2, about stones
    hits = col.search(q, text="river", k=60, dense_weight=0.5)
    assert {h.id for h in hits} == set(range(60))
    assert hits[0].id in {2} | {h.id for h in col.search(text="river", k=1)}
    only_dense = col.search(q, text="river", k=5, dense_weight=1.0)
    assert [h.id for h in only_dense] == [h.id for h in col.search(q, k=5)]
    only_keyword = col.search(q, text="river", k=5, dense_weight=0.0)
    assert {h.id % 2 for h in only_keyword} == {1}


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_search_halves_are_both_queries_unfused(db, metric, index):
    c = db.create_collection("h", dim=3, metric=metric, index=index, text="en")
    rng = np.random.default_rng(5)
    docs = [f"item {i} about rivers" if i % 4 == 0 else f"item {i} about stones" for i in range(80)]
    X = rng.standard_normal((80, 3)).astype(np.float32)
    c.upsert(list(range(80)), X, payloads=[{"g": i % 2} for i in range(80)], documents=docs)
    q = rng.standard_normal(3).astype(np.float32)
    for flt in (None, {"g": 0}):
        found = c._search_halves(q, "river", k=10, filter=flt)
        dense = c.search(q, k=10, filter=flt, ef=200)
        keyword = c.search(text="river", k=10, filter=flt)
        assert [f.hit.id for f in found[: len(dense)]] == [h.id for h in dense]
        assert {f.hit.id for f in found} == {h.id for h in dense} | {h.id for h in keyword}
        bm25 = {h.id: h.score for h in keyword}
        qn = q / np.linalg.norm(q) if metric == "cosine" else q
        for f in found:
            v = X[f.hit.id] / np.linalg.norm(X[f.hit.id]) if metric == "cosine" else X[f.hit.id]
            want = float(v @ qn) if metric == "cosine" else float(np.linalg.norm(v - qn))
            assert f.dense == pytest.approx(want, abs=1e-5)
            assert f.keyword == pytest.approx(bm25.get(f.hit.id, 0.0), rel=1e-6)
            assert f.hit.document == docs[f.hit.id] and f.hit.payload == {"g": f.hit.id % 2}
            assert flt is None or f.hit.id % 2 == 0
    with pytest.raises(InvalidArgumentError, match="one query and one text"):
        c._search_halves([q, q], "river")
    with pytest.raises(InvalidArgumentError, match="non-empty string"):
        c._search_halves(q, "")
    plain = db.create_collection("p", dim=3)
    with pytest.raises(InvalidArgumentError, match="no keyword index"):
        plain._search_halves(q, "river")


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_search_halves_choose_sees_every_candidate_and_reads_only_its_picks(db, index):
    c = db.create_collection("h", dim=3, index=index, text="en")
    rng = np.random.default_rng(6)
    docs = [f"item {i} about rivers" if i % 3 == 0 else f"item {i} about stones" for i in range(60)]
    X = rng.standard_normal((60, 3)).astype(np.float32)
    pay = [{"n": float(i) / 2, "g": i % 2} if i % 5 else {"g": i % 2} for i in range(60)]
    c.upsert([f"p{i}" for i in range(60)], X, payloads=pay, documents=docs)
    q = rng.standard_normal(3).astype(np.float32)
    whole = c._search_halves(q, "river", k=8, filter={"g": 0})
    seen = {}

    def choose(ids, dense, keyword, columns):
        seen.update(ids=ids, dense=dense.tolist(), keyword=keyword.tolist(), n=columns["n"])
        return [len(ids) - 1, 0, 2]

    picked = c._search_halves(q, "river", k=8, filter={"g": 0}, numbers=("n",), choose=choose)
    assert seen["ids"] == [f.hit.id for f in whole]
    assert seen["dense"] == [f.dense for f in whole]
    assert seen["keyword"] == [f.keyword for f in whole]
    for i, n in zip(seen["ids"], seen["n"].tolist(), strict=True):
        j = int(i[1:])
        assert n == pay[j]["n"] if "n" in pay[j] else np.isnan(n)
    assert picked == [whole[-1], whole[0], whole[2]]


def test_enable_text_indexes_existing_points(db):
    c = db.create_collection("c", dim=2)
    c.upsert([1, 2], [[1, 0], [0, 1]], payloads=[{"t": "red fox"}, {"t": "blue whale"}])
    with pytest.raises(InvalidArgumentError, match="no keyword index"):
        c.search(text="fox")
    c.enable_text(field="t")
    assert [h.id for h in c.search(text="foxes")] == [1]
    c.upsert([3], [[1, 1]], payloads=[{"t": "a fox and a whale"}])
    assert sorted(h.id for h in c.search(text="whale")) == [2, 3]
    assert c.info()["text"] == {"analyzer": "en", "field": "t"}


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(text=""), "non-empty string"),
        (dict(text="   "), "non-empty string"),
        (dict(text=[]), "non-empty string"),
        (dict(text=5), "non-empty string"),
        (dict(text="river", fusion="max"), "unknown fusion"),
        (dict(text="river", fusion=None), "unknown fusion"),
        (dict(text="river", dense_weight=1.5), "dense_weight"),
        (dict(text="river", dense_weight=-0.1), "dense_weight"),
        (dict(text="river", dense_weight=float("nan")), "dense_weight"),
        (dict(text="river", fusion="rrf", dense_weight=0.5), "rrf"),
        (dict(queries=[[1, 0, 0]] * 2, text="river"), "one text per query"),
        (dict(text="river", k=0), "k"),
    ],
)
def test_bad_queries(col, kwargs, fragment):
    kwargs.setdefault(
        "queries", [1, 0, 0] if "fusion" in kwargs or "dense_weight" in kwargs else None
    )
    with pytest.raises(InvalidArgumentError, match=fragment):
        col.search(**kwargs)


def test_bad_text_configs(db):
    with pytest.raises(InvalidArgumentError, match="unknown analyzer"):
        db.create_collection("c", dim=2, text="klingon")
    with pytest.raises(InvalidArgumentError, match="unknown analyzer"):
        db.create_collection("c", dim=2, text={"analyzer": "xx"})
    with pytest.raises(InvalidArgumentError, match="field"):
        db.create_collection("c", dim=2, text={"field": ""})
    assert db.list_collections() == []
    c = db.create_collection("c", dim=2)
    with pytest.raises(InvalidArgumentError, match="unknown analyzer"):
        c.enable_text("nope")
    assert c.config.text is None
    assert issubclass(InvalidArgumentError, ValueError)
