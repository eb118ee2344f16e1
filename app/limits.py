"""Checks of the configurable limits, raising the domain errors that ``app.errors`` maps to 4xx."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import BatchTooLargeError, FilterTooLargeError, InputTooLongError, TopKOutOfRangeError
from .settings import Settings


def check_batch(n: int, settings: Settings, what: str, unit: str = "items") -> None:
    """At most ``max_batch`` texts, documents or ids in one request (413)."""
    if n > settings.max_batch:
        raise BatchTooLargeError(f"{what} has {n} {unit}; the limit is {settings.max_batch} per request")


def check_texts(texts: Sequence[str], settings: Settings, what: str = "input") -> None:
    check_batch(len(texts), settings, what, "texts")
    for i, t in enumerate(texts):
        if len(t) > settings.max_query_chars:
            where = what if len(texts) == 1 else f"{what}[{i}]"
            raise InputTooLongError(
                f"{where} is {len(t)} characters long; the limit is {settings.max_query_chars}"
            )


def check_top_k(top_k: int, settings: Settings, offset: int = 0) -> None:
    if not 1 <= top_k <= settings.max_top_k:
        raise TopKOutOfRangeError(f"top_k must be between 1 and {settings.max_top_k}, got {top_k}")
    if offset + top_k > settings.max_top_k:
        # Deep pages cost a ranking of offset + top_k; the same bound as a single page keeps them cheap.
        raise TopKOutOfRangeError(
            f"offset + top_k must be at most {settings.max_top_k} (DSSM_MAX_TOP_K), got {offset} + {top_k}")


def check_filter(filter: Mapping[str, Any] | None, settings: Settings) -> None:
    """At most ``max_filter_fields`` fields, names and string values of at most ``max_filter_chars``.

    Checked before any lookup: each field costs one SQL query and the result is cached, so an
    unbounded filter is a cheap way to burn CPU and memory (issue 13, row 2)."""
    if not filter:
        return
    if len(filter) > settings.max_filter_fields:
        raise FilterTooLargeError(
            f"filter has {len(filter)} fields; the limit is {settings.max_filter_fields}")
    for key, value in filter.items():
        if len(key) > settings.max_filter_chars:
            raise FilterTooLargeError(
                f"filter field name of {len(key)} characters; the limit is {settings.max_filter_chars}")
        if isinstance(value, str) and len(value) > settings.max_filter_chars:
            raise FilterTooLargeError(
                f"filter value of {key[:50]!r} is {len(value)} characters; the limit is {settings.max_filter_chars}")
