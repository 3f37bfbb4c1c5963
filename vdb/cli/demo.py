"""`vdb demo`: the main job on the embedded defaults: ingest the documentation that ships
with vdb into a database and answer questions about it, with sources."""

import shutil
import sys
import tempfile
from pathlib import Path

import click

from vdb.cli.model import model_file

DOCS = Path(__file__).resolve().parent.parent / "docs"
QUESTIONS = (
    "What happens if an ingestion is killed?",
    "Which keys may replace the generation model?",
    "How are chunks cut to fit the embedding model?",
)


@click.command()
@click.option(
    "--keep",
    is_flag=False,
    flag_value="",
    metavar="[DIR]",
    type=click.Path(file_okay=False),
    help="Keep the database when done: in DIR (created, or used again), or with no DIR in "
    "the temporary directory, whose path is printed. Without --keep it is removed.",
)
@click.option("--question", multiple=True, help="Ask this instead (repeatable).")
@click.option(
    "--model",
    "model_path",
    metavar="NAME|FILE",
    callback=model_file,
    help="A generation model that writes the answers (a name from `vdb model list`, e.g. "
    "gemma3-270m after `vdb model pull gemma3-270m`, or a .gguf file).",
)
def demo(keep, question, model_path):
    """Ingest vdb's own documentation into a throwaway database and answer questions about
    it, with the default embedding model and extractive answers (no generation model
    needed), or answers written by --model. The database is removed when done unless
    --keep."""
    model = None
    if model_path:
        import llm

        model = llm.load(model_path)
    path = keep or tempfile.mkdtemp(prefix="vdb-demo-")
    try:
        _run(path, question or QUESTIONS, model)
    finally:
        if keep is None:
            shutil.rmtree(path, ignore_errors=True)
    if keep is not None:
        click.echo(f"The database stays in {path}.")
    name = path if keep is not None else "DIR"
    click.echo("Next: your own files, and a generation model for written answers:")
    click.echo(f"  vdb --data {name} ingest ~/notes --collection notes")
    click.echo(f'  vdb --data {name} ask "a question" --collection notes [--model NAME|FILE]')
    sys.stdout.flush()


def _run(path: str, questions, model) -> None:
    """Ingest the documentation into the database at path and answer the questions."""
    import vdb
    from vdb import rag
    from vdb.ingest import ingest

    click.echo(f"database: {path}")
    click.echo(
        f"ingesting {DOCS} (the first run converts the default embedding model and "
        "compiles kernels: under a minute)"
    )
    with vdb.open(path) as db:
        report = ingest(db, [DOCS], "vdb-docs")
        click.echo(
            f"  {report.files} files, {report.chunks} chunks ({report.embedded} embedded, "
            f"{report.unchanged_files} files unchanged) in {report.seconds:.1f} s\n"
        )
        col = db.get_collection("vdb-docs")
        for q in questions:
            # a small model answers best from a few sources
            k = 3 if model is not None else 5
            answer = rag.ask(col, q, model, k=k, max_tokens=128, temperature=0)
            top = answer.sources[0] if answer.sources else None
            how = "extractive" if answer.extractive else "generated"
            click.echo(f"Q: {q}")
            click.echo(f"A ({how}): {' '.join(answer.text.split())}")
            cited = [s for s in answer.sources if s.number in answer.cited]
            for s in cited or ([top] if top else []):
                label = f"[{s.number}] " if not answer.extractive else ""
                click.echo(f"   source: {label}{_where(s)}")
            click.echo("")


def _where(source) -> str:
    """A source as its file's name and headings."""
    headings = " > " + " > ".join(source.headings) if source.headings else ""
    return Path(source.file or "").name + headings
