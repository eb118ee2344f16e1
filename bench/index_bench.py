#!/usr/bin/env python
"""Benchmark the dense index types: build time, size, RAM, recall@10 against exact search, ms/query.

    python scripts/bench_index.py [--n 1000000] [--dim 128] [--queries 1000] [--types flat,hnsw,ivf]
    python scripts/bench_index.py --index-dir INDEX_DIR --model MODEL_DIR --data DATASET [--split dev]

Synthetic mode: N unit vectors from a mixture of 1,000 Gaussian clusters (cosine ≈ 0.7 to their
centre; uniform random vectors have no neighbourhood structure, which no real embedding lacks), and
queries drawn the same way. Index mode: the document vectors of a built index (vectors.npy) and the
dataset's real queries encoded with its model; it also prints the index's build figures and the RAM
a loaded SearchIndex takes.

Every index is built with the same defaults as scripts/build_index.py (index/dense.py). ms/query is
one query at a time through DenseIndex.search (the service's path: FAISS, then exact cosines from the
stored vectors); "batch" is all queries in one call. --sweep also tries other efSearch / nprobe.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from cli._run import UsageError, run_cli
from index.dense import DenseIndex, build_faiss, resolve_spec
from index.exact import exact_search


def rss_mib() -> float:
    """Resident memory of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def loaded_rss_mib(path: Path) -> float:
    """RSS that reading the index adds, measured in a fresh process (in this one, memory freed by
    earlier indexes is reused and hides the growth)."""
    code = (
        "import faiss, sys\n"
        "def rss():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1]) / 1024\n"
        "r0 = rss(); idx = faiss.read_index(sys.argv[1]); print(rss() - r0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def clustered(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """(n, dim) float32 unit vectors: a random centre plus Gaussian noise of the centre's norm."""
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x = centres[rng.integers(0, len(centres), m)] + rng.standard_normal((m, dim), dtype=np.float32) / np.sqrt(dim)
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def synthetic(n: int, dim: int, nq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return clustered(n, dim, rng, centres), clustered(nq, dim, rng, centres)


def from_index(a: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    from index import SearchIndex
    from models.data import load_dataset
    from models.encoder import Encoder

    enc = Encoder.load(a.model)
    d = Path(a.index_dir)
    before = rss_mib()
    with SearchIndex.load(d, enc) as idx:
        data = load_dataset(a.data)
        texts = [data.queries[q] for q in data.split(a.split)][: a.queries]
        qv = enc.encode(texts, tower="query")
        t0 = time.perf_counter()
        for i in range(len(qv)):
            idx.search(qv[i : i + 1], 10)
        ms = 1000 * (time.perf_counter() - t0) / len(qv)
        m = idx.manifest
        size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
        print(f"index {d}: {m['documents']} documents, type {m['index']['type']}, built in {m['build_seconds']['total']:.1f} s "
              f"(encoding {m['build_seconds']['encode']:.1f} s = {m['encode_docs_per_second']:.0f} docs/s, "
              f"FAISS {m['build_seconds']['faiss']:.1f} s, BM25 {m['build_seconds']['bm25']:.1f} s), "
              f"{size / 2**20:.1f} MiB on disk; loaded SearchIndex + {len(qv)} searches: +{rss_mib() - before:.0f} MiB RSS; "
              f"search with documents: {ms:.2f} ms/query")
        files = {k: round(v["size"] / 2**20, 2) for k, v in m["files"].items()}
        print(f"files (MiB): {json.dumps(files)}")
    vectors = np.load(d / "vectors.npy", allow_pickle=False)
    return vectors, qv


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--latency-queries", type=int, default=200, help="queries timed one at a time")
    p.add_argument("--types", default="flat,hnsw,ivf")
    p.add_argument("--sweep", action="store_true", help="also try other efSearch / nprobe values")
    p.add_argument("--threads", type=int, default=0, help="FAISS threads for builds and batches (default: all cores)")
    p.add_argument("--latency-threads", type=int, default=1,
                   help="FAISS threads while timing single queries (default 1: a service runs queries in a "
                        "thread pool, and OpenMP inside each query only oversubscribes the cores)")
    p.add_argument("--index-dir", help="benchmark the vectors of this built index instead")
    p.add_argument("--model")
    p.add_argument("--data")
    p.add_argument("--split", default="dev")
    a = p.parse_args(argv)
    if a.threads:
        faiss.omp_set_num_threads(a.threads)
    if a.index_dir:
        if not (a.model and a.data):
            raise UsageError("--index-dir needs --model and --data (for real queries)")
        vectors, queries = from_index(a)
        source = f"{a.index_dir} ({len(vectors)} × {vectors.shape[1]}), {len(queries)} {a.split} queries"
    else:
        t0 = time.perf_counter()
        vectors, queries = synthetic(a.n, a.dim, a.queries)
        source = f"synthetic clustered unit vectors {a.n} × {a.dim} (made in {time.perf_counter() - t0:.0f} s), {a.queries} queries"
    n, dim = vectors.shape
    k = 10
    print(f"{source}; FAISS {faiss.__version__}, {faiss.omp_get_max_threads()} threads "
          f"({a.latency_threads} for single queries)")

    truth, _ = exact_search(queries, vectors, k)

    header = f"{'type':<6} {'factory':<14} {'params':<40} {'build s':>8} {'file MiB':>9} {'RAM MiB':>8} {'recall@10':>9} {'ms/q':>7} {'batch ms/q':>10}"
    print(header)
    print("-" * len(header))
    lat_q = queries[: a.latency_queries]
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "vectors.npy", vectors)
        mm = np.load(Path(tmp) / "vectors.npy", mmap_mode="r", allow_pickle=False)
        for t in [x.strip() for x in a.types.split(",") if x.strip()]:
            spec = resolve_spec(t, n)
            t0 = time.perf_counter()
            built = build_faiss(vectors, spec)
            build_s = time.perf_counter() - t0
            path = Path(tmp) / "dense.faiss"
            faiss.write_index(built, str(path))
            del built
            gc.collect()
            ram = loaded_rss_mib(path)
            index = faiss.read_index(str(path))
            settings = [spec.search]
            if a.sweep and spec.type == "hnsw":
                settings = [{"efSearch": e} for e in (16, 32, 64, 128, 256)]
            elif a.sweep and spec.type == "ivf":
                settings = [{"nprobe": e} for e in (4, 8, 16, 32, 64)]
            for s in settings:
                di = DenseIndex(index, mm, s)
                t0 = time.perf_counter()
                found = np.stack([np.pad(r, (0, k - r.size), constant_values=-1) for r, _ in di.search(queries, k)])
                batch_ms = 1000 * (time.perf_counter() - t0) / len(queries)
                threads = faiss.omp_get_max_threads()
                faiss.omp_set_num_threads(a.latency_threads)
                t0 = time.perf_counter()
                for i in range(len(lat_q)):
                    di.search(lat_q[i : i + 1], k)
                ms = 1000 * (time.perf_counter() - t0) / len(lat_q)
                faiss.omp_set_num_threads(threads)
                params = ",".join(f"{k_}={v}" for k_, v in {**spec.build, **s}.items()) or "-"
                print(f"{spec.type:<6} {spec.factory:<14} {params:<40} {build_s:8.1f} {path.stat().st_size / 2**20:9.1f} "
                      f"{ram:8.0f} {recall(found, truth):9.4f} {ms:7.2f} {batch_ms:10.3f}", flush=True)
            del index, di
            gc.collect()
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
