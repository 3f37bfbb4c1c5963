"""One collection: the write path (validate -> LMDB transaction -> apply) and the read path
(filter mask -> index -> records)."""

import heapq
import json
import threading
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from vdb import embedding, filters, validate
from vdb._rwlock import RWLock
from vdb.errors import ClosedError, InvalidArgumentError, PointNotFoundError, ReadOnlyError
from vdb.index import checkpoint
from vdb.index.config import IndexConfig
from vdb.index.hnsw import HnswIndex
from vdb.storage import keys, oplog
from vdb.storage.codec import (
    Record,
    decode_record,
    encode_id,
    encode_record,
    record_id_key,
    record_payload,
    record_vector,
)

CHECKPOINT_DIR = "index"


@dataclass(frozen=True)
class CollectionConfig:
    name: str
    dim: int  # vector dimension
    metric: str  # cosine | dot | l2
    cid: int  # internal collection number, the key prefix of its records
    created_at: float  # unix time
    index: IndexConfig = IndexConfig()  # flat, HNSW, or flat until a size threshold
    embedder: str | None = None  # model that embeds documents and text queries

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "CollectionConfig":
        data = json.loads(raw)
        data["index"] = IndexConfig.parse(data.get("index"))
        return cls(**data)


@dataclass(slots=True)
class Hit:
    """One search result. score: similarity (higher is better) for cosine and dot, Euclidean
    distance (lower is better) for l2."""

    id: int | str
    score: float
    payload: dict | None
    document: str | None
    vector: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    lsn: int  # op-log sequence number of the batch (unchanged when nothing was written)
    count: int  # points written or deleted


class ConfigView:
    """name, dim and metric of a collection, read from its config (embedded and remote)."""

    config: CollectionConfig

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def metric(self) -> str:
        return self.config.metric

    def _check_matches(self, dim, metric) -> None:
        """For get_or_create: the existing collection must have this dim (when given) and
        metric."""
        if (dim is not None and self.dim != dim) or self.metric != metric:
            raise InvalidArgumentError(
                f"collection {self.name!r} exists with dim={self.dim}, metric={self.metric!r}, "
                f"not dim={dim}, metric={metric!r}"
            )


class Collection(ConfigView):
    """Points (id, vector, payload, document) with exact search and payload filters.

    Example:
        >>> import vdb, tempfile
        >>> db = vdb.open(tempfile.mkdtemp())
        >>> col = db.create_collection("docs", dim=2)
        >>> col.upsert(["a", "b"], [[1, 0], [0, 1]], payloads=[{"n": 1}, {"n": 2}]).count
        2
        >>> [h.id for h in col.search([1, 0.1], k=1, filter={"n": {"$gte": 1}})]
        ['a']
        >>> db.close()
    """

    def __init__(
        self,
        store,
        config: CollectionConfig,
        read_only: bool,
        checkpoint_every: int = 100_000,
        embedder=None,
    ):
        self._store = store
        self._embedder = embedder
        self._embed_lock = threading.Lock()
        self.config = config
        self._read_only = read_only
        self._closed = False
        self._lock = RWLock()
        self._ckpt_path = checkpoint.path_for(store.path / CHECKPOINT_DIR, config.cid)
        self._checkpoint_every = checkpoint_every  # points written between automatic ones
        self._written_since_ckpt = 0
        if not read_only:
            for stale in self._ckpt_path.parent.glob(f"{self._ckpt_path.name}.tmp-*"):
                stale.unlink(missing_ok=True)  # left by a writer killed mid-checkpoint
        self._load()

    # ------------------------------------------------------------ properties

    @property
    def lsn(self) -> int:
        return self._lsn

    @property
    def embedder(self):
        """The collection's embedder (loaded on first use), or None."""
        if self._embedder is None and self.config.embedder is not None:
            with self._embed_lock:
                if self._embedder is None:
                    self._embedder = embedding.load(self.config.embedder)
        return self._embedder

    def _embed(self, texts: list[str]):
        validate.has_embedder(self.config)
        return self.embedder.embed(texts)

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, dim={self.dim}, metric={self.metric!r})"

    def info(self) -> dict:
        self._check_open()
        with self._lock.read():
            count = len(self._index)
        kind = "hnsw" if isinstance(self._index, HnswIndex) else "flat"
        return {
            **asdict(self.config),
            "count": count,
            "lsn": self._lsn,
            "index_in_use": kind,
            "loaded_from": self.loaded_from,  # "checkpoint" (+ op-log replay) or "records"
        }

    # ------------------------------------------------------------ loading

    def _load(self) -> None:
        """Build the in-memory state: from the checkpoint plus newer op-log entries when a sound
        checkpoint exists, otherwise from every record in LMDB."""
        cid = self.config.cid
        ckpt = checkpoint.load(self._ckpt_path, cid, self.dim, self.metric)
        with self._store.read() as txn:
            lsn, next_iid = _read_state(txn, self._store, cid)
            self.loaded_from = "checkpoint"
            if ckpt is None or ckpt[2] > lsn or not self._from_checkpoint(txn, ckpt, lsn):
                self._rebuild(txn)
                self._ckpt_lsn = -1
                self.loaded_from = "records"
        self._lsn, self._next_iid = lsn, next_iid
        used = np.zeros(next_iid, dtype=np.bool_)
        n = min(self._index.size, next_iid)
        used[:n] = self._index.alive[:n]
        self._free = np.flatnonzero(~used).tolist()  # a heap of reusable internal ids
        if self.config.index.wants_hnsw(self._index):
            self._index = _to_hnsw(self._index, self.config.index.hnsw)

    def _from_checkpoint(self, txn, ckpt, lsn: int) -> bool:
        self._index, self._payloads, self._lsn = ckpt
        self._ckpt_lsn = self._lsn
        return self._replay_log(txn, lsn)

    def _rebuild(self, txn) -> None:
        cid, dim = self.config.cid, self.dim
        self._index = self.config.index.make(dim, self.metric)
        self._payloads = filters.PayloadIndex()
        iids, vecs, pays = [], [], []
        prefix = keys.cid_prefix(cid)
        cursor = txn.cursor(db=self._store.records)
        if cursor.set_range(prefix):
            for key, raw in cursor:
                if key[:4] != prefix:
                    break
                iids.append(keys.U64.unpack(key[4:])[0])
                vecs.append(record_vector(raw, dim))
                pays.append(record_payload(raw, dim))
        rows = np.array(iids, dtype=np.int64)
        vectors = np.array(vecs, dtype=np.float32).reshape(len(iids), dim)  # (n, dim)
        self._apply(rows, vectors, pays)

    def _replay_log(self, txn, lsn: int) -> bool:
        """Apply op-log entries after self._lsn up to lsn; False if the log has a gap."""
        replayed = self._lsn
        for entry_lsn, op, iids in oplog.read_since(
            txn, self._store.oplog, self.config.cid, self._lsn
        ):
            if entry_lsn != replayed + 1 or entry_lsn > lsn:
                break
            self._replay(txn, op, iids)
            replayed = entry_lsn
        self._lsn = replayed
        return replayed == lsn

    def _apply(self, rows: np.ndarray, vectors: np.ndarray, payloads: list) -> None:
        if not len(rows):
            return
        if self.metric == "cosine":
            vectors = validate.normalized(vectors)
        top = int(rows.max()) + 1
        self._index.reserve(top)
        self._payloads.reserve(self._index.capacity)
        self._index.set(rows, vectors)
        self._payloads.set(rows, payloads)
        if self.config.index.wants_hnsw(self._index):
            self._index = _to_hnsw(self._index, self.config.index.hnsw)

    def refresh(self) -> None:
        """Bring a read-only handle up to date with writes made by the writer since it opened,
        by replaying newer op-log entries."""
        self._check_open()
        with self._store.read() as txn:
            lsn, _ = _read_state(txn, self._store, self.config.cid)
        if lsn <= self._lsn:
            return
        with self._lock.write():
            with self._store.read() as txn:
                lsn, next_iid = _read_state(txn, self._store, self.config.cid)
                caught_up = self._replay_log(txn, lsn)
            if caught_up:
                self._next_iid = next_iid
            else:  # the log no longer reaches back to our state: load again
                self._load()

    def compact(self) -> int:
        """Unlink deleted points from the HNSW graph now (it also happens on its own once they
        exceed a share of the live points). Returns how many were unlinked."""
        self._check_writable()
        with self._lock.write():
            return self._index.compact() if isinstance(self._index, HnswIndex) else 0

    def checkpoint(self) -> int:
        """Write the index and payload columns to a checkpoint file, then drop the op-log
        entries it covers. Returns the LSN covered. Searches go on meanwhile; writes wait."""
        self._check_writable()
        with self._lock.read():
            lsn = self._lsn
            if lsn != self._ckpt_lsn:
                checkpoint.save(self._ckpt_path, self._index, self._payloads, lsn, self.config.cid)
                self._ckpt_lsn = lsn
                self._written_since_ckpt = 0
        self._store.transact(
            lambda txn: oplog.truncate(txn, self._store.oplog, self.config.cid, lsn)
        )
        return lsn

    def _checkpoint_quietly(self) -> None:
        """A checkpoint after an acknowledged write or on close: failing to write it (a full
        disk) loses nothing, since LMDB holds every write, so it warns instead of raising."""
        try:
            self.checkpoint()
        except OSError as exc:
            warnings.warn(
                f"checkpoint of collection {self.name!r} failed ({exc}); the next open "
                "replays the op log instead",
                RuntimeWarning,
                stacklevel=3,
            )

    def _replay(self, txn, op: int, iids: np.ndarray) -> None:
        self._index.remove(iids)
        self._payloads.clear(iids)
        if op != oplog.OP_UPSERT:
            return
        cid, dim = self.config.cid, self.dim
        raws = [txn.get(keys.record_key(cid, int(i)), db=self._store.records) for i in iids]
        live = [(i, r) for i, r in zip(iids, raws, strict=True) if r is not None]
        rows = np.array([i for i, _ in live], dtype=np.int64)
        vectors = np.array([record_vector(r, dim) for _, r in live], np.float32).reshape(-1, dim)
        self._apply(rows, vectors, [record_payload(r, dim) for _, r in live])

    # ------------------------------------------------------------ writes

    def upsert(self, ids, vectors=None, payloads=None, documents=None) -> WriteResult:
        """Insert or replace points. All or nothing: a bad item rejects the whole batch.
        Without vectors, a collection with an embedder embeds the documents."""
        self._check_writable()
        if vectors is None:
            vectors = self._embed(validate.texts_to_embed(ids, documents))
        batch = validate.upsert_batch(ids, vectors, payloads, documents, self.dim, self.metric)
        id_keys, vecs, pay_items = batch.id_keys, batch.vectors, batch.payloads
        pay_json, docs = batch.payload_json, batch.documents
        n = len(id_keys)
        if n == 0:
            return WriteResult(self._lsn, 0)
        records = [encode_record(vecs[i], id_keys[i], pay_json[i], docs[i]) for i in range(n)]
        with self._lock.write():
            self._check_open()
            taken: list[int] = []  # free slots popped by the current attempt
            try:
                rows, lsn, next_iid = self._store.transact(
                    lambda txn: self._write_upsert(txn, id_keys, records, taken)
                )
            except BaseException:
                self._give_back(taken)
                raise
            self._lsn, self._next_iid = lsn, next_iid
            kept = self._unchanged(rows, vecs)
            self._payloads.set(rows[kept], [p for p, k in zip(pay_items, kept, strict=True) if k])
            moved = ~kept
            self._index.remove(rows[moved])
            self._payloads.clear(rows[moved])
            self._apply(
                rows[moved], vecs[moved], [p for p, m in zip(pay_items, moved, strict=True) if m]
            )
            self._written_since_ckpt += n
        if self._written_since_ckpt >= self._checkpoint_every:
            self._checkpoint_quietly()
        return WriteResult(lsn, n)

    def bulk_upsert(self, batches, on_batch=None) -> WriteResult:
        """Upsert many batches, each committed on its own (all or nothing per batch): an
        iterable of tuples (ids, vectors[, payloads[, documents]]) or dicts with those keys.
        on_batch(i, result) runs once batch i is durable. Returns the last LSN and the total
        count. A bad batch raises; the batches before it stay written."""
        self._check_writable()
        lsn, total = self._lsn, 0
        for i, batch in enumerate(batches):
            result = self.upsert(**validate.batch_args(batch))
            lsn, total = result.lsn, total + result.count
            if on_batch is not None:
                on_batch(i, result)
        return WriteResult(lsn, total)

    def _write_upsert(self, txn, id_keys, records, taken: list[int]):
        """The LMDB half of an upsert. May run again after a map resize: slots taken by an
        earlier attempt go back to the free heap first."""
        cid, st = self.config.cid, self._store
        prefix = keys.cid_prefix(cid)
        self._give_back(taken)
        next_iid = self._next_iid
        rows = np.empty(len(id_keys), dtype=np.int64)
        for i, (id_key, record) in enumerate(zip(id_keys, records, strict=True)):
            existing = txn.get(prefix + id_key, db=st.ids)
            if existing is not None:
                iid = keys.U64.unpack(existing)[0]
            else:
                if self._free:
                    iid = heapq.heappop(self._free)
                    taken.append(iid)
                else:
                    iid = next_iid
                    next_iid += 1
                txn.put(prefix + id_key, keys.U64.pack(iid), db=st.ids)
            rows[i] = iid
            txn.put(keys.record_key(cid, iid), record, db=st.records)
        lsn = self._lsn + 1
        oplog.append(txn, st.oplog, cid, lsn, oplog.OP_UPSERT, rows)
        txn.put(keys.state_key(cid), keys.STATE.pack(lsn, next_iid), db=st.meta)
        return rows, lsn, next_iid

    def _unchanged(self, rows: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """(n,) bool: rows the index already holds with exactly these vectors, whose upsert
        changes only the payload and leaves the graph alone. Call under the write lock."""
        index = self._index
        kept = np.zeros(len(rows), dtype=bool)
        inside = np.flatnonzero(rows < index.size)
        if len(inside):
            r = rows[inside]
            new = vectors[inside]
            if self.metric == "cosine":
                new = validate.normalized(new)
            kept[inside] = index.alive[r] & (index.vectors[r] == new).all(axis=1)
        return kept

    def _give_back(self, taken: list[int]) -> None:
        for iid in taken:
            heapq.heappush(self._free, iid)
        taken.clear()

    def delete(self, ids=None, filter=None) -> WriteResult:
        """Delete points by ids or by filter (exactly one). Unknown ids are ignored."""
        self._check_writable()
        if (ids is None) == (filter is None):
            raise InvalidArgumentError("delete takes either ids or filter, not both or neither")
        id_keys = None
        node = None
        if ids is not None:
            id_list, _ = validate.id_list(ids)
            id_keys = list(dict.fromkeys(encode_id(pid) for pid in id_list))
        else:
            node = filters.parse(filter)
        with self._lock.write():
            self._check_open()
            rows = None if node is None else np.flatnonzero(self._matching(node))
            rows, lsn = self._store.transact(lambda txn: self._write_delete(txn, id_keys, rows))
            if len(rows):
                self._lsn = lsn
                self._index.remove(rows)
                self._payloads.clear(rows)
                for iid in rows.tolist():
                    heapq.heappush(self._free, iid)
        return WriteResult(self._lsn, len(rows))

    def _write_delete(self, txn, id_keys, rows):
        cid, st = self.config.cid, self._store
        prefix = keys.cid_prefix(cid)
        if id_keys is not None:
            found = []
            for id_key in id_keys:
                raw = txn.get(prefix + id_key, db=st.ids)
                if raw is not None:
                    found.append(keys.U64.unpack(raw)[0])
                    txn.delete(prefix + id_key, db=st.ids)
            rows = np.array(found, dtype=np.int64)
        else:
            for iid in rows.tolist():
                raw = txn.get(keys.record_key(cid, iid), db=st.records)
                txn.delete(prefix + record_id_key(raw, self.dim), db=st.ids)
        if not len(rows):
            return rows, self._lsn
        for iid in rows.tolist():
            txn.delete(keys.record_key(cid, iid), db=st.records)
        lsn = self._lsn + 1
        oplog.append(txn, st.oplog, cid, lsn, oplog.OP_DELETE, rows)
        txn.put(keys.state_key(cid), keys.STATE.pack(lsn, self._next_iid), db=st.meta)
        return rows, lsn

    # ------------------------------------------------------------ reads

    def search(
        self, queries, k: int = 10, filter=None, with_vectors: bool = False, ef: int | None = None
    ):
        """Top-k points for one query (a list of Hit) or a batch (a list of lists), best first.
        A query is a vector, or a text when the collection has an embedder.

        Fewer than k hits come back when fewer points match; an empty collection gives [].
        ef: HNSW search breadth for this call (higher is slower and more exact); ignored while
        the collection searches exactly.
        """
        self._check_open()
        k = validate.top_k(k)
        if ef is not None:
            ef = validate.top_k(ef, "ef")
        texts = embedding.texts(queries)
        single = isinstance(queries, str) if texts is not None else np.ndim(queries) == 1
        if texts is not None:
            queries = self._embed(texts)
        q = validate.vectors(queries, self.dim, self.metric, what="query")
        if self.metric == "cosine":
            q = validate.normalized(q)
        node = filters.parse(filter)
        self._maybe_refresh()
        with self._lock.read():
            mask = None if node is None else self._payloads.mask(node, self._index.size)
            if isinstance(self._index, HnswIndex):
                scores, rows = self._index.search(q, k, mask, ef=ef)
            else:
                scores, rows = self._index.search(q, k, mask)
            records = self._fetch(np.unique(rows), with_vectors)
        hits = [
            [
                Hit(rec.id, float(s), rec.payload, rec.document, rec.vector)
                for s, r in zip(srow, rrow, strict=True)
                if (rec := records.get(int(r))) is not None
            ]
            for srow, rrow in zip(scores, rows, strict=True)
        ]
        return hits[0] if single else hits

    def _matching(self, node) -> np.ndarray:
        """(size,) bool: live points that pass the parsed filter. Call under the lock."""
        n = self._index.size
        return self._payloads.mask(node, n) & self._index.alive[:n]

    def _fetch(self, rows, with_vectors: bool) -> dict[int, Record]:
        cid, dim = self.config.cid, self.dim
        out = {}
        with self._store.read() as txn:
            for iid in rows.tolist():
                raw = txn.get(keys.record_key(cid, iid), db=self._store.records)
                if raw is not None:
                    out[iid] = decode_record(raw, dim, with_vectors)
        return out

    def get(self, ids, with_vectors: bool = True):
        """Records by id. One id gives a Record (PointNotFoundError if absent); a list gives the
        records that exist, in the order asked."""
        self._check_open()
        id_list, single = validate.id_list(ids)
        id_keys = [encode_id(pid) for pid in id_list]
        self._maybe_refresh()
        prefix = keys.cid_prefix(self.config.cid)
        out = []
        with self._lock.read(), self._store.read() as txn:
            for id_key in id_keys:
                raw = txn.get(prefix + id_key, db=self._store.ids)
                if raw is None:
                    continue
                iid = keys.U64.unpack(raw)[0]
                rec = txn.get(keys.record_key(self.config.cid, iid), db=self._store.records)
                out.append(decode_record(rec, self.dim, with_vectors))
        if single:
            if not out:
                raise PointNotFoundError(f"no point with id {id_list[0]!r} in {self.name!r}")
            return out[0]
        return out

    def count(self, filter=None) -> int:
        self._check_open()
        node = filters.parse(filter)
        self._maybe_refresh()
        with self._lock.read():
            if node is None:
                return len(self._index)
            return int(np.count_nonzero(self._matching(node)))

    def scroll(self, filter=None, limit: int = 100, after=None, with_vectors: bool = False):
        """A page of records in id order (ints before strings), starting after id `after`.

        Returns (records, next_after); next_after is None on the last page.
        """
        self._check_open()
        limit = validate.limit(limit)
        node = filters.parse(filter)
        self._maybe_refresh()
        prefix = keys.cid_prefix(self.config.cid)
        start = prefix if after is None else prefix + encode_id(after)
        out = []
        with self._lock.read(), self._store.read() as txn:
            n = self._index.size
            mask = None if node is None else self._payloads.mask(node, n)
            cursor = txn.cursor(db=self._store.ids)
            if cursor.set_range(start):
                for key, raw in cursor:
                    if key[:4] != prefix:
                        break
                    if after is not None and key == start:
                        continue
                    iid = keys.U64.unpack(raw)[0]
                    if mask is not None and not (iid < n and mask[iid]):
                        continue
                    rec = txn.get(keys.record_key(self.config.cid, iid), db=self._store.records)
                    out.append(decode_record(rec, self.dim, with_vectors))
                    if len(out) > limit:
                        break
        if len(out) > limit:
            return out[:limit], out[limit - 1].id
        return out, None

    # ------------------------------------------------------------ state checks

    def _maybe_refresh(self) -> None:
        if self._read_only:
            self.refresh()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"collection {self.name!r} was dropped or its database closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise ReadOnlyError(f"collection {self.name!r} was opened read-only")

    def _close(self, save: bool = True) -> None:
        """Checkpoint what the log holds beyond the last checkpoint (save=True), then close."""
        if save and not self._read_only and not self._closed and self._lsn != self._ckpt_lsn:
            self._checkpoint_quietly()
        with self._lock.write():
            self._closed = True


def scan(col, filter=None, with_vectors: bool = False, page: int = 1000):
    """Every record of a collection (embedded or remote) that passes filter, in id order,
    fetched a page at a time."""
    after = None
    while True:
        records, after = col.scroll(filter, limit=page, after=after, with_vectors=with_vectors)
        yield from records
        if after is None:
            return


def _to_hnsw(flat, config) -> HnswIndex:
    """The same rows in an HNSW index (the flat arena is copied, then linked)."""
    index = HnswIndex(flat.dim, flat.metric, config)
    rows = np.flatnonzero(flat.alive[: flat.size]).astype(np.int64)
    index.set(rows, flat.vectors[rows])
    return index


def _read_state(txn, store, cid: int) -> tuple[int, int]:
    raw = txn.get(keys.state_key(cid), db=store.meta)
    return keys.STATE.unpack(raw) if raw else (0, 0)
