import json

import numpy as np
import pytest
import torch

from index.evaluation import evaluate_dense
from models.config import ModelConfig
from models.data import load_beir
from models.encoder import Encoder
from models.featurizer import Vocab
from models.io import ModelDirError, load_model, save_model
from models.tower import LSTMDSSM, Packed


def small_model(shared: bool, pooling: str = "last") -> tuple[LSTMDSSM, Vocab]:
    torch.manual_seed(0)
    vocab = Vocab.build(["the quick brown fox", "jumps over the lazy dog", "感冒灵颗粒"], size=50, num_buckets=13, min_count=1)
    cfg = ModelConfig(vocab_size=len(vocab.ngrams), num_buckets=13, embed_dim=8, hidden_dim=6, out_dim=4,
                      shared_towers=shared, pooling=pooling)
    return LSTMDSSM(cfg).eval(), vocab


@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
def test_text_vector_same_alone_and_in_padded_batch(pooling):
    model, vocab = small_model(shared=False, pooling=pooling)
    texts = ["the fox", "jumps over the lazy dog and the quick brown fox", "感冒", ""]
    with torch.no_grad():
        batch = model.query(Packed.from_lists(vocab.featurize(texts)))
        for i, t in enumerate(texts):
            alone = model.query(Packed.from_lists(vocab.featurize([t])))
            torch.testing.assert_close(batch[i], alone[0], atol=1e-6, rtol=0)


def test_vectors_are_unit_length_and_towers_differ_unless_shared():
    m, v = small_model(shared=False)
    p = Packed.from_lists(v.featurize(["the quick fox"]))
    with torch.no_grad():
        q, d = m.query(p), m.doc(p)
    assert abs(q.norm().item() - 1) < 1e-5
    assert not torch.allclose(q, d)
    s, v = small_model(shared=True)
    assert s.query is s.doc


@pytest.mark.parametrize("shared", [True, False])
def test_save_load_gives_identical_vectors(tmp_path, shared):
    m, v = small_model(shared)
    save_model(m, v, tmp_path / "m")
    enc_a = Encoder(m, v)
    enc_b = Encoder.load(tmp_path / "m", runtime="torch")  # the same weights bit for bit (ONNX: 1e-5, below)
    texts = ["the quick brown fox", "感冒灵 999", "🍕"]
    for tower in ("query", "document"):
        np.testing.assert_array_equal(enc_a.encode(texts, tower), enc_b.encode(texts, tower))
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["format"] == "lstm-dssm-model" and cfg["shared_towers"] is shared


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(ModelDirError, match="not found"):
        load_model(tmp_path / "nope")
    m, v = small_model(True)
    save_model(m, v, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="model.safetensors"):
        load_model(tmp_path / "m")


def test_encoder_keeps_input_order_across_length_sorting():
    m, v = small_model(True)
    enc = Encoder(m, v)
    texts = ["a b c d e f", "fox", "the lazy dog", "fox"]
    out = enc.encode(texts, batch_size=2)
    np.testing.assert_allclose(out[1], out[3], atol=1e-6)
    np.testing.assert_allclose(out[2], enc.encode(["the lazy dog"])[0], atol=1e-6)


def test_trained_tiny_model_retrieves_unseen_entities(tiny_model_dir, tiny_beir):
    """The fixture's model, trained on train entities only, finds test entities far above chance."""
    data = load_beir(tiny_beir)
    enc = Encoder.load(tiny_model_dir)
    m = evaluate_dense(enc, data, data.split("test")).metrics
    chance = 10 / len(data.corpus)
    assert m["recall@10"] > 5 * chance, m
    metrics = json.loads((tiny_model_dir / "metrics.json").read_text())
    losses = [e["loss"] for e in metrics["epochs"] if e["loss"] is not None]
    assert losses[-1] < losses[0]
    assert (tiny_model_dir / "training_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_onnx_towers_equal_torch(tmp_path):
    """models/onnx_tower.py: ONNX Runtime gives the torch tower's vectors to 1e-5 for every pooling,
    with and without a projection, shared or separate towers, alone and in padded batches, for empty
    texts, words without n-grams and texts longer than the word limit."""
    import numpy as np
    import torch

    from models.config import ModelConfig
    from models.encoder import Encoder
    from models.featurizer import Vocab
    from models.io import load_model, save_model
    from models.tower import LSTMDSSM, Packed

    texts = ["", "fever", "what are the symptoms of glaucoma in older adults", "感冒了怎么办 " * 5, "x " * 40, "- ."]
    vocab = Vocab.build(texts * 3, size=200, num_buckets=50, lang="en", min_count=1)
    for pooling in ("last", "max", "mean"):
        for out_dim, shared in ((0, True), (8, True), (8, False)):
            torch.manual_seed(0)
            cfg = ModelConfig(vocab_size=len(vocab.ngrams), num_buckets=50, embed_dim=16, hidden_dim=12,
                              out_dim=out_dim, pooling=pooling, shared_towers=shared, query_max_words=8)
            model = LSTMDSSM(cfg).eval()
            d = tmp_path / f"{pooling}-{out_dim}-{shared}"
            save_model(model, vocab, d)
            enc = Encoder.load(d)
            assert enc.runtime == "onnx" and set(enc.onnx) == {"query", "doc"}
            assert (enc.onnx["query"] is enc.onnx["doc"]) == shared
            torch_enc = Encoder.load(d, runtime="torch")
            for tower in ("query", "doc"):
                net = load_model(d).model.tower(tower)
                feats = vocab.featurize(texts, enc.max_words(tower))
                with torch.no_grad():
                    ref = net(Packed.from_lists(feats)).numpy()
                # every text a unit vector, "" and "- ." (no words) too, also without a projection's bias
                np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-5, err_msg=f"{pooling} {out_dim}")
                for i, t in enumerate(texts):
                    assert np.abs(enc.encode([t], tower=tower)[0] - ref[i]).max() < 1e-5, (pooling, out_dim, tower, t)
                assert np.abs(enc.encode(texts, tower=tower) - ref).max() < 1e-5  # one padded batch
                assert np.abs(enc.encode(texts, tower=tower, batch_size=2) - ref).max() < 1e-5  # sorted batches
                assert np.abs(torch_enc.encode(texts, tower=tower) - ref).max() < 1e-5


def test_onnx_word_vectors_cached_and_summed_alike(tmp_path, monkeypatch):
    """models/onnx_tower.py: a small batch's words come from the tower's cache, a large one's from one
    reduceat over the table; both are each word's sum of n-gram rows (a word of no n-grams: zero), and
    texts encoded through the reduceat path (the limit patched to 0) equal torch's vectors."""
    import numpy as np
    import torch

    import models.onnx_tower as onnx_tower
    from models.config import ModelConfig
    from models.encoder import Encoder
    from models.featurizer import Vocab
    from models.io import save_model
    from models.tower import LSTMDSSM, Packed

    texts = [f"patient {i} reports fever and cough after {i % 7} days of rest" for i in range(30)]
    vocab = Vocab.build(texts, size=100, num_buckets=30, min_count=1)
    cfg = ModelConfig(vocab_size=len(vocab.ngrams), num_buckets=30, embed_dim=8, hidden_dim=6, out_dim=0,
                      pooling="max", query_max_words=32)
    torch.manual_seed(3)
    d = tmp_path / "m"
    save_model(LSTMDSSM(cfg).eval(), vocab, d)
    enc = Encoder.load(d)
    tower = enc.onnx["query"]
    grams = [g for t in vocab.featurize(texts) for g in t] + [[]]  # with one word of no n-grams
    emb = tower.emb
    expect = np.stack([emb[g].sum(axis=0) if g else np.zeros(emb.shape[1], np.float32) for g in grams])
    cached = tower.word_vectors(grams[:20])  # small: through the cache
    assert tower._word_vector.cache_info().currsize > 0
    np.testing.assert_allclose(cached, expect[:20], atol=1e-6)
    cached[0] += 1  # the stack is the caller's own: the cache is unchanged
    np.testing.assert_allclose(tower.word_vectors(grams[:20]), expect[:20], atol=1e-6)
    monkeypatch.setattr(onnx_tower, "CACHED_WORDS_MAX", 0)  # every batch takes the reduceat path
    np.testing.assert_allclose(tower.word_vectors(grams), expect, atol=1e-6)
    feats = vocab.featurize(texts)
    with torch.no_grad():
        ref = enc.model.tower("query")(Packed.from_lists(feats)).numpy()
    assert np.abs(enc.encode(texts) - ref).max() < 1e-5
    # Freed by reference counting alone: the cache holds the table, not its tower (gc.freeze in the service).
    import gc
    import weakref

    monkeypatch.setattr(onnx_tower, "CACHED_WORDS_MAX", 512)
    tower.word_vectors(grams[:5])
    gc.disable()
    try:
        ref_tower = weakref.ref(tower)
        enc.onnx.clear()
        del tower
        assert ref_tower() is None
    finally:
        gc.enable()


def test_onnx_files_follow_the_weights(tmp_path, caplog):
    """The ONNX files are written with the model, are not part of its fingerprint, and are rebuilt
    when missing, stale (other weights) or damaged; a read-only folder keeps the graph in memory."""
    import json
    import shutil

    import numpy as np
    import torch

    from models.config import ModelConfig
    from models.encoder import Encoder
    from models.featurizer import Vocab
    from models.io import fingerprint, save_model
    from models.onnx_tower import STAMP_FILE
    from models.tower import LSTMDSSM

    vocab = Vocab.build(["red fox jumps", "blue whale sings"] * 2, size=50, num_buckets=20, min_count=1)
    cfg = ModelConfig(vocab_size=len(vocab.ngrams), num_buckets=20, embed_dim=8, hidden_dim=6, out_dim=4)
    torch.manual_seed(1)
    d = tmp_path / "m"
    save_model(LSTMDSSM(cfg).eval(), vocab, d)
    stamp = json.loads((d / STAMP_FILE).read_text())
    assert (d / "query.onnx").is_file() and not (d / "doc.onnx").exists()
    assert stamp["model_fingerprint"] == fingerprint(d)
    before = fingerprint(d)
    (d / "query.onnx").unlink()  # an existing folder from before the ONNX files: made on load
    v1 = Encoder.load(d).encode(["red fox"])
    assert (d / "query.onnx").is_file() and fingerprint(d) == before

    (d / "query.onnx").write_bytes(b"not onnx")  # damaged: its sha256 no longer matches the stamp
    assert np.allclose(Encoder.load(d).encode(["red fox"]), v1, atol=1e-6)
    assert (d / "query.onnx").read_bytes() != b"not onnx"

    other = tmp_path / "other"  # other weights in the same folder: the old graph is stale
    torch.manual_seed(2)
    save_model(LSTMDSSM(cfg).eval(), vocab, other)
    shutil.copy(other / "model.safetensors", d / "model.safetensors")
    v2 = Encoder.load(d).encode(["red fox"])
    assert np.allclose(v2, Encoder.load(d, runtime="torch").encode(["red fox"]), atol=1e-5)
    assert not np.allclose(v1, v2, atol=1e-3)
    assert json.loads((d / STAMP_FILE).read_text())["model_fingerprint"] == fingerprint(d)

    # A folder the ONNX file cannot be written into (a read-only mount; as root, chmod does not stop a
    # write, so a directory stands where the file would go): the graph is built and kept in memory.
    (d / "query.onnx").unlink()
    (d / "query.onnx").mkdir()
    (d / "query.onnx" / "x").write_text("x")
    v3 = Encoder.load(d).encode(["red fox"])
    assert np.allclose(v3, v2, atol=1e-6) and (d / "query.onnx").is_dir()
    assert "keeping them in memory" in caplog.text


def test_a_model_trained_without_stop_words_skips_them_when_served(tmp_path):
    """The stop-word list travels in vocab.json: a loaded model (ONNX Runtime or torch) reads a query
    with and without its stop words alike, and a config naming an unknown list is refused."""
    from models.stopwords import STOPWORD_LISTS

    texts = ["what are the symptoms of the flu", "is glaucoma inherited", "treatments for a cold"]
    vocab = Vocab.build(texts * 2, size=100, num_buckets=11, min_count=1, stopwords=STOPWORD_LISTS["lucene"])
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(vocab.ngrams), num_buckets=11, embed_dim=8, hidden_dim=6, out_dim=0,
                      pooling="last", stopwords="lucene")
    save_model(LSTMDSSM(cfg).eval(), vocab, tmp_path / "m")
    for runtime in ("onnx", "torch"):
        enc = Encoder.load(tmp_path / "m", runtime=runtime)
        assert enc.runtime == runtime and enc.vocab.stopwords == set(STOPWORD_LISTS["lucene"])
        a, b, c = enc.encode(["What are the symptoms of the flu?", "what symptoms flu", "what symptoms cold"], "query")
        np.testing.assert_allclose(a, b, atol=1e-6)
        assert np.abs(a - c).max() > 1e-3  # a content word still changes the vector
    assert json.loads((tmp_path / "m" / "config.json").read_text())["stopwords"] == "lucene"
    with pytest.raises(ValueError, match="stopwords must be one of none, lucene, nltk, nltk-q"):
        ModelConfig.from_dict({**cfg.to_dict(), "stopwords": "fr"})
    # The CLI's choices (the Literal) and the lists are one set of names.
    from typing import get_args

    from models.config import Stopwords
    assert get_args(Stopwords) == tuple(STOPWORD_LISTS)
    # A folder whose config and vocabulary disagree is refused, not read unlike its training.
    conf = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**conf, "stopwords": "none"}))
    with pytest.raises(ModelDirError, match="stopwords 'none' but vocab.json holds 33 stop words"):
        load_model(tmp_path / "m")
