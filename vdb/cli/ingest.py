"""`vdb ingest`: files and directories into a collection, chunked and embedded."""

import sys

import click

from vdb.cli.main import echo_json, open_db


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option("--collection", "-c", required=True, help="Collection to write (created if missing).")
@click.option("--embedder", help="Embedding model of a new collection (default: the default).")
@click.option(
    "--ignore",
    multiple=True,
    help="Glob of file or directory names to skip (repeatable; dot files are skipped).",
)
@click.option(
    "--text-field", default="text", show_default=True, help="Text field of .json/.jsonl records."
)
@click.option(
    "--chunk-tokens",
    type=click.IntRange(8),
    help="Tokens per chunk (default: what the embedding model reads, 254 for the default).",
)
@click.option(
    "--overlap", type=click.IntRange(0), default=32, show_default=True, help="Tokens repeated."
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Chunks per embedding and write batch.",
)
@click.option(
    "--jobs", "-j", type=click.IntRange(1), default=2, show_default=True, help="Loader threads."
)
@click.option("--sync", is_flag=True, help="Delete chunks of files gone from the directories.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def ingest_cmd(ctx, paths, collection, as_json, **options):
    """Ingest PATHS (files, directories, globs: .txt .md .html .pdf .json .jsonl) into
    COLLECTION: chunked by the embedding model's token counts, embedded in batches, with
    source, span and heading path in each chunk's payload. Unchanged chunks are skipped on
    a second run, changed files replace their chunks, and a killed run completes when run
    again."""
    from tqdm import tqdm

    from vdb.ingest import ingest

    bar = tqdm(
        total=0,
        unit=" files",
        file=sys.stderr,
        disable=as_json or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )

    def progress(report, done, total):
        bar.total = total
        bar.n = done
        rate = report.embedded / max(bar.format_dict["elapsed"], 1e-9)
        bar.set_postfix_str(f"{report.embedded} chunks, {rate:.1f} chunks/s", refresh=False)
        bar.refresh()

    with open_db(ctx) as db:
        try:
            report = ingest(db, paths, collection, progress=progress, **options)
        finally:
            bar.close()
    summary = {
        "collection": collection,
        "files": report.files,
        "unchanged_files": report.unchanged_files,
        "failed": [{"file": f, "error": e} for f, e in report.failed],
        "chunks": report.chunks,
        "embedded": report.embedded,
        "moved": report.moved,
        "deleted": report.deleted,
        "seconds": round(report.seconds, 3),
        "chunks_per_second": round(report.chunks_per_second, 2),
    }
    if as_json:
        echo_json(summary)
        return
    for f, e in report.failed:
        click.echo(f"skipped {f}: {e}", err=True)
    click.echo(
        f"{report.files} files ({report.unchanged_files} unchanged, {len(report.failed)} "
        f"failed): {report.chunks} chunks, {report.embedded} embedded, {report.moved} moved, "
        f"{report.deleted} deleted in {report.seconds:.1f} s "
        f"({report.chunks_per_second:.1f} chunks/s)"
    )
