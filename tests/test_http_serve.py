"""`vdb serve --http-port`: HTTP beside gRPC in one process, over the same keys."""

import json
import urllib.error
import urllib.request

import pytest

from tests.rpc import ServerProcess

pytest.importorskip("uvicorn")


def get(url, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_vdb_serve_with_http(tmp_path):
    server = ServerProcess(tmp_path / "db", "--http-port", "0", "--api-key", "k")
    try:
        assert server.http_address.startswith("127.0.0.1:")
        status, _ = get(f"http://{server.http_address}/healthz")
        assert status == 200
        status, payload = get(f"http://{server.http_address}/v1/models")
        assert status == 401 and json.loads(payload)["error"]["message"]
        status, payload = get(f"http://{server.http_address}/metrics", "k")
        assert status == 200 and b"vdb_collections 0.0" in payload
        assert server.terminate() == 0
    finally:
        server.close()


def test_http_port_taken(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(RuntimeError, match="cannot listen on .* for HTTP"):
            ServerProcess(tmp_path / "db", "--http-port", str(port))
