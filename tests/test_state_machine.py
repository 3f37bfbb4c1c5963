"""The store against a pure-Python model, checked after every step (upsert, delete, search,
count, reopen)."""

import shutil
import tempfile

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import vdb
from tests import reference, strategies
from tests.reference import assert_hits_exact
from vdb.storage import codec, keys, values

DIM = 4
point_ids = st.one_of(st.integers(0, 12), st.sampled_from(["a", "b", "c", "d"]))
vectors = st.lists(
    st.floats(-1, 1, width=32, allow_nan=False).filter(lambda v: abs(v) > 1e-3),
    min_size=DIM,
    max_size=DIM,
)


class StoreMachine(RuleBasedStateMachine):
    @initialize(
        metric=st.sampled_from(["cosine", "dot", "l2"]), index=st.sampled_from(["flat", "hnsw"])
    )
    def open_store(self, metric, index):
        self.path = tempfile.mkdtemp()
        self.metric = metric
        self.db = vdb.open(self.path)
        self.col = self.db.create_collection("c", DIM, metric, index=index)
        self.model: dict = {}  # id -> (vector, payload)

    @rule(
        batch=st.lists(
            st.tuples(point_ids, vectors, strategies.payloads), max_size=6, unique_by=lambda t: t[0]
        )
    )
    def upsert(self, batch):
        if not batch:
            return
        ids = [b[0] for b in batch]
        self.col.upsert(ids, np.array([b[1] for b in batch], np.float32), [b[2] for b in batch])
        for pid, vec, payload in batch:
            self.model[pid] = (np.array(vec, np.float32), payload)

    @rule(ids=st.lists(point_ids, max_size=4))
    def delete_ids(self, ids):
        if not ids:
            return
        deleted = self.col.delete(ids=ids).count
        assert deleted == len({i for i in ids if i in self.model})
        for pid in ids:
            self.model.pop(pid, None)

    @rule(flt=strategies.filters)
    def delete_filter(self, flt):
        gone = [pid for pid, (_, p) in self.model.items() if reference.matches(p, flt)]
        assert self.col.delete(filter=flt).count == len(gone)
        for pid in gone:
            del self.model[pid]

    @rule(query=vectors, k=st.integers(1, 8), flt=st.one_of(st.none(), strategies.filters))
    def search(self, query, k, flt):
        hits = self.col.search(np.array(query, np.float32), k=k, filter=flt)
        ids = list(self.model)
        X = np.array([self.model[i][0] for i in ids], np.float32).reshape(len(ids), DIM)
        allowed = [reference.matches(self.model[i][1], flt) for i in ids]
        assert_hits_exact(hits, ids, X, query, self.metric, k, allowed=allowed)
        for h in hits:
            assert h.payload == self.model[h.id][1]
        bare = self.col.search([query], k=k, filter=flt, with_payload=False, with_document=False)
        n = int(bare.counts[0])
        assert bare.ids[0, :n].tolist() == [h.id for h in hits]
        np.testing.assert_array_equal(bare.scores[0, :n], [h.score for h in hits])
        assert np.isnan(bare.scores[0, n:]).all()
        assert [(h.id, h.payload) for h in bare[0]] == [(h.id, None) for h in hits]

    @rule(flt=strategies.filters)
    def count(self, flt):
        expected = sum(reference.matches(p, flt) for _, p in self.model.values())
        assert self.col.count(flt) == expected

    @rule()
    def reopen(self):
        self.db.close()  # writes a checkpoint; the next open maps it
        self.db = vdb.open(self.path)
        self.col = self.db.get_collection("c")
        assert self.col.info()["loaded_from"] == "checkpoint"

    @rule()
    def checkpoint(self):
        self.col.checkpoint()

    @rule()
    def reopen_without_closing(self):
        """As after kill -9: no closing checkpoint; the next open replays the op log on top of
        the last checkpoint (or rebuilds from the records)."""
        for col in self.db._collections.values():
            col._closed = True
        self.db._collections.clear()
        self.db._store.close()
        self.db = vdb.open(self.path)
        self.col = self.db.get_collection("c")

    @invariant()
    def id_array_is_the_id_map(self):
        """The in-memory id of every slot is what LMDB's id map says."""
        if not hasattr(self, "col"):
            return
        col = self.col
        prefix = keys.cid_prefix(col.config.cid)
        mapped = {}
        with col._store.read() as txn:
            for key, raw in txn.cursor(db=col._store.ids):
                if key[:4] == prefix:
                    mapped[values.iid_of(key, raw)] = codec.decode_id(key[4:])
        held = np.flatnonzero(col._ids.kind)
        assert {int(r): col._ids.one(int(r)) for r in held} == mapped

    @invariant()
    def same_points(self):
        if not hasattr(self, "col"):
            return
        assert self.col.count() == len(self.model)
        page, _ = self.col.scroll(limit=100, with_vectors=True)
        assert {r.id for r in page} == set(self.model)
        for rec in page:
            vec, payload = self.model[rec.id]
            np.testing.assert_array_equal(rec.vector, vec)
            assert rec.payload == payload

    def teardown(self):
        if hasattr(self, "db"):
            self.db.close()
            shutil.rmtree(self.path, ignore_errors=True)


StoreMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestStore = StoreMachine.TestCase
