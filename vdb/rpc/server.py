"""The gRPC service over one Database: servicers, API keys, limits on the work of one request,
the query cache, health checking, reflection, and a shutdown that drains in-flight requests and
ends the rest within a bounded time before the store is closed."""

import hmac
import logging
import re
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from llm.errors import LlmError
from vdb import embedding
from vdb._version import __version__
from vdb.errors import (
    AuthenticationError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ReadOnlyError,
    UnavailableError,
    VdbError,
    shown,
)
from vdb.rpc import convert, prepare, status
from vdb.rpc._gen import collections_pb2 as cpb
from vdb.rpc._gen import collections_pb2_grpc as cgrpc
from vdb.rpc._gen import embeddings_pb2 as epb
from vdb.rpc._gen import embeddings_pb2_grpc as egrpc
from vdb.rpc._gen import generation_pb2 as gpb
from vdb.rpc._gen import generation_pb2_grpc as ggrpc
from vdb.rpc._gen import memory_pb2 as mpb
from vdb.rpc._gen import memory_pb2_grpc as mgrpc
from vdb.rpc._gen import points_pb2 as ppb
from vdb.rpc._gen import points_pb2_grpc as pgrpc
from vdb.rpc._gen import retrieval_pb2 as rpb
from vdb.rpc._gen import retrieval_pb2_grpc as rgrpc
from vdb.rpc._gen import server_pb2 as spb
from vdb.rpc._gen import server_pb2_grpc as sgrpc
from vdb.rpc._gen import snapshots_pb2 as snpb
from vdb.rpc._gen import snapshots_pb2_grpc as sngrpc
from vdb.rpc.cache import QueryCache
from vdb.rpc.generation import GenerationService, ModelHost
from vdb.rpc.guard import Guard
from vdb.rpc.handler import rpc
from vdb.rpc.limits import Budget, Limits
from vdb.rpc.memory import MemoryService
from vdb.rpc.points import PointsService
from vdb.rpc.retrieval import RetrievalService

log = logging.getLogger("vdb.server")

SERVICES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (cpb, "Collections"),
        (ppb, "Points"),
        (snpb, "Snapshots"),
        (spb, "Server"),
        (epb, "Embeddings"),
        (gpb, "Generation"),
        (rpb, "Retrieval"),
        (mpb, "Memory"),
    )
)
READ, WRITE, ADMIN = range(3)
CHUNK = 1 << 20  # bytes per snapshot FileChunk
STOP_MARGIN = 10.0  # seconds handlers get to stop after the grace period of a shutdown
EMBED_SLICE = 16  # texts a request embeds between two checks of its deadline
EMBED_SLOTS = 2  # slices embedding at once in the whole server (the model uses every core)
POLL = 0.05  # seconds between checks of a call while it waits
SNAPSHOT_RE = re.compile(r"^snapshot-\d{8}-\d{6}-[0-9a-f]{6}$")


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port
    api_keys: tuple[str, ...] = ()  # read-write keys; with no keys at all, no auth
    read_only_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()  # read-write keys that may also swap the model
    tls_cert: str | None = None  # PEM certificate chain file
    tls_key: str | None = None  # PEM private key file
    max_message_bytes: int = 64 << 20  # largest request or response
    workers: int = 8  # threads serving requests
    max_concurrent: int = 128  # requests served or queued before RESOURCE_EXHAUSTED
    cache: bool = True  # the query-result cache
    cache_entries: int = 10_000
    cache_ttl: float = 60.0  # seconds
    cache_bytes: int = 256 << 20  # total size of cached responses
    snapshot_dir: str | None = None  # default: DATA/snapshots
    grace: float = 30.0  # seconds in-flight requests get to finish at shutdown
    model: str | None = None  # GGUF generation model file, loaded at start
    model_dir: str | None = None  # where SwapModel finds models (default: the model's directory)
    model_ctx: int | None = None  # context length (default: the model's own)
    max_generations: int = 4  # generation streams at once; more get RESOURCE_EXHAUSTED
    prefill_chunk: int = 256  # prompt tokens per step of a generation stream
    prefix_cache_mb: int = 256  # prompt prefixes' keys and values kept for reuse (0: off)
    max_batch_queries: int = Limits.max_batch_queries  # query rows of one SearchBatch
    max_k: int = Limits.max_k  # k (and ef) of one search, recall or hybrid search
    max_results: int = Limits.max_results  # queries x k of one SearchBatch
    max_embed_texts: int = Limits.max_texts  # texts one request has embedded
    max_text_bytes: int = Limits.max_text_bytes  # a text tokenized whole (prompts, turns)
    # Convert every embedder the server needs before it listens (the default model, agent
    # memory's, the collections'), and never inside a request (`vdb serve` does).
    prepare_models: bool = False
    prepare: tuple[str, ...] = ()  # more model names to prepare
    http_port: int | None = None  # also serve HTTP (vdb.http) on this port; 0 picks one
    http_host: str | None = None  # default: host


class _Cancelled(UnavailableError):
    """The call ended (cancelled by the client, or by the server at the end of its grace
    period) while its handler still ran."""


class _Core:
    """What every servicer shares: the database, keys, limits, cache and request
    accounting."""

    def __init__(self, db, options: ServerOptions):
        self.db, self.options = db, options
        self.limits = Limits(
            options.max_batch_queries,
            options.max_k,
            options.max_results,
            options.max_embed_texts,
            options.max_text_bytes,
        )
        self.cache = (
            QueryCache(options.cache_entries, options.cache_ttl, max_bytes=options.cache_bytes)
            if options.cache
            else None
        )
        self.started = time.time()
        self.snapshot_dir = Path(options.snapshot_dir or Path(db.path) / "snapshots")
        self._admin = [k.encode() for k in options.admin_keys]
        self._rw = [k.encode() for k in options.api_keys] + self._admin
        self._ro = [k.encode() for k in options.read_only_keys]
        self._lock = threading.Lock()
        self.in_flight = 0
        self.stopping = threading.Event()  # set once the grace period of a shutdown is over
        self._embed_slots = threading.Semaphore(EMBED_SLOTS)

    # ------------------------------------------------------------ admission

    def role_of(self, metadata) -> int:
        """READ, WRITE or ADMIN: what the key in a call's metadata allows (ADMIN without
        keys). AuthenticationError when keys are set and the call carries none or an unknown
        one."""
        if not (self._rw or self._ro):
            return ADMIN
        key = _api_key(metadata or ())
        if key is None:
            raise AuthenticationError(
                "this server requires an API key: send metadata 'authorization: Bearer KEY'"
            )
        key = key.encode()
        if any(hmac.compare_digest(key, k) for k in self._admin):
            return ADMIN
        if any(hmac.compare_digest(key, k) for k in self._rw):
            return WRITE
        if any(hmac.compare_digest(key, k) for k in self._ro):
            return READ
        raise AuthenticationError("the API key is not valid")

    def role(self, context) -> int:
        return self.role_of(context.invocation_metadata())

    def writable(self, context) -> bool:
        return self.role(context) >= WRITE

    def admit(self, context, write: bool, admin: bool = False) -> None:
        role = self.role(context)
        if write and role < WRITE:
            raise ReadOnlyError("this API key may only read")
        if admin and role < ADMIN:
            raise PermissionDeniedError("this request needs an admin API key")
        self.check_alive(context)

    def check_alive(self, context) -> None:
        """Raise when the call should stop: its deadline passed, the client cancelled, or
        the server's grace period ended. Long requests call it as they go."""
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceededError("the deadline passed before the server finished")
        if self.stopping.is_set():
            raise UnavailableError("the server is shutting down")
        if not context.is_active():
            raise _Cancelled("the call was cancelled")

    def fail(self, context, exc: Exception):
        """End the call with the status for exc (a bounded message, and the exception's
        class in the trailing metadata). A call that already ended (cancelled) ends quietly."""
        code = status.code_for(exc)
        if code is None:
            log.exception("internal error")
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"
        else:
            message = str(exc)
        if isinstance(exc, VdbError | LlmError) and context.is_active():
            context.set_trailing_metadata(((status.ERROR_KEY, type(exc).__name__),))
        context.abort(code, status.bounded(message))

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    # ------------------------------------------------------------ helpers

    def collection(self, name: str):
        return self.db.get_collection(convert.require(name, "collection"))

    def wrote(self, col) -> None:
        if self.cache is not None:
            self.cache.invalidate(col.config.cid)

    def embed(self, embedder, texts: list[str], context):
        """(len(texts), dim) vectors, embedded EMBED_SLICE texts at a time with at most
        EMBED_SLOTS slices running in the whole server: the call's deadline, its cancellation
        and the server's stop are checked before each slice and while waiting for a slot, so
        a request stops within one slice's work (a few seconds at most)."""
        if not texts:
            return embedder.embed(texts)  # the embedder's own error for no texts
        out = np.empty((len(texts), embedder.dim), dtype=np.float32)  # (n, dim)
        for start in range(0, len(texts), EMBED_SLICE):
            while not self._embed_slots.acquire(timeout=POLL):
                self.check_alive(context)
            try:
                self.check_alive(context)
                out[start : start + EMBED_SLICE] = embedder.embed(
                    texts[start : start + EMBED_SLICE]
                )
            finally:
                self._embed_slots.release()
        return out

    def budget(self, what: str = "the response") -> Budget:
        """A running count of a response's bytes against the largest message the server
        sends."""
        return Budget(self.options.max_message_bytes, what)


def _api_key(metadata) -> str | None:
    for key, value in metadata:
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else value
        if key == "x-api-key":
            return value
    return None


# ---------------------------------------------------------------- services


class CollectionsService(cgrpc.CollectionsServicer):
    def __init__(self, core: _Core):
        self.core = core

    def _info(self, col) -> cpb.CollectionInfo:
        msg = cpb.CollectionInfo()
        convert.set_info(msg, col.info())
        return msg

    @rpc(write=True)
    def Create(self, request, context):
        index = convert.index_from(request.index) if request.HasField("index") else None
        embedder = _model_name(request.embedder) if request.embedder else None
        text = convert.text_from(request.text) if request.HasField("text") else None
        col = self.core.db.create_collection(
            request.name, request.dim or None, request.metric or "cosine", index, embedder, text
        )
        return self._info(col)

    @rpc()
    def Get(self, request, context):
        return self._info(self.core.collection(request.name))

    @rpc()
    def List(self, request, context):
        return cpb.ListCollectionsResponse(names=self.core.db.list_collections())

    @rpc(write=True)
    def Delete(self, request, context):
        col = self.core.collection(request.name)
        self.core.db.drop_collection(request.name)
        self.core.wrote(col)
        return cpb.DeleteCollectionResponse()

    @rpc()
    def Exists(self, request, context):
        return cpb.ExistsResponse(exists=self.core.db.has_collection(request.name))

    @rpc(write=True)
    def Checkpoint(self, request, context):
        return cpb.CheckpointResponse(lsn=self.core.collection(request.name).checkpoint())

    @rpc(write=True)
    def Compact(self, request, context):
        return cpb.CompactResponse(unlinked=self.core.collection(request.name).compact())

    @rpc(write=True)
    def EnableText(self, request, context):
        col = self.core.collection(request.name)
        text = convert.text_from(request.text)
        try:
            col.enable_text(text["analyzer"], text["field"])
        finally:
            self.core.wrote(col)
        return self._info(col)


class SnapshotsService(sngrpc.SnapshotsServicer):
    def __init__(self, core: _Core):
        self.core = core

    def _path(self, name: str) -> Path:
        if not SNAPSHOT_RE.match(name):
            raise InvalidArgumentError(f"invalid snapshot name {shown(name)}")
        path = self.core.snapshot_dir / name
        if not path.is_dir():
            raise NotFoundError(f"no snapshot named {shown(name)}")
        return path

    def _info(self, path: Path) -> snpb.SnapshotInfo:
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return snpb.SnapshotInfo(name=path.name, size_bytes=size, created_at=path.stat().st_mtime)

    @rpc(write=True)
    def Create(self, request, context):
        name = f"snapshot-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        self.core.snapshot_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.core.snapshot_dir))
        try:
            self.core.db.snapshot(tmp / "db")
            (tmp / "db").rename(self.core.snapshot_dir / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self._info(self.core.snapshot_dir / name)

    @rpc()
    def List(self, request, context):
        root = self.core.snapshot_dir
        found = root.iterdir() if root.exists() else ()
        paths = sorted(p for p in found if SNAPSHOT_RE.match(p.name))
        return snpb.ListSnapshotsResponse(snapshots=[self._info(p) for p in paths])

    @rpc(write=True)
    def Delete(self, request, context):
        shutil.rmtree(self._path(request.name))
        return snpb.DeleteSnapshotResponse()

    @rpc()
    def Download(self, request, context):
        yield from _chunks(self._path(request.name))

    @rpc(write=True)  # it writes a snapshot on the server's disk first
    def Stream(self, request, context):
        self.core.snapshot_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.core.snapshot_dir))
        try:
            self.core.db.snapshot(tmp / "db")
            yield from _chunks(tmp / "db")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _chunks(root: Path):
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(root))
        with open(path, "rb") as f:
            offset = 0
            while True:
                data = f.read(CHUNK)
                if data or offset == 0:  # an empty file still arrives, as one empty chunk
                    yield snpb.FileChunk(path=rel, offset=offset, data=data)
                if len(data) < CHUNK:
                    break
                offset += len(data)


def _model_name(name: str) -> str:
    """A model a client may name: one in the server's model cache, never a file path."""
    from embed.models import split_name
    from llm.errors import ModelNotFoundError

    if "/" in name or "\\" in name or name.endswith(".gguf"):
        raise ModelNotFoundError(
            f"{shown(name)}: over gRPC a model is named as in the server's model cache "
            "(NAME or NAME:TYPE), not by path"
        )
    split_name(name)
    return name


class EmbeddingsService(egrpc.EmbeddingsServicer):
    def __init__(self, core: _Core):
        self.core = core

    @rpc()
    def Embed(self, request, context):
        from vdb.database import DEFAULT_EMBEDDER

        core = self.core
        model = _model_name(request.model or DEFAULT_EMBEDDER)
        core.limits.texts(len(request.texts))
        embedder = embedding.load(model)
        core.budget().check(len(request.texts) * 4 * embedder.dim)
        vectors = core.embed(embedder, list(request.texts), context)
        return epb.EmbedResponse(vectors=convert.pack(vectors), model=model)


class ServerService(sgrpc.ServerServicer):
    def __init__(self, core: _Core):
        self.core = core

    @rpc()
    def Info(self, request, context):
        core = self.core
        cache = spb.CacheStats(enabled=core.cache is not None)
        if core.cache is not None:
            for name, value in core.cache.stats().items():
                if name != "bytes":
                    setattr(cache, name, value)
        return spb.ServerInfo(
            version=__version__,
            uptime_seconds=time.time() - core.started,
            read_only=not core.writable(context),
            collections=len(core.db.list_collections()),
            cache=cache,
            in_flight=core.in_flight,
            max_message_bytes=core.options.max_message_bytes,
            workers=core.options.workers,
            limits=spb.Limits(
                max_batch_queries=core.limits.max_batch_queries,
                max_k=core.limits.max_k,
                max_results=core.limits.max_results,
                max_embed_texts=core.limits.max_texts,
                max_text_bytes=core.limits.max_text_bytes,
            ),
        )


# ---------------------------------------------------------------- the server


def _busy_threads(prefix: str):
    """(name, innermost frames) of the live threads whose name starts with prefix, for a log
    line that says where a request that would not stop is."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident)
        if thread.name.startswith(prefix) and frame is not None:
            stack = traceback.extract_stack(frame)[-4:]
            yield (
                thread.name,
                " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack)),
            )


class _Health(health.HealthServicer):
    """grpc's health servicer, with the List method its proto declares (the library's
    answers UNKNOWN: not implemented)."""

    def List(self, request, context):
        resp = health_pb2.HealthListResponse()
        for name in ("", *SERVICES):
            check = self.Check(health_pb2.HealthCheckRequest(service=name), context)
            resp.statuses[name].status = check.status
        return resp


def _check_bindable(host: str, port: int, address: str) -> None:
    """OSError ("cannot listen on ADDRESS: REASON") when no address of host can take the
    port, found before gRPC tries: its own failure is a raw log line on stderr and a reason
    that says only "Failed to bind". Sockets are bound as gRPC binds them (SO_REUSEADDR,
    no SO_REUSEPORT) and closed at once; port 0 always binds."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {address}: {exc.strerror}") from None
    reason = "no address"
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(sockaddr)
            return
        except OSError as exc:
            reason = exc.strerror or str(exc)
    raise OSError(f"cannot listen on {address}: {reason}")


class Server:
    """A running gRPC server over an open Database (which the caller owns and closes).

    Example:
        >>> import vdb, tempfile
        >>> from vdb.rpc.server import Server, ServerOptions
        >>> db = vdb.open(tempfile.mkdtemp())
        >>> server = Server(db, ServerOptions(port=0))
        >>> port = server.start()
        >>> with vdb.connect(f"127.0.0.1:{port}") as remote:
        ...     remote.list_collections()
        []
        >>> server.stop(grace=1)  # True: every request finished
        True
        >>> db.close()
    """

    def __init__(self, db, options: ServerOptions = ServerOptions()):
        self.options = options
        self.core = _Core(db, options)
        limit = options.max_message_bytes
        self._pool = futures.ThreadPoolExecutor(
            max_workers=options.workers, thread_name_prefix="vdb-rpc"
        )
        self._server = grpc.server(
            self._pool,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=options.max_concurrent,
            interceptors=[Guard(self.core.role_of)],
        )
        cgrpc.add_CollectionsServicer_to_server(CollectionsService(self.core), self._server)
        pgrpc.add_PointsServicer_to_server(PointsService(self.core), self._server)
        sngrpc.add_SnapshotsServicer_to_server(SnapshotsService(self.core), self._server)
        sgrpc.add_ServerServicer_to_server(ServerService(self.core), self._server)
        egrpc.add_EmbeddingsServicer_to_server(EmbeddingsService(self.core), self._server)
        self.models = ModelHost(
            options.model,
            options.model_dir,
            options.model_ctx,
            options.max_generations,
            options.prefix_cache_mb << 20,
        )
        generation = GenerationService(self.core, self.models, options.prefill_chunk)
        ggrpc.add_GenerationServicer_to_server(generation, self._server)
        rgrpc.add_RetrievalServicer_to_server(RetrievalService(self.core, generation), self._server)
        self.memory = MemoryService(self.core, self.models, options.prefill_chunk)
        mgrpc.add_MemoryServicer_to_server(self.memory, self._server)
        self.health = _Health()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self.port = None
        self.http = None  # the HTTP server (vdb.http) when http_port is set
        self.http_port = None

    def start(self) -> int:
        """Prepare the models (with prepare_models), bind and start serving; returns the port
        (useful with port=0)."""
        opts = self.options
        host = f"[{opts.host}]" if ":" in opts.host else opts.host
        address = f"{host}:{opts.port}"
        creds = None
        if opts.tls_cert or opts.tls_key:
            if not (opts.tls_cert and opts.tls_key):
                raise InvalidArgumentError("TLS needs both a certificate and a key file")
            creds = grpc.ssl_server_credentials(
                [(Path(opts.tls_key).read_bytes(), Path(opts.tls_cert).read_bytes())]
            )
        _check_bindable(opts.host, opts.port, address)
        if opts.prepare_models:
            prepare.prepare(self.core.db, opts.prepare)
        try:
            if creds is not None:
                self.port = self._server.add_secure_port(address, creds)
            else:
                self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            self._allow_conversion()
            raise OSError(f"cannot listen on {address}: {exc}") from None
        self._server.start()
        if opts.http_port is not None:
            self._start_http()
        for name in ("", *SERVICES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    def _start_http(self) -> None:
        from vdb.http import HttpServer

        try:
            self.http = HttpServer(
                self, self.options.http_host or self.options.host, self.options.http_port
            )
            self.http_port = self.http.start()
        except BaseException:
            self._server.stop(None)
            self._allow_conversion()
            raise

    def stop(self, grace: float | None = None) -> bool:
        """Refuse new requests, let in-flight ones finish (up to `grace` seconds), then end
        the rest: gRPC cancels their calls, and handlers stop at their next check (searches
        between chunks of queries, embeddings between batches, generation streams at their
        next step, a model swap waiting for streams at once). Waits at most grace +
        STOP_MARGIN seconds in all. Returns True when every handler has returned, so that the
        caller may close the database; False (logged) when some still run."""
        grace = self.options.grace if grace is None else grace
        deadline = time.monotonic() + grace + STOP_MARGIN
        self.health.enter_graceful_shutdown()
        if self.http is not None:
            self.http.server.should_exit = True  # refuse new HTTP requests too
        stopped = self._server.stop(grace)
        stopped.wait(grace)
        self.core.stopping.set()
        self.models.close()
        if self.http is not None:
            self.http.stop(STOP_MARGIN)
        stopped.wait(max(0.0, deadline - time.monotonic()))
        while self.core.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        drained = not self.core.in_flight
        self._allow_conversion()
        if drained:
            self.memory.flush()
        else:
            log.warning(
                "%d request(s) still running %.0f s after the grace period",
                self.core.in_flight,
                STOP_MARGIN,
            )
            for name, where in _busy_threads("vdb-rpc"):
                log.warning("still running in %s: %s", name, where)
        self._pool.shutdown(wait=False)
        return drained

    def _allow_conversion(self) -> None:
        """Undo what preparing the models turned off in this process."""
        if self.options.prepare_models:
            from embed.models import convert_on_use

            convert_on_use(True)

    def wait(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)
