"""The gRPC service beside the same work in-process: search latency and bulk upsert throughput.

    python bench/bench_grpc.py            # 100,000 x 384, cosine, HNSW (the auto index)
    python bench/bench_grpc.py --quick    # 20,000 x 384

The server runs as `vdb serve` in its own process on loopback; the clients are threads of
this process, each with its own connection. In-process figures come from the same number of
threads calling the embedded collection. Search: single queries, k=10, distinct random
queries (so the query cache never hits), latency p50/p99 and throughput at 1, 4 and 16
concurrent clients; then the same queries again, served from the cache. An empty RPC at 4
and 16 clients shows what the transport alone costs there. Upsert: 1,000-point
batches through the streaming RPC beside Collection.bulk_upsert in-process, both into an
empty collection of the same index kind. Ratios > 1 mean the in-process figure is better.

SearchBatch: one client sends batches of 100 new queries (k=10) beside the same call
in-process, one batch after the other on each side: without payloads
(with_payload=False, with_document=False: ids and scores as columns), and with payloads, where
both sides also read every Hit. These rows print grpc / in-process throughput (higher is
better for the service; the floor is 0.5x without payloads).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vdb  # noqa: E402
from vdb.rpc._gen import server_pb2 as spb  # noqa: E402

BATCH, K = 1000, 10
SEARCH_BATCH = 100  # queries of one SearchBatch


def start_server(path, cache: bool = True) -> tuple[subprocess.Popen, str]:
    """`vdb serve` on a free port: (process, address). cache=False turns the query-result cache
    off, for benchmarks that repeat the same request."""
    flag = "--cache" if cache else "--no-cache"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdb", "--data", str(path), "serve", "--port", "0", flag],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    match = re.search(r" on (\S+:\d+) ", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, match.group(1)


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batches(X):
    for s in range(0, len(X), BATCH):
        yield list(range(s, s + BATCH)), X[s : s + BATCH], [{"n": i % 10} for i in range(BATCH)]


def timed_upsert(col, X) -> float:
    start = time.perf_counter()
    col.bulk_upsert(batches(X))
    return len(X) / (time.perf_counter() - start)


def latencies(make_search, queries, clients: int) -> tuple[np.ndarray, float]:
    """Per-query seconds and queries/s with `clients` threads sharing the queries."""
    parts = np.array_split(queries, clients)
    out: list[list[float]] = [[] for _ in range(clients)]
    searches = [make_search() for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def run(i):
        search, times = searches[i], out[i]
        barrier.wait()
        for q in parts[i]:
            t = time.perf_counter()
            search(q)
            times.append(time.perf_counter() - t)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    barrier.wait()
    start = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    return np.concatenate([np.array(t) for t in out]), len(queries) / wall


def batch_rates(remote_col, local_col, batches, **want) -> tuple[float, float]:
    """Queries/s of col.search(batch, k=K, **want) over gRPC and in-process (median batch
    times, the two sides taking turns batch by batch). With payloads, both read every Hit."""
    reads = want.get("with_payload", True) or want.get("with_document", True)

    def once(col, batch) -> float:
        start = time.perf_counter()
        results = col.search(batch, k=K, **want)
        if reads:
            sum(len(hits) for hits in results)  # builds the Hits, their payloads decoded
        return time.perf_counter() - start

    once(remote_col, batches[-1])  # warm both paths
    once(local_col, batches[-1])
    times = np.array([(once(remote_col, b), once(local_col, b)) for b in batches[:-1]])
    remote_time, local_time = np.median(times, axis=0)
    return len(batches[0]) / remote_time, len(batches[0]) / local_time


def row(label, ours, peer) -> str:
    (lat_r, qps_r), (lat_l, qps_l) = ours, peer
    p50r, p99r = np.percentile(lat_r, [50, 99]) * 1e3
    p50l, p99l = np.percentile(lat_l, [50, 99]) * 1e3
    return (
        f"{label}: grpc p50 {p50r:.3f} ms p99 {p99r:.3f} ms {qps_r:,.0f} q/s | in-process "
        f"p50 {p50l:.3f} ms p99 {p99l:.3f} ms {qps_l:,.0f} q/s | p50 +{p50r - p50l:.3f} ms, "
        f"q/s ratio {qps_l / qps_r:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    n = 20_000 if args.quick else args.n
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, args.dim)).astype(np.float32)
    Q = rng.standard_normal((4, args.queries, args.dim)).astype(np.float32)
    tmp = Path(tempfile.mkdtemp(prefix="bench-grpc-"))
    proc = None
    try:
        local = vdb.open(tmp / "local")
        proc, address = start_server(tmp / "served")
        remote = vdb.connect(address)
        print(f"{n:,} x {args.dim} cosine, {args.queries:,} queries per level, k={K}")
        for name, index in (("flat", "flat"), ("c", None)):  # "c": the default auto index
            rate_local = timed_upsert(local.create_collection(name, args.dim, index=index), X)
            rate_remote = timed_upsert(remote.create_collection(name, args.dim, index=index), X)
            kind = local.get_collection(name).info()["index_in_use"]
            print(
                f"bulk upsert into {kind} ({BATCH}-point batches): grpc stream "
                f"{rate_remote:,.0f} vectors/s | in-process {rate_local:,.0f} vectors/s | "
                f"ratio {rate_remote / rate_local:.2f} of in-process"
            )
        for col in (local.get_collection("c"), remote.get_collection("c")):
            while col.info()["buffered"]:  # searches below time the graph, not its linking
                time.sleep(0.05)
        batches = rng.standard_normal((21, SEARCH_BATCH, args.dim)).astype(np.float32)
        for label, want in (
            ("no payloads", {"with_payload": False, "with_document": False}),
            ("with payloads, every Hit read", {}),
        ):
            grpc_qps, local_qps = batch_rates(
                remote.get_collection("c"), local.get_collection("c"), batches, **want
            )
            print(
                f"SearchBatch of {SEARCH_BATCH} queries, k={K}, {label}: grpc {grpc_qps:,.0f} "
                f"q/s | in-process {local_qps:,.0f} q/s | grpc / in-process "
                f"{grpc_qps / local_qps:.2f}x"
            )
        empty = spb.ServerInfoRequest()
        for _ in range(100):
            remote._server.Info(empty)
        start, cpu = time.perf_counter(), server_cpu(proc.pid)
        for _ in range(1000):
            remote._server.Info(empty)
        print(
            f"empty RPC (Server.Info): {(time.perf_counter() - start):.3f} ms round trip, "
            f"server CPU {(server_cpu(proc.pid) - cpu):.3f} ms per call"
        )

        def remote_info():
            server = vdb.connect(address)._server
            return lambda _: server.Info(empty)

        for clients in (4, 16):  # what the transport alone costs when clients share the cores
            lat, qps = latencies(remote_info, np.zeros(args.queries), clients)
            p50, p99 = np.percentile(lat, [50, 99]) * 1e3
            print(
                f"empty RPC, {clients:>2} clients: p50 {p50:.3f} ms p99 {p99:.3f} ms "
                f"{qps:,.0f} calls/s"
            )
        local_col = local.get_collection("c")
        remote_col = remote.get_collection("c")
        for q in Q[3, :50]:  # warm both paths
            local_col.search(q, k=K)
            remote_col.search(q, k=K)

        def remote_search():
            col = vdb.connect(address).get_collection("c")
            return lambda q: col.search(q, k=K)

        def local_search():
            return lambda q: local_col.search(q, k=K)

        for i, clients in enumerate((1, 4, 16)):
            queries = Q[i]  # new queries for each level: the cache never hits
            cpu = server_cpu(proc.pid)
            ours = latencies(remote_search, queries, clients)
            per_query = (server_cpu(proc.pid) - cpu) / len(queries) * 1e3
            peer = latencies(local_search, queries, clients)
            print(row(f"search, {clients:>2} client(s)", ours, peer))
            print(f"  server CPU {per_query:.3f} ms per query")
        cached = latencies(remote_search, Q[0], 1)  # the first queries again: cache hits
        peer = latencies(local_search, Q[0], 1)
        print(row("search, 1 client, cached", cached, peer))
        print(f"server cache: {remote.info()['cache']}")
        remote.close()
        local.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(120)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
