"""HTTP beside gRPC: an OpenAI-compatible API, health and Prometheus metrics, served by
uvicorn in a thread of the server process over the same database, models, keys and TLS."""

import logging
import socket
import threading

log = logging.getLogger("vdb.http")
INSTALL = "the HTTP API needs its extra: pip install 'vdb[http]'"


def available() -> bool:
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


class HttpServer:
    """uvicorn serving the app in a background thread; start() binds and returns the port."""

    def __init__(self, server, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        from vdb.http.app import build
        from vdb.http.metrics import Metrics

        opts = server.options
        self.host, self.port = host, port
        server.http_metrics = Metrics(server)
        self.app = build(server, server.http_metrics)
        self.config = uvicorn.Config(
            self.app,
            log_level="warning",
            ssl_certfile=opts.tls_cert,
            ssl_keyfile=opts.tls_key,
            limit_concurrency=opts.max_concurrent,
            timeout_graceful_shutdown=max(1, int(opts.grace)),
            lifespan="off",
        )
        self.server = uvicorn.Server(self.config)
        self.thread = None

    def start(self) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say TCP (without
        # it a response's body waits for the ACK of its headers: 40 ms a request)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {self.host}:{self.port} for HTTP: {exc}") from None
        self.port = sock.getsockname()[1]
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="vdb-http", daemon=True
        )
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            self.thread.join(0.01)
        if not self.server.started:
            raise OSError(f"the HTTP server did not start on {self.host}:{self.port}")
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
