"""`vdb model list|info|convert|remove`: the embedding model cache."""

import click

from vdb.cli.main import echo_json


@click.group()
def model():
    """Manage embedding models (GGUF files under $VDB_HOME/models)."""


@model.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json):
    """Cached models. The default model is converted on first use."""
    from embed.models import DEFAULT_MODEL, list_models, models_dir

    models = list_models()
    if as_json:
        echo_json({"dir": str(models_dir()), "default": DEFAULT_MODEL, "models": models})
        return
    click.echo(f"models in {models_dir()} (default: {DEFAULT_MODEL})")
    if not models:
        click.echo("  none yet; the default model is converted on first use")
    for m in models:
        click.echo(f"  {m['name']}:{m['type']}\t{m['bytes'] / 1e6:.1f} MB\t{m['path']}")


@model.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(name, as_json):
    """Metadata, tensor types and sizes of model NAME (a cached name or a .gguf path;
    default: the default model)."""
    from collections import Counter

    from embed.models import resolve
    from llm.config import ModelConfig
    from llm.gguf_file import GGUFFile

    f = GGUFFile(resolve(name))
    types = Counter(t.type_name for t in f.tensors.values())
    data = {
        "path": str(f.path),
        "bytes": f.path.stat().st_size,
        "architecture": f.architecture,
        "tokenizer": f.get("tokenizer.ggml.model", None),
        "tensors": len(f.tensors),
        "tensor_types": dict(types),
        "parameters": sum(_elements(t.shape) for t in f.tensors.values()),
    }
    if f.architecture == "bert":
        cfg = ModelConfig.from_gguf(f)
        data.update(
            name=cfg.name,
            dim=cfg.d_model,
            layers=cfg.n_layers,
            heads=cfg.n_heads,
            feed_forward=cfg.d_ff,
            context_length=cfg.context_length,
            pooling=cfg.pooling,
            vocab_size=cfg.vocab_size,
        )
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key}: {value}")


def _elements(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@model.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--type",
    "qtype",
    type=click.Choice(["f32", "f16", "q8_0"]),
    default="f32",
    show_default=True,
    help="Weight type of the linear layers and token embeddings.",
)
@click.option("--name", help="Name in the cache (default: the directory's name).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of the cache.")
def convert(src, qtype, name, out):
    """Convert a BERT-family Hugging Face directory (config.json, vocab.txt or
    tokenizer.json, *.safetensors) to GGUF."""
    from pathlib import Path

    from embed.convert import convert as run
    from embed.models import convert_into_cache, split_name

    name = name or Path(src).resolve().name
    split_name(f"{name}:{qtype}")
    if out:
        dest = Path(out)
        dest.parent.mkdir(parents=True, exist_ok=True)
        run(src, dest, qtype, name=name)
    else:
        dest = convert_into_cache(src, name, qtype)
    click.echo(f"wrote {dest} ({dest.stat().st_size / 1e6:.1f} MB); load it as {name}:{qtype}")


@model.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove(name, yes):
    """Delete cached model NAME (every type) or NAME:TYPE."""
    from embed.models import remove as run

    if not yes:
        click.confirm(f"delete cached model {name}?", abort=True)
    for path in run(name):
        click.echo(f"removed {path}")
