"""Plain requests to the HTTP API under test (urllib, no client library), and the handbook
the HTTP tests index."""

import json
import urllib.error
import urllib.request

HANDBOOK = [
    "Backups run every night at 02:00 and are kept for 30 days.",
    "The office is closed on public holidays.",
    "Visitors park in lot B, next to the main entrance.",
    "Error E-17 means the printer is out of paper. Refill tray 2.",
    "The guest network is called Lobby and needs no password.",
    "The cafeteria opens at 8:00 on weekdays and serves lunch until 14:00.",
]


def request(base, path, data=None, key=None, method=None, timeout=60) -> tuple[int, bytes]:
    """(status, body) of one request: data is sent as it is (bytes) or as JSON, key as a
    bearer token."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = data if isinstance(data, bytes) or data is None else json.dumps(data).encode()
    req = urllib.request.Request(base + path, body, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
