"""Prometheus metrics: HTTP counts and latencies (recorded by the request middleware) plus the model's own timings.

Each app gets its own registry, so several apps in one process (tests, a reload) never collide on
metric names in the global default registry.

The HTTP metrics keep the names and labels of prometheus-fastapi-instrumentator, which recorded them
before (``http_requests_total{handler, method, status="2xx"}``, ``http_request_duration_seconds{handler,
method}``; handler = the route's path template, "none" when no route matched). That library resolved
the route again for every request and recorded four metrics: ~9 % of a served query's GIL time, and
without it 2 processes served 1,630-1,749 instead of 1,407-1,439 req/s at 8 clients (100k HNSW).
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import Scope

_FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.encode_seconds = Histogram(
            "dssm_encode_seconds", "Time to encode one batch of texts", ["tower"], buckets=_FAST, registry=r
        )
        self.search_seconds = Histogram(
            "dssm_search_seconds", "Time to search the index for one batch of query vectors", ["mode"],
            buckets=_FAST, registry=r,
        )
        self.batch_size = Histogram(
            "dssm_search_batch_size", "Queries encoded and searched together (micro-batching)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r,
        )
        self.index_size = Gauge("dssm_index_documents", "Documents in the served index", registry=r)
        self.ready = Gauge("dssm_ready", "1 when a model and index are loaded and consistent", registry=r)
        # Apart from http_requests_total's 4xx: how many requests were abandoned before their body was read.
        self.client_disconnects = Counter(
            "dssm_client_disconnects_total", "Requests whose client left before the body was read (status 499)",
            registry=r,
        )
        self.reloads = Counter("dssm_reloads_total", "Reloads of the model/index pair", ["result"], registry=r)
        self.http_requests = Counter("http_requests_total", "HTTP requests by route, method and status class",
                                     ["handler", "method", "status"], registry=r)
        self.http_seconds = Histogram("http_request_duration_seconds", "HTTP request latency by route and method",
                                      ["handler", "method"], buckets=_FAST, registry=r)

    def instrument(self, app: FastAPI) -> None:
        """Serve ``GET /metrics`` (Prometheus text). Requests are recorded by ``observe_request``, which
        ``app.middleware.RequestContextMiddleware`` calls once per request with its status and time."""
        registry = self.registry

        @app.get("/metrics", tags=["operations"], response_class=Response,
                 responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
        def metrics() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def observe_request(self, scope: Scope, status: int, seconds: float) -> None:
        """One finished HTTP request (not /metrics's own). The router has put the matched route in the
        scope: its template keeps the label set bounded (/documents/{doc_id}, not one series per id)."""
        if scope.get("path") == "/metrics":
            return
        handler = getattr(scope.get("route"), "path", None) or "none"
        method = scope.get("method", "")
        method = method if method in _METHODS else "other"
        self.http_requests.labels(handler, method, f"{status // 100}xx").inc()
        self.http_seconds.labels(handler, method).observe(seconds)


# Method labels from a fixed set: a client inventing methods must not invent label values (series).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
