"""The HTTP API beside the same work over gRPC and in-process, from one `vdb serve` serving
both: embeddings, search latency, and a streamed completion's first token and rate.

    python bench/bench_http.py             # 20,000 x 384 points, 1,000 queries per level
    python bench/bench_http.py --quick     # 5,000 points, 300 queries, fewer repeats

The server runs in its own process on loopback with the query cache off (every search is
worked out), stories260K as its model (--model another .gguf) and the default embedder.
Clients are threads of this process, each with its own connection (HTTP/1.1 keep-alive over
http.client, a gRPC channel each).

- Embeddings: 1,000 short texts per request: POST /v1/embeddings, gRPC Embed, and the
  embedder called in-process; texts/s, the median of the repeats. Floor: /v1/embeddings at
  least 0.9x gRPC Embed's throughput.
- Search: one query per request, k=10, ids and scores only, distinct random queries; p50 and
  p99 at 1 and 4 clients over HTTP (/v1/collections/NAME/search), gRPC and in-process.
- Streaming: a 64-token greedy completion streamed as server-sent events (/v1/completions,
  stream: true) and over gRPC's Generate stream, taken in turns: the median time to the first
  piece of text and the pieces (tokens) per second after it. Floor: HTTP's time to first
  token at most gRPC's + 2 ms.
"""

import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# as `vdb serve --http-port` sets for itself: OpenMP's threads sleep between parallel regions
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import vdb  # noqa: E402
from bench.bench_grpc import latencies  # noqa: E402
from bench.common import SETTLE  # noqa: E402
from vdb import embedding  # noqa: E402
from vdb.database import DEFAULT_EMBEDDER  # noqa: E402

K, EMBED_BATCH, GEN_TOKENS = 10, 1000, 64
MODEL = ROOT / "tests" / "fixtures" / "models" / "stories260K.gguf"
PROMPT = "Once upon a time"
TTFT_SLACK_MS, EMBED_FLOOR = 2.0, 0.9


def start_server(path, model) -> tuple[subprocess.Popen, str, str]:
    """`vdb serve` with HTTP on free ports: (process, gRPC address, HTTP host:port)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdb", "--data", str(path), "serve", "--port", "0"]
        + ["--http-port", "0", "--no-cache", "--model", str(model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    grpc_at, http_at = (
        re.search(r" on (\S+:\d+) ", line),
        re.search(r"HTTP on http://(\S+?)\)", line),
    )
    if not (grpc_at and http_at):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, grpc_at.group(1), http_at.group(1)


class Http:
    """One keep-alive HTTP connection posting JSON."""

    def __init__(self, address: str):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)
        self.conn.connect()  # no Nagle delay between a request's headers and body, as gRPC
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path: str, body: dict):
        self.conn.request("POST", path, orjson.dumps(body), {"Content-Type": "application/json"})
        return self.conn.getresponse()

    def json(self, path: str, body: dict) -> dict:
        resp = self.post(path, body)
        data = orjson.loads(resp.read())
        if resp.status != 200:
            raise SystemExit(f"{path}: {resp.status} {data}")
        return data


def rate(fn, n: int, repeats: int) -> float:
    fn()  # warm
    return n / statistics.median(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def embeddings(http_at, remote, repeats: int) -> None:
    texts = [
        f"note {i}: the meeting about item {i % 37} moved to room {i % 11}"
        for i in range(EMBED_BATCH)
    ]
    client, local = Http(http_at), embedding.load(DEFAULT_EMBEDDER)
    ours = rate(lambda: client.json("/v1/embeddings", {"input": texts}), len(texts), repeats)
    grpc = rate(lambda: remote.embed(texts), len(texts), repeats)
    inproc = rate(lambda: local.embed(texts), len(texts), repeats)
    verdict = "PASS" if ours >= EMBED_FLOOR * grpc else "FAIL"
    print(
        f"embeddings, {EMBED_BATCH:,} texts per request: http {ours:,.0f} texts/s | grpc "
        f"{grpc:,.0f} texts/s | in-process {inproc:,.0f} texts/s | http / grpc "
        f"{ours / grpc:.2f}x (floor {EMBED_FLOOR}x: {verdict})"
    )


def searches(http_at, address, n, dim, n_queries, tmp: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, dim)).astype(np.float32)  # (n, dim)
    Q = rng.standard_normal((2, n_queries, dim)).astype(np.float32)  # (levels, queries, dim)
    remote = vdb.connect(address)
    col = remote.create_collection("bench", dim)
    for s in range(0, n, 1000):
        col.upsert(list(range(s, min(s + 1000, n))), X[s : s + 1000])
    while col.info()["buffered"]:
        time.sleep(0.05)
    local_db = vdb.open(tmp / "local")
    local = local_db.create_collection("bench", dim)
    local.bulk_upsert(
        (list(range(s, min(s + 1000, n))), X[s : s + 1000]) for s in range(0, n, 1000)
    )
    while local.info()["buffered"]:
        time.sleep(0.05)
    bare = {"with_payload": False, "with_document": False}

    def over_http():
        client = Http(http_at)
        return lambda q: client.json(
            "/v1/collections/bench/search", {"vector": q.tolist(), "k": K, **bare}
        )

    def over_grpc():
        c = vdb.connect(address).get_collection("bench")
        return lambda q: c.search(q, k=K, **bare)

    def in_process():
        return lambda q: local.search(q, k=K, **bare)

    print(f"search, {n:,} x {dim} cosine, k={K}, ids and scores, {n_queries:,} queries per level")
    for level, clients in enumerate((1, 4)):
        figures = []
        for make in (over_http, over_grpc, in_process):
            time.sleep(SETTLE)  # numpy's BLAS threads stop spinning after the upserts
            warm = make()
            for q in Q[level, :50]:
                warm(q)
            lat, qps = latencies(make, Q[level], clients)
            p50, p99 = np.percentile(lat, [50, 99]) * 1e3
            figures.append(f"p50 {p50:.3f} ms p99 {p99:.3f} ms {qps:,.0f} q/s")
        print(
            f"  {clients} client(s): http {figures[0]} | grpc {figures[1]} | in-process "
            f"{figures[2]}"
        )
    local_db.close()
    remote.close()


def stream_http(client) -> tuple[float, float]:
    """(seconds to the first piece, pieces/s after it) of one streamed completion."""
    body = {"prompt": PROMPT, "max_tokens": GEN_TOKENS, "temperature": 0, "stream": True}
    start = time.perf_counter()
    resp = client.post("/v1/completions", body)
    first, pieces = None, 0
    while line := resp.readline():
        if not line.startswith(b"data: {"):
            continue
        if orjson.loads(line[6:])["choices"][0]["text"]:
            pieces += 1
            first = first or time.perf_counter()
    resp.read()
    return first - start, (pieces - 1) / (time.perf_counter() - first)


def stream_grpc(model) -> tuple[float, float]:
    start = time.perf_counter()
    first, pieces = None, 0
    for piece in model.generate(PROMPT, GEN_TOKENS, stream=True, temperature=0):
        if piece:
            pieces += 1
            first = first or time.perf_counter()
    return first - start, (pieces - 1) / (time.perf_counter() - first)


def streaming(http_at, address, turns: int) -> None:
    client, model = Http(http_at), vdb.connect_model(address)
    stream_http(client)  # warm both
    stream_grpc(model)
    runs = [(stream_http(client), stream_grpc(model)) for _ in range(turns)]
    (h_ttft, h_rate), (g_ttft, g_rate) = (
        np.median(np.array(side), axis=0) for side in zip(*runs, strict=True)
    )
    verdict = "PASS" if h_ttft * 1e3 <= g_ttft * 1e3 + TTFT_SLACK_MS else "FAIL"
    print(
        f"streamed completion, {GEN_TOKENS} tokens, {turns} turns: http SSE first token "
        f"{h_ttft * 1e3:.2f} ms, {h_rate:,.0f} tokens/s | grpc stream first token "
        f"{g_ttft * 1e3:.2f} ms, {g_rate:,.0f} tokens/s | http - grpc "
        f"{(h_ttft - g_ttft) * 1e3:+.2f} ms (floor +{TTFT_SLACK_MS:.0f} ms: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--model", default=str(MODEL), help="the server's generation model")
    args = parser.parse_args()
    n, queries = (5_000, 300) if args.quick else (args.n, args.queries)
    repeats, turns = (3, 10) if args.quick else (5, 30)
    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    proc = None
    try:
        proc, address, http_at = start_server(tmp / "served", args.model)
        remote = vdb.connect(address)
        embeddings(http_at, remote, repeats)
        remote.close()
        searches(http_at, address, n, args.dim, queries, tmp)
        streaming(http_at, address, turns)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(120)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
