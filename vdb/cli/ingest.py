"""`vdb ingest`: files and directories into a collection, chunked and embedded."""

import click

from vdb.cli import progress
from vdb.cli.common import echo_json, open_db

EXIT_FILES_FAILED = 3  # some files could not be read; the others were ingested


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--collection", "-c", required=True, help="Collection to write (created if missing).")
@click.option(
    "--embedder",
    "-e",
    metavar="NAME|FILE",
    help="Embedding model of a new collection (default: all-MiniLM-L6-v2).",
)
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
    "-b",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Chunks per embedding and write batch.",
)
@click.option(
    "--jobs", "-j", type=click.IntRange(1), default=2, show_default=True, help="Loader threads."
)
@click.option("--sync", is_flag=True, help="Delete chunks of files gone from the directories.")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ADDRESS]",
    help="Run on a Ray cluster (Ray Data): plan files in tasks, embed in a pool of actors, "
    "write from here. ADDRESS as for ray.init (auto, ray://HOST:PORT); none joins RAY_ADDRESS "
    "or starts a local cluster. Needs pip install 'vdb[ray]'.",
)
@click.option(
    "--actors",
    type=click.IntRange(1),
    help="Embedding actors with --ray (default: the cluster's CPUs).",
)
@click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(progress.MODES),
    default="auto",
    show_default=True,
    help="Progress on stderr, counted in chunks embedded: a bar, a plain line every "
    f"{progress.PLAIN_EVERY:.0f} s (for logs and pipes), or none. auto: a bar on a terminal, "
    "else plain lines (none with --json).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def ingest_cmd(ctx, paths, collection, progress_mode, as_json, ray_address, actors, **options):
    """Ingest each PATH (files, directories, globs: .txt .md .rst .html .pdf .json .jsonl) into
    the --collection: chunked by the embedding model's token counts, embedded in batches,
    with source, span and heading path in each chunk's payload. Unchanged chunks are skipped on
    a second run, changed files replace their chunks, and a killed run completes when run
    again.

    \b
    Exit status:
      0  every file was ingested (or was unchanged)
      1  an error stopped the run (what was written before it stays, and the next run
         completes it)
      2  a usage error
      3  some files could not be read (listed on stderr, or under "failed" with --json);
         the others were ingested
    """
    from vdb.ingest import ingest

    run = ingest
    if ray_address is not None:
        run = _on_ray(ray_address or None, actors, options)
    reporter = progress.make(progress.choose(progress_mode, as_json))
    report = None
    with open_db(ctx) as db:
        try:
            report = run(db, paths, collection, progress=reporter, **options)
        finally:
            reporter.close(report)
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
    else:
        _print_summary(report)
    if report.failed:
        ctx.exit(EXIT_FILES_FAILED)


def _on_ray(address, actors, options: dict):
    """ray_ingest for the options (--jobs is the local executor's), or a usage error naming
    the extra when Ray is not installed."""
    from vdb import ingest_ray

    try:
        ray = ingest_ray.import_ray()
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    ingest_ray.quiet(ray)
    options.pop("jobs")

    def run(db, paths, collection, **kwargs):
        return ingest_ray.ray_ingest(
            db, paths, collection, address=address, actors=actors, **kwargs
        )

    return run


def _print_summary(report) -> None:
    """The failed files on stderr, then one summary line."""
    for f, e in report.failed:
        click.echo(f"skipped {f}: {e}", err=True)
    click.echo(
        f"{report.files} files ({report.unchanged_files} unchanged, {len(report.failed)} "
        f"failed): {report.chunks} chunks, {report.embedded} embedded, {report.moved} moved, "
        f"{report.deleted} deleted in {report.seconds:.1f} s "
        f"({report.chunks_per_second:.1f} chunks/s)"
    )
