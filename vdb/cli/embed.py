"""`vdb embed`: texts to vectors with an embedding model."""

import sys
from pathlib import Path

import click
import numpy as np

from vdb.cli.common import echo_json


@click.command("embed")
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option(
    "--file",
    "-f",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Embed each non-empty line of this file.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the vectors to this .npy file instead of printing them.",
)
@click.option(
    "--embedder",
    "-e",
    "model_name",
    metavar="NAME|FILE",
    help="Embedding model: a name from `vdb model list` or a .gguf file (default: "
    "all-MiniLM-L6-v2).",
)
@click.option("--model", "old_model_name", hidden=True, help="Former name of --embedder.")
@click.option(
    "--batch-size",
    "-b",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Texts per forward pass (also capped at 8,192 tokens).",
)
def embed_cmd(texts, file, out, model_name, old_model_name, batch_size):
    """Embed each TEXT (and the lines of --file) with the --embedder model and print the vectors
    as JSON, or save them."""
    import embed

    if model_name is not None and old_model_name is not None:
        raise click.UsageError("give the embedding model once, with --embedder")
    model_name = model_name or old_model_name
    items = list(texts)
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise click.BadParameter(f"{file} is not UTF-8 text: {exc}") from None
        items += [line for line in lines if line.strip()]
    if not items:
        raise click.UsageError("give texts as arguments or with --file")
    model = embed.load(model_name)
    with click.progressbar(
        length=len(items),
        label=f"embedding with {model.name}",
        hidden=len(items) < 256,
        file=sys.stderr,
    ) as bar:
        done = [0]

        def progress(n):
            bar.update(n - done[0])
            done[0] = n

        vectors = model.embed(items, batch_size=batch_size, progress=progress)
    if out is not None:
        out = out if out.suffix == ".npy" else out.with_name(out.name + ".npy")
        np.save(out, vectors)
        click.echo(f"wrote {vectors.shape[0]} x {vectors.shape[1]} vectors to {out}", err=True)
    else:
        echo_json([{"text": t, "vector": v} for t, v in zip(items, vectors, strict=True)])
