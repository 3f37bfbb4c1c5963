"""The root `vdb` command group. Domain errors become click errors here, and only here."""

import json

import click

import vdb
from vdb.errors import VdbError
from vdb.index import METRICS

metric_option = click.option(
    "--metric",
    "-m",
    type=click.Choice(METRICS),
    default="cosine",
    show_default=True,
    help="cosine or dot (similarity, higher is better) or l2 (distance, lower is better).",
)


class VdbGroup(click.Group):
    def invoke(self, ctx):
        from llm.errors import LlmError

        try:
            return super().invoke(ctx)
        except (VdbError, LlmError) as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group(cls=VdbGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data",
    "-d",
    envvar="VDB_DATA",
    default="vdb-data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Database directory (env VDB_DATA).",
)
@click.option(
    "--server",
    envvar="VDB_SERVER",
    help="Work against a vdb server (host:port) instead of --data (env VDB_SERVER).",
)
@click.option("--api-key", envvar="VDB_API_KEY", help="API key for --server (env VDB_API_KEY).")
@click.option(
    "--tls-ca",
    envvar="VDB_TLS_CA",
    type=click.Path(dir_okay=False, exists=True),
    help="Connect to --server over TLS, trusting this CA certificate (env VDB_TLS_CA).",
)
@click.version_option(vdb.__version__, prog_name="vdb")
@click.pass_context
def main(ctx, data, server, api_key, tls_ca):
    """vdb: a vector database with exact and HNSW search, payload filters and a gRPC service."""
    ctx.obj = {"data": data, "server": server, "api_key": api_key, "tls_ca": tls_ca}


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


def _register() -> None:
    from vdb.cli import (
        ask,
        check,
        collection,
        demo,
        embed,
        ingest,
        llm,
        memory,
        model,
        points,
        serve,
    )

    main.add_command(collection.collection)
    main.add_command(points.import_cmd)
    main.add_command(points.search)
    main.add_command(demo.demo)
    main.add_command(serve.serve)
    main.add_command(model.model)
    main.add_command(embed.embed_cmd)
    main.add_command(ingest.ingest_cmd)
    main.add_command(ask.ask_cmd)
    main.add_command(llm.llm_group)
    main.add_command(memory.memory_group)
    main.add_command(check.check_cmd)


_register()
