#!/usr/bin/env python
"""The long reliability runs (the fast parts are in the test suite: tests/test_schemathesis.py,
tests/test_faults.py, tests/test_security.py).

    python scripts/reliability.py fuzz --model MODEL_DIR --index INDEX_DIR [--cases 1000] [--seed 0]
    python scripts/reliability.py load --model MODEL_DIR --index INDEX_DIR [--users 50] [--seconds 60] [--queries Q]
    python scripts/reliability.py security

- ``fuzz``: schemathesis against the OpenAPI schema of a real server (``scripts/serve.py``, admin key
  set, so /admin/reload is exercised): at least ``--cases`` generated requests over all endpoints,
  positive and negative; fails on any 5xx or schema violation.
- ``load``: locust headless (``bench/locustfile.py``), ``--users`` users for ``--seconds`` against a real
  server; prints requests, failures, p50/p99, requests/s; fails on any failed request.
- ``security``: bandit (medium and high findings) over the code and pip-audit over the installed
  packages (PyPI's advisory data; needs the network to pypi.org).

Servers listen on a free port of 127.0.0.1 only. ``--json OUT`` writes the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.process import ServerError, ServerProcess, free_port, product_env, serve_command
from cli._run import UsageError, run_cli

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def product_server(model: str, index: str, log: Path, api_key: str | None = None,
                   extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, ServerProcess]]:
    """``scripts/serve.py`` (the product, unchanged) on a free port of 127.0.0.1, until /ready."""
    env = product_env()
    env.update(extra_env or {})
    if api_key:
        env["DSSM_API_KEY"] = api_key  # from the environment only, as in production (never a flag)
    port = free_port()
    srv = ServerProcess(serve_command(port, "--model", model, "--index", index, "--log-level", "warning"), env, port, log)
    try:
        try:
            srv.wait_ready()
        except ServerError as e:
            raise UsageError(str(e)) from e
        yield srv.url, srv
    finally:
        srv.stop()


def cmd_fuzz(a: argparse.Namespace) -> dict[str, Any]:
    from bench.fuzz import FuzzReport, fuzz

    key = secrets.token_hex(16)
    log = Path(a.work) / "fuzz-server.log"
    total = FuzzReport()
    started = time.perf_counter()
    with product_server(a.model, a.index, log, api_key=key) as (url, proc):
        # Rounds with new seeds until enough cases ran (operations without inputs give one case each).
        seed, per_op = a.seed, a.examples
        while total.cases < a.cases:
            r = fuzz(url, per_op, seed=seed, headers={"Authorization": f"Bearer {key}"})
            total.cases += r.cases
            total.server_errors += r.server_errors
            total.failures += r.failures
            for k, v in r.statuses.items():
                total.statuses[k] = total.statuses.get(k, 0) + v
            for k, v in r.per_operation.items():
                total.per_operation[k] = total.per_operation.get(k, 0) + v
            print(f"seed {seed}: {r.cases} cases, {r.server_errors} 5xx, {len(r.failures)} failed checks", flush=True)
            seed += 1
        alive = proc.proc.poll() is None and httpx.get(f"{url}/ready", timeout=5).status_code == 200
    s = total.summary()
    s.update({"seconds": round(time.perf_counter() - started, 1), "still_ready_after": alive,
              "checks": "not_a_server_error, status_code_conformance, content_type_conformance, "
                        "response_headers_conformance, response_schema_conformance"})
    print(json.dumps({k: v for k, v in s.items() if k != "first_failures"}, indent=2))
    for f in s["first_failures"]:
        print(f"\n{f}")
    s["ok"] = total.server_errors == 0 and not total.failures and alive
    return s


def cmd_load(a: argparse.Namespace) -> dict[str, Any]:
    import shutil

    locust = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    if not Path(locust).exists():
        raise UsageError("locust not found: pip install -e '.[bench]'")
    work = Path(a.work)
    prefix = work / "locust"
    env_extra = {"DSSM_TORCH_THREADS": str(a.torch_threads)}
    with product_server(a.model, a.index, work / "load-server.log", extra_env=env_extra) as (url, proc):
        env = {**os.environ, **({"LOCUST_QUERIES": a.queries} if a.queries else {})}
        cmd = [locust, "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "-u", str(a.users),
               "-r", str(a.spawn_rate), "-t", f"{a.seconds}s", "--host", url, "--csv", str(prefix),
               "--only-summary", "--stop-timeout", "10", "--loglevel", "WARNING"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.seconds + 120, check=False)
        wall = time.perf_counter() - t0
        mem = proc.memory_mib()
        alive = proc.proc.poll() is None
    rows = list(csv.DictReader(Path(f"{prefix}_stats.csv").read_text(encoding="utf-8").splitlines()))
    fails = list(csv.DictReader(Path(f"{prefix}_failures.csv").read_text(encoding="utf-8").splitlines()))

    def fig(r: dict[str, str]) -> dict[str, Any]:
        return {"requests": int(r["Request Count"]), "failures": int(r["Failure Count"]),
                "p50_ms": float(r["50%"]), "p99_ms": float(r["99%"]), "max_ms": float(r["Max Response Time"]),
                "rps": round(float(r["Requests/s"]), 1)}

    per = {r["Name"]: fig(r) for r in rows if r["Name"] != "Aggregated"}
    agg = fig(next(r for r in rows if r["Name"] == "Aggregated"))
    s = {"users": a.users, "seconds": a.seconds, "wall_s": round(wall, 1), "aggregated": agg, "per_request": per,
         "failures": fails[:10], "server_rss_mib": mem["rss_mib"],
         "server_alive_after": alive, "locust_exit": out.returncode}
    print(f"{a.users} users, {a.seconds} s: {agg['requests']} requests, {agg['failures']} failed, "
          f"p50 {agg['p50_ms']:.0f} ms, p99 {agg['p99_ms']:.0f} ms, {agg['rps']} req/s; server RSS {s['server_rss_mib']} MiB")
    for name, f in per.items():
        print(f"  {name:<16} {f['requests']:>7} req  {f['failures']} failed  p50 {f['p50_ms']:.0f} ms  p99 {f['p99_ms']:.0f} ms")
    if out.returncode not in (0, 1):
        print(out.stderr[-2000:], file=sys.stderr)
    s["ok"] = agg["failures"] == 0 and agg["requests"] > 0 and alive
    return s


def cmd_security(a: argparse.Namespace) -> dict[str, Any]:
    dirs = ["app", "index", "models", "scripts", "bench"]
    b = subprocess.run([sys.executable, "-m", "bandit", "-q", "-r", *dirs, "-f", "json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=False)
    rep = json.loads(b.stdout)
    findings = [{"id": r["test_id"], "severity": r["issue_severity"], "confidence": r["issue_confidence"],
                 "where": f"{r['filename']}:{r['line_number']}", "text": r["issue_text"]} for r in rep["results"]]
    by_sev: dict[str, int] = {}
    for f in findings:
        by_sev[f["severity"]] = by_sev.get(f["severity"], 0) + 1
    print(f"bandit: {by_sev or 'no findings'}")
    for f in findings:
        if f["severity"] != "LOW":
            print(f"  {f['id']} {f['severity']} {f['where']}: {f['text']}")
    pa = subprocess.run([sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "-f", "json"], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, check=False)
    try:
        audit = json.loads(pa.stdout)
        vulns = [{"package": d["name"], "version": d["version"], "id": v["id"], "fix": v.get("fix_versions")}
                 for d in audit.get("dependencies", []) for v in d.get("vulns", [])]
        skipped = [d["name"] for d in audit.get("dependencies", []) if d.get("skip_reason")]
        n = len(audit.get("dependencies", []))
        # A package pip-audit could not look up is not "clean": say so (e.g. no access to pypi.org's JSON API).
        print(f"pip-audit: {n - len(skipped)} of {n} packages audited, {len(vulns)} known vulnerabilities"
              + (f"; NOT audited ({len(skipped)}): {', '.join(skipped[:20])}{' …' if len(skipped) > 20 else ''}"
                 if skipped else ""))
        for v in vulns:
            print(f"  {v['package']} {v['version']}: {v['id']} (fixed in {', '.join(v['fix'] or []) or 'no release'})")
    except json.JSONDecodeError:
        vulns, skipped = [], []
        print(f"pip-audit failed: {pa.stderr.strip()[-1000:]}")
    return {"bandit": findings, "bandit_by_severity": by_sev, "pip_audit": vulns, "pip_audit_skipped": skipped,
            "pip_audit_ok": pa.returncode == 0 and not skipped and not vulns,
            "ok": pa.returncode == 0 and not skipped and not vulns}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("fuzz", "load"):
        sp = sub.add_parser(name)
        sp.add_argument("--model", required=True)
        sp.add_argument("--index", required=True)
    f = sub.choices["fuzz"]
    f.add_argument("--cases", type=int, default=1000, help="at least this many generated requests")
    f.add_argument("--examples", type=int, default=110, help="per operation and mode, per round")
    f.add_argument("--seed", type=int, default=0)
    ld = sub.choices["load"]
    ld.add_argument("--users", type=int, default=50)
    ld.add_argument("--spawn-rate", type=int, default=10)
    ld.add_argument("--seconds", type=int, default=60)
    ld.add_argument("--queries", help="queries.jsonl (BEIR) or a text file")
    ld.add_argument("--torch-threads", type=int, default=2)
    sub.add_parser("security")
    for sp in sub.choices.values():
        sp.add_argument("--json", help="write the figures here")
        sp.add_argument("--work", default=None, help="folder for logs and CSVs (default: a temporary folder)")
    a = p.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dssm-rel-") as tmp:
        a.work = a.work or tmp
        Path(a.work).mkdir(parents=True, exist_ok=True)
        s = {"fuzz": cmd_fuzz, "load": cmd_load, "security": cmd_security}[a.cmd](a)
    if a.json:
        Path(a.json).write_text(json.dumps(s, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("OK" if s["ok"] else "FAILED")
    return 0 if s["ok"] else 1


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
