"""`vdb check`: verify a database directory, and repair it."""

import sys

import click

from vdb.cli.common import echo_json


@click.command("check")
@click.argument("directory", required=False, metavar="[DIR]", type=click.Path(file_okay=False))
@click.option(
    "--repair",
    is_flag=True,
    help="Rewrite the data file from what is sound (needs the writer's lock; the old file "
    "is kept as DIR/damaged-TIME/data.mdb). Points whose records are damaged are lost.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def check_cmd(ctx, directory, repair, as_json):
    """Verify every record, id, op-log entry and index file of DIR (default: --data).
    Exits 1 when something is wrong (and, with --repair, could not be repaired)."""
    from vdb.checker import check

    if ctx.obj.get("server") and directory is None:
        raise click.UsageError("vdb check reads a database directory, not a server")
    report = check(directory or ctx.obj["data"], repair=repair)
    if as_json:
        echo_json(report.as_dict())
    else:
        for col in report.collections:
            click.echo(
                f"{col.name}: {col.points:,} points"
                + (f", {col.damaged:,} damaged" if col.damaged else "")
                + f"; checkpoint {col.checkpoint}"
            )
        for problem in report.problems[:200]:
            click.echo(f"problem: {problem}")
        if len(report.problems) > 200:
            click.echo(f"... and {len(report.problems) - 200:,} more problems")
        for done in report.repaired:
            click.echo(f"repaired: {done}")
        for left in report.unrepaired:
            click.echo(f"cannot repair: {left}")
        if report.ok:
            click.echo("ok")
        elif report.unrepaired:
            click.echo("NOT OK")
        else:
            click.echo("DAMAGED: `vdb check --repair` rewrites the data file from what is sound")
    sys.exit(0 if report.ok else 1)
