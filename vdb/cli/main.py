"""The root `vdb` command group. Domain errors become click errors here, and only here."""

import click

import vdb
from vdb.cli.common import echo_json, metric_option, open_db, parse_json  # noqa: F401
from vdb.errors import VdbError


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
