"""`vdb ask`: answers from a collection's documents, with their sources."""

import sys

import click

from vdb.cli.llm import sampler_options
from vdb.cli.main import echo_json, open_db, parse_json


def _where(s) -> str:
    place = s.source or s.file or str(s.id)
    if s.headings:
        place += " > " + " > ".join(s.headings)
    if s.start is not None and s.end is not None:
        place += f" (chars {s.start}-{s.end})"
    return place


@click.command("ask")
@click.argument("question")
@click.option("--collection", "-c", required=True, help="The collection to answer from.")
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A GGUF generation model; without one the answer is extractive.",
)
@click.option("-k", "k", type=click.IntRange(1), default=5, show_default=True, help="Sources.")
@click.option("--filter", "filter_json", help="Payload filter (JSON) on the sources.")
@click.option(
    "--max-tokens",
    "-n",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Tokens of the generated answer at most.",
)
@click.option("--ctx", "n_ctx", type=click.IntRange(1), help="Context size of the model.")
@sampler_options
@click.option("--json", "as_json", is_flag=True, help="Print answer, citations and sources.")
@click.pass_context
def ask_cmd(
    ctx, question, collection, model_path, k, filter_json, max_tokens, n_ctx, sampler, as_json
):
    """Answer QUESTION from COLLECTION (see `vdb ingest`): hybrid retrieval of the best
    chunks, then a generated answer citing them as [n] when --model is given, or else the
    sentence of the best chunk that best answers it (extractive), with its source."""
    from vdb import rag

    model = None
    if model_path:
        import llm

        model = llm.load(model_path, n_ctx=n_ctx)
    flt = parse_json(filter_json, "--filter") if filter_json else None

    started = []

    def show(piece):
        if model is None:  # a quoted sentence: its line breaks are the file's wrapping
            piece = " ".join(piece.split())
            if not started:
                click.echo(
                    "Extractive answer (no generation model; give --model FILE.gguf to "
                    "generate one):"
                )
        started.append(piece)
        sys.stdout.write(piece)
        sys.stdout.flush()

    with open_db(ctx, read_only=True) as db:
        col = db.get_collection(collection)
        answer = rag.ask(
            col,
            question,
            model,
            k=k,
            filter=flt,
            max_tokens=max_tokens,
            on_piece=None if as_json else show,
            **sampler,
        )
    if as_json:
        echo_json(answer.as_dict())
        return
    click.echo("\n")
    cited = [s for s in answer.sources if s.number in answer.cited]
    if answer.extractive and cited:
        click.echo(f"from [1] {_where(cited[0])}")
        return
    click.echo("Sources cited:" if cited else "Sources (none cited):")
    for s in cited or answer.sources:
        click.echo(f"  [{s.number}] {_where(s)}")
