"""The embedded demo dataset: a valid, deterministic BEIR folder built from the stdlib's documentation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.data import load_beir

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "make_demo_data.py"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    # A subprocess, not an import: the script imports hundreds of stdlib modules, which must not leak
    # into the test session, and this is how the Makefile and the container run it.
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def demo_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("demo")
    a, b = base / "a", base / "b"
    for d in (a, b):
        r = run_script("--out", str(d))
        assert r.returncode == 0, r.stderr
        assert "documents" in r.stdout
    return a, b


def test_loads_as_beir_with_all_splits(demo_dirs: tuple[Path, Path]) -> None:
    data = load_beir(demo_dirs[0])
    # "A few thousand documents" is what makes a useful model in ≤ 5 min; guard against a walk that
    # silently finds nothing (e.g. every import failing) or explodes.
    assert 2000 <= len(data.corpus) <= 20000
    n = {s: len(data.split(s)) for s in ("train", "dev", "test")}
    assert n["train"] > 1000
    total = sum(n.values())
    for s in ("dev", "test"):  # ~10 % each, by a hash of the entry name
        assert 0.05 < n[s] / total < 0.15, n
    # Known entries are there under the names users type, with the query taken from the docstring.
    ids = set(data.corpus.ids)
    assert {"json.dumps", "os.listdir", "os.path.join", "len", "str.split"} <= ids
    assert not any(i.startswith(("posix.", "builtins.", "antigravity", "this", "tkinter", "idlelib", "test."))
                   for i in ids)
    assert "Serialize" in data.queries["q:json.dumps"]
    assert any(i.startswith("topic:") for i in ids)


def test_deterministic(demo_dirs: tuple[Path, Path]) -> None:
    a, b = demo_dirs
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_queries_do_not_repeat_their_documents(demo_dirs: tuple[Path, Path]) -> None:
    data = load_beir(demo_dirs[0])
    pos = {i: k for k, i in enumerate(data.corpus.ids)}
    checked = 0
    for split in ("train", "dev", "test"):
        for qid, rel in data.split(split).items():
            q = " ".join(data.queries[qid].split()).lower()
            assert q, qid
            for did in rel:
                k = pos[did]
                text = " ".join(data.corpus.texts[k].split()).lower()
                assert q != text and q != " ".join(data.corpus.full_text(k).split()).lower(), qid
                # The summary line is taken *out* of the document: no query is its document's first line.
                first = data.corpus.texts[k].strip().splitlines()[0].strip().lower()
                assert q != first, qid
                checked += 1
    assert checked > 1000


def test_documents_are_json_objects_with_title(demo_dirs: tuple[Path, Path]) -> None:
    with open(demo_dirs[0] / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    assert all(d["title"] and d["text"].strip() for d in docs)
    assert {d["kind"] for d in docs} >= {"topic", "module", "class", "function", "method"}


def test_existing_folder_is_kept_and_bad_out_is_a_clear_error(demo_dirs: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    before = (demo_dirs[0] / "corpus.jsonl").stat().st_mtime_ns
    r = run_script("--out", str(demo_dirs[0]))
    assert r.returncode == 0 and "keeping it" in r.stdout
    assert (demo_dirs[0] / "corpus.jsonl").stat().st_mtime_ns == before

    not_data = tmp_path / "notes"
    not_data.mkdir()
    (not_data / "mine.txt").write_text("keep me")
    r = run_script("--out", str(not_data))
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert (not_data / "mine.txt").read_text() == "keep me"


def test_from_pairs_matches_train_split(tmp_path: Path) -> None:
    """``make demo DATA=pairs.tsv`` converts the file to a BEIR folder; the split must be train.py's."""
    from models.data import load_pairs

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("query\tdocument\n" + "".join(f"how to fix part {i}\tPart {i} is fixed with tool {i % 7}.\n"
                                                    for i in range(200)), encoding="utf-8")
    out = tmp_path / "beir"
    r = run_script("--out", str(out), "--from-pairs", str(pairs))
    assert r.returncode == 0, r.stderr
    got, want = load_beir(out), load_pairs(pairs)
    assert got.corpus.ids == want.corpus.ids and got.corpus.texts == want.corpus.texts
    assert got.queries == want.queries
    assert set(got.qrels) >= {"train", "dev"}
    for s in ("train", "dev"):
        assert got.split(s) == want.split(s)

    bad = tmp_path / "bad.tsv"
    bad.write_text("only one column\n", encoding="utf-8")
    r = run_script("--out", str(tmp_path / "x"), "--from-pairs", str(bad))
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()
