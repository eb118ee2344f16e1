"""Schemathesis against a running server's OpenAPI schema: generated requests for every operation,
each response checked for 5xx and against the schema (status code, content type, headers, body).

Used by ``tests/test_schemathesis.py`` (a fixed-seed small run in the suite) and by
``scripts/reliability.py fuzz`` (≥ 1,000 cases). Every case is counted, failures are collected with
the request that caused them instead of stopping at the first one, so a run reports all it found.
"""

from __future__ import annotations

import collections
import contextlib
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# What "zero 5xx and zero schema violations" means. positive_data_acceptance is left out on purpose:
# the schema cannot express the limits the settings impose (max_query_chars, max_top_k, max_batch),
# so a schema-valid request may rightly get a documented 422.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@dataclass
class FuzzReport:
    cases: int = 0
    per_operation: dict[str, int] = field(default_factory=collections.Counter)
    statuses: dict[int, int] = field(default_factory=collections.Counter)
    server_errors: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"cases": self.cases, "server_errors": self.server_errors, "failures": len(self.failures),
                "statuses": dict(sorted(self.statuses.items())), "per_operation": dict(self.per_operation),
                "first_failures": self.failures[:10]}


def fuzz(base_url: str, examples: int, seed: int = 0, headers: dict[str, str] | None = None,
         timeout: float = 60.0) -> FuzzReport:
    """Up to ``examples`` positive and ``examples`` negative cases per operation (fewer where the
    operation has fewer distinct inputs, e.g. GET /health), generated deterministically from ``seed``."""
    if not base_url.startswith(("http://127.0.0.1", "http://localhost")):
        raise ValueError("fuzzing stays on this machine: give a 127.0.0.1 URL")
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = FuzzReport()
    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{op.method.upper()} {op.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run_operation(op, label, mode, base_url, examples, seed, headers, timeout, report)
    return report


def _run_operation(op: Any, label: str, mode: GenerationMode, base_url: str, examples: int, seed: int,
                   headers: dict[str, str] | None, timeout: float, report: FuzzReport) -> None:
    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                         suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
                         print_blob=False)
    @hypothesis.seed(seed)
    @hypothesis.given(case=op.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=timeout)
        report.cases += 1
        report.per_operation[label] += 1
        report.statuses[response.status_code] += 1
        if response.status_code >= 500:
            report.server_errors += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as e:  # failed checks: record them with the request, keep going
            sent = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            report.failures.append(
                f"{label} [{mode.value}] → {response.status_code}: {str(e).strip()[:600]}\n"
                f"  request: query={case.query!r} headers={sent!r} body={str(case.body)[:300]!r}")

    # Unsatisfiable: no input of this mode exists (e.g. negative cases for GET /health, which takes none).
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()
