"""Typed access to what the lifespan put on ``app.state``.

Routes take the ``Request`` and call :func:`services` instead of declaring one FastAPI dependency per
object: each dependency costs FastAPI a resolution step per request (and a plain ``def`` one a thread
hop), which under load was a measurable share of a /search call's time on the event loop.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from fastapi import Request

from .backend import BackendHolder
from .metrics import ServiceMetrics
from .search import Searcher
from .settings import Settings


@dataclass
class Services:
    settings: Settings
    metrics: ServiceMetrics
    holder: BackendHolder  # the served model/index pair (``holder.current``), swapped by reloads
    searcher: Searcher
    executor: concurrent.futures.Executor
    writer: concurrent.futures.Executor  # one thread: document writes (encode + commit), never on the compute pool


def services(request: Request) -> Services:
    return request.app.state.services
