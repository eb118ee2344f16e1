"""Index build → load → search, against NumPy brute force, BM25 and RRF computed independently; and the
failure modes: interrupted builds, another model, missing / truncated / corrupted files, bad input."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import index.dense as dense_mod
from cli._run import run_cli
from common.fs import sha256_file
from index import Hit, IndexBuildError, IndexLoadError, IndexMismatchError, SearchIndex, build_index
from index.fusion import DEFAULT_FUSION, Candidates, fuse, rrf
from index.lexical import BM25
from models.config import ModelConfig
from models.data import DataError, load_beir, load_corpus
from models.encoder import Encoder
from models.io import fingerprint, load_model, save_model
from models.tower import LSTMDSSM
from tests.conftest import shared_dataset
from tests.support import kill_build_midway
from tests.synthetic import make_beir

ROOT = Path(__file__).resolve().parent.parent


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: Path) -> Encoder:
    return Encoder.load(tiny_model_dir)


@pytest.fixture(scope="module")
def flat_dir(tiny_model_dir: Path, tiny_beir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("idx") / "flat"
    build_index(Encoder.load(tiny_model_dir), tiny_beir, out, show_progress=False, dev_data=tiny_beir)
    return out


@pytest.fixture(scope="module")
def flat(flat_dir: Path, encoder: Encoder):
    idx = SearchIndex.load(flat_dir, encoder)
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def corpus(tiny_beir: Path):
    return load_corpus(tiny_beir)


@pytest.fixture(scope="module")
def doc_vectors(encoder: Encoder, corpus) -> np.ndarray:
    """The reference: every document encoded directly with the document tower, (N, D)."""
    return encoder.encode(corpus.full_texts(), tower="document")


@pytest.fixture(scope="module")
def queries(tiny_beir: Path) -> list[str]:
    data = load_beir(tiny_beir)
    return [data.queries[q] for q in sorted(data.split("test")) + sorted(data.split("dev"))]


def check_topk(hits: list[Hit], ref: dict[str, float], k: int) -> None:
    """``hits`` is a correct top-k of ``ref`` (id → exact cosine) up to ties: each score is the true
    cosine, best first, ids unique, and nothing outside the list beats its last score."""
    assert len(hits) == min(k, len(ref))
    ids = [h.id for h in hits]
    assert len(set(ids)) == len(ids)
    for h in hits:
        assert h.dense_score is not None
        assert h.score == pytest.approx(ref[h.id], abs=1e-5)
        assert h.dense_score == pytest.approx(ref[h.id], abs=1e-5)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    if hits:
        outside = [s for d, s in ref.items() if d not in set(ids)]
        assert max(outside, default=-2.0) <= scores[-1] + 1e-5


def ref_scores(qv: np.ndarray, doc_vectors: np.ndarray, corpus, rows=None) -> list[dict[str, float]]:
    s = qv @ doc_vectors.T  # (Q, N) cosines: both sides are unit vectors
    keep = range(len(corpus)) if rows is None else rows
    return [{corpus.ids[i]: float(row[i]) for i in keep} for row in s]


# ---- round trip ----------------------------------------------------------------------------------


def test_flat_search_equals_numpy_brute_force(flat: SearchIndex, encoder, corpus, doc_vectors, queries):
    qv = encoder.encode(queries, tower="query")
    results = flat.search(qv, 10)
    assert len(results) == len(queries)
    for hits, ref in zip(results, ref_scores(qv, doc_vectors, corpus), strict=True):
        check_topk(hits, ref, 10)
        for h in hits:  # documents come back as they were in the corpus
            i = corpus.ids.index(h.id)
            assert (h.title, h.text, h.metadata) == (corpus.titles[i], corpus.texts[i], corpus.metadata[i])


def test_manifest_describes_the_build(flat_dir: Path, flat: SearchIndex, tiny_model_dir: Path, encoder):
    m = json.loads((flat_dir / "manifest.json").read_text())
    assert m["format"] == "lstm-dssm-index" and m["format_version"] == 1
    assert m["model"]["fingerprint"] == fingerprint(tiny_model_dir) == encoder.fingerprint
    assert m["dim"] == encoder.dim == flat.dim
    assert m["documents"] == flat.size == 180
    assert m["index"]["type"] == flat.index_type == "flat"
    assert len(m["corpus"]["fingerprint"]) == 64
    assert {"faiss-cpu", "numpy", "torch", "bm25s", "python"} <= set(m["libraries"])
    assert m["built_at"].endswith("Z") and m["build_seconds"]["total"] > 0
    on_disk = {p.relative_to(flat_dir).as_posix() for p in flat_dir.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(m["files"]) == on_disk
    assert {"docs.sqlite", "dense.faiss", "vectors.npy", "bm25/params.index.json"} <= on_disk
    for rel, info in m["files"].items():
        assert info["size"] == (flat_dir / rel).stat().st_size
        assert info["sha256"] == sha256_file(flat_dir / rel)
    assert flat.manifest == m


def test_k_larger_than_index_zero_and_bad_input(flat: SearchIndex, encoder, corpus, doc_vectors):
    qv = encoder.encode(["what causes kalo", "treat vexnyx"], tower="query")
    for hits, ref in zip(flat.search(qv, 1000), ref_scores(qv, doc_vectors, corpus), strict=True):
        check_topk(hits, ref, 1000)
        assert len(hits) == 180
    assert flat.search(qv, 0) == [[], []]
    assert flat.search(np.zeros((0, flat.dim), np.float32), 5) == []
    assert len(flat.search_bm25(["kalo"], 1000)[0]) <= 180
    assert len(flat.search_hybrid(["kalo", "x"], qv, 1000)[0]) == 180
    with pytest.raises(ValueError, match="k must be"):
        flat.search(qv, -1)
    with pytest.raises(ValueError, match=r"\(Q, 16\)"):
        flat.search(np.ones((1, flat.dim + 1), np.float32), 5)


@pytest.mark.parametrize("index_type, params", [("hnsw", None), ("ivf", None), ("IVF4,SQ8", {"nprobe": 2})])
def test_approximate_types_find_the_exact_neighbours(index_type, params, tiny_model_dir, tiny_beir, tmp_path,
                                                     encoder, corpus, doc_vectors, queries):
    m = build_index(Encoder.load(tiny_model_dir), tiny_beir, tmp_path / "i", index_type=index_type, index_params=params,
                    show_progress=False)
    assert m["index"]["type"] == ("factory" if "," in index_type else index_type)
    qv = encoder.encode(queries, tower="query")
    with SearchIndex.load(tmp_path / "i", encoder, verify_hashes=True) as idx:
        results = idx.search(qv, 10)
    refs = ref_scores(qv, doc_vectors, corpus)
    recall = []
    for hits, ref in zip(results, refs, strict=True):
        assert len(hits) == 10
        for h in hits:  # whatever the index type, scores are the true cosines
            assert h.score == h.dense_score == pytest.approx(ref[h.id], abs=1e-5)
        exact = set(sorted(ref, key=lambda d: -ref[d])[:10])
        recall.append(len(exact & {h.id for h in hits}) / 10)
    assert np.mean(recall) >= 0.9


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_pages_never_repeat_a_document(index_type, tiny_model_dir, tiny_beir, tmp_path, encoder, queries):
    """offset pages are slices of one ranking for every index type: an HNSW asked for 10 and then for
    20 can order its top 10 differently (efSearch grows with k); ranked PAGE_WINDOW deep, it cannot."""
    build_index(Encoder.load(tiny_model_dir), tiny_beir, tmp_path / "i", index_type=index_type,
                index_params={"efSearch": 8} if index_type == "hnsw" else None, show_progress=False)
    qv = encoder.encode(queries, tower="query")
    with SearchIndex.load(tmp_path / "i") as idx:
        for flt in (None, {"aspect": "causes"}):
            ranking = [[h.id for h in hits] for hits in idx.search(qv, 40, filter=flt)]
            pages = [idx.search(qv, 8, filter=flt, offset=o) for o in range(0, 40, 8)]
            for qi, ids in enumerate(ranking):
                paged = [h.id for p in pages for h in p[qi]]
                assert paged == ids and len(set(paged)) == len(paged)
        for search in (lambda k, o: idx.search_bm25(queries, k, offset=o),
                       lambda k, o: idx.search_hybrid(queries, qv, k, offset=o)):
            whole = [[h.id for h in hits] for hits in search(30, 0)]
            paged = [[h.id for h in a] + [h.id for h in b] for a, b in zip(search(10, 0), search(20, 10), strict=True)]
            assert paged == whole
        with pytest.raises(ValueError, match="offset"):
            idx.search(qv[:1], 10, offset=-1)


# ---- filters -------------------------------------------------------------------------------------


@pytest.mark.parametrize("exact_scan", [True, False])
def test_filter_returns_k_matching_hits(exact_scan, flat, tiny_model_dir, tiny_beir, tmp_path, encoder, corpus,
                                        doc_vectors, queries, monkeypatch):
    if not exact_scan:  # force the FAISS selector path (and its widening) instead of the exact scan
        monkeypatch.setattr(dense_mod, "EXACT_SCAN_MAX", 0)
    qv = encoder.encode(queries, tower="query")
    rows = [i for i, m in enumerate(corpus.metadata) if m["aspect"] == "causes"]
    refs = ref_scores(qv, doc_vectors, corpus, rows)
    build_index(Encoder.load(tiny_model_dir), tiny_beir, tmp_path / "h", index_type="hnsw", index_params={"efSearch": 10},
                show_progress=False)
    build_index(Encoder.load(tiny_model_dir), tiny_beir, tmp_path / "v", index_type="ivf", index_params={"nprobe": 1},
                show_progress=False)
    with SearchIndex.load(tmp_path / "h") as hnsw, SearchIndex.load(tmp_path / "v") as ivf:
        for idx in (flat, hnsw, ivf):
            results = idx.search(qv, 10, filter={"aspect": "causes"})
            for hits, ref in zip(results, refs, strict=True):
                assert all(h.metadata["aspect"] == "causes" for h in hits)
                if idx is flat:
                    check_topk(hits, ref, 10)
                else:
                    assert len(hits) == 10
                    assert all(h.score == pytest.approx(ref[h.id], abs=1e-5) for h in hits)
            # More asked than match: every matching document, once.
            assert len({h.id for h in idx.search(qv[:1], 500, filter={"aspect": "causes"})[0]}) == len(rows)
    assert flat.search(qv[:2], 10, filter={"aspect": "nothing"}) == [[], []]
    assert flat.search(qv[:1], 10, filter={"no-such-field": 1}) == [[]]
    with pytest.raises(ValueError, match="filter value"):
        flat.search(qv[:1], 10, filter={"aspect": ["causes"]})


def test_filter_on_bm25_and_hybrid(flat: SearchIndex, encoder, queries):
    qv = encoder.encode(queries, tower="query")
    for hits in flat.search_bm25(queries, 10, filter={"aspect": "treatment"}):
        assert hits and all(h.metadata["aspect"] == "treatment" for h in hits)
    for hits in flat.search_hybrid(queries, qv, 10, filter={"aspect": "treatment"}):
        assert len(hits) == 10 and all(h.metadata["aspect"] == "treatment" for h in hits)


# ---- BM25 and hybrid -----------------------------------------------------------------------------


def test_served_bm25_side_equals_a_fresh_bm25_index(flat: SearchIndex, corpus, queries):
    """Save, memory-mapped load and the served path change nothing (the formula itself: tests/test_lexical.py)."""
    ref = BM25("en").index(corpus.full_texts())
    idx, sc = ref.search(queries, 10)
    for hits, rows, scores in zip(flat.search_bm25(queries, 10), idx, sc, strict=True):
        want = [(corpus.ids[r], s) for r, s in zip(rows, scores, strict=True) if s > 0]
        assert [h.id for h in hits] == [d for d, _ in want]
        assert [h.score for h in hits] == pytest.approx([s for _, s in want], rel=1e-5)
        assert all(h.dense_score is None for h in hits)


def test_hybrid_is_rrf_of_both_lists_with_true_cosines(flat: SearchIndex, encoder, corpus, doc_vectors, queries):
    qv = encoder.encode(queries, tower="query")
    refs = ref_scores(qv, doc_vectors, corpus)
    dense = flat.search(qv, 100)
    lexical = flat.search_bm25(queries, 100)
    settings = {"method": "rrf", "k": 10, "depth": 100}
    for q in range(len(queries)):
        hits = flat.search_hybrid(queries[q : q + 1], qv[q : q + 1], 10, fusion=settings)[0]
        want = rrf([[h.id for h in dense[q]], [h.id for h in lexical[q]]], k=10)[:10]
        assert [h.id for h in hits] == [d for d, _ in want]
        assert [h.score for h in hits] == pytest.approx([s for _, s in want])
        for h in hits:  # also for documents only BM25 returned
            assert h.dense_score == pytest.approx(refs[q][h.id], abs=1e-5)
    weighted = flat.search_hybrid(queries, qv, 10, fusion={"method": "weighted", "weight": 0.5})
    for hits, ref in zip(weighted, refs, strict=True):
        assert all(0 <= h.score <= 1 and h.dense_score == pytest.approx(ref[h.id], abs=1e-5) for h in hits)
    with pytest.raises(ValueError, match="fusion"):
        flat.search_hybrid(queries[:1], qv[:1], 10, fusion={"method": "max"})


def test_fuse_on_a_hand_checked_example():
    c = Candidates(dense=[1, 2, 3], lexical=[3, 4], bm25={3: 4.0, 4: 2.0}, cos={1: 0.9, 2: 0.5, 3: 0.1, 4: 0.3})
    # RRF k=1: 1 → 1/2, 2 → 1/3, 3 → 1/4 + 1/2, 4 → 1/3 (after 2: first appearance breaks the tie)
    assert fuse(c, {"method": "rrf", "k": 1}) == [(3, 0.75), (1, 0.5), (2, pytest.approx(1 / 3)), (4, pytest.approx(1 / 3))]
    # Weighted 0.5: cosine min-max → 1: 1, 2: .5, 3: 0, 4: .25; BM25 / max → 3: 1, 4: .5
    got = fuse(c, {"method": "weighted", "weight": 0.5})
    assert [r for r, _ in got] == [1, 3, 4, 2]
    assert [s for _, s in got] == pytest.approx([0.5, 0.5, 0.375, 0.25])


def test_fusion_is_chosen_on_dev_and_read_by_the_index(flat: SearchIndex, tiny_model_dir, tiny_beir, tmp_path):
    f = flat.fusion
    assert f["chosen_on"] == "dev" and f["dev_queries"] == len(load_beir(tiny_beir).split("dev"))
    best = max(t["ndcg@10"] for t in f["grid"])
    assert f["dev_ndcg@10"] == best
    assert {"method": f["method"], **({"k": f["k"]} if f["method"] == "rrf" else {"weight": f["weight"]})} in [
        {k: v for k, v in t.items() if k != "ndcg@10"} for t in f["grid"] if t["ndcg@10"] == best]
    # Without dev data: the default, RRF k=10.
    m = build_index(Encoder.load(tiny_model_dir), tiny_beir, tmp_path / "nodev", show_progress=False)
    assert m["fusion"] == DEFAULT_FUSION
    with SearchIndex.load(tmp_path / "nodev") as idx:
        assert idx.fusion == {"method": "rrf", "k": 10, "depth": 100, "chosen_on": "default"}


# ---- documents, threads --------------------------------------------------------------------------


def test_documents_by_id(flat: SearchIndex, corpus):
    got = flat.documents(["d5", "nope", "d0"])
    assert got[1] is None
    assert (got[0].id, got[0].title, got[0].text, got[0].metadata) == ("d5", corpus.titles[5], corpus.texts[5], corpus.metadata[5])
    assert got[2].id == "d0" and got[2].dense_score is None
    assert flat.documents([]) == []


def test_concurrent_searches_agree_with_serial(flat: SearchIndex, encoder, queries):
    qv = encoder.encode(queries, tower="query")

    def job(i: int):
        q = i % len(queries)
        return (
            [h.id for h in flat.search(qv[q : q + 1], 5, filter={"aspect": "causes"} if i % 2 else None)[0]],
            [h.id for h in flat.search_hybrid(queries[q : q + 1], qv[q : q + 1], 5)[0]],
            flat.documents([f"d{i}"])[0].id,
        )

    serial = [job(i) for i in range(40)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(job, range(40))) == serial


# ---- corpus edge cases ---------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_empty_corpus_is_refused(tiny_model_dir, tmp_path):
    empty = write_jsonl(tmp_path / "corpus.jsonl", [])
    with pytest.raises(DataError, match="no documents to index"):
        build_index(Encoder.load(tiny_model_dir), empty, tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.jsonl"]  # no temporary folder left behind


def test_duplicate_ids_are_refused_or_deduplicated(tiny_model_dir, tmp_path, encoder):
    rows = [{"_id": "a", "title": "A", "text": "first a", "src": 1}, {"_id": "b", "text": "only b"},
            {"_id": "a", "title": "A", "text": "second a", "src": 2}]
    path = write_jsonl(tmp_path / "dups.jsonl", rows)
    with pytest.raises(DataError, match=r"dups\.jsonl: duplicate document id 'a' \(documents #1 and #3"):
        build_index(Encoder.load(tiny_model_dir), path, tmp_path / "out", show_progress=False)
    m = build_index(Encoder.load(tiny_model_dir), path, tmp_path / "out", show_progress=False, on_duplicate_id="first")
    assert m["documents"] == 2 and m["corpus"]["duplicate_ids_dropped"] == 1
    with SearchIndex.load(tmp_path / "out", encoder) as idx:
        a, b = idx.documents(["a", "b"])
        assert (a.text, a.metadata, b.title) == ("first a", {"src": 1}, "")
        assert len(idx.search(encoder.encode(["a"]), 10)[0]) == 2  # k larger than the index


def test_plain_tsv_corpus(tiny_model_dir, tmp_path, encoder):
    tsv = tmp_path / "docs.tsv"
    tsv.write_text("id\ttext\nx1\tthe signs of kalo disease\nx2\thow to treat serdra\n", encoding="utf-8")
    build_index(Encoder.load(tiny_model_dir), tsv, tmp_path / "out", show_progress=False)
    with SearchIndex.load(tmp_path / "out", encoder) as idx:
        assert [h.id if h else None for h in idx.documents(["x1", "x2"])] == ["x1", "x2"]
        assert idx.search_bm25(["treat serdra"], 5)[0][0].id == "x2"


def test_output_that_is_not_an_index_is_never_replaced(tiny_model_dir, tiny_beir, tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(IndexBuildError, match="is not an index"):
        build_index(Encoder.load(tiny_model_dir), tiny_beir, precious, show_progress=False)
    assert (precious / "thesis.txt").read_text() == "years of work"
    (tmp_path / "file").write_text("x")
    with pytest.raises(IndexBuildError, match="not a directory"):
        build_index(Encoder.load(tiny_model_dir), tiny_beir, tmp_path / "file", show_progress=False)
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    build_index(Encoder.load(tiny_model_dir), tiny_beir, tmp_path / "empty", show_progress=False)
    SearchIndex.load(tmp_path / "empty").close()


# ---- atomicity -----------------------------------------------------------------------------------


def snapshot(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): sha256_file(p) for p in d.rglob("*") if p.is_file()}


def test_interrupted_build_leaves_the_old_index(flat_dir, tiny_model_dir, tiny_beir, tmp_path, encoder):
    target = tmp_path / "idx"
    shutil.copytree(flat_dir, target)
    before = snapshot(target)

    def interrupt(msg: str) -> None:
        if "BM25" in msg:  # after the store, the vectors and the FAISS index were written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(Encoder.load(tiny_model_dir), tiny_beir, target, index_type="hnsw", show_progress=False, log=interrupt)
    assert snapshot(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # the temporary folder was removed
    SearchIndex.load(target, encoder, verify_hashes=True).close()


def test_killed_build_leaves_the_old_index(flat_dir, tiny_model_dir, tmp_path, encoder):
    """kill -9 in the middle of a build (no cleanup can run): the old index stays whole."""
    big = make_beir(tmp_path / "big", n_entities=600)  # 1,800 documents: the build takes a while
    target = tmp_path / "idx"
    shutil.copytree(flat_dir, target)
    before = snapshot(target)
    kill_build_midway(tiny_model_dir, big, target)
    assert list(tmp_path.glob(".idx.tmp-*")), "killed before or after the build, not in the middle"
    assert snapshot(target) == before
    with SearchIndex.load(target, encoder, verify_hashes=True) as idx:
        assert idx.size == 180


# ---- refusing a wrong model, damaged files -------------------------------------------------------


def test_another_model_is_refused(flat_dir, tiny_model_dir, tmp_path):
    lm = load_model(tiny_model_dir)
    save_model(LSTMDSSM(lm.config), lm.vocab, tmp_path / "other")  # same shape, other (random) weights
    with pytest.raises(IndexMismatchError, match="fingerprint"):
        SearchIndex.load(flat_dir, Encoder.load(tmp_path / "other"))
    cfg = ModelConfig(**{**lm.config.__dict__, "out_dim": lm.config.out_dim * 2})
    save_model(LSTMDSSM(cfg), lm.vocab, tmp_path / "wide")
    with pytest.raises(IndexMismatchError, match="32-dimensional"):
        SearchIndex.load(flat_dir, Encoder.load(tmp_path / "wide"))
    assert issubclass(IndexMismatchError, IndexLoadError)
    SearchIndex.load(flat_dir).close()  # without a model nothing is compared


FILES = ["docs.sqlite", "dense.faiss", "vectors.npy", "bm25/vocab.index.json", "bm25/data.csc.index.npy"]


@pytest.mark.parametrize("name", FILES)
def test_missing_truncated_or_corrupted_file_is_named(name, flat_dir, tmp_path, encoder):
    d = tmp_path / "idx"
    shutil.copytree(flat_dir, d)
    f = d / name
    data = f.read_bytes()

    f.unlink()
    with pytest.raises(IndexLoadError, match=f"{name}: missing"):
        SearchIndex.load(d, encoder)

    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexLoadError, match=f"{name}: .*truncated"):
        SearchIndex.load(d, encoder)

    bad = bytearray(data)
    mid = len(bad) // 2
    bad[mid : mid + 8] = bytes(b ^ 0xFF for b in bad[mid : mid + 8])
    f.write_bytes(bytes(bad))
    with pytest.raises(IndexLoadError, match=f"{name}: sha256 does not match"):
        SearchIndex.load(d, encoder, verify_hashes=True)


def test_bad_manifest_or_directory_is_named(flat_dir, tmp_path):
    with pytest.raises(IndexLoadError, match="index directory not found"):
        SearchIndex.load(tmp_path / "nope")
    d = tmp_path / "idx"
    shutil.copytree(flat_dir, d)
    m = d / "manifest.json"
    text = m.read_text()
    m.write_text(text[:100])
    with pytest.raises(IndexLoadError, match=r"manifest\.json: not valid JSON"):
        SearchIndex.load(d)
    m.write_text(json.dumps({**json.loads(text), "format_version": 99}))
    with pytest.raises(IndexLoadError, match="format version 99"):
        SearchIndex.load(d)
    m.write_text(json.dumps({**json.loads(text), "fusion": {"method": "max"}}))
    with pytest.raises(IndexLoadError, match="fusion"):
        SearchIndex.load(d)
    m.unlink()
    with pytest.raises(IndexLoadError, match=r"manifest\.json: missing"):
        SearchIndex.load(d)


def test_unreadable_faiss_file_of_the_right_size_is_named(flat_dir, tmp_path):
    """Without hash checks, a FAISS file garbled in its header still fails with the file's name."""
    d = tmp_path / "idx"
    shutil.copytree(flat_dir, d)
    f = d / "dense.faiss"
    f.write_bytes(b"XXXX" + f.read_bytes()[4:])
    with pytest.raises(IndexLoadError, match="dense.faiss: cannot read"):
        SearchIndex.load(d)


# ---- command line --------------------------------------------------------------------------------


def cli(main, argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: main(argv))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_build_and_evaluate_with_index(tiny_model_dir, tiny_beir, tmp_path, capsys):
    from cli.build_index import main as build_main
    from cli.evaluate import main as eval_main

    code, out, _ = cli(build_main, ["--model", str(tiny_model_dir), "--corpus", str(tiny_beir), "--out",
                                    str(tmp_path / "idx"), "--quiet"], capsys)
    assert code == 0 and "documents: 180" in out and "hybrid fusion: " in out and "dev NDCG@10" in out
    base = ["--model", str(tiny_model_dir), "--data", str(tiny_beir), "--systems", "lstm-dssm,bm25,hybrid"]
    assert cli(eval_main, [*base, "--json", str(tmp_path / "a.json")], capsys)[0] == 0
    assert cli(eval_main, [*base, "--index", str(tmp_path / "idx"), "--json", str(tmp_path / "b.json"),
                           "--trec-run", str(tmp_path / "run")], capsys)[0] == 0
    a = json.loads((tmp_path / "a.json").read_text())["results"]
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["index"] == str(tmp_path / "idx")
    for metric in ("ndcg@10", "mrr@10", "recall@10", "recall@100"):  # flat index = exact search
        assert b["results"]["lstm-dssm"][metric] == pytest.approx(a["lstm-dssm"][metric], abs=1e-6)
    assert b["results"]["hybrid"]["fusion"]["chosen_on"] == "dev"
    lines = (tmp_path / "run.hybrid.trec").read_text().splitlines()
    assert lines and lines[0].split()[1] == "Q0" and lines[0].split()[3] == "1"


def test_cli_errors_are_one_line(tiny_model_dir, tiny_beir, flat_dir, tmp_path, capsys):
    from cli.build_index import main as build_main
    from cli.evaluate import main as eval_main

    base = ["--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--quiet"]
    for argv, expect in [
        (["--corpus", str(tmp_path / "missing.jsonl")], "missing.jsonl"),
        (["--corpus", str(tiny_beir), "--index-type", "NoSuchIndex"], "NoSuchIndex"),
        (["--corpus", str(tiny_beir), "--index-type", "hnsw", "--param", "M=many"], "M='many'"),
        (["--corpus", str(tiny_beir), "--dev-data", str(tmp_path)], "dev.tsv"),
    ]:
        code, _, err = cli(build_main, base + argv, capsys)
        assert code == 2 and err.startswith("error: ") and expect in err and "Traceback" not in err
    lm = load_model(tiny_model_dir)
    save_model(LSTMDSSM(lm.config), lm.vocab, tmp_path / "other")
    code, _, err = cli(eval_main, ["--model", str(tmp_path / "other"), "--data", str(tiny_beir), "--index",
                                   str(flat_dir)], capsys)
    assert code == 2 and "fingerprint" in err
    for bad in ("0", "-5", "nan"):
        code, _, err = cli(eval_main, ["--model", str(tiny_model_dir), "--data", str(tiny_beir), "--index",
                                       str(flat_dir), "--systems", "hybrid", "--rrf-k", bad], capsys)
        assert code == 2 and "--rrf-k must be a positive number" in err and "Traceback" not in err


# ---- real data -----------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_round_trip_on_a_real_slice(tiny_model_dir, tmp_path, encoder):
    """medquad's first 300 documents, as they are (titles, long answers, odd characters)."""
    src = shared_dataset("medquad")
    lines = (src / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:300]
    docs = [json.loads(x) for x in lines]
    corpus_file = tmp_path / "corpus.jsonl"
    corpus_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_index(Encoder.load(tiny_model_dir), corpus_file, tmp_path / "idx", show_progress=False)
    corpus = load_corpus(corpus_file)
    doc_vectors = encoder.encode(corpus.full_texts(), tower="document")
    queries = ["What are the symptoms of diabetes ?", "How to diagnose glaucoma ?", "What causes asthma ?"]
    qv = encoder.encode(queries, tower="query")
    with SearchIndex.load(tmp_path / "idx", encoder, verify_hashes=True) as idx:
        for hits, ref in zip(idx.search(qv, 10), ref_scores(qv, doc_vectors, corpus), strict=True):
            check_topk(hits, ref, 10)
        got = idx.documents([d["_id"] for d in docs])
        assert [(h.id, h.title, h.text) for h in got] == [(d["_id"], d.get("title") or "", d["text"]) for d in docs]


def test_loaded_dense_index_scores_exactly_and_takes_adds(tmp_path):
    """A loaded (read-only memory-mapped) FAISS index: scores are exact cosines for every type, a
    pre-transform (PCA) included, and an add copies the index instead of writing into the file's map
    (FAISS aborts the process on that; run in a child process so a regression fails, not crashes)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import faiss, numpy as np
        from pathlib import Path
        from index.dense import DenseIndex, FAISS_FILE, VECTORS_FILE
        rng = np.random.default_rng(0)
        v = rng.standard_normal((300, 16)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        for i, factory in enumerate(["Flat", "SQfp16", "PCA8,Flat", "HNSW8", "IVF4,Flat"]):
            d = Path({str(tmp_path)!r}) / str(i)
            d.mkdir()
            idx = faiss.index_factory(16, factory, faiss.METRIC_INNER_PRODUCT)
            idx.train(v)
            idx.add(v)
            faiss.write_index(idx, str(d / FAISS_FILE))
            np.save(d / VECTORS_FILE, v)
            di = DenseIndex.load(d, 16, 300, {{}})
            (rows, scores), = di.search(v[7:8], 5)
            assert 7 in rows.tolist(), (factory, rows)
            exact = v[rows] @ v[7]
            assert np.allclose(scores, exact, atol=1e-5), (factory, scores, exact)
            new = di.add(v[:3] * -1)
            assert new.tolist() == [300, 301, 302] and di.count == 303
            (rows, scores), = di.search(-v[1:2], 1)
            assert scores[0] > 0.999, (factory, rows, scores)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
