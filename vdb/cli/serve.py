"""`vdb serve`: the gRPC service over the database directory."""

import logging
import signal
import sys
import threading

import click

SIZE_UNITS = {"": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30}


class ByteSize(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        number = text.rstrip("kmgb")
        try:
            size = int(float(number) * SIZE_UNITS[text[len(number) :]])
        except (ValueError, KeyError):
            self.fail(f"{value!r} is not a size such as 4194304, 64M or 1G", param, ctx)
        if size < 1024:
            self.fail(f"{value!r} is below the minimum of 1K", param, ctx)
        return size


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    "-p",
    type=click.IntRange(0, 65535),
    default=50051,
    show_default=True,
    help="Port to listen on; 0 picks a free one (printed at start).",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    envvar="VDB_API_KEYS",
    help="A read-write API key; repeat for several (env VDB_API_KEYS, space-separated). "
    "With no keys at all, requests need none.",
)
@click.option(
    "--read-only-key",
    "read_only_keys",
    multiple=True,
    envvar="VDB_READ_ONLY_KEYS",
    help="An API key that may only read (env VDB_READ_ONLY_KEYS).",
)
@click.option(
    "--admin-key",
    "admin_keys",
    multiple=True,
    envvar="VDB_ADMIN_KEYS",
    help="A read-write API key that may also swap the generation model (env VDB_ADMIN_KEYS).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True),
    help="PEM certificate (chain) file; with --tls-key, serve TLS only.",
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, exists=True), help="PEM private key file."
)
@click.option(
    "--max-message-size",
    type=ByteSize(),
    default="64M",
    show_default=True,
    help="Largest request or response; larger ones get RESOURCE_EXHAUSTED.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Threads serving requests.",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(1),
    default=128,
    show_default=True,
    help="Requests served or queued at once; more get RESOURCE_EXHAUSTED.",
)
@click.option(
    "--cache/--no-cache",
    default=True,
    show_default=True,
    help="Cache search results until the collection changes.",
)
@click.option(
    "--cache-size",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    help="Search results the cache holds.",
)
@click.option(
    "--cache-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds a cached result lives.",
)
@click.option(
    "--cache-memory",
    type=ByteSize(),
    default="256M",
    show_default=True,
    help="Total size of cached search results.",
)
@click.option(
    "--snapshot-dir",
    type=click.Path(file_okay=False),
    help="Where Snapshots.Create writes (default: DATA/snapshots).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds in-flight requests get to finish on SIGTERM or Ctrl-C.",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False, exists=True),
    help="A GGUF generation model, loaded once for every client of the Generation service.",
)
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, exists=True),
    help="Where SwapModel finds models by file name (default: the directory of --model).",
)
@click.option(
    "--ctx-size",
    "model_ctx",
    type=click.IntRange(1),
    help="Context length of generation streams (default: the model's).",
)
@click.option(
    "--max-generations",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="Generation streams at once (each holds a worker thread); more get "
    "RESOURCE_EXHAUSTED. Keep it below --workers.",
)
@click.option(
    "--prefill-chunk",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Prompt tokens a generation stream processes per turn.",
)
@click.pass_context
def serve(ctx, **opts):
    """Serve the database over gRPC until SIGTERM or Ctrl-C, then drain in-flight requests
    and close the store cleanly."""
    import vdb
    from vdb.rpc.server import Server, ServerOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    opts["api_keys"] = _split(opts["api_keys"])
    opts["read_only_keys"] = _split(opts["read_only_keys"])
    opts["admin_keys"] = _split(opts["admin_keys"])
    opts["max_message_bytes"] = opts.pop("max_message_size")
    opts["cache_entries"] = opts.pop("cache_size")
    opts["cache_bytes"] = opts.pop("cache_memory")
    options = ServerOptions(**opts)
    data = ctx.obj["data"]
    if options.max_generations >= options.workers:
        raise click.BadParameter(
            "must stay below --workers, so that other requests still get a thread",
            param_hint="--max-generations",
        )
    with vdb.open(data) as db:
        server = Server(db, options)
        try:
            port = server.start()
        except OSError as exc:
            raise click.ClickException(str(exc)) from None
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        mode = "tls" if options.tls_cert else "plaintext"
        keys = options.api_keys or options.read_only_keys or options.admin_keys
        auth = "api keys" if keys else "no auth"
        model = f", model {server.models.name}" if server.models.model is not None else ""
        click.echo(f"vdb serving {data} on {options.host}:{port} ({mode}, {auth}{model})")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
        click.echo("vdb: shutting down, draining in-flight requests", err=True)
        server.stop()
    click.echo("vdb: stopped", err=True)


def _split(values) -> tuple[str, ...]:
    """Keys from repeated options or a space-separated environment variable."""
    return tuple(k for value in values for k in value.split() if k)
