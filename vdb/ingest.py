"""Batch ingestion: files -> documents -> chunks -> embedded points, idempotent and resumable.

The work is a pure function per file (plan_file: load, chunk, hash, and compare with what the
collection holds) and one per batch of chunks (write_batch: embed and upsert), run by a local
executor (ingest) that plans files on --jobs threads and writes batches as they fill. The same
two functions can run on a distributed engine, with the gRPC client as the sink.

Each chunk is a point whose id hashes its file, source, text and occurrence, so an unchanged
chunk keeps its id (and is not embedded again) wherever it moves in its file. Its payload:
file, source, file_hash, chunk_hash, chunk_index, chunks (the file's count), start and end
(character span in the source document), headings (the heading path) and the record's own
fields under meta (JSON sources). A file is unchanged when every chunk of its current content
is present; a changed file's old chunks are deleted only after its new ones are durable, so a
killed run loses nothing and the next run finishes the job without duplicates.
"""

import fnmatch
import glob
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vdb.collection import scan
from vdb.errors import CollectionNotFoundError, InvalidArgumentError
from vdb.text import chunking, loaders

DEFAULT_IGNORE = (".*", "__pycache__", "node_modules", "*.egg-info")


@dataclass
class ChunkPoint:
    id: str
    text: str
    payload: dict


@dataclass
class FilePlan:
    """What one file needs: chunks to embed and write, chunks whose place changed (written
    again with their stored vectors), and ids to delete once those are durable."""

    path: str
    unchanged: bool = False
    new: list[ChunkPoint] = field(default_factory=list)
    moved: list[ChunkPoint] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    chunks: int = 0
    error: str | None = None


@dataclass
class IngestReport:
    files: int = 0
    unchanged_files: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0  # chunks the files hold now
    embedded: int = 0  # chunks embedded and written by this run
    moved: int = 0  # chunks rewritten with their stored vectors
    deleted: int = 0  # stale chunks of changed files, and of vanished files with sync
    seconds: float = 0.0
    # progress, updated as the loader threads plan files (ahead of the embedding):
    bytes: int = 0  # size of the files found
    planned_files: int = 0  # files loaded, chunked and compared so far
    planned_bytes: int = 0  # their size
    to_embed: int = 0  # chunks those files need embedded
    phases: dict[str, float] = field(default_factory=dict)  # seconds per stage (Ray runs)

    @property
    def chunks_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0

    @property
    def expected_embeds(self) -> int:
        """Chunks this run will have embedded when done: exact once every file is planned,
        else the planned files' count extrapolated by size to the rest (chunks per byte)."""
        if self.planned_files >= self.files or self.planned_bytes >= self.bytes:
            return self.to_embed
        if not self.planned_bytes:
            return max(self.to_embed, self.embedded)
        rest = (self.bytes - self.planned_bytes) * self.to_embed / self.planned_bytes
        return max(self.to_embed + round(rest), self.embedded)


def discover(paths: Iterable, ignore: Iterable[str] = ()) -> list[Path]:
    """The files to ingest, each by its resolved path (however it was named, relative,
    absolute or through a link, a file is one file): files named directly (any suffix), and
    the files under directories or matching glob patterns that have a loader, minus ignored
    names."""
    ignore = (*DEFAULT_IGNORE, *ignore)
    found: dict[str, Path] = {}

    def skipped(p: Path) -> bool:
        return any(fnmatch.fnmatch(part, pat) for part in p.parts for pat in ignore)

    for raw in paths:
        raw = str(raw)
        path = Path(raw)
        if path.is_file():
            found.setdefault(str(path.resolve()), path.resolve())
            continue
        if path.is_dir():
            candidates = (p for p in sorted(path.rglob("*")) if p.is_file())
            base = path
        elif any(ch in raw for ch in "*?["):
            base = Path(".")
            candidates = (Path(m) for m in sorted(glob.glob(raw, recursive=True)))
            candidates = (p for p in candidates if p.is_file())
        else:
            raise InvalidArgumentError(f"{raw!r}: no such file or directory")
        for p in candidates:
            rel = p.relative_to(base) if p.is_relative_to(base) else p
            if p.suffix.lower() in loaders.SUFFIXES and not skipped(rel):
                found.setdefault(str(p.resolve()), p.resolve())
    return list(found.values())


def _hash(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def plan_file(
    path: Path,
    existing: dict[str, dict],
    count: Callable[[list[str]], list[int]],
    max_tokens: int,
    overlap: int,
    text_field: str = "text",
    settings: str = "",
) -> FilePlan:
    """What to do for one file, given the payloads of the points the collection holds for it
    (id -> payload). Pure: reads the file, writes nothing."""
    name = str(path)
    plan = FilePlan(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        plan.error = exc.strerror or str(exc)
        return plan
    file_hash = hashlib.sha256(data).hexdigest()[:32]
    if existing and all(
        p.get("file_hash") == file_hash
        and p.get("chunks") == len(existing)
        and p.get("settings", "") == settings
        for p in existing.values()
    ):
        plan.unchanged, plan.chunks = True, len(existing)
        return plan
    try:
        docs = loaders.load(path, text_field)
    except loaders.LoaderError as exc:
        plan.error = str(exc)
        return plan
    points = []
    for doc in docs:
        seen: dict[str, int] = {}
        for c in chunking.chunk(doc.text, count, max_tokens, overlap, doc.blocks):
            n = seen[c.text] = seen.get(c.text, -1) + 1
            payload = {
                "file": name,
                "source": doc.source,
                "file_hash": file_hash,
                "chunk_hash": _hash(c.text)[:32],
                "chunk_index": len(points),
                "start": c.start,
                "end": c.end,
                "headings": list(c.headings),
                "settings": settings,
            }
            if doc.metadata:
                payload["meta"] = doc.metadata
            points.append(ChunkPoint(_hash(name, doc.source, c.text, str(n))[:32], c.text, payload))
    for p in points:
        p.payload["chunks"] = len(points)
    plan.chunks = len(points)
    new_ids = {p.id for p in points}
    for p in points:
        old = existing.get(p.id)
        if old is None:
            plan.new.append(p)
        elif old != p.payload:
            plan.moved.append(p)
    plan.stale = [i for i in existing if i not in new_ids]
    return plan


def write_batch(col, points: list[ChunkPoint]) -> None:
    """Embed (through the collection's embedder) and upsert one batch of chunks."""
    col.upsert(
        [p.id for p in points],
        payloads=[p.payload for p in points],
        documents=[p.text for p in points],
    )


def _rewrite(col, points: list[ChunkPoint]) -> None:
    """Chunks whose text is stored already: new payloads, the stored vectors."""
    records = {r.id: r for r in col.get([p.id for p in points], with_vectors=True)}
    keep = [p for p in points if p.id in records]
    if keep:
        col.upsert(
            [p.id for p in keep],
            [records[p.id].vector for p in keep],
            [p.payload for p in keep],
            [p.text for p in keep],
        )


def _existing(col, files: list[str]) -> dict[str, dict[str, dict]]:
    """file -> {id: payload} of the points the collection holds for those files (resolved
    paths), under their name or under the name relative to the working directory that
    earlier versions stored (those chunks are then stale, and go once the file's chunks
    under its resolved name are written)."""
    out: dict[str, dict[str, dict]] = {f: {} for f in files}
    names = {f: f for f in files}
    for f in files:
        rel = os.path.relpath(f)
        names.setdefault(rel, f)
        names.setdefault(os.path.join(".", rel), f)
    for r in scan(col, {"file": {"$in": list(names)}}):
        f = names.get((r.payload or {}).get("file"))
        if f is not None:
            out[f][r.id] = r.payload
    return out


def prepare(db, collection, embedder, chunk_tokens, overlap, text_field, **counts):
    """(collection, embedding model, tokens per chunk, settings hash) of an ingestion run, the
    collection created with embedder (by default the default model) if missing; counts are
    checked as integers >= 1 (overlap >= 0)."""
    import embed

    limits = [(name, value, 1) for name, value in counts.items()] + [("overlap", overlap, 0)]
    for name, value, low in limits:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidArgumentError(f"{name} must be an integer >= {low}, got {value!r}")
    try:
        col = db.get_collection(collection)
    except CollectionNotFoundError:
        col = db.get_or_create_collection(
            collection, embedder=embedder or embed.DEFAULT_MODEL, text="en"
        )
    if col.config.embedder is None:
        raise InvalidArgumentError(
            f"collection {collection!r} has no embedder: ingestion needs one to embed chunks"
        )
    model = embed.load(col.config.embedder)
    max_tokens = model.max_tokens - 2 if chunk_tokens is None else chunk_tokens
    if max_tokens > model.max_tokens - 2:
        raise InvalidArgumentError(
            f"chunk_tokens {max_tokens} exceeds what {col.config.embedder} reads "
            f"({model.max_tokens - 2} tokens besides its special tokens)"
        )
    chunking.check(max_tokens, overlap)
    # chunks made with other settings are redone (an unchanged file is not skipped)
    settings = _hash(
        col.config.embedder, str(max_tokens), str(overlap), text_field, chunking.VERSION
    )[:16]
    return col, model, max_tokens, settings


def existing_payloads(col, names: list[str]) -> dict[str, dict[str, dict]]:
    """file -> {id: payload} of the points the collection holds for the files, 512 at a time."""
    existing = {}
    for i in range(0, len(names), 512):
        existing.update(_existing(col, names[i : i + 512]))
    return existing


def ingest(
    db,
    paths,
    collection: str,
    *,
    embedder: str | None = None,
    ignore: Iterable[str] = (),
    text_field: str = "text",
    chunk_tokens: int | None = None,
    overlap: int = 32,
    batch_size: int = 64,
    jobs: int = 1,
    sync: bool = False,
    progress: Callable[[IngestReport, int, int], None] | None = None,
) -> IngestReport:
    """Ingest files and directories into collection (created with embedder, by default the
    default model, if missing). chunk_tokens: tokens per chunk (default: the embedder's limit
    less its two special tokens); sync: also delete the chunks of files under the given
    directories that no longer exist. progress(report, files_done, files_total) is called as
    work lands; the report's embedded and expected_embeds measure the work in chunks."""
    started = time.perf_counter()
    col, model, max_tokens, settings = prepare(
        db,
        collection,
        embedder,
        chunk_tokens,
        overlap,
        text_field,
        batch_size=batch_size,
        jobs=jobs,
    )

    def count(texts: list[str]) -> list[int]:
        return [len(ids) - 2 for ids in model.tokenizer.encode_batch(texts)]

    files = discover(paths, ignore)
    sizes = [_size(f) for f in files]
    report = IngestReport(files=len(files), bytes=sum(sizes))
    names = [str(f) for f in files]
    existing = existing_payloads(col, names)

    pending: list[ChunkPoint] = []
    waiting: list[tuple[FilePlan, int]] = []  # plans whose stale ids go once written
    written = 0  # chunks upserted so far, in order
    planned = 0  # files planned so far

    def flush():
        nonlocal pending, written
        if pending:
            write_batch(col, pending)
            written += len(pending)
            report.embedded += len(pending)
            pending = []
        for plan, _ in [w for w in waiting if w[1] <= written]:
            if plan.stale:
                col.delete(ids=plan.stale)
                report.deleted += len(plan.stale)
        waiting[:] = [w for w in waiting if w[1] > written]
        if progress is not None:
            progress(report, planned, len(files))

    planning = threading.Lock()

    def plan(path: Path, size: int) -> FilePlan:
        fp = plan_file(
            path, existing.get(str(path), {}), count, max_tokens, overlap, text_field, settings
        )
        with planning:
            report.planned_files += 1
            report.planned_bytes += size
            report.to_embed += len(fp.new)
        return fp

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for done, fp in enumerate(pool.map(plan, files, sizes), 1):
            planned = done
            if fp.error is not None:
                report.failed.append((fp.path, fp.error))
            elif fp.unchanged:
                report.unchanged_files += 1
                report.chunks += fp.chunks
            else:
                report.chunks += fp.chunks
                if fp.moved:
                    _rewrite(col, fp.moved)
                    report.moved += len(fp.moved)
                for p in fp.new:
                    pending.append(p)
                    if len(pending) >= batch_size:
                        flush()
                waiting.append((fp, written + len(pending)))
            if not pending or done == len(files):
                flush()
            elif progress is not None:
                progress(report, planned, len(files))
    flush()
    if sync:
        report.deleted += _sync(col, paths, set(names))
    report.seconds = time.perf_counter() - started
    return report


def _size(path: Path) -> int:
    """A file's size in bytes (0 when it cannot be read: its plan reports the error)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _sync(col, paths, present: set[str]) -> int:
    """Delete the chunks of files under the given directories that were not ingested now
    because they no longer exist."""
    roots = [Path(p).resolve() for p in paths if Path(p).is_dir()]
    gone = set()
    for r in scan(col):
        f = (r.payload or {}).get("file")
        if not isinstance(f, str) or f in present or Path(f).exists():
            continue
        if any(Path(f).resolve().is_relative_to(root) for root in roots):
            gone.add(f)
    if not gone:
        return 0
    return col.delete(filter={"file": {"$in": sorted(gone)}}).count


def ray_ingest(db, paths, collection: str, **options) -> IngestReport:
    """ingest() on a Ray cluster (Ray Data): see vdb.ingest_ray.ray_ingest. Needs the extra
    `pip install 'vdb[ray]'`."""
    from vdb.ingest_ray import ray_ingest as run

    return run(db, paths, collection, **options)
