"""The app factory. ``uvicorn app.main:app`` serves ``create_app(Settings())`` (settings from DSSM_* env).

The lifespan loads the model and index onto ``app.state`` (in a thread, so the event loop stays free);
a failed load leaves the process up — /health answers 200, /ready 503 with the reason — so an
orchestrator sees a clear state instead of a crash loop, and ``/admin/reload`` can bring it up later.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from index.protocols import EncoderLoader
from models.encoder import Encoder

from .backend import BackendHolder
from .deps import Services
from .errors import install_error_handlers
from .fastpath import SearchFastPath
from .logging_setup import configure_logging
from .metrics import ServiceMetrics
from .middleware import BodyLimitMiddleware, RequestContextMiddleware
from .routes import admin, documents, embed, ops, search, ui
from .routes.ui import STATIC_DIR
from .search import SearchBatch, Searcher, run_search_batch
from .security import configured
from .settings import Settings

log = logging.getLogger("app")


def _set_threads(settings: Settings) -> None:
    # Thread counts are process-wide in torch and FAISS; with several workers on a small machine,
    # fewer threads each avoid oversubscribing the cores.
    _set_openmp_threads(settings)
    if settings.torch_threads:
        from threadpoolctl import threadpool_limits

        # NumPy's BLAS runs exact scans (filters, the live index's growing segment) and the projection
        # after the ONNX towers: the same budget as torch's (which the ONNX sessions also take, at load).
        # 2 OpenBLAS threads on 2 busy cores made a (8, 128) @ (128, 4000) product 2.2 ms instead of 0.33.
        threadpool_limits(limits=settings.torch_threads, user_api="blas")


def _set_openmp_threads(settings: Settings) -> None:
    # OpenMP's thread count is per calling thread: a thread made later (the compute pool's) starts from
    # the process default (one per core) and would run HNSW batches on 2 OpenMP threads that spin after
    # each search. Two server processes on 2 cores then fought over them: 458 instead of 1,044+ req/s.
    # torch's products too (index.batchscan's, the torch tower's): a (16, 192) @ (192, 15,250) product
    # in a new thread took 2.1 ms of CPU on 2 OpenMP threads against 1.4 ms on one. So every thread that
    # searches sets both itself (the pools' initializer).
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    if settings.faiss_threads:
        import faiss

        faiss.omp_set_num_threads(settings.faiss_threads)


def _writer_thread(settings: Settings) -> None:
    """The write thread runs at nice ``DSSM_WRITE_NICE`` (Linux schedules threads: the tid is a process
    id here): on busy cores a document encode then yields the CPU to searches instead of competing."""
    import contextlib
    import os
    import threading

    _set_openmp_threads(settings)
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not permitted: normal priority
        if settings.write_nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), settings.write_nice)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: ServiceMetrics = app.state.metrics
    _set_threads(settings)
    executor = concurrent.futures.ThreadPoolExecutor(settings.compute_workers, thread_name_prefix="dssm-compute",
                                                     initializer=_set_openmp_threads, initargs=(settings,))
    writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dssm-write", initializer=_writer_thread,
                                                   initargs=(settings,))
    writes = configured(settings.write_key)
    holder = BackendHolder(settings.model_dir, settings.index_dir, settings.verify_hashes, app.state.loader, writes)
    searcher = Searcher(settings, executor, metrics, app.state.search_batch)
    app.state.services = Services(settings, metrics, holder, searcher, executor, writer)
    await holder.load_initial()
    if holder.current is not None:
        metrics.index_size.set(holder.current.index.size)
    metrics.ready.set(1 if holder.ready else 0)
    searcher.start()
    try:
        yield
    finally:
        await searcher.stop()
        executor.shutdown(wait=True)
        writer.shutdown(wait=True)
        holder.close()


def create_app(
    settings: Settings | None = None, loader: EncoderLoader | None = None, search_batch: SearchBatch | None = None
) -> FastAPI:
    """The service. ``loader`` turns a model folder into a ``TextEncoder`` (default: the LSTM-DSSM
    ``Encoder.load``), at start and on /admin/reload; ``search_batch`` runs a batch of queries on a pair
    (default: ``app.search.run_search_batch``). Both are seams for other encoders and rankers (bench/)."""
    settings = settings or Settings()
    configure_logging(settings.log_format, settings.log_level)
    app = FastAPI(
        title="LSTM-DSSM search",
        summary="Semantic search with an LSTM-DSSM encoder over a FAISS index.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.loader = loader or Encoder.load
    app.state.search_batch = search_batch or run_search_batch
    app.state.metrics = metrics = ServiceMetrics()
    install_error_handlers(app)
    for r in (search.router, embed.router, documents.router, ops.router, admin.router, ui.router):
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Middleware runs outermost-last-added: request id, access log and HTTP metrics → CORS → body limit →
    # the /search fast path → routes.
    app.add_middleware(SearchFastPath)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, body_timeout_s=settings.body_timeout_s,
                       on_disconnect=metrics.client_disconnects.inc)
    metrics.instrument(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"])
    app.add_middleware(RequestContextMiddleware, observe=metrics.observe_request)
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    # ``app`` is made on first access, so importing this module (tests, create_app users) reads no
    # environment and configures no logging; uvicorn's "app.main:app" lookup goes through here.
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)
