"""The live index at the library level (index/live.py): a built index goes live, read-your-writes for
insert/update/delete in every mode, restart replay, compaction (identical flat results), a full disk
(nothing half-applied) and equivalence with a fresh offline build of the final document set.

Real model (the tiny one), real FAISS, real SQLite: nothing is mocked."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from index import SearchIndex, build_index
from index.errors import IndexFullError
from index.live import LiveIndex
from models.data import Corpus
from models.encoder import Encoder

UNIQUE = "zorblaxian"  # a word no document of the tiny corpus holds: BM25 finds only what we wrote


@pytest.fixture
def live_dir(tiny_index_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "live-index"
    shutil.copytree(tiny_index_dir, d)
    return d


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: Path) -> Encoder:
    return Encoder.load(tiny_model_dir)


def ids(hits: list) -> list[str]:
    return [h.id for h in hits]


def doc_vector(enc: Encoder, title: str, text: str) -> np.ndarray:
    return enc.encode([f"{title} {text}" if title else text], tower="document")


def every_mode(idx: LiveIndex, enc: Encoder, text: str, vec: np.ndarray, k: int = 20,
               filter: dict | None = None) -> dict[str, list]:
    return {
        "dense": idx.search(vec, k, filter=filter)[0],
        "bm25": idx.search_bm25([text], k, filter=filter)[0],
        "hybrid": idx.search_hybrid([text], enc.encode([text]), k, filter=filter)[0],
    }


def test_a_built_index_goes_live_with_the_same_dense_results(live_dir: Path, encoder: Encoder) -> None:
    q = encoder.encode(["symptoms of fever", "what causes the disease", "treatment with rest"])
    with SearchIndex.load(live_dir, encoder) as ro:
        before = ro.search(q, 10)
        before_f = ro.search(q, 5, filter={"aspect": "causes"})
    with LiveIndex.open(live_dir, encoder) as idx:
        assert idx.size == 180 and idx.counts()["growing"] == 0 and idx.counts()["last_seq"] == 0
        after = idx.search(q, 10)
        after_f = idx.search(q, 5, filter={"aspect": "causes"})
    for b, a in zip(before + before_f, after + after_f, strict=True):
        assert ids(b) == ids(a)
        assert np.allclose([h.score for h in b], [h.score for h in a], atol=1e-5)
    assert (live_dir / "live.sqlite").is_file()
    with SearchIndex.load(live_dir, encoder, verify_hashes=True):  # the built files were not touched
        pass


def test_read_your_writes_insert_update_delete_in_every_mode(live_dir: Path, encoder: Encoder) -> None:
    with LiveIndex.open(live_dir, encoder) as idx:
        title, text = "Zorblaxian fever", f"The {UNIQUE} fever spreads through the blood and the heart."
        a = idx.upsert([("new-1", title, text, {"aspect": "fresh", "rank": 3})])
        assert a.created == [True] and a.seq == 1
        vec = doc_vector(encoder, title, text)
        modes = every_mode(idx, encoder, f"{UNIQUE} fever", vec)
        for mode, hits in modes.items():
            assert "new-1" in ids(hits), mode
        assert ids(idx.search(vec, 1)[0]) == ["new-1"] and idx.search(vec, 1)[0][0].score > 0.999
        for mode, hits in every_mode(idx, encoder, f"{UNIQUE} fever", vec, filter={"aspect": "fresh"}).items():
            assert ids(hits) == ["new-1"], mode
        assert idx.documents(["new-1"])[0].metadata == {"aspect": "fresh", "rank": 3}

        # Update: the new version everywhere, the old one nowhere (its word, its metadata, its vector).
        text2 = "A quiet replacement text about kidney stones and bone care."
        b = idx.upsert([("new-1", "Replaced", text2, {"aspect": "updated"})])
        assert b.created == [False]
        for mode, hits in every_mode(idx, encoder, f"{UNIQUE} fever kidney", vec, k=180).items():
            assert ids(hits).count("new-1") <= 1, mode
            assert all(h.text == text2 for h in hits if h.id == "new-1"), mode
        assert idx.search_bm25([UNIQUE], 10)[0] == []
        assert idx.search(vec, 5, filter={"aspect": "fresh"})[0] == []
        assert ids(idx.search(doc_vector(encoder, "Replaced", text2), 1, filter={"aspect": "updated"})[0]) == ["new-1"]
        assert idx.documents(["new-1"])[0].title == "Replaced"

        # Update of a document of the built (sealed) index, then delete of it and of the new one.
        old = idx.documents(["d0"])[0]
        assert old is not None
        idx.upsert([("d0", old.title, f"{old.text} {UNIQUE}", old.metadata)])
        assert ids(idx.search_bm25([UNIQUE], 10)[0]) == ["d0"]
        assert ids(idx.search(doc_vector(encoder, old.title, old.text), 180)[0]).count("d0") == 1
        c = idx.delete(["d0", "new-1", "no-such-id"])
        assert c.deleted == 2
        for mode, hits in every_mode(idx, encoder, f"{UNIQUE} {old.title}", doc_vector(encoder, old.title, old.text), k=180).items():
            assert not {"d0", "new-1"} & set(ids(hits)), mode
        assert idx.search(vec, 180, filter={"aspect": old.metadata["aspect"]})[0]
        assert "d0" not in ids(idx.search(doc_vector(encoder, old.title, old.text), 180, filter={"aspect": old.metadata["aspect"]})[0])
        assert idx.documents(["d0", "new-1"]) == [None, None]
        assert idx.size == 179
        counts = idx.counts()
        assert counts["last_seq"] == 5 and counts["deleted_not_compacted"] >= 1


def test_restart_replays_the_log_and_compaction_keeps_flat_results_identical(live_dir: Path, encoder: Encoder) -> None:
    docs = [(f"w{i}", f"Entity {i}", f"{UNIQUE} number {i} affects the liver and the skin", {"aspect": "w"})
            for i in range(30)]
    q = encoder.encode(["liver disease symptoms", "skin treatment", f"{UNIQUE} number"])
    with LiveIndex.open(live_dir, encoder) as idx:
        idx.upsert(docs)
        idx.delete(["d1", "d2", "w3"])
        idx.upsert([("d5", "Changed", "changed text about the eye", {"aspect": "w"})])
        expect = [ids(h) for h in idx.search(q, 50)]
        expect_scores = [[x.score for x in h] for h in idx.search(q, 50)]
        expect_f = [ids(h) for h in idx.search(q, 20, filter={"aspect": "w"})]
        expect_h = [ids(h) for h in idx.search_hybrid(["liver", "skin", UNIQUE], q, 20)]
    with LiveIndex.open(live_dir, encoder) as idx:  # restart: replay of the growing segment
        c = idx.counts()
        assert c["documents"] == 180 + 30 - 3 and c["growing"] == 30 - 1 + 1 and c["last_seq"] == 34
        assert [ids(h) for h in idx.search(q, 50)] == expect
        assert [[x.score for x in h] for h in idx.search(q, 50)] == expect_scores
        report = idx.compact()
        assert report["status"] == "compacted" and report["folded"] == 30 and report["purged"] == 3
        assert idx.counts()["growing"] == 0 and idx.counts()["deleted_not_compacted"] == 0
        assert [ids(h) for h in idx.search(q, 50)] == expect  # identical: same vectors, exact scores
        assert [[x.score for x in h] for h in idx.search(q, 50)] == expect_scores
        assert [ids(h) for h in idx.search(q, 20, filter={"aspect": "w"})] == expect_f
        assert [ids(h) for h in idx.search_hybrid(["liver", "skin", UNIQUE], q, 20)] == expect_h
        idx.upsert([("after", "After", f"{UNIQUE} written after the compaction", {})])
        assert idx.compact()["status"] == "compacted"
        assert idx.compact()["status"] == "nothing to compact"
    with LiveIndex.open(live_dir, encoder) as idx:  # the compacted segment is what a restart loads
        assert idx.counts()["documents"] == 208 and idx.counts()["growing"] == 0
        assert "after" in ids(idx.search_bm25([UNIQUE], 50)[0])
        assert len(list((live_dir / "segments").iterdir())) == 1


def test_a_full_disk_refuses_the_write_whole(live_dir: Path, encoder: Encoder) -> None:
    with LiveIndex.open(live_dir, encoder) as idx:
        before = idx.counts()
        idx.limit_pages(0)
        big = [(f"big{i}", "Big", "blood " * 4000 + str(i), {"aspect": "big"}) for i in range(20)]
        with pytest.raises(IndexFullError, match="rolled back"):
            idx.upsert(big)
        assert idx.counts() == before
        assert idx.documents(["big0", "big19"]) == [None, None]
        assert idx.search(encoder.encode(["blood"]), 5, filter={"aspect": "big"})[0] == []
        idx.limit_pages(None)
        assert idx.upsert(big[:2]).created == [True, True]
        assert idx.size == 182


def test_duplicate_ids_in_one_batch_are_refused(live_dir: Path, encoder: Encoder) -> None:
    with LiveIndex.open(live_dir, encoder) as idx:
        with pytest.raises(ValueError, match="'x'"):
            idx.upsert([("x", "", "a", {}), ("x", "", "b", {})])
        assert idx.documents(["x"]) == [None] and idx.last_seq() == 0


def test_results_equal_a_fresh_offline_build_of_the_final_documents(live_dir: Path, encoder: Encoder, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with LiveIndex.open(live_dir, encoder) as idx:
        for i in range(40):
            if rng.random() < 0.3:
                idx.delete([f"d{int(rng.integers(0, 180))}"])
            else:
                idx.upsert([(f"n{i}", f"New {i}", f"new text {i} about the heart and lung {UNIQUE}", {"aspect": "n"})])
        final = idx.all_documents()
        q = encoder.encode(["heart disease", "lung symptoms", "what causes it"])
        live = idx.search(q, 30)
    corpus = Corpus([d[0] for d in final], [d[1] for d in final], [d[2] for d in final], [d[3] for d in final])
    out = tmp_path / "fresh"
    build_index(encoder, corpus, out, show_progress=False, durable=False)
    with SearchIndex.load(out, encoder) as fresh:
        offline = fresh.search(q, 30)
    for a, b in zip(live, offline, strict=True):
        sa = {h.id: h.score for h in a}
        sb = {h.id: h.score for h in b}
        # Same documents and cosines; the order may differ only between scores equal within float error.
        common = set(sa) & set(sb)
        assert len(common) >= 28
        assert all(abs(sa[i] - sb[i]) < 1e-5 for i in common)
        assert np.allclose(sorted(sa.values()), sorted(sb.values()), atol=1e-5)
