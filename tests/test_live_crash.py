"""kill -9 of a real server process while a client streams acknowledged upserts and deletes
(bench/live_crash.py, which runs ≥ 20 trials as a command): after each restart every acknowledged write
is there, every acknowledged delete gone, and at the end the served results equal a fresh offline build
of the final document set."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.live_crash import run_trials


def test_kill_9_loses_no_acknowledged_write(tiny_model_dir: Path, tiny_index_dir: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(tiny_index_dir, index)
    out = run_trials(tiny_model_dir, index, trials=3, seed=1, log_dir=tmp_path, max_kill_s=1.5, compact_every=2,
                     log=lambda s: None)
    assert out["acknowledged"] >= 10, out
    assert out["lost"] == 0, out["lost_ids"]
    assert out["fresh_build_equal"] is True
