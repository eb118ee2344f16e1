"""Checks of the configurable limits, raising the domain errors that ``app.errors`` maps to 4xx."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import BatchTooLargeError, InputTooLongError, TopKOutOfRangeError
from .settings import Settings


def check_texts(texts: Sequence[str], settings: Settings, what: str = "input") -> None:
    if len(texts) > settings.max_batch:
        raise BatchTooLargeError(f"{what} has {len(texts)} texts; the limit is {settings.max_batch} per request")
    for i, t in enumerate(texts):
        if len(t) > settings.max_query_chars:
            where = what if len(texts) == 1 else f"{what}[{i}]"
            raise InputTooLongError(
                f"{where} is {len(t)} characters long; the limit is {settings.max_query_chars}"
            )


def check_top_k(top_k: int, settings: Settings) -> None:
    if not 1 <= top_k <= settings.max_top_k:
        raise TopKOutOfRangeError(f"top_k must be between 1 and {settings.max_top_k}, got {top_k}")
