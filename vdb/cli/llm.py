"""`vdb llm info|generate`: GGUF generation models."""

import sys
from collections import Counter

import click

from vdb.cli.main import echo_json


@click.group("llm")
def llm_group():
    """Inspect GGUF models and generate text with llama-family ones."""


@llm_group.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(model, as_json):
    """Metadata, tensor types and sizes of MODEL (a .gguf file)."""
    from llm.gguf_file import GGUFFile

    f = GGUFFile(model)
    types = Counter(t.type_name for t in f.tensors.values())
    sizes = Counter()
    for t in f.tensors.values():
        sizes[t.type_name] += t.nbytes
    meta = {
        k: (v if isinstance(v, str | int | float | bool) else f"[{len(v)} values]")
        for k, v in f.metadata.items()
    }
    data = {
        "path": str(f.path),
        "bytes": f.path.stat().st_size,
        "architecture": f.architecture,
        "tensors": {name: {"count": n, "bytes": sizes[name]} for name, n in types.items()},
        "metadata": meta,
    }
    if as_json:
        echo_json(data)
        return
    click.echo(f"{f.path} ({data['bytes'] / 1e6:.1f} MB), architecture {f.architecture}")
    for name, n in sorted(types.items()):
        click.echo(f"  {n:4d} tensors {name:6s} {sizes[name] / 1e6:10.2f} MB")
    for key, value in meta.items():
        click.echo(f"  {key} = {value}")


@llm_group.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("prompt")
@click.option(
    "--max-tokens",
    "-n",
    type=click.IntRange(1),
    default=128,
    show_default=True,
    help="Tokens to generate at most.",
)
@click.option(
    "--temperature",
    "-t",
    type=float,
    default=0.8,
    show_default=True,
    help="Sampling temperature; 0 is greedy.",
)
@click.option("--top-k", type=int, default=40, show_default=True, help="Keep the k best; 0: all.")
@click.option(
    "--top-p",
    type=float,
    default=0.95,
    show_default=True,
    help="Keep the smallest set of tokens with this probability mass.",
)
@click.option(
    "--min-p",
    type=float,
    default=0.05,
    show_default=True,
    help="Drop tokens below this share of the best token's probability.",
)
@click.option(
    "--repeat-penalty",
    type=float,
    default=1.0,
    show_default=True,
    help="Penalty on tokens of the last 64; 1 is off.",
)
@click.option("--seed", type=int, help="Seed of the sampler (default: random).")
@click.option("--stop", multiple=True, help="Stop before this text; repeat for several.")
@click.option("--ctx", "n_ctx", type=click.IntRange(1), help="Context size (default: the model's).")
def generate(
    model, prompt, max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, n_ctx
):
    """Continue PROMPT with MODEL, streaming the text."""
    import llm

    m = llm.load(model, n_ctx=n_ctx)
    pieces = m.generate(
        prompt,
        max_tokens=max_tokens,
        stop=stop,
        stream=True,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repeat_penalty=repeat_penalty,
        seed=seed,
    )
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
