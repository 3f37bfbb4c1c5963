"""`vdb import` and `vdb search`."""

import json
import sys
from pathlib import Path

import click
import numpy as np

from vdb import validate
from vdb.cli.common import echo_json, metric_option, open_db, parse_json
from vdb.errors import CollectionNotFoundError
from vdb.index.config import MAX_EF


@click.command("import")
@click.argument("collection")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--ids",
    "ids_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="For .npy input: a text file with one id per line (default: row numbers).",
)
@click.option("--create", is_flag=True, help="Create the collection if missing (dim from data).")
@metric_option
@click.option(
    "--batch-size",
    "-b",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Points per write transaction.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_context
def import_cmd(ctx, collection, file, ids_file, create, metric, batch_size, as_json):
    """Import points into COLLECTION from FILE.

    FILE is JSONL (one {"id", "vector", "payload", "document"} object per line) or a .npy
    array of vectors, with ids from --ids. The whole file is checked before anything is
    written, so a bad line writes nothing.
    """
    if file.suffix == ".npy":
        ids, vectors, payloads, documents = _read_npy(file, ids_file)
    else:
        ids, vectors, payloads, documents = _read_jsonl(file)
    with open_db(ctx) as db:
        try:
            col = db.get_collection(collection)
        except CollectionNotFoundError:
            if not create:
                raise
            col = db.create_collection(collection, vectors.shape[1], metric)
        vectors = validate.vectors(vectors, col.dim, col.metric, ids)
        validate.unique_id_keys(ids)
        validate.payloads(payloads, len(ids))
        starts = range(0, len(ids), batch_size)
        show = not as_json and len(starts) > 1
        batches = (
            (ids[i : i + batch_size], vectors[i : i + batch_size])
            + (payloads[i : i + batch_size], documents[i : i + batch_size])
            for i in starts
        )
        with click.progressbar(
            length=len(starts), label="importing", hidden=not show, file=sys.stderr
        ) as bar:
            col.bulk_upsert(batches, on_batch=lambda i, result: bar.update(1))
        total = col.count()
    if as_json:
        echo_json({"collection": collection, "imported": len(ids), "count": total})
    else:
        click.echo(f"imported {len(ids)} points into {collection} ({total} in total)")


def _read_npy(file: Path, ids_file: Path | None):
    try:
        vectors = np.load(file, allow_pickle=False)
    except ValueError as exc:
        raise click.BadParameter(f"{file} is not a numeric .npy array: {exc}") from None
    if vectors.ndim != 2:
        raise click.BadParameter(f"{file} holds shape {vectors.shape}; expected (n, dim)")
    n = vectors.shape[0]
    if ids_file is None:
        ids = list(range(n))
    else:
        ids = [_parse_id(line) for line in ids_file.read_text().splitlines() if line.strip()]
        if len(ids) != n:
            raise click.BadParameter(f"{ids_file} has {len(ids)} ids for {n} vectors")
    return ids, vectors, [None] * n, [None] * n


def _parse_id(text: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return text


def _read_jsonl(file: Path):
    ids, vectors, payloads, documents = [], [], [], []
    with file.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"{file}:{lineno}: not JSON: {exc}") from None
            if not isinstance(obj, dict) or "id" not in obj or "vector" not in obj:
                raise click.BadParameter(f"{file}:{lineno}: expected an object with id and vector")
            ids.append(obj["id"])
            vectors.append(obj["vector"])
            payloads.append(obj.get("payload"))
            documents.append(obj.get("document"))
    if not ids:
        raise click.BadParameter(f"{file} holds no points")
    try:
        array = np.array(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise click.BadParameter(f"{file}: vectors must be numeric lists of one length") from None
    return ids, array, payloads, documents


@click.command()
@click.argument("collection", metavar="COLLECTION|QUERY")
@click.option(
    "--collection",
    "-c",
    "hybrid_in",
    metavar="NAME",
    help="Hybrid search: the argument is the QUERY text, searched in collection NAME by "
    "meaning and by words (BM25), fused; hits show their sources.",
)
@click.option("--text", help="A text query (for a collection with an embedder).")
@click.option("--vector", "-v", help="The query vector as a JSON list.")
@click.option(
    "--file",
    "-f",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the query from a .npy file (one row, see --row) or a JSON list.",
)
@click.option("--row", type=int, default=0, show_default=True, help="Row of --file to use.")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of hits.")
@click.option(
    "--filter", "filter_json", help='Payload filter as JSON, e.g. \'{"year": {"$gte": 2020}}\'.'
)
@click.option("--ef", type=click.IntRange(1, MAX_EF), help="HNSW search breadth for this query.")
@click.option("--with-vectors", is_flag=True, help="Include the stored vectors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def search(
    ctx, collection, hybrid_in, text, vector, file, row, k, filter_json, ef, with_vectors, as_json
):
    """Search COLLECTION for the nearest points to a query given with --vector, --file or
    --text (a collection with an embedder).

    With --collection NAME, the argument is a QUERY instead: `vdb search "QUERY" -c NAME`
    searches the documents of NAME (see `vdb ingest`) by meaning and by words, fused."""
    flt = parse_json(filter_json, "--filter") if filter_json else None
    if hybrid_in is not None:
        vector_only = {"--text": text, "--vector": vector, "--file": file, "--ef": ef}
        given = [name for name, value in vector_only.items() if value is not None]
        if given or with_vectors:
            given += ["--with-vectors"] if with_vectors else []
            raise click.UsageError(f"{', '.join(given)}: for a vector search, not with -c")
        return _hybrid(ctx, hybrid_in, collection, k, flt, as_json)
    query = _read_query(text, vector, file, row)
    with open_db(ctx, read_only=True) as db:
        col = db.get_collection(collection)
        hits = col.search(query, k=k, filter=flt, with_vectors=with_vectors, ef=ef)
        metric = col.metric
    if as_json:
        echo_json(
            [
                {
                    "id": h.id,
                    "score": h.score,
                    "payload": h.payload,
                    "document": h.document,
                    **({"vector": h.vector} if with_vectors else {}),
                }
                for h in hits
            ]
        )
        return
    label = "distance" if metric == "l2" else "score"
    click.echo(f"rank\tid\t{label}\tpayload\tdocument")
    for rank, h in enumerate(hits, 1):
        doc = (h.document or "")[:60]
        click.echo(f"{rank}\t{h.id}\t{h.score:.4f}\t{json.dumps(h.payload)}\t{doc}")


def _hybrid(ctx, name, query, k, flt, as_json):
    from vdb import rag

    with open_db(ctx, read_only=True) as db:
        hits = rag.search(db.get_collection(name), query, k=k, filter=flt)
    if as_json:
        echo_json(
            [
                {"id": h.id, "score": h.score, "payload": h.payload, "document": h.document}
                for h in hits
            ]
        )
        return
    for rank, h in enumerate(hits, 1):
        p = h.payload or {}
        where = p.get("source") or p.get("file") or str(h.id)
        if p.get("headings"):
            where += " > " + " > ".join(p["headings"])
        text = " ".join((h.document or "").split())
        click.echo(f"{rank}. {h.score:.3f}  {where}")
        click.echo(f"   {text[:200]}{'...' if len(text) > 200 else ''}")


def _read_query(text, vector, file, row):
    """The query of a vector search: --text as is, --vector parsed, or a row of --file."""
    if sum(x is not None for x in (text, vector, file)) != 1:
        raise click.UsageError("give the query with exactly one of --text, --vector or --file")
    if text is not None:
        return text
    if vector is not None:
        return parse_json(vector, "--vector")
    if file.suffix == ".npy":
        array = np.load(file, allow_pickle=False)
        if array.ndim == 1:
            return array
        if not 0 <= row < array.shape[0]:
            raise click.BadParameter(f"--row {row} is outside {file} ({array.shape[0]} rows)")
        return array[row]
    return parse_json(file.read_text(), str(file))
