"""The set of collections in one data directory."""

import threading
import time

from vdb import embedding, validate
from vdb._version import __version__
from vdb.collection import CHECKPOINT_DIR, Collection, CollectionConfig
from vdb.errors import (
    ClosedError,
    CollectionExistsError,
    CollectionNotFoundError,
    DataCorruptedError,
    InvalidArgumentError,
    ReadOnlyError,
    shown,
)
from vdb.index import checkpoint
from vdb.index.config import IndexConfig
from vdb.storage import Store, keys, oplog, values
from vdb.storage.env import DEFAULT_MAP_SIZE
from vdb.storage.seal import is_sound
from vdb.text.config import TextConfig

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
# Agent memory embeds a question on every recall: its default multiplies in integers (about
# half the time of the float32 model per question, vectors at cosine 0.9995 to its).
MEMORY_EMBEDDER = f"{DEFAULT_EMBEDDER}:q8_0"


class Database:
    """An embedded database: a directory holding one LMDB environment.

    Example:
        >>> import vdb, tempfile
        >>> with vdb.open(tempfile.mkdtemp()) as db:
        ...     col = db.create_collection("notes", dim=3, metric="l2")
        ...     db.list_collections()
        ['notes']
    """

    def __init__(
        self,
        path,
        read_only: bool = False,
        map_size: int = DEFAULT_MAP_SIZE,
        checkpoint_every: int = 100_000,
    ):
        """checkpoint_every: points written to a collection between automatic index
        checkpoints (the index is also checkpointed on close)."""
        self._store = Store(path, read_only=read_only, map_size=map_size)
        self.read_only = read_only
        if self._store.upgraded_from < keys.SCHEMA_VERSION:  # index files of the old schema
            for old in (self.path / CHECKPOINT_DIR).glob("c*.ckpt"):
                old.unlink(missing_ok=True)
        self._checkpoint_every = validate.top_k(checkpoint_every, "checkpoint_every")
        self._collections: dict[str, Collection] = {}
        self._damaged_configs: list[str] = []
        self._lock = threading.Lock()

    @property
    def path(self):
        return self._store.path

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r}, read_only={self.read_only})"

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: str = "cosine",
        index=None,
        embedder=None,
        text=None,
    ) -> Collection:
        """Create a collection. metric: "cosine" (default), "dot" or "l2".

        index: "auto" (default: exact search until hnsw_threshold points, then HNSW), "flat",
        "hnsw", or a dict such as {"kind": "auto", "hnsw_threshold": 50000, "M": 32,
        "ef_construction": 200, "ef_search": 100, "seed": 0}.
        embedder: a model name ("all-MiniLM-L6-v2", a .gguf path) or an embed.Embedder; then
        upsert takes documents without vectors, search takes text, and dim may be left out.
        The model name is recorded, so the collection embeds again after a reopen.
        text: a keyword (BM25) index for search(text=...): an analyzer name ("en", see
        vdb.text.analyzer.NAMES), True for "en", or a dict {"analyzer": "en", "field": None}
        where field None indexes the documents and a payload key (dotted for nested keys)
        indexes that field's strings. None (default): no keyword index (see
        Collection.enable_text).
        """
        self._check_writable()
        name = validate.collection_name(name)
        spec, model = embedding.resolve(embedder)
        if spec is not None and model is None:
            model = embedding.load(spec)
        dim = embedding.dimension(dim, model)
        if dim is None:
            raise InvalidArgumentError("dim is required for a collection without an embedder")
        dim = validate.dimension(dim)
        metric = validate.metric(metric)
        index_config = IndexConfig.parse(index)
        text_config = TextConfig.parse(text)

        def create(txn):
            st = self._store
            if txn.get(keys.collection_key(name), db=st.meta) is not None:
                raise CollectionExistsError(f"collection {shown(name)} already exists")
            cid = values.get_number(txn, st, keys.KEY_NEXT_CID, 1)
            config = CollectionConfig(
                name, dim, metric, cid, time.time(), index_config, spec, text_config
            )
            values.put_number(txn, st, keys.KEY_NEXT_CID, cid + 1)
            values.put_config(txn, st, name, config.to_json())
            values.put_state(txn, st, cid, 0, 0, 0)
            return config

        with self._lock:
            config = self._store.transact(create)
            col = self._collections[name] = Collection(
                self._store, config, self.read_only, self._checkpoint_every, embedder=model
            )
        return col

    def get_collection(self, name: str) -> Collection:
        self._check_open()
        with self._lock:
            col = self._collections.get(name)
            if col is not None:
                return col
            with self._store.read() as txn:
                raw = values.get_config(txn, self._store, name) if isinstance(name, str) else None
            if raw is None:
                raise CollectionNotFoundError(f"no collection named {shown(name)}")
            col = Collection(
                self._store, CollectionConfig.from_json(raw), self.read_only, self._checkpoint_every
            )
            self._collections[name] = col
            return col

    def get_or_create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: str = "cosine",
        index=None,
        embedder=None,
        text=None,
    ) -> Collection:
        """The existing collection (its dim and metric must match, and its keyword index
        config when text is given), or a new one."""
        try:
            col = self.get_collection(name)
        except CollectionNotFoundError:
            return self.create_collection(name, dim, metric, index, embedder, text)
        col._check_matches(dim, metric, text)
        return col

    def embed(self, texts, model: str | None = None):
        """(len(texts), dim) float32 vectors of texts from an embedding model (default: the
        default model)."""
        self._check_open()
        return embedding.load(model or DEFAULT_EMBEDDER).embed(texts)

    def memory(self, agent: str = "default", **options):
        """The long-term and conversation memory of an agent, kept in this database: a
        vdb.memory.Memory(self, agent, **options)."""
        from vdb.memory import Memory

        return Memory(self, agent, **options)

    def has_collection(self, name: str) -> bool:
        return name in self.list_collections()

    def list_collections(self) -> list[str]:
        self._check_open()
        prefix = keys.PREFIX_COLLECTION
        names, damaged = [], []
        with self._store.read() as txn:
            cursor = txn.cursor(db=self._store.meta)
            if cursor.set_range(prefix):
                for key, raw in cursor:
                    if not key.startswith(prefix):
                        break
                    if is_sound(key, raw):
                        names.append(key[len(prefix) :].decode())
                    else:
                        damaged.append(f"a collection config fails its checksum ({key[:40]!r})")
        self._damaged_configs = damaged
        return names

    def embedders(self) -> list[str]:
        """The model names the collections embed with, read from their configs (the
        collections are not loaded; a config that fails its checksum is left out)."""
        collections = self.list_collections()
        names = set()
        with self._store.read() as txn:
            for name in collections:
                try:
                    raw = values.get_config(txn, self._store, name)
                except DataCorruptedError:
                    continue
                spec = None if raw is None else CollectionConfig.from_json(raw).embedder
                if spec:
                    names.add(spec)
        return sorted(names)

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its points."""
        self._check_writable()

        def drop(txn):
            raw = values.get_config(txn, self._store, name)
            if raw is None:
                raise CollectionNotFoundError(f"no collection named {shown(name)}")
            cid = CollectionConfig.from_json(raw).cid
            txn.delete(keys.collection_key(name), db=self._store.meta)
            txn.delete(keys.state_key(cid), db=self._store.meta)
            for db in (self._store.records, self._store.ids, self._store.oplog):
                oplog.delete_range(txn, db, keys.cid_prefix(cid))
            return cid

        if not isinstance(name, str):
            raise CollectionNotFoundError(f"no collection named {shown(name)}")
        with self._lock:
            col = self._collections.pop(name, None)
            if col is not None:
                col._close(save=False)
            cid = self._store.transact(drop)
            checkpoint.remove(self.path / CHECKPOINT_DIR, cid)

    def snapshot(self, dest) -> None:
        """Write a consistent copy of the database into the new or empty directory dest.
        Writes may continue meanwhile; the copy holds every write committed before it began."""
        self._check_open()
        self._store.copy_to(dest)

    def info(self) -> dict:
        """What this handle is: version, location, mode, number of collections, and the
        damage found so far (damaged collection configs, and records found damaged by the
        collections opened; `vdb check` looks at everything)."""
        count = len(self.list_collections())
        with self._lock:
            damage = list(self._damaged_configs) + [
                msg for col in self._collections.values() for msg in col._damage
            ]
        return {
            "version": __version__,
            "path": str(self.path),
            "read_only": self.read_only,
            "collections": count,
            "damage": damage,
        }

    def close(self) -> None:
        with self._lock:
            for col in self._collections.values():
                col._close()
            self._collections.clear()
            self._store.close()

    def _check_open(self) -> None:
        if self._store.env is None:
            raise ClosedError(f"database {str(self.path)!r} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f"database {str(self.path)!r} was opened read-only")
