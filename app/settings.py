"""The service's configuration: one typed object read from ``DSSM_*`` environment variables.

The app factory takes a ``Settings`` instance, so tests and ``scripts/serve.py`` build one explicitly
and nothing reads the environment behind the factory's back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSSM_", extra="ignore", protected_namespaces=())

    # What to serve. Missing folders do not stop the process: /health answers, /ready says why not.
    model_dir: Path = Path("artifacts/model")
    index_dir: Path = Path("artifacts/index")
    verify_hashes: bool = False  # re-hash the index files on load (slower start, catches bit rot)
    api_key: SecretStr | None = None  # enables POST /admin/reload and /admin/compact; unset → 404
    # The live index (README "Live index"): writes need DSSM_WRITE_KEY (Bearer); unset, the write routes
    # answer 404 and a built index is served read-only as before. Reads are open unless DSSM_READ_KEY is
    # set (then /search, /embed, /v1/embeddings and GET /documents need it, or the write key).
    write_key: SecretStr | None = None
    read_key: SecretStr | None = None
    # Nice value of the write thread (Linux): > 0 lets searches take the CPU before a document encode
    # on busy cores (search p99 under 100 docs/s of writes: 1.72x idle at 0, 1.23x at 4), at the cost
    # of write throughput when other processes compete for the cores (README "Live index").
    write_nice: int = Field(4, ge=0, le=19)

    # Input limits: every one is a client error (4xx) when exceeded.
    max_query_chars: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_batch: int = Field(256, ge=1)  # texts per /embed or /v1/embeddings call, documents per POST /documents
    max_top_k: int = Field(100, ge=1)
    # A filter is one SQL lookup per field and a cached row set: bound both (a 1 MB filter of 85k fields
    # took 350 ms and kept ~16 MB in the cache).
    max_filter_fields: int = Field(32, ge=1)
    max_filter_chars: int = Field(256, ge=1)  # longest field name or string value

    # Slow or hostile sockets (enforced by app.protocol under scripts/serve.py, the body timeout also by
    # the app itself). Request line + headers must fit max_header_bytes (431) and arrive within
    # header_timeout_s of the connection opening or of the first byte of a keep-alive request (408, then
    # closed); the body within body_timeout_s of the headers (408). An idle keep-alive connection is
    # closed after keep_alive_s.
    max_header_bytes: int = Field(16384, ge=1024)
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    keep_alive_s: int = Field(5, ge=1)

    # CPU: the model and the index run in a small pool of threads, never on the event loop. One thread
    # each measured best on 2 cores (medquad, 8 clients: 796 vs 419 req/s with torch's default of 2):
    # intra-op threads spin and take the core the event loop needs, and micro-batches are small. Scale
    # with more processes (uvicorn --workers, replicas) rather than threads. None: the library default.
    torch_threads: int | None = Field(1, ge=1)
    faiss_threads: int | None = Field(1, ge=1)
    compute_workers: int = Field(1, ge=1)  # threads that run encode+search; 1 avoids oversubscribing cores

    # Micro-batching of concurrent /search calls: queries arriving while a batch runs (or within
    # batch_wait_ms of the first) are encoded and searched together.
    # Server processes on the port (scripts/serve.py --workers N sets it for each of them): with more than
    # one, a reload (which one process would receive) is refused, and so is the live index (one writer).
    workers: int = Field(1, ge=1)
    micro_batching: bool = True
    # A query that arrives when nothing is queued or running is computed on the event loop itself
    # instead of being handed to the compute thread and back (README "Speed and micro-batching").
    inline_lone_queries: bool = True
    # POST /search answered without FastAPI's per-request layers when it will get a 200 (app.fastpath);
    # anything else goes to the route as before. False: every request through the route (comparison).
    search_fast_path: bool = True
    batch_wait_ms: float = Field(0.0, ge=0.0, le=100.0)
    max_batch_queries: int = Field(64, ge=1)

    # HTTP surface.
    cors_origins: Annotated[list[str], NoDecode] = []
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: object) -> object:
        # DSSM_CORS_ORIGINS="https://a.example, https://b.example" — a comma list reads better in an env
        # file than JSON; a JSON list still works.
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [o.strip() for o in v.split(",") if o.strip()]
        return v
