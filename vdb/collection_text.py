"""The keyword half of a collection: its BM25 index (vdb.index.sparse) kept in step with the
points, and keyword and hybrid queries.

The index is derived state, like the vector index: updated under the same write lock right
after each LMDB commit, checkpointed beside the vector checkpoint (vdb.index.sparse_file) at
the LSN it covers, and on open loaded from that checkpoint plus the op-log entries after it,
or rebuilt from the records when the file is missing or unsound. A point is indexed when the
text its collection's config names (the document, or a string in a payload field) is a
non-empty string.
"""

import dataclasses
import warnings

import numpy as np

from vdb import filters, validate
from vdb.errors import DataCorruptedError, InvalidArgumentError, shown
from vdb.index import sparse_file
from vdb.index.hnsw import HnswIndex
from vdb.index.sparse import SparseIndex
from vdb.results import HalvesHit, Hit, Selection
from vdb.storage import keys, oplog, values
from vdb.storage.codec import open_record, record_document, record_payload
from vdb.text import analyzer as analyzers
from vdb.text import hybrid
from vdb.text.config import TextConfig

REBUILD_CHUNK = 8192  # records analyzed and indexed at a time when building from LMDB


class TextIndexed:
    """Collection's keyword index and the queries that use it (a mixin of Collection, which
    provides the store, lock, config, vector index, payload columns and id array)."""

    # ------------------------------------------------------------ state

    def _text_init(self, directory) -> None:
        self._text: SparseIndex | None = None
        self._analyzer = None
        self._text_ckpt_lsn = -1
        self.text_loaded_from: str | None = None
        self._text_path = sparse_file.path_for(directory, self.config.cid)
        if not self._read_only:
            for stale in self._text_path.parent.glob(f"{self._text_path.name}.tmp-*"):
                stale.unlink(missing_ok=True)  # left by a writer killed mid-checkpoint

    def _text_info(self) -> dict | None:
        """What info() says of the keyword index (call under the lock)."""
        if self._text is None:
            return None
        return {**self._text.stats(), "loaded_from": self.text_loaded_from}

    # ------------------------------------------------------------ loading

    def _load_text(self, txn, lsn: int) -> None:
        """Once the vectors are loaded at LSN lsn: the keyword index from its checkpoint and
        the op-log entries after it when both are sound, else from every record (warning why
        when a checkpoint was there but not used)."""
        self._text, self._text_ckpt_lsn, self.text_loaded_from = None, -1, None
        cfg = self.config.text
        if cfg is None:
            return
        self._analyzer = analyzers.get(cfg.analyzer)
        index, why = None, None
        try:
            found = sparse_file.load(
                self._text_path, sparse_file.stamp(self._store.db_id, self.config)
            )
        except sparse_file.Unsound as exc:
            found, why = None, str(exc)
        if found is not None:
            try:
                index = self._text_replayed(txn, found[0], found[1], lsn)
            except (sparse_file.Unsound, DataCorruptedError) as exc:
                why = str(exc)
            except (ValueError, IndexError, KeyError, TypeError) as exc:
                why = f"replaying the op log over it failed ({type(exc).__name__}: {exc})"
        if index is not None:
            self._text, self._text_ckpt_lsn, self.text_loaded_from = index, found[1], "checkpoint"
            return
        self._text = self._text_from_records(txn, cfg, self._analyzer)
        self.text_loaded_from = "records"
        if why is not None:
            warnings.warn(
                f"the keyword index checkpoint of collection {self.name!r} was not used ({why}); "
                "it was rebuilt from the records",
                RuntimeWarning,
                stacklevel=5,
            )

    def _text_replayed(self, txn, index: SparseIndex, ckpt_lsn: int, lsn: int) -> SparseIndex:
        """index (covering ckpt_lsn) with the op-log entries up to lsn applied; Unsound when
        the log does not continue it or it holds texts of points the collection lacks."""
        if ckpt_lsn > lsn:
            raise sparse_file.Unsound(f"it covers LSN {ckpt_lsn}, beyond the collection's {lsn}")
        replayed = ckpt_lsn
        for entry_lsn, op, iids in oplog.read_since(
            txn, self._store.oplog, self.config.cid, ckpt_lsn
        ):
            if entry_lsn != replayed + 1 or entry_lsn > lsn:
                break
            self._text_replay(txn, index, op, iids)
            replayed = entry_lsn
        if replayed != lsn:
            raise sparse_file.Unsound(
                f"the op log does not continue it (from LSN {ckpt_lsn + 1} to {lsn})"
            )
        n = min(index.size, self._index.size)
        has_text = index.vid_of[: index.size] >= 0
        if has_text[n:].any() or (has_text[:n] & ~self._index.alive[:n]).any():
            raise sparse_file.Unsound("it holds texts of points the collection does not have")
        return index

    def _text_replay(self, txn, index: SparseIndex, op: int, iids: np.ndarray) -> None:
        """Apply one op-log entry to index, reading the texts of upserted slots from LMDB
        (a slot whose record is gone was deleted by a later entry)."""
        if len(iids) and (iids.min() < 0 or iids.max() >= self._next_iid):
            raise DataCorruptedError(
                f"an op-log entry of collection {self.name!r} names slots beyond its "
                f"{self._next_iid}"
            )
        index.clear(iids)
        if op != oplog.OP_UPSERT:
            return
        cid, rows, texts = self.config.cid, [], []
        for iid in iids.tolist():
            key = keys.record_key(cid, iid)
            raw = txn.get(key, db=self._store.records)
            if raw is not None:
                rows.append(iid)
                texts.append(self._record_text(key, open_record(key, raw, self.dim)))
        index.set(np.array(rows, np.int64), self._analyzed(texts, self._analyzer))

    def _record_text(self, key: bytes, body, cfg: TextConfig | None = None) -> str | None:
        """The text a checked record indexes under cfg (default: the collection's)."""
        cfg = cfg or self.config.text
        if cfg.field is None:
            return cfg.text_of(None, record_document(body, self.dim, key))
        return cfg.text_of(record_payload(body, self.dim, key), None)

    def _text_from_records(self, txn, cfg: TextConfig, an) -> SparseIndex:
        """A keyword index of every sound record that holds a point of the vector index."""
        index = SparseIndex()
        prefix = keys.cid_prefix(self.config.cid)
        alive, size = self._index.alive, self._index.size
        rows, texts = [], []
        cursor = txn.cursor(db=self._store.records)
        if cursor.set_range(prefix):
            for key, raw in cursor:
                if key[:4] != prefix:
                    break
                if len(key) != len(prefix) + keys.U64.size:
                    continue  # damage, listed by the vector index's own scan or `vdb check`
                iid = keys.U64.unpack(key[4:])[0]
                if iid >= size or not alive[iid]:
                    continue
                try:
                    text = self._record_text(key, open_record(key, raw, self.dim), cfg)
                except DataCorruptedError:
                    continue
                if text is not None:
                    rows.append(iid)
                    texts.append(text)
                if len(rows) >= REBUILD_CHUNK:
                    index.set(np.array(rows, np.int64), an.analyze(texts))
                    rows, texts = [], []
        if rows:
            index.set(np.array(rows, np.int64), an.analyze(texts))
        return index

    @staticmethod
    def _analyzed(texts: list, an) -> list:
        """The terms of each text (None stays None)."""
        present = iter(an.analyze([t for t in texts if t is not None]))
        return [None if t is None else next(present) for t in texts]

    # ------------------------------------------------------------ writes

    def _text_terms(self, payloads: list, documents: list):
        """(the text config, the analyzed texts) of an upsert batch, worked out before the
        write lock is taken; (None, None) without a keyword index."""
        cfg = self.config.text
        if cfg is None:
            return None, None
        texts = [cfg.text_of(p, d) for p, d in zip(payloads, documents, strict=True)]
        return cfg, self._analyzed(texts, analyzers.get(cfg.analyzer))

    def _text_set(self, rows: np.ndarray, taken, payloads: list, documents: list) -> None:
        """Index an upsert's texts at rows, under the write lock; taken is _text_terms(), done
        again here if the config changed meanwhile."""
        if self._text is None:
            return
        cfg, terms = taken
        if cfg is not self.config.text:
            cfg, terms = self._text_terms(payloads, documents)
        self._text.set(rows, terms)

    def _text_clear(self, rows: np.ndarray) -> None:
        if self._text is not None:
            self._text.clear(rows)

    def enable_text(self, analyzer: str = "en", field: str | None = None) -> None:
        """Index the points' texts for keyword and hybrid search (search(text=...)) from now
        on: the documents (field None) or the strings in a payload field (dotted for nested
        keys), split, stop words dropped and stemmed by analyzer (vdb.text.analyzer.NAMES).
        Builds the index from the stored points and records the setting in the collection's
        config; calling it again with other settings rebuilds the index."""
        self._check_writable()
        cfg = TextConfig.parse({"analyzer": analyzer, "field": field})
        an = analyzers.get(cfg.analyzer)
        with self._ckpt_lock, self._lock.write():  # no checkpoint of the old index meanwhile
            self._check_open()
            if cfg == self.config.text:
                return
            with self._store.read() as txn:
                index = self._text_from_records(txn, cfg, an)
            config = dataclasses.replace(self.config, text=cfg)
            self._store.transact(
                lambda txn: values.put_config(txn, self._store, self.name, config.to_json())
            )
            self.config, self._analyzer, self._text = config, an, index
            self._text_ckpt_lsn, self.text_loaded_from = -1, "records"
            self._text_path.unlink(missing_ok=True)  # made for another config

    def ask_in_server(
        self, question, model, k, filter, max_tokens, on_piece, sampler: dict, memory
    ):
        """None: an embedded collection's answers (vdb.rag.ask) are worked out in this process.
        A remote collection answers in its server here."""
        return None

    # ------------------------------------------------------------ checkpoints

    def _text_stale(self) -> bool:
        return self._text is not None and self._text_ckpt_lsn != self._lsn

    def _text_snapshot(self):
        """(owner stamp, contents) of a keyword checkpoint at the current LSN, None when the
        one on disk is current. Call under the lock."""
        if not self._text_stale():
            return None
        owner = sparse_file.stamp(self._store.db_id, self.config)
        return owner, sparse_file.snapshot(self._text)

    def _text_save(self, taken, lsn: int) -> None:
        if taken is not None:
            sparse_file.save(self._text_path, taken[1], lsn, taken[0])
            self._text_ckpt_lsn = lsn

    # ------------------------------------------------------------ queries

    def _text_search(self, queries, text, k, filter, ef, fusion, dense_weight, want: Selection):
        """search(text=...): keyword search, or hybrid with queries (see Collection.search)."""
        self._check_open()
        fusion, weight = hybrid.checked(fusion, dense_weight)
        texts, single = query_texts(text)
        self._need_text()
        if queries is None:
            k = validate.top_k(k)
            node = filters.parse(filter)
            q = None
            if self._read_only:
                self.refresh()
        else:
            q_single, q, k, node, ef = self._query(queries, k, filter, ef)
            if q_single != single or len(q) != len(texts):
                raise InvalidArgumentError(
                    f"a hybrid search takes one text per query: got {len(q)} "
                    f"quer{'y' if len(q) == 1 else 'ies'} and {len(texts)} text(s)"
                )
        an = analyzers.get(self.config.text.analyzer)
        terms = [an.terms(t) for t in texts]
        with self._lock.read():
            mask = self._matching(node) if node is not None else None  # (size,) bool
            found = [
                self._keyword_top(t, k, mask)
                if q is None
                else self._hybrid_top(q[i : i + 1], t, k, mask, ef, fusion, weight)
                for i, t in enumerate(terms)
            ]
            rows, scores = _padded(found)
            if single and not want.reads:
                ids = self._ids.take(rows[0])
            else:
                ids = self._ids.lookup(rows)
                raws, missing = self._read_rows(rows) if want.reads else (None, False)
        if single and not want.reads:
            nones = (None,) * len(ids)
            return list(map(Hit, ids.tolist(), scores[0].tolist(), nones, nones))
        results = self._results(rows, ids, scores, raws, missing, want)
        return results[0] if single else results

    def _search_halves(
        self, query, text: str, k: int = 10, filter=None, ef=None, numbers=(), choose=None
    ) -> list:
        """The k best points of each half of a hybrid search, unfused, for agent memory,
        which fuses them with recency and importance in the process that holds the
        collection (so the remote collection has no such method): a list of HalvesHit, the
        dense half's hits first (best first), then those only the keyword half found (best
        first). Each holds its Hit (payload and document; score the dense one) and both
        halves' scores: dense for every point (from the index's vector when only the keyword
        half found it) and keyword (BM25, 0.0 when only the dense half found it). query is
        one vector or one text (embedded); the filter applies to both halves, evaluated
        once.

        choose, when given, picks the points whose records are read, before any is:
        choose(ids, dense, keyword, columns) gets the candidates' ids (list), both halves'
        scores ((c,) float64 each, in the order above) and {path: (c,) float64} of the
        numbers the candidates' payloads hold at each key path in numbers (NaN for none), and
        returns the positions to return, in the order to return them."""
        texts, single = query_texts(text)
        self._need_text()
        q_single, q, k, node, ef = self._query(query, k, filter, ef)
        if not (single and q_single):
            raise InvalidArgumentError("a search of both halves takes one query and one text")
        terms = analyzers.get(self.config.text.analyzer).terms(texts[0])
        with self._lock.read():
            mask = self._matching(node) if node is not None else None
            d_rows, d_scores = self._dense_top(q, k, mask, ef)
            s_scores, s_rows = self._text.search(terms, k, self._sparse_mask(mask))
            only = s_rows[~np.isin(s_rows, d_rows)]
            rows = np.concatenate([d_rows, only])
            dense = np.concatenate([d_scores, self._dense_scores(q[0], only)])
            keyword = np.zeros(len(rows))
            order = np.argsort(rows)
            keyword[order[np.searchsorted(rows, s_rows, sorter=order)]] = s_scores
            if choose is not None:
                columns = {path: self._payloads.numbers(path, rows) for path in numbers}
                picked = np.asarray(
                    choose(self._ids.take(rows).tolist(), dense.astype(np.float64), keyword,
                           columns), np.int64,
                )  # fmt: skip
                rows, dense, keyword = rows[picked], dense[picked], keyword[picked]
            ids = self._ids.lookup(rows[None, :])
            raws, missing = self._read_rows(rows[None, :])
        hits = self._results(
            rows[None, :], ids, dense[None, :].astype(np.float32), raws, missing, Selection()
        )[0]
        of_id = dict(zip(ids[0].tolist(), keyword.tolist(), strict=True))
        return [HalvesHit(h, h.score, of_id[h.id]) for h in hits]

    def _dense_top(self, q: np.ndarray, k: int, mask, ef):
        """(rows (k',), scores (k',)) of the vector index's k best for one query q (1, dim)
        under mask. Call under the lock."""
        if isinstance(self._index, HnswIndex):
            scores, rows = self._index.search(q, k, mask, ef=ef)
        else:
            scores, rows = self._index.search(q, k, mask)
        n = int(np.count_nonzero(rows[0] >= 0))
        return rows[0, :n], scores[0, :n]

    def _dense_scores(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) float32: the vector metric's score of the checked query q (dim,)
        against the index's vectors at rows, as its searches score them. Call under the
        lock."""
        X = self._index.vectors[rows]
        if self.metric == "l2":
            return np.sqrt(np.vecdot(X - q, X - q)).astype(np.float32)
        return (X @ q).astype(np.float32)

    def _need_text(self) -> None:
        if self.config.text is None:
            raise InvalidArgumentError(
                f"collection {self.name!r} has no keyword index: create it with text=... or "
                "call enable_text()"
            )

    def _sparse_mask(self, mask: np.ndarray | None) -> np.ndarray:
        """(m,) bool over slots: those a keyword match may come from (live points that pass
        the filter; slots from m on may not). Call under the lock."""
        return self._index.alive[: self._index.size] if mask is None else mask

    def _keyword_top(self, terms: list[str], k: int, mask):
        """(rows (k',) int64, scores (k',) float64) of a keyword search."""
        scores, rows = self._text.search(terms, k, self._sparse_mask(mask))
        return rows, scores

    def _hybrid_top(self, q: np.ndarray, terms, k: int, mask, ef, fusion: str, weight):
        """(rows, fused scores) of a hybrid search: the best max(k, POOL) of each half, fused
        on the points' ids (ties broken as vdb.text.hybrid breaks them)."""
        pool = max(k, hybrid.POOL)
        d_rows, d_scores = self._dense_top(q, pool, mask, ef)
        s_scores, s_rows = self._text.search(terms, pool, self._sparse_mask(mask))
        sign = -1.0 if self.metric == "l2" else 1.0  # l2 scores are distances
        d_ids, s_ids = self._ids.take(d_rows).tolist(), self._ids.take(s_rows).tolist()
        dense = list(zip(d_ids, (sign * d_scores).tolist(), strict=True))
        keyword = list(zip(s_ids, s_scores.tolist(), strict=True))
        fused = hybrid.fuse(fusion, dense, keyword, weight)[:k]
        row_of = dict(zip(s_ids, s_rows.tolist(), strict=True))
        row_of.update(zip(d_ids, d_rows.tolist(), strict=True))
        rows = np.array([row_of[i] for i, _ in fused], np.int64)
        return rows, np.array([s for _, s in fused], np.float64)


def query_texts(text) -> tuple[list[str], bool]:
    """(texts, single) of search(text=...): a non-empty string or a non-empty list of them."""
    single = isinstance(text, str)
    texts = [text] if single else text
    if not isinstance(texts, list | tuple) or not texts:
        raise InvalidArgumentError(
            f"text must be a non-empty string or a list of them, got {shown(text)}"
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            where = "text" if single else f"text {i}"
            raise InvalidArgumentError(f"{where} must be a non-empty string, got {shown(t)}")
    return list(texts), single


def _padded(found: list) -> tuple[np.ndarray, np.ndarray]:
    """(rows (nq, w) int64 padded with -1, scores (nq, w) float32 padded with NaN) from one
    (rows, scores) pair per query."""
    width = max(len(r) for r, _ in found)
    rows = np.full((len(found), width), -1, np.int64)
    scores = np.full((len(found), width), np.nan, np.float32)
    for i, (r, s) in enumerate(found):
        rows[i, : len(r)] = r
        scores[i, : len(s)] = s
    return rows, scores
