"""Running searches: one batch of queries → one encode, then one index search per (mode, filter).

``Searcher`` either hands each request straight to the compute pool or, with micro-batching on,
through the ``MicroBatcher`` that runs concurrent requests together; both paths use
``run_search_batch``, so they return the same results.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from index import Hit
from index.fusion import DEPTH

from .backend import Backend
from .batching import MicroBatcher
from .metrics import ServiceMetrics
from .settings import Settings


@dataclass(frozen=True)
class SearchQuery:
    text: str
    top_k: int
    mode: str = "dense"
    min_score: float | None = None
    filter: dict[str, Any] | None = None
    offset: int = 0  # results offset..offset+top_k-1 of the ranking


@dataclass(frozen=True)
class _Job:
    backend: Backend
    query: SearchQuery


def _fusion_depth(backend: Backend) -> int:
    # search_hybrid(k) takes max(k, depth) candidates of each side: asking for k = depth keeps exactly
    # the candidates (and so the fused order) of every top_k up to depth.
    return int(backend.index.fusion.get("depth", DEPTH))


def run_search_batch(backend: Backend, queries: Sequence[SearchQuery], metrics: ServiceMetrics | None = None) -> list[list[Hit]]:
    """Blocking: encode all queries in one pass, search per group, trim to each query's top_k/min_score."""
    t0 = time.perf_counter()
    vectors = backend.encoder.encode([q.text for q in queries], tower="query")
    if metrics is not None:
        metrics.encode_seconds.labels("query").observe(time.perf_counter() - t0)
    groups: dict[tuple[str, str, int], list[int]] = {}
    for i, q in enumerate(queries):
        key = (q.mode, json.dumps(q.filter or None, sort_keys=True), q.offset)
        groups.setdefault(key, []).append(i)
    out: list[list[Hit]] = [[] for _ in queries]
    for (mode, _, offset), idx in groups.items():
        k = max(queries[i].top_k for i in idx)
        flt = queries[idx[0]].filter or None
        t1 = time.perf_counter()
        skip = offset  # hits before the page that the index itself skips
        if mode == "hybrid":
            if any(queries[i].min_score is not None for i in idx):
                # min_score is on the cosine but hybrid ranks by the fused score, so passing hits can lie
                # below the first k: take the first `depth` fused hits (the list top_k = depth shows),
                # drop what fails, then page and cut to top_k.
                k, skip = max(offset + k, _fusion_depth(backend)), 0
            hits = backend.index.search_hybrid([queries[i].text for i in idx], vectors[idx], k, filter=flt, offset=skip)
        else:
            hits = backend.index.search(vectors[idx], k, filter=flt, offset=offset)
        if metrics is not None:
            metrics.search_seconds.labels(mode).observe(time.perf_counter() - t1)
        for i, h in zip(idx, hits, strict=True):
            q = queries[i]
            if q.min_score is not None:
                # min_score is on the cosine in both modes; a hit without one (lexical-only) cannot pass.
                # Applied before the cut, so top_k is the first k of the hits that pass (dense hits are
                # in cosine order, so a page of them filtered is the same page of the passing hits).
                h = [x for x in h if x.dense_score is not None and x.dense_score >= q.min_score]
            start = offset - skip
            out[i] = h[start : start + q.top_k]
    return out


# The search seam: a blocking function from a batch of queries on one pair to their hits. The product
# uses run_search_batch; the benchmark's BM25-only system passes its own to create_app.
SearchBatch = Callable[[Backend, Sequence[SearchQuery], ServiceMetrics | None], list[list[Hit]]]


def _run_jobs(
    jobs: Sequence[_Job], metrics: ServiceMetrics | None, search_batch: SearchBatch = run_search_batch
) -> list[list[Hit] | BaseException]:
    # Jobs of one micro-batch may hold different pairs (a reload happened between them): one run per pair.
    by_backend: dict[int, list[int]] = {}
    for i, j in enumerate(jobs):
        by_backend.setdefault(id(j.backend), []).append(i)
    out: list[list[Hit] | BaseException] = [[] for _ in jobs]
    for idx in by_backend.values():
        try:
            with jobs[idx[0]].backend.pinned() as backend:
                res: Sequence[list[Hit] | BaseException] = search_batch(
                    backend, [jobs[i].query for i in idx], metrics
                )
        except Exception as e:
            res = [e] * len(idx)
        for i, r in zip(idx, res, strict=True):
            out[i] = r
    return out


class Searcher:
    def __init__(self, settings: Settings, executor: concurrent.futures.Executor, metrics: ServiceMetrics,
                 search_batch: SearchBatch = run_search_batch) -> None:
        self.executor = executor
        self.metrics = metrics
        self.search_batch = search_batch
        self.inline = settings.inline_lone_queries
        self._pending = 0  # searches between arrival and answer (touched by the event-loop thread only)
        self.batcher: MicroBatcher[_Job, list[Hit]] | None = None
        if settings.micro_batching:
            self.batcher = MicroBatcher(
                lambda jobs: _run_jobs(jobs, metrics, search_batch), executor,
                max_batch=settings.max_batch_queries, max_wait_s=settings.batch_wait_ms / 1000.0,
                workers=settings.compute_workers, on_batch=metrics.batch_size.observe,
            )

    def start(self) -> None:
        if self.batcher is not None:
            self.batcher.start()

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()

    async def search(self, backend: Backend, query: SearchQuery) -> list[Hit]:
        job = _Job(backend, query)
        self._pending += 1
        try:
            # Unfiltered only: a filter can mean an exact scan or a deepening search, too long to hold the loop.
            if self.inline and query.filter is None and await self._alone():
                # A lone query on an idle service: computed here, on the event loop, with no hand-off to
                # the compute thread and back (two thread wake-ups: ~1.2 ms of a 2.8 ms request on this
                # project's VM, whose idle vCPUs are slow to wake). Nothing else is pending, so the loop
                # blocks no other search; one arriving meanwhile waits for this one at most.
                self.metrics.batch_size.observe(1)
                res = _run_jobs([job], self.metrics, self.search_batch)[0]
                if isinstance(res, BaseException):
                    raise res
                return res
            return await self._submit(job)
        finally:
            self._pending -= 1

    async def _alone(self) -> bool:
        """True when no other search is pending after two turns of the event loop: enough for requests
        already waiting in socket buffers to be parsed and reach ``search`` (one turn reads them, the
        next starts their tasks). Under load there always are some, so they batch as before."""
        for _ in range(2):
            await asyncio.sleep(0)
        return self._pending == 1 and (self.batcher is None or self.batcher.idle())

    async def _submit(self, job: _Job) -> list[Hit]:
        if self.batcher is not None:
            return await self.batcher.submit(job)
        self.metrics.batch_size.observe(1)
        res = await asyncio.get_running_loop().run_in_executor(
            self.executor, _run_jobs, [job], self.metrics, self.search_batch
        )
        if isinstance(res[0], BaseException):
            raise res[0]
        return res[0]
