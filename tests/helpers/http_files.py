"""A real HTTP file server on 127.0.0.1 port 0 for download tests: it serves bytes by path,
honours `Range: bytes=N-` (unless told to ignore it), can drop the connection part-way
through a response, and records every request it gets."""

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """with FileServer() as server: server.files["/a.gguf"] = data; server.url("/a.gguf")."""

    def __init__(self):
        self.files: dict[str, bytes] = {}  # path -> body
        self.types: dict[str, str] = {}  # path -> Content-Type (default octet-stream)
        self.cut: dict[str, int] = {}  # path -> bytes sent before the connection drops, once
        self.honour_range = True
        self.requests: list[dict] = []  # {"path", "range", "authorization"} per request

    def __enter__(self):
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.files = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        files: FileServer = self.server.files
        path = self.path.split("?")[0]
        files.requests.append(
            {
                "path": path,
                "range": self.headers.get("Range"),
                "authorization": self.headers.get("Authorization"),
            }
        )
        body = files.files.get(path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        wanted = self.headers.get("Range") if files.honour_range else None
        start = 0
        if wanted:
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", files.types.get(path, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = files.cut.pop(path, None)
        if cut is None:
            self.wfile.write(body[start:])
            return
        self.wfile.write(body[start : start + cut])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *args):
        pass
