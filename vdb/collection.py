"""One collection: the write path (validate -> LMDB transaction -> apply) and the read path
(filter mask -> index -> records)."""

import heapq
import json
import threading
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np

from vdb import embedding, filters, validate
from vdb._rwlock import RWLock
from vdb.collection_text import TextIndexed
from vdb.errors import (
    ClosedError,
    DataCorruptedError,
    InvalidArgumentError,
    PointNotFoundError,
    ReadOnlyError,
    shown,
)
from vdb.ids import IdArray
from vdb.index import checkpoint
from vdb.index.config import MAX_EF, IndexConfig
from vdb.index.hnsw import HnswIndex
from vdb.linker import Linker
from vdb.results import Hit, SearchResults, Selection
from vdb.storage import keys, oplog, values
from vdb.storage.codec import (
    decode_record,
    encode_id,
    encode_record,
    open_record,
    record_fields,
    record_id_key,
    record_payload,
    record_vector,
    stored_id,
)
from vdb.storage.seal import is_sound, seal
from vdb.text import hybrid
from vdb.text.config import TextConfig

CHECKPOINT_DIR = "index"
MAX_DAMAGE_LISTED = 100  # damage messages a collection keeps (the count goes on)


@dataclass(frozen=True)
class CollectionConfig:
    name: str
    dim: int  # vector dimension
    metric: str  # cosine | dot | l2
    cid: int  # internal collection number, the key prefix of its records
    created_at: float  # unix time
    index: IndexConfig = IndexConfig()  # flat, HNSW, or flat until a size threshold
    embedder: str | None = None  # model that embeds documents and text queries
    text: TextConfig | None = None  # the keyword index: analyzer, and the text it indexes

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "CollectionConfig":
        """From stored JSON; DataCorruptedError when it is not a config this vdb wrote."""
        try:
            data = json.loads(raw)
            data["index"] = IndexConfig.parse(data.get("index"))
            data["text"] = TextConfig.parse(data.get("text"))
            config = cls(**data)
            validate.collection_name(config.name)
            validate.dimension(config.dim)
            validate.metric(config.metric)
        except (ValueError, TypeError, KeyError) as exc:
            raise DataCorruptedError(f"a stored collection config is damaged: {exc}") from None
        return config


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

    def _check_matches(self, dim, metric, text=None) -> None:
        """For get_or_create: the existing collection must have this dim (when given) and
        metric, and this keyword index config (when given)."""
        if (dim is not None and self.dim != dim) or self.metric != metric:
            raise InvalidArgumentError(
                f"collection {self.name!r} exists with dim={self.dim}, metric={self.metric!r}, "
                f"not dim={dim}, metric={metric!r}"
            )
        wanted = TextConfig.parse(text)
        if wanted is not None and wanted != self.config.text:
            raise InvalidArgumentError(
                f"collection {self.name!r} exists with text={self.config.text}, not {wanted}; "
                "enable_text() changes it"
            )


class Collection(ConfigView, TextIndexed):
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
        self._ckpt_lock = threading.RLock()  # held while a checkpoint is taken
        self._ckpt_start = threading.Lock()  # held while an automatic one is started
        self._ckpt_thread: threading.Thread | None = None
        self._damage: list[str] = []  # what reads found damaged; writes are refused then
        self._damage_count = 0
        self._linker = Linker(config.name)  # links buffered points into the HNSW graph
        if not read_only:
            for stale in self._ckpt_path.parent.glob(f"{self._ckpt_path.name}.tmp-*"):
                stale.unlink(missing_ok=True)  # left by a writer killed mid-checkpoint
        self._text_init(store.path / CHECKPOINT_DIR)
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
            hnsw = isinstance(self._index, HnswIndex)
            buffered = self._index.n_buffered if hnsw else 0
            text = self._text_info()
        return {
            **asdict(self.config),
            "count": count,
            "lsn": self._lsn,
            "index_in_use": "hnsw" if hnsw else "flat",
            "buffered": buffered,  # points searched exactly until linked into the graph
            "loaded_from": self.loaded_from,  # "checkpoint" (+ op-log replay) or "records"
            "damage": list(self._damage),  # damaged records found (then the handle is read-only)
            "text_index": text,  # the keyword index's figures and where it was loaded from
        }

    # ------------------------------------------------------------ loading

    def _load(self) -> None:
        """Build the in-memory state: from the checkpoint plus newer op-log entries when the
        checkpoint is verified sound and agrees with LMDB, otherwise from every record in
        LMDB (with a warning saying why when a checkpoint was there but not used)."""
        cid = self.config.cid
        self._text = None  # loaded once the vectors are (_load_text)
        owner = checkpoint.stamp(self._store.db_id, self.config)
        try:
            ckpt, why = checkpoint.load(self._ckpt_path, owner), None
        except checkpoint.Unsound as exc:
            ckpt, why = None, str(exc)
        with self._store.read() as txn:
            lsn, next_iid, count = values.get_state(txn, self._store, cid)
            self._next_iid, self._count = next_iid, count
            self.loaded_from = "records"
            if ckpt is not None:
                try:
                    self._from_checkpoint(txn, ckpt, lsn, count)
                    self.loaded_from = "checkpoint"
                except (checkpoint.Unsound, DataCorruptedError) as exc:
                    why = str(exc)
                except (ValueError, IndexError, KeyError, TypeError) as exc:
                    why = f"replaying the op log over it failed ({type(exc).__name__}: {exc})"
            if self.loaded_from == "records":
                self._rebuild(txn, count)
                self._ckpt_lsn, self._ckpt_buffered = -1, 0
                self._lsn = lsn
            self._load_text(txn, lsn)
        if why is not None:
            warnings.warn(
                f"the index checkpoint of collection {self.name!r} was not used ({why}); "
                "it was rebuilt from the records",
                RuntimeWarning,
                stacklevel=4,
            )
        used = np.zeros(next_iid, dtype=np.bool_)
        n = min(self._index.size, next_iid)
        used[:n] = self._index.alive[:n]
        self._free = np.flatnonzero(~used).tolist()  # a heap of reusable internal ids
        if self.config.index.wants_hnsw(self._index):
            self._index = _to_hnsw(self._index, self.config.index.hnsw)
        self._link_later()

    def _link_later(self) -> None:
        """Have the linker link what the HNSW index holds buffered."""
        if isinstance(self._index, HnswIndex) and self._index.n_buffered:
            self._linker.wake(self._index)

    def _from_checkpoint(self, txn, ckpt, lsn: int, count: int) -> None:
        """Adopt a verified checkpoint and replay the op log over it; checkpoint.Unsound when
        its stamps or the result disagree with LMDB (the caller then rebuilds)."""
        index, payloads, ids, ckpt_lsn = ckpt
        if ckpt_lsn > lsn:
            raise checkpoint.Unsound(f"it covers LSN {ckpt_lsn}, beyond the collection's {lsn}")
        if index.size > self._next_iid:
            raise checkpoint.Unsound(
                f"it holds {index.size} slots where the collection has used {self._next_iid}"
            )
        self._index, self._payloads, self._lsn = index, payloads, ckpt_lsn
        self._ids = self._ids_from_table(txn, index.size) if ids is None else ids
        self._ckpt_lsn = ckpt_lsn
        self._ckpt_buffered = index.n_buffered if isinstance(index, HnswIndex) else 0
        if not self._replay_log(txn, lsn):
            raise checkpoint.Unsound(
                f"the op log does not continue it (from LSN {ckpt_lsn + 1} to {lsn})"
            )
        if len(self._index) != count:
            raise checkpoint.Unsound(
                f"it holds {len(self._index)} points after replay where the collection has {count}"
            )

    def _rebuild(self, txn, count: int) -> None:
        """Index every record in LMDB. A record that fails its checks is left out and listed
        as damage (the collection is then read-only)."""
        cid, dim = self.config.cid, self.dim
        self._index = self.config.index.make(dim, self.metric)
        self._payloads = filters.PayloadIndex()
        self._ids = IdArray()
        iids, vecs, pays, ids = [], [], [], []
        prefix = keys.cid_prefix(cid)
        cursor = txn.cursor(db=self._store.records)
        if cursor.set_range(prefix):
            for key, raw in cursor:
                if key[:4] != prefix:
                    if is_sound(key, raw):
                        break  # the next collection's records
                    self._note_damage(
                        DataCorruptedError(f"a record key is damaged ({bytes(key[:16]).hex()})")
                    )
                    continue
                try:
                    if len(key) != len(prefix) + keys.U64.size:
                        raise DataCorruptedError(f"a record key is damaged ({bytes(key).hex()})")
                    iid = keys.U64.unpack(key[4:])[0]
                    body = open_record(key, raw, dim)
                    if iid >= self._next_iid:
                        raise DataCorruptedError(
                            f"{keys.describe_record(key)} lies beyond the collection's "
                            f"{self._next_iid} slots"
                        )
                    pay = record_payload(body, dim, key)
                    pid = stored_id(record_id_key(body, dim))
                except DataCorruptedError as exc:
                    self._note_damage(exc)
                    continue
                iids.append(iid)
                vecs.append(record_vector(body, dim))
                pays.append(pay)
                ids.append(pid)
        if len(iids) != count and not self._damage:
            self._note_damage(
                DataCorruptedError(
                    f"collection {self.name!r} counts {count} points but holds {len(iids)} records"
                )
            )
        rows = np.array(iids, dtype=np.int64)
        vectors = np.array(vecs, dtype=np.float32).reshape(len(iids), dim)  # (n, dim)
        self._apply(rows, vectors, pays)
        self._ids.set(rows, ids)

    def _ids_from_table(self, txn, size: int) -> IdArray:
        """The id array from the id map (for a checkpoint written before checkpoints held
        it)."""
        prefix = keys.cid_prefix(self.config.cid)
        rows, ids = [], []
        cursor = txn.cursor(db=self._store.ids)
        if cursor.set_range(prefix):
            for key, raw in cursor:
                if key[:4] != prefix:
                    self._past_the_end(key, raw)
                    break
                rows.append(self._iid(key, raw))
                ids.append(stored_id(key[4:]))
        out = IdArray(size)
        out.set(np.array(rows, dtype=np.int64), ids)
        return out

    def _past_the_end(self, key: bytes, raw) -> None:
        """A scan of this collection's keys met a key of another collection: that must be a
        sound entry, not one of ours whose key bytes were damaged (which would end the scan
        early and hide the rest)."""
        if not is_sound(key, raw):
            exc = DataCorruptedError(
                f"a key of collection {self.name!r} is damaged ({bytes(key[:16]).hex()})"
            )
            self._note_damage(exc)
            raise exc

    def _note_damage(self, exc: DataCorruptedError) -> None:
        self._damage_count += 1
        if len(self._damage) < MAX_DAMAGE_LISTED:
            self._damage.append(str(exc))

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
        if isinstance(self._index, HnswIndex):
            self._index.set(rows, vectors, link=False)
        else:
            self._index.set(rows, vectors)
        self._payloads.set(rows, payloads)
        if self.config.index.wants_hnsw(self._index):
            self._index = _to_hnsw(self._index, self.config.index.hnsw)
        self._link_later()

    def refresh(self) -> None:
        """Bring a read-only handle up to date with writes made by the writer since it opened,
        by replaying newer op-log entries."""
        self._check_open()
        with self._store.read() as txn:
            lsn = values.get_state(txn, self._store, self.config.cid)[0]
        if lsn <= self._lsn:
            return
        with self._lock.write():
            with self._store.read() as txn:
                lsn, self._next_iid, self._count = values.get_state(
                    txn, self._store, self.config.cid
                )
                try:
                    caught_up = self._replay_log(txn, lsn)
                except DataCorruptedError:
                    caught_up = False
            if not caught_up:  # the log no longer reaches back to our state: load again
                self._load()

    def compact(self) -> int:
        """Unlink deleted points from the HNSW graph now (it also happens on its own once they
        exceed a share of the live points), and merge the keyword index's postings into one
        segment without those of replaced or deleted texts. Returns how many points were
        unlinked."""
        self._check_writable()
        with self._lock.write():
            if self._text is not None:
                self._text.merge_all()
            return self._index.compact() if isinstance(self._index, HnswIndex) else 0

    def checkpoint(self) -> int:
        """Write the index, payload columns and id array to a checkpoint file, then drop the
        op-log entries it covers. Returns the LSN covered. Writes wait only while the state is
        copied, not while the file is written."""
        self._check_writable()
        with self._ckpt_lock:  # one checkpoint at a time
            with self._lock.read():
                lsn, stale = self._lsn, self._stale()
                if stale:
                    hnsw = isinstance(self._index, HnswIndex)
                    with self._index.paused() if hnsw else nullcontext():  # one graph state
                        taken = checkpoint.snapshot(self._index, self._payloads, self._ids)
                        buffered = self._index.n_buffered if hnsw else 0
                    self._written_since_ckpt = 0
                text = self._text_snapshot()
            if stale:
                owner = checkpoint.stamp(self._store.db_id, self.config)
                checkpoint.save(self._ckpt_path, taken, lsn, owner)
                self._ckpt_lsn, self._ckpt_buffered = lsn, buffered
            self._text_save(text, lsn)
            self._store.transact(
                lambda txn: oplog.truncate(txn, self._store.oplog, self.config.cid, lsn)
            )
        return lsn

    def _stale(self) -> bool:
        """Whether the checkpoint on disk lags: writes since, or points the linker has linked
        since (a checkpoint taken while they were buffered would have them linked again)."""
        buffered = self._index.n_buffered if isinstance(self._index, HnswIndex) else 0
        return self._lsn != self._ckpt_lsn or buffered < self._ckpt_buffered

    def _checkpoint_later(self) -> None:
        """An automatic checkpoint on a thread of its own, so the write that asked for it is
        acknowledged without waiting for the file."""
        with self._ckpt_start:
            if self._ckpt_thread is not None and self._ckpt_thread.is_alive():
                return
            self._ckpt_thread = threading.Thread(
                target=self._checkpoint_quietly, name=f"vdb-checkpoint-{self.name}", daemon=True
            )
            self._ckpt_thread.start()

    def _checkpoint_quietly(self) -> None:
        """A checkpoint after acknowledged writes or on close: failing to write it (a full
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
        except (ClosedError, DataCorruptedError):
            pass  # closed or damaged meanwhile: nothing to checkpoint

    def _replay(self, txn, op: int, iids: np.ndarray) -> None:
        if len(iids) and (iids.min() < 0 or iids.max() >= self._next_iid):
            raise DataCorruptedError(
                f"an op-log entry of collection {self.name!r} names slots beyond its "
                f"{self._next_iid}"
            )
        if self._text is not None:
            self._text_replay(txn, self._text, op, iids)
        self._index.remove(iids)
        self._payloads.clear(iids)
        self._ids.clear(iids)
        if op != oplog.OP_UPSERT:
            return
        cid, dim = self.config.cid, self.dim
        rows, vecs, pays, ids = [], [], [], []
        for iid in iids.tolist():
            key = keys.record_key(cid, iid)
            raw = txn.get(key, db=self._store.records)
            if raw is None:  # deleted by a later entry
                continue
            body = open_record(key, raw, dim)
            rows.append(iid)
            vecs.append(record_vector(body, dim))
            pays.append(record_payload(body, dim, key))
            ids.append(stored_id(record_id_key(body, dim)))
        vectors = np.array(vecs, np.float32).reshape(-1, dim)  # (n, dim)
        rows = np.array(rows, dtype=np.int64)
        self._apply(rows, vectors, pays)
        self._ids.set(rows, ids)

    # ------------------------------------------------------------ writes

    def upsert(self, ids, vectors=None, payloads=None, documents=None) -> WriteResult:
        """Insert or replace points. All or nothing: a bad item rejects the whole batch.
        Without vectors, a collection with an embedder embeds the documents."""
        with self._linker.writing():  # linking leaves this call a core
            return self._upsert(ids, vectors, payloads, documents)

    def _upsert(self, ids, vectors, payloads, documents) -> WriteResult:
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
        terms = self._text_terms(pay_items, docs)  # analyzed before the lock is taken
        with self._lock.write():
            self._check_open()
            taken: list[int] = []  # free slots popped by the current attempt
            try:
                rows, lsn, next_iid, count = self._store.transact(
                    lambda txn: self._write_upsert(txn, id_keys, records, taken)
                )
            except BaseException:
                self._give_back(taken)
                raise
            self._lsn, self._next_iid, self._count = lsn, next_iid, count
            self._ids.set(rows, [pid if isinstance(pid, str) else int(pid) for pid in batch.ids])
            self._text_set(rows, terms, pay_items, docs)
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
            self._checkpoint_later()
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
        next_iid, count = self._next_iid, self._count
        rows = np.empty(len(id_keys), dtype=np.int64)
        new_ids, puts = [], []  # (key, sealed value) for the id map and the records
        for i, (id_key, record) in enumerate(zip(id_keys, records, strict=True)):
            full = prefix + id_key
            iid = values.get_iid(txn, st, full)
            if iid is None:
                if self._free:
                    iid = heapq.heappop(self._free)
                    taken.append(iid)
                else:
                    iid = next_iid
                    next_iid += 1
                count += 1
                new_ids.append(values.iid_entry(full, iid))
            rows[i] = iid
            key = prefix + keys.U64.pack(iid)
            puts.append((key, seal(key, record)))
        txn.cursor(db=st.ids).putmulti(new_ids)
        txn.cursor(db=st.records).putmulti(puts)
        lsn = self._lsn + 1
        oplog.append(txn, st.oplog, cid, lsn, oplog.OP_UPSERT, rows)
        values.put_state(txn, st, cid, lsn, next_iid, count)
        return rows, lsn, next_iid, count

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
                self._count -= len(rows)
                self._index.remove(rows)
                self._payloads.clear(rows)
                self._ids.clear(rows)
                self._text_clear(rows)
                for iid in rows.tolist():
                    heapq.heappush(self._free, iid)
        return WriteResult(self._lsn, len(rows))

    def _write_delete(self, txn, id_keys, rows):
        cid, st = self.config.cid, self._store
        prefix = keys.cid_prefix(cid)
        if id_keys is not None:
            found = []
            for id_key in id_keys:
                iid = values.get_iid(txn, st, prefix + id_key)
                if iid is not None:
                    self._stored_id_key(txn, iid, id_key)
                    found.append(iid)
                    txn.delete(prefix + id_key, db=st.ids)
            rows = np.array(found, dtype=np.int64)
        else:
            for iid in rows.tolist():
                txn.delete(prefix + self._stored_id_key(txn, iid), db=st.ids)
        if not len(rows):
            return rows, self._lsn
        for iid in rows.tolist():
            txn.delete(keys.record_key(cid, iid), db=st.records)
        lsn = self._lsn + 1
        oplog.append(txn, st.oplog, cid, lsn, oplog.OP_DELETE, rows)
        values.put_state(txn, st, cid, lsn, self._next_iid, self._count - len(rows))
        return rows, lsn

    def _stored_id_key(self, txn, iid: int, expected: bytes | None = None) -> bytes:
        """The encoded external id of the record in slot iid, checked against the id map's
        (DataCorruptedError if the record is missing or names another id)."""
        key = keys.record_key(self.config.cid, iid)
        raw = txn.get(key, db=self._store.records)
        if raw is None:
            raise DataCorruptedError(f"the id map points at {keys.describe_record(key)}, missing")
        id_key = record_id_key(open_record(key, raw, self.dim), self.dim)
        if expected is not None and id_key != expected:
            raise DataCorruptedError(f"{keys.describe_record(key)} holds another id than mapped")
        return id_key

    # ------------------------------------------------------------ reads

    def search(
        self,
        queries=None,
        k: int = 10,
        filter=None,
        with_vectors: bool = False,
        ef: int | None = None,
        with_payload: bool | list = True,
        with_document: bool = True,
        text=None,
        fusion: str = "convex",
        dense_weight: float | None = None,
    ):
        """Top-k points for one query (a list of Hit) or a batch (SearchResults: a list of
        lists of Hit that also holds ids and scores as arrays), best first. A query is a
        vector, or a text when the collection has an embedder.

        text (a string, or a list of them for a batch) searches the keyword index (see
        enable_text): alone, a BM25 keyword search; with queries, a hybrid search that fuses
        the best max(k, 100) of each half by fusion, "convex" (min-max normalized scores,
        dense_weight 0.4 by default), "rrf" (reciprocal rank fusion) or "dbsf"
        (distribution-based score fusion, dense_weight 0.5 by default). Hit scores are then
        BM25 scores or fused scores. The filter applies to both halves.

        Fewer than k hits come back when fewer points match; an empty collection gives [].
        ef: HNSW search breadth for this call (higher is slower and more exact); ignored while
        the collection searches exactly. with_payload (True, False, or a list of top-level
        payload keys to keep), with_document and with_vectors say what comes back beside ids
        and scores; records are read only when one of them asks for it.
        """
        if (  # one vector, ids and scores only: the call latency is measured by
            with_payload is False
            and with_document is False
            and with_vectors is False
            and filter is None
            and type(queries) is np.ndarray
            and queries.ndim == 1
            and type(k) is int
            and 0 < k
            and (ef is None or (type(ef) is int and 0 < ef <= MAX_EF))
            and not self._read_only
            and not self._closed
            and text is None
            and dense_weight is None
            and fusion == "convex"
        ):
            return self._bare(queries, k, ef)
        want = Selection.parse(with_payload, with_document, with_vectors)
        if text is not None or queries is None:
            if text is None:
                raise InvalidArgumentError("search needs queries, text, or both")
            return self._text_search(queries, text, k, filter, ef, fusion, dense_weight, want)
        if fusion != "convex" or dense_weight is not None:
            hybrid.checked(fusion, dense_weight)
            raise InvalidArgumentError("fusion and dense_weight apply to hybrid search (text=...)")
        single, q, k, node, ef = self._query(queries, k, filter, ef)
        with self._lock.read():
            scores, rows = self._top(q, k, node, ef)
            if single and not want.reads:
                return self._bare_hits(scores, rows)
            ids = self._ids.lookup(rows)
            raws, missing = self._read_rows(rows) if want.reads else (None, False)
        results = self._results(rows, ids, scores, raws, missing, want)
        return results[0] if single else results

    def _bare(self, query: np.ndarray, k: int, ef: int | None) -> list[Hit]:
        """search() of one vector for ids and scores alone, its arguments but the vector
        checked by the caller."""
        q = validate.vectors(query, self.dim, self.metric, what="query")
        if self.metric == "cosine":
            q = q / np.sqrt(np.vecdot(q, q))[:, None]
        with self._lock.read():
            scores, rows = self._top(q, k, None, ef)
            return self._bare_hits(scores, rows)

    def _bare_hits(self, scores: np.ndarray, rows: np.ndarray) -> list[Hit]:
        """The Hits of one query's (1, k) scores and rows, without payloads or documents.
        Call under the lock."""
        row = rows[0]
        n = len(row)
        if n and row[-1] < 0:  # fewer hits than k: they come first
            n = int(np.count_nonzero(row >= 0))
        nones = (None,) * n
        return list(
            map(Hit, self._ids.take(row[:n]).tolist(), scores[0, :n].tolist(), nones, nones)
        )

    def _read_rows(self, rows: np.ndarray) -> tuple[dict, bool]:
        """The stored bytes of the records at rows (nq, k), -1 for none: ({row: bytes},
        whether any is missing), in one read transaction; rows whose record is gone (a
        read-only handle behind its writer) are left out. Checks wait for the decoding
        (_fields). Call under the lock."""
        uniq = np.unique(rows[rows >= 0])
        prefix = keys.cid_prefix(self.config.cid)
        packed = uniq.astype(">u8").tobytes()
        db = self._store.records
        found = {}
        with self._store.read() as txn:
            get = txn.get
            for i, row in enumerate(uniq.tolist()):
                raw = get(prefix + packed[8 * i : 8 * i + 8], db=db)
                if raw is not None:
                    found[row] = raw
        missing = len(found) < len(uniq)
        if self._read_only:  # the writer may have given a slot to another id since our refresh
            for row, raw in list(found.items()):
                key = prefix + keys.U64.pack(row)
                try:
                    id_key = record_id_key(open_record(key, raw, self.dim), self.dim)
                except DataCorruptedError as exc:
                    self._note_damage(exc)
                    raise
                if id_key != encode_id(self._ids.one(row)):
                    del found[row]
                    missing = True
        return found, missing

    def _results(self, rows, ids, scores, raws, missing: bool, want: Selection) -> SearchResults:
        found = rows >= 0
        if missing:
            found &= np.isin(rows, np.fromiter(raws, np.int64, len(raws)))
            order = np.argsort(~found, axis=1, kind="stable")  # hits first in every row
            rows, ids, scores, found = (
                np.take_along_axis(a, order, axis=1) for a in (rows, ids, scores, found)
            )
            ids[~found] = None if ids.dtype == object else -1
        counts = found.sum(axis=1).astype(np.int64)
        scores = np.where(found, scores, np.float32(np.nan)).astype(np.float32, copy=False)
        fields = None if raws is None else self._fields(rows, counts, raws, want)
        return SearchResults(ids, scores, counts, fields)

    def _fields(self, rows, counts, raws: dict, want: Selection):
        """fields(q) for SearchResults: the payloads, documents and vectors of query q's hits,
        each record checked and decoded once (damage raises DataCorruptedError)."""
        decoded: dict = {}
        cid, dim = self.config.cid, self.dim

        def one(row: int):
            rec = decoded.get(row)
            if rec is None:
                key = keys.record_key(cid, row)
                try:
                    payload, document, vector = record_fields(key, raws[row], dim, want.vectors)
                except DataCorruptedError as exc:
                    self._note_damage(exc)
                    raise
                rec = decoded[row] = (want.cut(payload), document, vector)
            return rec

        def fields(q: int):
            recs = [one(row) for row in rows[q, : counts[q]].tolist()]
            return (
                [r[0] for r in recs] if want.payload else None,
                [r[1] for r in recs] if want.document else None,
                [r[2] for r in recs] if want.vectors else None,
            )

        return fields

    def _query(self, queries, k, filter, ef):
        """The checked arguments of a search: (single, query rows (n, dim) float32 normalized
        for cosine, k, parsed filter, ef). Text queries are embedded here."""
        self._check_open()
        k = validate.top_k(k)
        if ef is not None:
            ef = validate.top_k(ef, "ef", MAX_EF)
        if type(queries) is np.ndarray:
            texts, single = None, queries.ndim == 1
        else:
            texts = embedding.texts(queries)
            single = isinstance(queries, str) if texts is not None else np.ndim(queries) == 1
        if texts is not None:
            queries = self._embed(texts)
        q = validate.vectors(queries, self.dim, self.metric, what="query")
        if self.metric == "cosine":
            q = q / np.sqrt(np.vecdot(q, q))[:, None]  # (nq, dim), non-zero rows checked
        node = None if filter is None else filters.parse(filter)
        if self._read_only:
            self.refresh()
        return single, q, k, node, ef

    def _top(self, q, k: int, node, ef):
        """(scores, rows), each (nq, k'), of the index for checked queries. Call under the
        lock."""
        mask = None if node is None else self._payloads.mask(node, self._index.size)
        if isinstance(self._index, HnswIndex):
            return self._index.search(q, k, mask, ef=ef)
        return self._index.search(q, k, mask)

    def _matching(self, node) -> np.ndarray:
        """(size,) bool: live points that pass the parsed filter. Call under the lock."""
        n = self._index.size
        return self._payloads.mask(node, n) & self._index.alive[:n]

    def _record(self, txn, iid: int, with_vectors: bool, id_key=None):
        """The checked record in slot iid (that must hold id_key when given). Damage raises
        DataCorruptedError, and the collection is read-only from then on."""
        key = keys.record_key(self.config.cid, iid)
        raw = txn.get(key, db=self._store.records)
        try:
            if raw is None:
                raise DataCorruptedError(
                    f"the id map points at {keys.describe_record(key)}, missing"
                )
            rec = decode_record(key, raw, self.dim, with_vectors)
            if id_key is not None and encode_id(rec.id) != id_key:
                raise DataCorruptedError(
                    f"{keys.describe_record(key)} holds another id than mapped"
                )
        except DataCorruptedError as exc:
            self._note_damage(exc)
            raise
        return rec

    def _iid(self, id_key: bytes, raw) -> int:
        try:
            return values.iid_of(id_key, raw)
        except DataCorruptedError as exc:
            self._note_damage(exc)
            raise

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
                iid = self._iid(prefix + id_key, raw)
                out.append(self._record(txn, iid, with_vectors, id_key))
        if single:
            if not out:
                raise PointNotFoundError(f"no point with id {shown(id_list[0])} in {self.name!r}")
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
                        self._past_the_end(key, raw)
                        break
                    if after is not None and key == start:
                        continue
                    iid = self._iid(key, raw)
                    if mask is not None and not (iid < n and mask[iid]):
                        continue
                    out.append(self._record(txn, iid, with_vectors, key[4:]))
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
        if self._damage:
            raise DataCorruptedError(
                f"collection {self.name!r} has damaged records ({self._damage[0]}; "
                f"{self._damage_count} in all): it is read-only until `vdb check --repair` "
                "removes them"
            )

    def _close(self, save: bool = True) -> None:
        """Checkpoint what the log holds beyond the last checkpoint (save=True), then close."""
        self._linker.stop()
        thread = self._ckpt_thread
        if thread is not None:
            thread.join()
        stale = self._stale() or self._text_stale()
        if save and not (self._read_only or self._closed or self._damage) and stale:
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
    """The same rows in an HNSW index (the flat arena is copied; the rows are buffered for
    the linker)."""
    index = HnswIndex(flat.dim, flat.metric, config)
    rows = np.flatnonzero(flat.alive[: flat.size]).astype(np.int64)
    index.set(rows, flat.vectors[rows], link=False)
    return index
