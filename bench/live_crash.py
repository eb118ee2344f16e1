"""Crash trials of the live index: a client streams upserts and deletes to a real server process, which
is ``kill -9``'d at a random moment; after a restart every acknowledged write must be there and every
acknowledged delete gone, and the search results must equal those of a fresh offline build of the
final document set.

    python -m bench.live_crash --model MODEL_DIR --index INDEX_DIR [--trials 20] [--json OUT]

INDEX_DIR is copied (never written); the trials run on the copy, one after another, so the state carries
over (later trials crash an index that already holds earlier trials' writes and compactions).
The write in flight when the server dies is "in doubt": either outcome is correct, it was never
acknowledged. tests/test_live_crash.py runs a few trials; this command runs as many as asked.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.process import ServerProcess, free_port, product_env

WRITE_KEY = "crash-trial-write-key-0123"
ADMIN_KEY = "crash-trial-admin-key-0123"
HEADERS = {"Authorization": f"Bearer {WRITE_KEY}"}
Doc = dict[str, Any]  # {"title", "text", "metadata"}; None in a state = deleted


@dataclass
class Trial:
    acknowledged: int = 0
    in_doubt: int = 0
    lost: list[str] = field(default_factory=list)
    seconds_to_kill: float = 0.0
    restart_seconds: float = 0.0


def start_server(model: Path, index: Path, log_dir: Path) -> ServerProcess:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    env = product_env(model_dir=str(model), index_dir=str(index), write_key=WRITE_KEY, api_key=ADMIN_KEY,
                      torch_threads="1", log_level="WARNING")
    return ServerProcess(cmd, env, port, log_dir / f"server-{port}.log")


def _doc(rng: random.Random, n: int) -> Doc:
    words = ["fever", "heart", "lung", "skin", "bone", "liver", "kidney", "brain", "nerve", "muscle", "pain"]
    return {"title": f"Crash {n}", "text": f"version {n} " + " ".join(rng.choice(words) for _ in range(8)),
            "metadata": {"aspect": rng.choice(["crash-a", "crash-b"]), "n": n}}


def stream_writes(url: str, rng: random.Random, state: dict[str, Doc | None], stop: threading.Event,
                  trial: Trial, doubt: dict[str, list[Doc | None]], pool: int = 300) -> None:
    """One client, one write at a time: upserts of 1..5 documents, single deletes, batch deletes.
    ``state`` is updated only by acknowledged writes; the write in flight at the crash goes to ``doubt``."""
    n = 0
    with httpx.Client(base_url=url, timeout=30, headers=HEADERS) as c:
        while not stop.is_set():
            n += 1
            op = rng.random()
            try:
                if op < 0.6:
                    docs = {f"c{rng.randrange(pool)}": _doc(rng, n * 10 + i) for i in range(rng.randint(1, 5))}
                    pending: dict[str, Doc | None] = dict(docs)
                    r = c.post("/documents", json={"documents": [{"id": k, **v} for k, v in docs.items()]})
                    ok = r.status_code == 200
                elif op < 0.85:
                    did = rng.choice([f"c{rng.randrange(pool)}", f"d{rng.randrange(180)}"])
                    pending = {did: None}
                    r = c.delete(f"/documents/{did}")
                    ok = r.status_code in (200, 404)
                else:
                    ids = [f"c{rng.randrange(pool)}" for _ in range(3)]
                    pending = dict.fromkeys(ids)
                    r = c.post("/documents/delete", json={"ids": ids})
                    ok = r.status_code == 200
            except httpx.HTTPError:
                for k, v in pending.items():
                    doubt.setdefault(k, []).append(v)
                trial.in_doubt += 1
                return
            if not ok:
                raise RuntimeError(f"write refused: {r.status_code} {r.text}")
            state.update(pending)
            trial.acknowledged += 1


def check_state(url: str, state: dict[str, Doc | None], doubt: dict[str, list[Doc | None]]) -> list[str]:
    """The ids whose stored document is not what the acknowledged writes (or the write in doubt) say."""
    lost = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for did, want in state.items():
            r = c.get(f"/documents/{did}")
            got = None if r.status_code == 404 else {k: r.json()[k] for k in ("title", "text", "metadata")}
            if got != want and got not in doubt.get(did, []):
                lost.append(did)
        for did, options in doubt.items():
            if did in state:
                continue
            r = c.get(f"/documents/{did}")
            got = None if r.status_code == 404 else {k: r.json()[k] for k in ("title", "text", "metadata")}
            # Never acknowledged: absent, or exactly the write in doubt (or the original document).
            if got is not None and got not in options and not did.startswith("d"):
                lost.append(did)
    return lost


def run_trials(model: Path, index: Path, trials: int, seed: int = 0, log_dir: Path | None = None,
               max_kill_s: float = 2.0, compact_every: int = 4, log: Any = print) -> dict[str, Any]:
    """Run the trials on ``index`` (modified in place: pass a copy); returns the totals and per trial."""
    rng = random.Random(seed)
    log_dir = log_dir or index.parent
    state: dict[str, Doc | None] = {}
    results = []
    srv = start_server(model, index, log_dir)
    srv.wait_ready()
    for t in range(trials):
        trial = Trial()
        doubt: dict[str, list[Doc | None]] = {}
        if compact_every and t and t % compact_every == 0:
            r = httpx.post(f"{srv.url}/admin/compact", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)
            assert r.status_code == 200, r.text
        stop = threading.Event()
        th = threading.Thread(target=stream_writes, args=(srv.url, rng, state, stop, trial, doubt))
        th.start()
        trial.seconds_to_kill = rng.uniform(0.2, max_kill_s)
        time.sleep(trial.seconds_to_kill)
        os.kill(srv.pid, signal.SIGKILL)  # the crash: no shutdown handler runs
        srv.proc.wait()
        stop.set()
        th.join(timeout=60)
        srv.stop()
        t0 = time.perf_counter()
        srv = start_server(model, index, log_dir)
        srv.wait_ready()
        trial.restart_seconds = time.perf_counter() - t0
        trial.lost = check_state(srv.url, state, doubt)
        # The write in doubt is settled now: what the server holds is the truth from here on.
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for did in doubt:
                r = c.get(f"/documents/{did}")
                state[did] = None if r.status_code == 404 else {k: r.json()[k] for k in ("title", "text", "metadata")}
        results.append(trial)
        log(f"trial {t + 1}/{trials}: killed after {trial.seconds_to_kill:.2f} s, {trial.acknowledged} acknowledged "
            f"writes, {trial.in_doubt} in doubt, {len(trial.lost)} lost, restart {trial.restart_seconds:.1f} s")
    url = srv.url
    out = {
        "trials": trials, "acknowledged": sum(r.acknowledged for r in results),
        "in_doubt": sum(r.in_doubt for r in results), "lost": sum(len(r.lost) for r in results),
        "lost_ids": sorted({i for r in results for i in r.lost}),
        "restart_seconds_max": round(max((r.restart_seconds for r in results), default=0.0), 2),
        "per_trial": [{"acknowledged": r.acknowledged, "in_doubt": r.in_doubt, "lost": len(r.lost),
                       "killed_after_s": round(r.seconds_to_kill, 2)} for r in results],
    }
    out["fresh_build_equal"] = compare_with_fresh_build(url, model, index, log_dir)
    srv.stop()
    return out


def compare_with_fresh_build(url: str, model: Path, index: Path, work: Path,
                             queries: tuple[str, ...] = ("fever pain", "heart lung", "version kidney brain",
                                                         "what causes the disease", "bone treatment")) -> bool:
    """The served results (dense, top 20) against an offline build of the server's final documents:
    the same documents with the same cosines (within float error of a different batch shape)."""
    from index import SearchIndex, build_index
    from index.live import LiveIndex
    from models.data import Corpus
    from models.encoder import Encoder

    enc = Encoder.load(model)
    with LiveIndex.open(index, enc, create_live=False) as live:  # read the final set (server idle)
        docs = live.all_documents()
    corpus = Corpus([d[0] for d in docs], [d[1] for d in docs], [d[2] for d in docs], [d[3] for d in docs])
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        out = Path(tmp) / "fresh"
        build_index(enc, corpus, out, show_progress=False, durable=False)
        with SearchIndex.load(out, enc) as fresh:
            offline = fresh.search(enc.encode(list(queries)), 20)
    with httpx.Client(base_url=url, timeout=30) as c:
        for q, off in zip(queries, offline, strict=True):
            served = c.post("/search", json={"query": q, "top_k": 20}).json()["results"]
            a = {h["id"]: h["score"] for h in served}
            b = {h.id: h.score for h in off}
            if not np.allclose(sorted(a.values()), sorted(b.values()), atol=1e-5):
                return False
            if any(abs(a[i] - b[i]) > 1e-5 for i in set(a) & set(b)) or len(set(a) & set(b)) < len(b) - 2:
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--index", required=True, help="a built or live index (copied; the copy is crashed)")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the totals here")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dssm-crash-") as tmp:
        idx = Path(tmp) / "index"
        shutil.copytree(a.index, idx)
        out = run_trials(Path(a.model), idx, a.trials, a.seed, Path(tmp))
    print(json.dumps({k: v for k, v in out.items() if k != "per_trial"}, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0 if out["lost"] == 0 and out["fresh_build_equal"] else 1


def run() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    run()
