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
    enc_b = Encoder.load(tmp_path / "m")
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


def test_numpy_single_query_tower_equals_torch(tmp_path):
    """models/fast.py: the lone-text path gives the torch tower's vector to 1e-5, for every pooling,
    with and without a projection, for empty and long texts."""
    import numpy as np
    import torch

    from models.config import ModelConfig
    from models.encoder import Encoder
    from models.fast import NumpyTower
    from models.featurizer import Vocab
    from models.tower import LSTMDSSM, Packed

    texts = ["", "fever", "what are the symptoms of glaucoma in older adults", "感冒了怎么办 " * 5, "x " * 40]
    vocab = Vocab.build(texts * 3, size=200, num_buckets=50, lang="en", min_count=1)
    for pooling in ("last", "max", "mean"):
        for out_dim in (0, 8):
            torch.manual_seed(0)
            cfg = ModelConfig(vocab_size=len(vocab.ngrams), num_buckets=50, embed_dim=16, hidden_dim=12,
                              out_dim=out_dim, pooling=pooling)
            model = LSTMDSSM(cfg).eval()
            fast = NumpyTower(model.query)
            enc = Encoder(model, vocab)
            for t in texts:
                f = vocab.featurize([t], cfg.query_max_words)
                with torch.no_grad():
                    ref = model.query(Packed.from_lists(f)).numpy()[0]
                assert np.abs(fast.encode(f[0]) - ref).max() < 1e-5, (pooling, out_dim, t)
                assert np.abs(enc.encode([t])[0] - ref).max() < 1e-5  # the Encoder takes the fast path
                assert np.abs(enc.encode([t, "fever"])[0] - ref).max() < 1e-5  # and torch for batches
