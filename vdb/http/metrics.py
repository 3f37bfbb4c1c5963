"""Prometheus metrics of one server, in a registry of its own."""

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, server):
        self.server = server
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "vdb_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "vdb_http_request_seconds", "HTTP request latency by route", ["route"], registry=r
        )
        self.generated = Counter("vdb_generated_tokens", "Tokens generated over HTTP", registry=r)
        self.running = Gauge("vdb_http_streams_running", "HTTP generations running", registry=r)
        self._started = time.monotonic()
        r.register(self)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def streams(self, delta: int) -> None:
        self.running.inc(delta)

    def tokens(self, n: int) -> None:
        self.generated.inc(n)

    def collect(self):
        host, db = self.server.models, self.server.core.db
        yield GaugeMetricFamily(
            "vdb_generation_streams_active",
            "Generation streams running (all protocols)",
            value=host.active,
        )
        yield GaugeMetricFamily(
            "vdb_generation_streams_queued",
            "Generation streams waiting for the model's next step",
            value=host.queued,
        )
        elapsed = max(time.monotonic() - self._started, 1e-9)
        yield GaugeMetricFamily(
            "vdb_generation_tokens_per_second",
            "Tokens generated over HTTP per second of uptime",
            value=self.generated._value.get() / elapsed,
        )
        cache = self.server.core.cache
        if cache is not None:
            stats = cache.stats()
            yield GaugeMetricFamily(
                "vdb_query_cache_hit_ratio",
                "Query-result cache hits over lookups so far (gRPC searches)",
                value=stats["hit_rate"],
            )
            yield GaugeMetricFamily(
                "vdb_query_cache_entries", "Query-result cache entries", value=stats["entries"]
            )
        names = db.list_collections()
        yield GaugeMetricFamily("vdb_collections", "Collections", value=len(names))
        points = GaugeMetricFamily("vdb_points", "Points by collection", labels=["collection"])
        for name in names:
            try:
                points.add_metric([name], db.get_collection(name).count())
            except Exception:
                continue
        yield points

    def render(self) -> bytes:
        return generate_latest(self.registry)
