"""`vdb collection create|list|info|drop`."""

import click

from vdb.cli.common import echo_json, metric_option, open_db
from vdb.index.config import INDEX_KINDS, MAX_COUNT, MAX_EF, IndexConfig
from vdb.index.hnsw import HnswConfig


@click.group()
def collection():
    """Create, list, inspect and drop collections."""


@collection.command()
@click.argument("name")
@click.option("--dim", type=int, help="Vector dimension (default: the embedder's).")
@click.option(
    "--embedder",
    "-e",
    help="Embedding model (e.g. all-MiniLM-L6-v2): documents and text queries are embedded.",
)
@metric_option
@click.option(
    "--index",
    "kind",
    type=click.Choice(INDEX_KINDS),
    default="auto",
    show_default=True,
    help="auto: exact search until --hnsw-threshold points, then "
    "HNSW; flat: always exact; hnsw: HNSW from the start.",
)
@click.option(
    "--hnsw-threshold",
    type=click.IntRange(0, MAX_COUNT),
    default=IndexConfig.hnsw_threshold,
    show_default=True,
    help="Points at which an auto collection switches to HNSW.",
)
@click.option(
    "-M",
    "m",
    type=click.IntRange(2, 256),
    default=HnswConfig.M,
    show_default=True,
    help="HNSW neighbours per node (2M on level 0).",
)
@click.option(
    "--ef-construction",
    type=click.IntRange(1, MAX_EF),
    default=HnswConfig.ef_construction,
    show_default=True,
    help="HNSW candidate list size while building.",
)
@click.option(
    "--ef-search",
    type=click.IntRange(1, MAX_EF),
    default=HnswConfig.ef_search,
    show_default=True,
    help="HNSW candidate list size while searching.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def create(
    ctx, name, dim, embedder, metric, kind, hnsw_threshold, m, ef_construction, ef_search, as_json
):
    """Create collection NAME."""
    index = {
        "kind": kind,
        "hnsw_threshold": hnsw_threshold,
        "M": m,
        "ef_construction": ef_construction,
        "ef_search": ef_search,
    }
    with open_db(ctx) as db:
        info = db.create_collection(name, dim, metric, index=index, embedder=embedder).info()
    if as_json:
        echo_json(info)
    else:
        using = f", embedder={embedder}" if embedder else ""
        click.echo(f"created {name} (dim={info['dim']}, metric={metric}, index={kind}{using})")


@collection.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_(ctx, as_json):
    """List collections."""
    with open_db(ctx, read_only=True) as db:
        infos = [db.get_collection(name).info() for name in db.list_collections()]
    if as_json:
        echo_json(infos)
        return
    for info in infos:
        click.echo(
            f"{info['name']}\tdim={info['dim']}\tmetric={info['metric']}\tcount={info['count']}"
        )


@collection.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def info(ctx, name, as_json):
    """Show the configuration and size of collection NAME."""
    with open_db(ctx, read_only=True) as db:
        data = db.get_collection(name).info()
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key}: {value}")


@collection.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def drop(ctx, name, yes):
    """Delete collection NAME and all its points."""
    if not yes:
        click.confirm(f"Drop collection {name} and all its points?", abort=True)
    with open_db(ctx) as db:
        db.drop_collection(name)
    click.echo(f"dropped {name}")
