"""The remote client: a Database and Collections with the embedded API, served over gRPC.

Arguments are checked here with the embedded API's own checks before anything is sent, so a
bad call raises the very exception (class and message) it raises in-process; the server checks
everything again for clients in other languages. Errors from the server come back as the
exception classes of vdb.errors.
"""

import dataclasses
import threading
from dataclasses import asdict
from pathlib import Path

import grpc
import numpy as np

from llm.errors import TokenizerError
from vdb import embedding, validate
from vdb.collection import CollectionConfig, ConfigView, WriteResult
from vdb.collection_text import query_texts
from vdb.errors import (
    ClosedError,
    CollectionExistsError,
    CollectionNotFoundError,
    InvalidArgumentError,
    PointNotFoundError,
    ReadOnlyError,
    shown,
)
from vdb.index.config import IndexConfig
from vdb.results import Selection
from vdb.rpc import convert, status
from vdb.rpc._gen import collections_pb2 as cpb
from vdb.rpc._gen import collections_pb2_grpc as cgrpc
from vdb.rpc._gen import embeddings_pb2 as epb
from vdb.rpc._gen import embeddings_pb2_grpc as egrpc
from vdb.rpc._gen import points_pb2 as ppb
from vdb.rpc._gen import points_pb2_grpc as pgrpc
from vdb.rpc._gen import server_pb2 as spb
from vdb.rpc._gen import server_pb2_grpc as sgrpc
from vdb.rpc._gen import snapshots_pb2 as snpb
from vdb.rpc._gen import snapshots_pb2_grpc as sngrpc
from vdb.rpc.limits import Limits
from vdb.storage.codec import decode_id, encode_id
from vdb.text import hybrid
from vdb.text.config import TextConfig

U32_MAX = (1 << 32) - 1


def connect(address: str, api_key: str | None = None, tls=None, timeout: float | None = None):
    """A RemoteDatabase for the server at address ("host:port").

    api_key: sent as 'authorization: Bearer KEY'. tls: None/False for plaintext, True to
    verify the server against the system's root certificates, or the path (or PEM bytes) of
    the CA certificate to trust. timeout: seconds allowed for each call (None: no deadline).
    """
    return RemoteDatabase(address, api_key=api_key, tls=tls, timeout=timeout)


def _credentials(tls):
    if tls is True:
        return grpc.ssl_channel_credentials()
    if isinstance(tls, bytes):
        return grpc.ssl_channel_credentials(root_certificates=tls)
    if isinstance(tls, str | Path):
        return grpc.ssl_channel_credentials(root_certificates=Path(tls).read_bytes())
    raise InvalidArgumentError(f"tls must be None, True, a CA file path or PEM bytes, got {tls!r}")


class Connection:
    """A channel to a vdb server with the caller's key and deadline; the remote classes
    make their calls through it."""

    def __init__(self, address: str, api_key=None, tls=None, timeout=None):
        self.address = address
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        if tls:
            self._channel = grpc.secure_channel(address, _credentials(tls), options)
        else:
            self._channel = grpc.insecure_channel(address, options)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._timeout = timeout
        self._closed = False

    def _call(self, method, request):
        if self._closed:
            raise ClosedError(f"connection to {self.address} is closed")
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise status.error_from(exc) from None

    def _start(self, method, request):
        """Start a call with a streaming response: the call, an iterator of the messages
        that cancel() (from any thread) ends."""
        if self._closed:
            raise ClosedError(f"connection to {self.address} is closed")
        return method(request, metadata=self._metadata, timeout=self._timeout)

    def _stream(self, method, request):
        """Call a method with a streaming response; yields the messages. Closing the
        generator cancels the call."""
        call = self._start(method, request)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise status.error_from(exc) from None
        finally:
            call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._channel.close()


class RemoteDatabase(Connection):
    """The methods of vdb.Database, carried out by a vdb server.

    Example:
        >>> import vdb
        >>> db = vdb.connect("127.0.0.1:50051", api_key="...")  # doctest: +SKIP
        >>> col = db.get_or_create_collection("docs", dim=384)  # doctest: +SKIP
    """

    def __init__(self, address: str, api_key=None, tls=None, timeout=None):
        super().__init__(address, api_key, tls, timeout)
        self._collections_stub = cgrpc.CollectionsStub(self._channel)
        self._points = pgrpc.PointsStub(self._channel)
        self._snapshots = sngrpc.SnapshotsStub(self._channel)
        self._server = sgrpc.ServerStub(self._channel)
        self._embeddings = egrpc.EmbeddingsStub(self._channel)
        self._collections: dict[str, RemoteCollection] = {}
        self._lock = threading.Lock()
        try:
            info = self._call(self._server.Info, spb.ServerInfoRequest())
        except BaseException:
            self._channel.close()
            raise
        self.read_only = info.read_only
        self.limits = _limits(info)

    def __enter__(self) -> "RemoteDatabase":
        return self

    def __repr__(self) -> str:
        return f"RemoteDatabase({self.address!r}, read_only={self.read_only})"

    def _check_writable(self) -> None:
        if self._closed:
            raise ClosedError(f"connection to {self.address} is closed")
        if self.read_only:
            raise ReadOnlyError(f"the API key used for {self.address} may only read")

    def _remember(self, info: dict) -> "RemoteCollection":
        with self._lock:
            col = self._collections.get(info["name"])
            if col is None or col.config.cid != info["cid"]:
                col = self._collections[info["name"]] = RemoteCollection(self, info)
            return col

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: str = "cosine",
        index=None,
        embedder=None,
        text=None,
    ):
        """Create a collection; the same arguments as Database.create_collection, except that
        embedder names a model in the server's model cache (the server embeds)."""
        self._check_writable()
        text_config = TextConfig.parse(text)
        name = validate.collection_name(name)
        spec, model = embedding.resolve(embedder)
        if model is not None:
            dim = embedding.dimension(dim, model)
        if dim is None and spec is None:
            raise InvalidArgumentError("dim is required for a collection without an embedder")
        request = cpb.CreateCollectionRequest(
            name=name,
            dim=0 if dim is None else validate.dimension(dim),
            metric=validate.metric(metric),
            embedder=spec or "",
        )
        convert.set_index(request.index, IndexConfig.parse(index))
        if text_config is not None:
            convert.set_text(request.text, asdict(text_config))
        info = self._call(self._collections_stub.Create, request)
        return self._remember(convert.info_from(info))

    def get_collection(self, name: str) -> "RemoteCollection":
        if not isinstance(name, str):
            raise CollectionNotFoundError(f"no collection named {shown(name)}")
        info = self._call(self._collections_stub.Get, cpb.CollectionName(name=name))
        return self._remember(convert.info_from(info))

    def get_or_create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: str = "cosine",
        index=None,
        embedder=None,
        text=None,
    ):
        """The existing collection (its dim and metric must match, and its keyword index
        config when text is given), or a new one."""
        TextConfig.parse(text)
        try:
            col = self.get_collection(name)
        except CollectionNotFoundError:
            try:
                return self.create_collection(name, dim, metric, index, embedder, text)
            except CollectionExistsError:  # another client created it meanwhile
                col = self.get_collection(name)
        col._check_matches(dim, metric, text)
        return col

    def has_collection(self, name: str) -> bool:
        if not isinstance(name, str):
            return False
        return self._call(self._collections_stub.Exists, cpb.CollectionName(name=name)).exists

    def list_collections(self) -> list[str]:
        return list(self._call(self._collections_stub.List, cpb.ListCollectionsRequest()).names)

    def embedders(self) -> list[str]:
        """The model names the collections embed with."""
        names = {self.get_collection(name).config.embedder for name in self.list_collections()}
        return sorted(n for n in names if n)

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its points."""
        self._check_writable()
        if not isinstance(name, str):
            raise CollectionNotFoundError(f"no collection named {shown(name)}")
        self._call(self._collections_stub.Delete, cpb.CollectionName(name=name))
        with self._lock:
            col = self._collections.pop(name, None)
        if col is not None:
            col._closed = True

    def snapshot(self, dest) -> None:
        """Write a consistent copy of the server's database into the new or empty local
        directory dest (open it with vdb.open)."""
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise InvalidArgumentError(f"snapshot destination {str(dest)!r} is not empty")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for chunk in self._stream(self._snapshots.Stream, snpb.CreateSnapshotRequest()):
            path = (root / chunk.path).resolve()
            if root not in path.parents:
                raise InvalidArgumentError(f"snapshot file {chunk.path!r} is outside {dest}")
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "r+b" if chunk.offset else "wb") as f:
                f.seek(chunk.offset)
                f.write(chunk.data)

    def embed(self, texts, model: str | None = None):
        """(len(texts), dim) float32 vectors of texts from one of the server's models."""
        request = epb.EmbedRequest(model=model or "")
        if isinstance(texts, str) or not isinstance(texts, list | tuple):
            raise TokenizerError("texts must be a list of strings; wrap one text in a list")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TokenizerError(f"text {i} is a {type(text).__name__}, not a str")
        if self.limits is not None:
            self.limits.texts(len(texts))
        request.texts.extend(texts)
        return convert.unpack(self._call(self._embeddings.Embed, request).vectors).copy()

    def memory(self, agent: str = "default", **options):
        """The memory of an agent, kept by the server: a RemoteMemory with the methods of
        vdb.memory.Memory (the options of Memory but generator, flush_interval and clock,
        which are the server's)."""
        from vdb.rpc.memory_client import RemoteMemory

        return RemoteMemory(self, agent, **options)

    def info(self) -> dict:
        """The server: version, address, mode of this key, collections, cache statistics."""
        msg = self._call(self._server.Info, spb.ServerInfoRequest())
        c = msg.cache
        return {
            "version": msg.version,
            "address": self.address,
            "read_only": msg.read_only,
            "collections": msg.collections,
            "uptime_seconds": msg.uptime_seconds,
            "in_flight": msg.in_flight,
            "max_message_bytes": msg.max_message_bytes,
            "workers": msg.workers,
            "limits": {} if self.limits is None else asdict(self.limits),
            "cache": {
                "enabled": c.enabled,
                "hits": c.hits,
                "misses": c.misses,
                "hit_rate": c.hit_rate,
                "entries": c.entries,
                "capacity": c.capacity,
                "ttl_seconds": c.ttl_seconds,
            },
        }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for col in self._collections.values():
                col._closed = True
            self._collections.clear()
        self._channel.close()


def _limits(info) -> Limits | None:
    """The limits a server reports in its Info (None from a server that reports none)."""
    if not info.HasField("limits"):
        return None
    msg = info.limits
    return Limits(
        msg.max_batch_queries,
        msg.max_k,
        msg.max_results,
        msg.max_embed_texts,
        msg.max_text_bytes or Limits.max_text_bytes,
    )


class RemoteCollection(ConfigView):
    """The methods of vdb.Collection, carried out by a vdb server. Returns the same Hit,
    Record and WriteResult objects and raises the same exceptions."""

    def __init__(self, db: RemoteDatabase, info: dict):
        self._db = db
        self.config = CollectionConfig(
            info["name"],
            info["dim"],
            info["metric"],
            info["cid"],
            info["created_at"],
            IndexConfig.parse(info["index"]),
            info.get("embedder"),
            TextConfig.parse(info.get("text")),
        )
        self._lsn = info["lsn"]
        self._closed = False

    @property
    def lsn(self) -> int:
        """The collection's sequence number as of this client's last call that reported it."""
        return self._lsn

    @property
    def embedder(self):
        """The server-side embedder of the collection (a RemoteEmbedder), or None."""
        name = self.config.embedder
        return None if name is None else RemoteEmbedder(self._db, name, self.dim)

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r}, dim={self.dim}, metric={self.metric!r})"

    def _call(self, method, request):
        self._check_open()
        return self._db._call(method, request)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"collection {self.name!r} was dropped or its connection closed")

    def _check_writable(self) -> None:
        self._check_open()
        self._db._check_writable()

    def _written(self, msg) -> WriteResult:
        self._lsn = msg.lsn
        return WriteResult(msg.lsn, msg.count)

    # ------------------------------------------------------------ maintenance

    def info(self) -> dict:
        msg = self._call(self._db._collections_stub.Get, cpb.CollectionName(name=self.name))
        info = convert.info_from(msg)
        self._lsn = info["lsn"]
        self._text_config(info)
        return info

    def _text_config(self, info: dict) -> None:
        """Take the keyword index config the server reports."""
        text = TextConfig.parse(info.get("text"))
        if text != self.config.text:
            self.config = dataclasses.replace(self.config, text=text)

    def refresh(self) -> None:
        """Learn the collection's latest sequence number (the server is always current)."""
        self.info()

    def compact(self) -> int:
        self._check_writable()
        req = cpb.CollectionName(name=self.name)
        return self._call(self._db._collections_stub.Compact, req).unlinked

    def checkpoint(self) -> int:
        self._check_writable()
        req = cpb.CollectionName(name=self.name)
        return self._call(self._db._collections_stub.Checkpoint, req).lsn

    # ------------------------------------------------------------ writes

    def _upsert_request(
        self, ids, vectors=None, payloads=None, documents=None
    ) -> ppb.UpsertRequest:
        if vectors is None:  # the server embeds the documents
            validate.texts_to_embed(ids, documents)
            validate.has_embedder(self.config)
        batch = validate.upsert_batch(ids, vectors, payloads, documents, self.dim, self.metric)
        request = ppb.UpsertRequest(collection=self.name)
        if batch.vectors is not None:
            request.vectors.dim = self.dim
            request.vectors.data = batch.vectors.astype("<f4", copy=False).tobytes()
        points = request.points
        for pid, payload, document in zip(batch.ids, batch.payloads, batch.documents, strict=True):
            convert.set_point(points.add(), pid, payload, document)
        return request

    def upsert(self, ids, vectors=None, payloads=None, documents=None) -> WriteResult:
        """Insert or replace points. All or nothing: a bad item rejects the whole batch.
        Without vectors, a collection with an embedder has the server embed the documents."""
        self._check_writable()
        request = self._upsert_request(ids, vectors, payloads, documents)
        return self._written(self._call(self._db._points.Upsert, request))

    def bulk_upsert(self, batches, on_batch=None) -> WriteResult:
        """Upsert many batches through one stream, each committed on its own; see
        Collection.bulk_upsert. on_batch(i, result) runs as the server acknowledges batch i."""
        self._check_writable()
        failure: list[BaseException] = []

        def requests():
            try:
                for batch in batches:
                    yield self._upsert_request(**validate.batch_args(batch))
            except Exception as exc:  # ends the stream; raised below once acks are in
                failure.append(exc)

        lsn, total = self._lsn, 0
        db = self._db
        call = db._points.UpsertStream(requests(), metadata=db._metadata, timeout=db._timeout)
        try:
            for ack in call:
                result = self._written(ack.result)
                lsn, total = result.lsn, total + result.count
                if on_batch is not None:
                    on_batch(ack.batch, result)
        except grpc.RpcError as exc:
            raise status.error_from(exc) from None
        finally:
            call.cancel()
        if failure:
            raise failure[0]
        return WriteResult(lsn, total)

    def delete(self, ids=None, filter=None) -> WriteResult:
        """Delete points by ids or by filter (exactly one). Unknown ids are ignored."""
        self._check_writable()
        if (ids is None) == (filter is None):
            raise InvalidArgumentError("delete takes either ids or filter, not both or neither")
        request = ppb.DeleteRequest(collection=self.name)
        if ids is not None:
            id_list, _ = validate.id_list(ids)
            for pid in id_list:
                encode_id(pid)
            request.ids.ids.extend(convert.id_list(id_list))
        else:
            convert.set_filter(request.filter, filter)
        return self._written(self._call(self._db._points.Delete, request))

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
        lists of Hit that also holds ids and scores as arrays), best first; see
        Collection.search, including keyword (text=...) and hybrid queries, which the server
        runs. Ids and scores travel as packed columns; payloads, documents and vectors only
        when asked for."""
        want = Selection.parse(with_payload, with_document, with_vectors)
        self._check_open()
        keyword = None
        if text is not None or queries is None:
            if text is None:
                raise InvalidArgumentError("search needs queries, text, or both")
            fusion, dense_weight = hybrid.checked(fusion, dense_weight)
            keyword, text_single = query_texts(text)
        k = validate.top_k(k)
        if ef is not None:
            ef = validate.top_k(ef, "ef")
        request = ppb.SearchRequest(
            collection=self.name, k=min(k, U32_MAX), ef=min(ef or 0, U32_MAX)
        )
        convert.set_selection(request, want)
        texts = embedding.texts(queries) if queries is not None else None
        if queries is None:
            single, nq = text_single, len(keyword)
        elif texts is not None:
            validate.has_embedder(self.config)
            single, nq = isinstance(queries, str), len(texts)
            request.texts.extend(texts)
        else:
            single = np.ndim(queries) == 1
            q = validate.vectors(queries, self.dim, self.metric, what="query")
            request.queries.CopyFrom(convert.pack(q))
            nq = len(q)
        if keyword is not None:
            if queries is not None and (single != text_single or nq != len(keyword)):
                raise InvalidArgumentError(
                    f"a hybrid search takes one text per query: got {nq} "
                    f"quer{'y' if nq == 1 else 'ies'} and {len(keyword)} text(s)"
                )
            request.text.extend(keyword)
            if fusion != "convex":
                request.fusion = fusion
            if dense_weight is not None:
                request.dense_weight = dense_weight
        limits = self._db.limits
        if limits is not None:  # the server's limits, checked before anything is sent
            limits.search(nq, k, ef or 0)
            if texts is not None:
                limits.texts(nq, "text queries")
            for t in keyword or ():
                limits.text(t, "keyword text")
        if filter is not None:
            convert.set_filter(request.filter, filter)
        method = self._db._points.Search if single else self._db._points.SearchBatch
        results = convert.results_from(self._call(method, request), want)
        return results[0] if single else results

    def ask_in_server(
        self, question, model, k, filter, max_tokens, on_piece, sampler: dict, memory
    ):
        """vdb.rag.ask run by the server (the Ask RPC) when model is None (an extractive
        answer) or the server's own generation model; None for a model of this process."""
        from vdb.rpc import retrieval_client
        from vdb.rpc.model_client import RemoteModel

        if model is not None and not (
            isinstance(model, RemoteModel) and model.address == self._db.address
        ):
            return None
        return retrieval_client.ask(
            self._db,
            self.name,
            question,
            model is not None,
            k,
            filter,
            max_tokens,
            on_piece,
            sampler,
            memory,
        )

    def enable_text(self, analyzer: str = "en", field: str | None = None) -> None:
        """See Collection.enable_text; the server builds the index."""
        self._check_writable()
        cfg = TextConfig.parse({"analyzer": analyzer, "field": field})
        request = cpb.EnableTextRequest(name=self.name)
        convert.set_text(request.text, asdict(cfg))
        info = convert.info_from(self._call(self._db._collections_stub.EnableText, request))
        self._lsn = info["lsn"]
        self._text_config(info)

    def get(self, ids, with_vectors: bool = True):
        """Records by id. One id gives a Record (PointNotFoundError if absent); a list gives the
        records that exist, in the order asked."""
        self._check_open()
        id_list, single = validate.id_list(ids)
        for pid in id_list:
            encode_id(pid)
        request = ppb.GetRequest(
            collection=self.name, ids=convert.id_list(id_list), with_vectors=with_vectors
        )
        records = convert.records_from(self._call(self._db._points.Get, request))
        if single:
            if not records:
                raise PointNotFoundError(f"no point with id {shown(id_list[0])} in {self.name!r}")
            return records[0]
        return records

    def count(self, filter=None) -> int:
        self._check_open()
        request = ppb.CountRequest(collection=self.name)
        if filter is not None:
            convert.set_filter(request.filter, filter)
        return self._call(self._db._points.Count, request).count

    def scroll(self, filter=None, limit: int = 100, after=None, with_vectors: bool = False):
        """A page of records in id order (ints before strings), starting after id `after`.

        Returns (records, next_after); next_after is None on the last page.
        """
        self._check_open()
        limit = validate.limit(limit)
        request = ppb.ScrollRequest(
            collection=self.name, limit=min(limit, U32_MAX), with_vectors=with_vectors
        )
        if after is not None:
            request.page_token = encode_id(after)
        if filter is not None:
            convert.set_filter(request.filter, filter)
        resp = self._call(self._db._points.Scroll, request)
        token = resp.next_page_token
        return convert.records_from(resp), (decode_id(token) if token else None)


class RemoteEmbedder:
    """A model of the server's, used through the Embed RPC."""

    def __init__(self, db: RemoteDatabase, name: str, dim: int):
        self._db, self.name, self.dim = db, name, dim

    def __repr__(self) -> str:
        return f"RemoteEmbedder({self.name!r}, dim={self.dim})"

    def embed(self, texts, batch_size: int = 64) -> np.ndarray:
        return self._db.embed(texts, self.name)
