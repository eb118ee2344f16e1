"""Typed access to what the lifespan put on ``app.state`` (used as FastAPI dependencies)."""

from __future__ import annotations

import concurrent.futures
from typing import Annotated

from fastapi import Depends, Request

from .backend import BackendHolder
from .metrics import ServiceMetrics
from .search import Searcher
from .settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_holder(request: Request) -> BackendHolder:
    return request.app.state.holder


def get_searcher(request: Request) -> Searcher:
    return request.app.state.searcher


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


def get_executor(request: Request) -> concurrent.futures.Executor:
    return request.app.state.executor


SettingsDep = Annotated[Settings, Depends(get_settings)]
HolderDep = Annotated[BackendHolder, Depends(get_holder)]
SearcherDep = Annotated[Searcher, Depends(get_searcher)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ExecutorDep = Annotated[concurrent.futures.Executor, Depends(get_executor)]
