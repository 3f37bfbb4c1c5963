"""Batch ingestion on a Ray cluster (Ray Data), with the local executor's results.

The driver lists the files (vdb.ingest.discover) and reads what the collection holds for
them. A Ray Data pipeline plans the files in tasks (vdb.ingest.plan_file, FILES_PER_TASK
files each). The driver takes the plans in file order and cuts the chunks to embed into
batches exactly as the local executor does (batch_size chunks in file order), so each chunk
is embedded beside the same chunks and gets the very vector `ingest` would give it. A second
pipeline embeds the batches in a pool of actors (`map_batches` with EmbedBatches, a callable
class that loads the model once per actor), and the driver writes the vectors through
`bulk_upsert`: to a `vdb serve` (a vdb.connect(...) database) or to a local directory when
the whole cluster is this one node. A changed file's stale chunks are deleted once every
batch holding its new chunks is acknowledged, so a run killed at any point is finished by
the next one, by either executor, with no duplicate and no missing chunk.

Faults: planning tasks are retried by Ray (max_retries), and a dead embedding actor is
restarted and its batch retried (max_restarts, max_task_retries). A server that goes away
during the job is waited for (up to `patience` seconds without an acknowledgement) and the
stream resumes from the first batch it had not acknowledged.
"""

import logging
import pickle
import threading
import time
import warnings
from collections import deque
from pathlib import Path

import numpy as np
import orjson

from vdb import ingest as local
from vdb.database import Database
from vdb.errors import DeadlineExceededError, InvalidArgumentError, UnavailableError

INSTALL = "ingestion on Ray needs its extra: pip install 'vdb[ray]'"
FILES_PER_TASK = 16  # files one planning task loads and chunks
RETRIES = 3  # times Ray restarts a dead embedding actor and retries its batch
RETRYABLE = (UnavailableError, DeadlineExceededError)  # the server is away: wait, resend


def import_ray():
    """The ray module with Ray Data, or ImportError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(INSTALL, name="ray") from exc
    return ray


def threads(cpus: float) -> dict[str, str]:
    """The environment that holds an actor's BLAS and numba threads to its CPUs (spinning
    BLAS threads of several actors on the same cores slow every one of them)."""
    n = str(max(1, int(cpus)))
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    return dict.fromkeys(names, n)


def quiet(ray) -> None:
    """No Ray Data progress bars or execution logs (a command prints its own progress)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


class EmbedBatches:
    """The embedding actor: loads the model once, then embeds one batch of chunk texts per
    row, as a collection embeds the documents of one upsert. A run makes a subclass naming
    its model in model_name (so Ray keeps no constructor arguments to restart an actor)."""

    model_name: str | None = None

    def __init__(self, model: str | None = None):
        import embed

        self.model = embed.load(model or self.model_name)

    def __call__(self, batch: dict) -> dict:
        vectors = [self.embed([str(t) for t in texts]) for texts in batch["texts"]]
        return {"batch": batch["batch"], "vectors": np.array(vectors, dtype=object)}

    def embed(self, texts: list[str]) -> bytes:
        return self.model.embed(texts).astype("<f4", copy=False).tobytes()  # (n, dim)


def _plan_files(rows: dict, model: str, settings: dict) -> dict:
    """A planning task: FilePlans (pickled) of the files of rows."""
    import embed

    tokenizer = embed.load(model).tokenizer

    def count(texts: list[str]) -> list[int]:
        return [len(ids) - 2 for ids in tokenizer.encode_batch(texts)]

    plans = [
        pickle.dumps(
            local.plan_file(Path(path), orjson.loads(existing), count, **settings),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        for path, existing in zip(rows["path"], rows["existing"], strict=True)
    ]
    return {"file": rows["file"], "plan": np.array(plans, dtype=object)}


def ray_ingest(
    db,
    paths,
    collection: str,
    *,
    address: str | None = None,
    actors: int | None = None,
    actor_cpus: float = 1.0,
    embedder: str | None = None,
    ignore=(),
    text_field: str = "text",
    chunk_tokens: int | None = None,
    overlap: int = 32,
    batch_size: int = 64,
    sync: bool = False,
    progress=None,
    patience: float = 120.0,
    embed_class: type = EmbedBatches,
) -> local.IngestReport:
    """vdb.ingest.ingest on Ray: the same chunk ids, payloads and vectors, report and progress.

    db: a vdb.connect(...) database (the server that owns the collection) or a vdb.open(...)
    one (then the cluster must be this one node). address: the cluster (ray.init's address;
    None joins the running one or starts a local one; a cluster started here is shut down at
    the end). actors: embedding actors (default: the cluster's CPUs / actor_cpus);
    batch_size: chunks per embedding and write batch; patience: seconds to wait for an
    unreachable server before giving up; embed_class: the actors' callable class (a subclass
    of EmbedBatches)."""
    ray = import_ray()
    started = time.perf_counter()
    col, model, max_tokens, settings = local.prepare(
        db, collection, embedder, chunk_tokens, overlap, text_field, batch_size=batch_size
    )
    own = not ray.is_initialized()
    if own:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        _check_cluster(ray, db, actors, actor_cpus)
        job = _Job(col, model.name, batch_size, progress, patience)
        plan_settings = {
            "max_tokens": max_tokens,
            "overlap": overlap,
            "text_field": text_field,
            "settings": settings,
        }
        report = job.report
        marks = [time.perf_counter()]
        job.plan(ray, local.discover(paths, ignore), plan_settings)
        marks.append(time.perf_counter())
        cpus = ray.cluster_resources().get("CPU", 1.0)
        pool = actors or max(1, int(cpus // actor_cpus))
        job.embed_and_write(ray, embed_class, pool, actor_cpus)
        marks.append(time.perf_counter())
        if sync:
            report.deleted += job.retrying(local._sync, col, paths, set(job.names))
        report.seconds = time.perf_counter() - started
        report.phases = {
            "prepare": marks[0] - started,
            "plan": marks[1] - marks[0],
            "embed": marks[2] - marks[1],
        }
        return report
    finally:
        if own:
            ray.shutdown()


def _check_cluster(ray, db, actors, actor_cpus) -> None:
    if actors is not None and (
        not isinstance(actors, int) or isinstance(actors, bool) or actors < 1
    ):
        raise InvalidArgumentError(f"actors must be an integer >= 1, got {actors!r}")
    if not actor_cpus > 0:
        raise InvalidArgumentError(f"actor_cpus must be > 0, got {actor_cpus!r}")
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and isinstance(db, Database):
        raise InvalidArgumentError(
            f"the Ray cluster has {len(nodes)} nodes: write to a server (vdb --server HOST:PORT "
            "or vdb.connect) rather than a local directory"
        )


class _Job:
    """The driver's side of one run: plans in file order, batches, writes, stale deletes."""

    def __init__(self, col, model: str, batch_size: int, progress, patience: float):
        self.col, self.model = col, model
        self.batch_size, self.progress, self.patience = batch_size, progress, patience
        self.report = local.IngestReport()
        self.names: list[str] = []
        self.batches: list[list[local.ChunkPoint]] = []
        self.pending: list[local.ChunkPoint] = []
        self.open_batches: dict[int, list[int]] = {}  # file -> batches not yet acknowledged
        self.stale: dict[int, list[str]] = {}  # file -> ids deleted once its batches are in
        self.planned = 0

    def tick(self) -> None:
        if self.progress is not None:
            self.progress(self.report, self.planned, self.report.files)

    def retrying(self, fn, *args):
        """fn(*args), called again while the server is unreachable, up to patience seconds."""
        waited, pause = 0.0, 0.25
        while True:
            try:
                return fn(*args)
            except RETRYABLE:
                if waited >= self.patience:
                    raise
                time.sleep(pause)
                waited, pause = waited + pause, min(pause * 2, 5.0)

    # ---------------------------------------------------------------- planning

    def plan(self, ray, files: list[Path], settings: dict) -> None:
        report = self.report
        sizes = [local._size(f) for f in files]
        report.files, report.bytes = len(files), sum(sizes)
        self.names = [str(f) for f in files]
        existing = self.retrying(local.existing_payloads, self.col, self.names)
        rows = [
            {"file": i, "path": name, "existing": orjson.dumps(existing[name])}
            for i, name in enumerate(self.names)
        ]
        if not rows:
            self.tick()
            return
        blocks = max(1, -(-len(rows) // FILES_PER_TASK))
        ds = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            _plan_files,
            batch_size=FILES_PER_TASK,
            batch_format="numpy",
            fn_kwargs={"model": self.model, "settings": settings},
        )
        waiting: dict[int, local.FilePlan] = {}
        for row in ds.iter_rows():
            fp = pickle.loads(row["plan"])
            report.planned_files += 1
            report.planned_bytes += sizes[row["file"]]
            report.to_embed += len(fp.new)
            waiting[row["file"]] = fp
            while self.planned in waiting:  # in file order, as the local executor takes them
                self.take(self.planned, waiting.pop(self.planned))
                self.planned += 1
            self.tick()
        if self.pending:
            self.batches.append(self.pending)
            self.pending = []

    def take(self, file: int, fp: local.FilePlan) -> None:
        """One file's plan: counted, moved chunks rewritten, new chunks cut into batches."""
        report = self.report
        if fp.error is not None:
            report.failed.append((fp.path, fp.error))
            return
        report.chunks += fp.chunks
        if fp.unchanged:
            report.unchanged_files += 1
            return
        if fp.moved:
            self.retrying(local._rewrite, self.col, fp.moved)
            report.moved += len(fp.moved)
        spans = set()
        for p in fp.new:
            spans.add(len(self.batches))
            self.pending.append(p)
            if len(self.pending) >= self.batch_size:
                self.batches.append(self.pending)
                self.pending = []
        if fp.stale and not spans:
            self.delete_stale(fp.stale)
        elif fp.stale:
            self.open_batches[file] = sorted(spans)
            self.stale[file] = fp.stale

    def delete_stale(self, ids: list[str]) -> None:
        self.retrying(lambda: self.col.delete(ids=ids))
        self.report.deleted += len(ids)

    # ---------------------------------------------------------------- embedding and writing

    def embed_and_write(self, ray, embed_class: type, pool: int, actor_cpus: float) -> None:
        if not self.batches:
            return
        items = [{"batch": b, "texts": [p.text for p in ps]} for b, ps in enumerate(self.batches)]
        actor = type(embed_class.__name__, (embed_class,), {"model_name": self.model})
        with warnings.catch_warnings():  # Ray 2.5x warns of max_restarts as a remote argument
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                actor,
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(pool, len(items))),
                num_cpus=actor_cpus,
                runtime_env={"env_vars": threads(actor_cpus)},
                max_restarts=RETRIES,
                max_task_retries=RETRIES,
            )
        by_file: dict[int, list[int]] = {}
        for file, spans in self.open_batches.items():
            for b in spans:
                by_file.setdefault(b, []).append(file)
        dim = self.col.dim

        def upserts():
            for row in ds.iter_rows():
                b = int(row["batch"])
                points = self.batches[b]
                vectors = np.frombuffer(row["vectors"], dtype="<f4").reshape(len(points), dim)
                batch = {
                    "ids": [p.id for p in points],
                    "vectors": vectors,
                    "payloads": [p.payload for p in points],
                    "documents": [p.text for p in points],
                }
                yield b, batch

        def acknowledged(b: int) -> None:
            self.report.embedded += len(self.batches[b])
            self.batches[b] = []
            for file in by_file.pop(b, ()):
                left = self.open_batches[file]
                left.remove(b)
                if not left:
                    del self.open_batches[file]
                    self.delete_stale(self.stale.pop(file))
            self.tick()

        Stream(self.col, acknowledged, self.patience).write(upserts())


class Stream:
    """bulk_upsert of (key, batch) pairs, resumed after a server restart from the first batch
    it had not acknowledged; on_ack(key) runs as each batch is acknowledged, in order."""

    def __init__(self, col, on_ack, patience: float):
        self.col, self.on_ack, self.patience = col, on_ack, patience
        self.sent: deque = deque()  # (key, batch) taken from the source, not acknowledged
        self.base = 0  # batches acknowledged: sent[0] is the base-th taken from the source
        self.lock = threading.Lock()  # one taker of the source at a time
        self.attempt = 0

    def write(self, source) -> None:
        source = iter(source)
        waited, pause = 0.0, 0.25
        while True:
            self.attempt += 1
            acked = [0]
            try:
                self.col.bulk_upsert(self._requests(source, self.attempt), self._ack(acked))
                return
            except RETRYABLE:
                if acked[0]:
                    waited, pause = 0.0, 0.25
                if waited >= self.patience:
                    raise
                time.sleep(pause)
                waited, pause = waited + pause, min(pause * 2, 5.0)

    def _requests(self, source, attempt: int):
        """The batches of one attempt: those sent before and not acknowledged, then new ones.
        A request thread of a failed attempt may still be taking a batch from the source: it
        lands in `sent`, and the next attempt sends it in its turn."""
        position = None  # of the next batch to send, counted from the source's first
        while True:
            with self.lock:
                if position is None:
                    position = self.base
                if position - self.base < len(self.sent):
                    batch = self.sent[position - self.base][1]
                elif attempt != self.attempt:
                    return
                else:
                    item = next(source, None)
                    if item is None:
                        return
                    self.sent.append(item)
                    batch = item[1]
            position += 1
            yield batch

    def _ack(self, acked: list[int]):
        def on_batch(i: int, result) -> None:
            with self.lock:
                key, _ = self.sent.popleft()
                self.base += 1
            acked[0] += 1
            self.on_ack(key)

        return on_batch
