"""Serve the search API: ``python scripts/serve.py --model MODEL_DIR --index INDEX_DIR [--port 8000]``.

Every flag overrides the matching ``DSSM_*`` environment variable (see the README, "The service");
``uvicorn app.main:app`` serves the same app from the environment alone. The API key is read from
``DSSM_API_KEY`` only, never from a flag, so it does not show up in ``ps``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from app.logging_setup import configure_logging
from app.main import create_app
from app.protocol import guarded_protocol
from app.security import configured
from app.settings import Settings
from app.workers import run_workers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", dest="model_dir", help="model folder (DSSM_MODEL_DIR)")
    p.add_argument("--index", dest="index_dir", help="index folder (DSSM_INDEX_DIR)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=None,
                   help="server processes on the port (DSSM_WORKERS, default 1; README 'Deployment': 2 on 2 cores "
                        "for read-only search). Each loads the model; the index files are memory-mapped and shared")
    p.add_argument("--micro-batching", dest="micro_batching", action=argparse.BooleanOptionalAction, default=None,
                   help="gather concurrent /search queries into one batch (DSSM_MICRO_BATCHING, default on)")
    p.add_argument("--batch-wait-ms", type=float, help="extra wait for more queries per batch (DSSM_BATCH_WAIT_MS)")
    p.add_argument("--max-batch-queries", type=int, help="queries per micro-batch (DSSM_MAX_BATCH_QUERIES)")
    p.add_argument("--compute-workers", type=int, help="threads running encode+search (DSSM_COMPUTE_WORKERS)")
    p.add_argument("--torch-threads", type=int, help="torch intra-op threads (DSSM_TORCH_THREADS)")
    p.add_argument("--faiss-threads", type=int, help="FAISS OpenMP threads (DSSM_FAISS_THREADS)")
    p.add_argument("--max-query-chars", type=int, help="DSSM_MAX_QUERY_CHARS (default 1000)")
    p.add_argument("--max-top-k", type=int, help="DSSM_MAX_TOP_K (default 100)")
    p.add_argument("--max-batch", type=int, help="texts per embed call, DSSM_MAX_BATCH (default 256)")
    p.add_argument("--max-body-bytes", type=int, help="DSSM_MAX_BODY_BYTES (default 1 MiB)")
    p.add_argument("--cors-origins", help="comma-separated allowed origins (DSSM_CORS_ORIGINS)")
    p.add_argument("--log-format", choices=["text", "json"], help="DSSM_LOG_FORMAT (default text)")
    p.add_argument("--log-level", help="DSSM_LOG_LEVEL (default INFO)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # --workers is Settings.workers (DSSM_WORKERS): validated with the rest, and told to every process.
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None and k not in ("host", "port")}
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        print(f"error: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    workers = settings.workers
    if workers > 1 and configured(settings.write_key):
        print("error: --workers > 1 with DSSM_WRITE_KEY: the live index takes writes in one process (each "
              "process would hold its own view of it); serve it with --workers 1, or writes off", file=sys.stderr)
        return 2
    # Our middleware logs one access line per request with its request id; uvicorn's would repeat it.
    # The protocol is httptools with a header size limit and a header timeout (app/protocol.py), so
    # one slow or oversized client cannot stall the others even without a proxy in front.
    # ws="none": the app has no WebSocket routes, and an upgrade would swap the connection's protocol
    # (app.workers counts connections by the HTTP protocol's end).
    common: dict[str, Any] = dict(access_log=False, log_level=settings.log_level.lower(), timeout_graceful_shutdown=10,
                                  timeout_keep_alive=settings.keep_alive_s, ws="none")
    if workers == 1:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, http=guarded_protocol(settings), **common)
        return 0
    # Worker processes import the app by name and read their settings from the environment: the flags
    # given here travel as the DSSM_* variables they override (validated above, once). The supervisor
    # accepts and hands each connection to the process holding the fewest (app/workers.py).
    os.environ.update({f"DSSM_{k.upper()}": _env_value(v) for k, v in overrides.items()})
    configure_logging(settings.log_format, settings.log_level)
    return run_workers(workers, args.host, args.port, "app.main:app", http="app.protocol:EnvGuardedHttpToolsProtocol",
                       **common)


def _env_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return json.dumps(v)
    return str(v)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
