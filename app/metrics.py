"""Prometheus metrics: HTTP counts and latencies (instrumentator) plus the model's own timings.

Each app gets its own registry, so several apps in one process (tests, a reload) never collide on
metric names in the global default registry.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_fastapi_instrumentator import Instrumentator

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

    def instrument(self, app: FastAPI) -> None:
        Instrumentator(
            registry=self.registry,
            excluded_handlers=["/metrics"],
            should_group_untemplated=True,
        ).instrument(app).expose(
            # PlainTextResponse only documents what /metrics sends (Prometheus text), not JSON.
            app, endpoint="/metrics", include_in_schema=True, tags=["operations"], response_class=PlainTextResponse
        )
