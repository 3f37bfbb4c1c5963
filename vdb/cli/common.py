"""What the commands share (output, the database they work on, option types), in a module of
their own: a command module imports it without importing the command tree (vdb.cli.main
imports every command)."""

import json

import click

import vdb
from vdb.index import METRICS

metric_option = click.option(
    "--metric",
    "-m",
    type=click.Choice(METRICS),
    default="cosine",
    show_default=True,
    help="cosine or dot (similarity, higher is better) or l2 (distance, lower is better).",
)


def open_db(ctx, read_only: bool = False):
    """The database the command works on: the directory --data, or the server --server."""
    obj = ctx.obj
    if obj.get("server"):
        return vdb.connect(obj["server"], api_key=obj["api_key"], tls=obj["tls_ca"])
    return vdb.open(obj["data"], read_only=read_only)


def parse_json(text: str, what: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what} is not valid JSON: {exc}") from None


def echo_json(value) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, default=_jsonable))


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
