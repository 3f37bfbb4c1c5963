"""`vdb serve`: the gRPC service over the database directory."""

import logging
import os
import queue
import signal
import sys
import threading
import time

import click

from vdb.cli.model import model_file
from vdb.rpc.limits import Limits

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
    help="Seconds in-flight requests get to finish on SIGTERM or Ctrl-C; the rest are then "
    "stopped, and the process ends at most 25 s after that (a second signal: at once).",
)
@click.option(
    "--model",
    metavar="NAME|FILE",
    callback=model_file,
    help="A generation model (a name from `vdb model list` or a .gguf file), loaded once for "
    "every client of the Generation service.",
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
    help="Prompt tokens a generation stream processes per step (the step's budget beside "
    "the other streams' decoded tokens).",
)
@click.option(
    "--prefix-cache-mb",
    type=click.IntRange(0),
    default=256,
    show_default=True,
    help="MiB of prompt prefixes' keys and values kept for reuse by later prompts that start "
    "alike (0: off).",
)
@click.option(
    "--max-batch-queries",
    type=click.IntRange(1),
    default=Limits.max_batch_queries,
    show_default=True,
    help="Query rows (or texts) of one SearchBatch; more get RESOURCE_EXHAUSTED.",
)
@click.option(
    "--max-k",
    type=click.IntRange(1),
    default=Limits.max_k,
    show_default=True,
    help="Largest k (and ef) of a search, recall or hybrid search.",
)
@click.option(
    "--max-results",
    type=click.IntRange(1),
    default=Limits.max_results,
    show_default=True,
    help="Queries x k of one SearchBatch.",
)
@click.option(
    "--max-embed-texts",
    type=click.IntRange(1),
    default=Limits.max_texts,
    show_default=True,
    help="Texts one request has embedded: Embed texts, Remember items, Upsert documents "
    "without vectors, text queries.",
)
@click.option(
    "--max-text-size",
    "max_text_bytes",
    type=ByteSize(),
    default="4M",
    show_default=True,
    help="Largest text the server tokenizes whole: a prompt, a chat, a turn, a token count, a "
    "question (texts only embedded are cut to the model's length instead).",
)
@click.option(
    "--prepare-models/--no-prepare-models",
    default=True,
    show_default=True,
    help="Convert every embedder the server needs (the default model, agent memory's, the "
    "collections') before listening; requests then never convert one.",
)
@click.option(
    "--prepare",
    multiple=True,
    metavar="MODEL",
    help="Another model to prepare at start (NAME or NAME:TYPE); repeat for several.",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    help="Also serve HTTP (the OpenAI-compatible API, /healthz, /metrics) on this port, with "
    "the same keys, TLS files and limits; 0 picks a free one (printed at start). Needs "
    "pip install 'vdb[http]'.",
)
@click.option("--http-host", help="Address HTTP listens on (default: --host).")
@click.pass_context
def serve(ctx, **opts):
    """Serve the database over gRPC until SIGTERM or Ctrl-C, then drain in-flight requests
    and close the store cleanly. The process ends at most --grace + 25 seconds after the
    signal (a second signal ends it at once); acknowledged writes are committed either way."""
    import vdb
    from vdb.rpc.server import Server, ServerOptions

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
    if bool(options.tls_cert) != bool(options.tls_key):
        raise click.UsageError("TLS needs both a certificate and a key file: --tls-cert, --tls-key")
    if options.http_port is not None:
        from vdb.http import INSTALL, available

        if not available():
            raise click.UsageError(f"--http-port: {INSTALL}")
        # OpenMP's threads (the numba kernels') sleep between parallel regions instead of
        # spinning, which on a machine of few cores took them from the HTTP event loop's
        # thread: 10-20 ms a search with one client. Read once, when OpenMP starts.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    log_writer = _log_to_stderr()
    db = vdb.open(data)
    try:
        server = Server(db, options)
        port = server.start()
    except OSError as exc:
        db.close()
        raise click.ClickException(str(exc)) from None
    except BaseException:
        db.close()
        raise
    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():  # the second signal: do not wait for the drain
            _exit(1, "vdb: second signal, exiting without waiting for in-flight requests")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    mode = "tls" if options.tls_cert else "plaintext"
    keys = options.api_keys or options.read_only_keys or options.admin_keys
    auth = "api keys" if keys else "no auth"
    model = f", model {server.models.name}" if server.models.model is not None else ""
    http = ""
    if server.http_port is not None:
        scheme = "https" if options.tls_cert else "http"
        http = f", HTTP on {scheme}://{options.http_host or options.host}:{server.http_port}"
    click.echo(f"vdb serving {data} on {options.host}:{port} ({mode}, {auth}{model}{http})")
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    closed = threading.Event()
    _watchdog(options.grace + STOP_WAIT, closed)
    click.echo("vdb: shutting down, draining in-flight requests", err=True)
    if not server.stop():
        _exit(
            1,
            "vdb: requests still running after the grace period; exiting without closing the "
            "store (acknowledged writes are committed; the next open replays the op log)",
        )
    db.close()
    closed.set()
    log_writer.drain()
    click.echo("vdb: stopped", err=True)


STOP_WAIT = 20.0  # seconds past --grace within which a stopping server closes its store
EXIT_WAIT = 5.0  # seconds the process then has to exit
QUEUED_LOG_RECORDS = 10_000  # log records waiting for stderr; more are dropped


class _LogWriter(logging.Handler):
    """Log records go into a bounded queue that one background thread writes to stderr;
    when the thread is behind (stderr not read), records are dropped: a server whose stderr
    blocks keeps serving (gRPC logs from its polling thread)."""

    def __init__(self, target: logging.Handler, size: int = QUEUED_LOG_RECORDS):
        super().__init__()
        self.target = target
        self.records: queue.Queue = queue.Queue(size)
        self.thread = threading.Thread(target=self._write, name="vdb-log", daemon=True)
        self.thread.start()

    def emit(self, record) -> None:
        try:
            self.records.put_nowait(record)
        except queue.Full:
            pass

    def _write(self) -> None:
        while (record := self.records.get()) is not None:
            self.target.handle(record)

    def drain(self, timeout: float = 5.0) -> None:
        """Let the thread write what it holds, waiting at most timeout seconds."""
        try:
            self.records.put_nowait(None)
        except queue.Full:
            return
        self.thread.join(timeout)


def _log_to_stderr() -> _LogWriter:
    """Every log line, the libraries' and Python warnings included, formatted one way and
    written by one background thread. Libraries' progress chatter (gguf) stays out."""
    target = logging.StreamHandler(sys.stderr)
    target.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    writer = _LogWriter(target)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(writer)
    root.setLevel(logging.INFO)
    logging.getLogger("gguf").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return writer


def _watchdog(seconds: float, closed: threading.Event) -> None:
    """End the process `seconds` from now if the store is not closed by then (exit 1), or a
    few seconds after it was closed if the process is still here (exit 0): a shutdown never
    hangs, whatever a handler or stderr does."""

    def run():
        if closed.wait(seconds):
            time.sleep(EXIT_WAIT)
        _exit(0 if closed.is_set() else 1, f"vdb: exiting; the stop took over {seconds:.0f} s")

    threading.Thread(target=run, name="vdb-watchdog", daemon=True).start()


def _exit(code: int, message: str) -> None:
    """Say why (waiting at most a second for stderr), and end the process now."""
    writer = threading.Thread(target=_say, args=(message,), daemon=True)
    writer.start()
    writer.join(1.0)
    os._exit(code)


def _say(message: str) -> None:
    try:
        os.write(2, (message + "\n").encode())
    except OSError:
        pass


def _split(values) -> tuple[str, ...]:
    """Keys from repeated options or a space-separated environment variable."""
    return tuple(k for value in values for k in value.split() if k)
