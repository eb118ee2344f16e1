"""The towers for inference through ONNX Runtime: the same network as ``tower.py`` / ``cell.py``, with the
recurrence in one fused C++ kernel instead of torch's per-operation dispatch.

ONNX's ``LSTM`` operator has exactly the peepholes of Palangi's cell — the input and forget gates see
c(t-1), the output gate sees c(t) (``P = [P_i, P_o, P_f]`` in the ONNX spec) — so the peephole LSTM
maps onto it weight for weight; only the gate order differs (torch i, f, g, o; ONNX i, o, f, c). With
``sequence_lens`` its final state ``Y_h`` is the state at each text's true last word, as in the torch
tower. Measured on this project's 2-core CPU (medquad queries, 8 words median, H = E = 256, 1 thread):
one query 0.20 ms here vs 1.29 ms in torch (and 0.47 ms in a NumPy loop); for batches of 64 texts and
more torch is as fast or faster (``models/encoder.py`` picks per call).

What stays in NumPy, around the graph: the embedding bag (a word = the sum of its n-gram rows: one
gather and one ``reduceat``, the table is not copied), the pooling for ``max``/``mean`` models, the
projection and the L2 normalisation. Equal to the torch tower to float32 rounding (a test checks 1e-5).

Files: ``query.onnx`` (and ``doc.onnx`` when the towers are not shared) beside the safetensors weights,
derived from them, with ``onnx.json`` recording the model fingerprint and each file's sha256. They are
not part of the model's fingerprint (``models/io.py``), so index fingerprints are unchanged by them; a
missing, stale or damaged file is rebuilt on load, and a read-only folder keeps the graph in memory.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from common.fs import atomic_write, sha256_file

from .tower import LSTMDSSM, Tower

log = logging.getLogger("models.onnx")

OPSET = 17
GRAPH_VERSION = 1  # bump when the graph changes: files of an older version are rebuilt on load
STAMP_FILE = "onnx.json"
STAMP_FORMAT = "lstm-dssm-onnx"
# Words whose vectors a tower remembers (~6 MB at E = 256; a tower's weights never change once loaded),
# and the batches that use them: up to this many words (a request, a micro-batch, a small /embed). Larger
# batches (an index build's documents, mostly words seen once) sum their rows in one reduceat instead.
WORD_VECTOR_CACHE = 4096
CACHED_WORDS_MAX = 512
CACHED_WORD_NGRAMS = 32  # a word of more n-grams (a 31+ letter word) is summed each time: bounds an entry


def tower_files(model: LSTMDSSM) -> dict[str, str]:
    """Tower name → ONNX file name; one file when the towers are shared."""
    return {"query": "query.onnx"} if model.cfg.shared_towers else {"query": "query.onnx", "doc": "doc.onnx"}


def _onnx_gate_order(w: np.ndarray) -> np.ndarray:
    """Rows of (4H, ...) stacked i, f, g, o (torch, ``cell.py``) → i, o, f, c (ONNX)."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def tower_graph(tower: Tower) -> bytes:
    """The tower's peephole LSTM as a serialized ONNX model.

    Inputs X (T, N, E) float32 word vectors (zero past a text's end), L (N,) int32 words per text (≥ 1).
    Outputs Y_h (1, N, H): the state at each text's last word; Y (T, 1, N, H): every step's state."""
    from onnx import TensorProto, checker, helper, numpy_helper

    cell = tower.lstm.cell
    H, E = cell.hidden_size, cell.input_size
    w_ih = cell.weight_ih.detach().numpy()  # (4H, E)
    w_hh = cell.weight_hh.detach().numpy()  # (4H, H)
    bias = cell.bias.detach().numpy()  # (4H,): ONNX adds W_b + R_b, so R_b is zero
    peep = np.concatenate([cell.peep_i.detach().numpy(), cell.peep_o.detach().numpy(), cell.peep_f.detach().numpy()])
    weights = {
        "W": _onnx_gate_order(w_ih)[None],  # (1, 4H, E): one direction
        "R": _onnx_gate_order(w_hh)[None],  # (1, 4H, H)
        "B": np.concatenate([_onnx_gate_order(bias), np.zeros(4 * H, np.float32)])[None],  # (1, 8H)
        "P": peep[None],  # (1, 3H)
    }
    lstm = helper.make_node("LSTM", ["X", "W", "R", "B", "L", "", "", "P"], ["Y", "Y_h", "Y_c"], hidden_size=H)
    graph = helper.make_graph(
        [lstm], "lstm_dssm_tower",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", E]),
         helper.make_tensor_value_info("L", TensorProto.INT32, ["N"])],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "N", H]),
         helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", 1, "N", H])],
        [numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), name) for name, a in weights.items()],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lstm-dssm")
    m.ir_version = 8  # readable by every onnxruntime since 1.10
    checker.check_model(m)
    return bytes(m.SerializeToString())


def _sum_rows(emb: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """(E,) one word's vector: the sum of its n-gram rows of ``emb`` (EmbeddingBag's sum; zero for no
    n-grams). Read-only: the cache hands the same array to every caller."""
    v = emb[list(ids)].sum(axis=0) if len(ids) else np.zeros(emb.shape[1], np.float32)
    v.flags.writeable = False
    return v


class OnnxTower:
    """Featurized texts (text → words → n-gram ids) → their unit vectors (N, D), like ``Tower.forward``."""

    def __init__(self, tower: Tower, graph: bytes | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads  # the service's compute budget (DSSM_TORCH_THREADS)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # No spinning after a run: with 2 threads (an index build) spinning pool threads took the cores
        # that FAISS and other processes needed, as FAISS's OpenMP threads did (app/main.py).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's concern
        src = str(graph) if isinstance(graph, Path) else graph
        self.session = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        self.pooling = tower.cfg.pooling
        self.H = tower.lstm.cell.hidden_size
        self.emb = tower.embed.weight.detach().numpy()  # (V, E), a view of the torch table (~30 MB): no copy
        # Word (its n-gram ids) → its vector, least recently used out: the words of queries repeat. A
        # closure over the table, not a bound method: a cache holding its own tower would be a reference
        # cycle that the service's gc.freeze keeps alive across reloads (models/featurizer.py, the same).
        emb = self.emb
        self._word_vector = functools.lru_cache(maxsize=WORD_VECTOR_CACHE)(lambda ids: _sum_rows(emb, ids))
        proj = tower.proj  # nn.Linear(H, D), or nn.Identity when out_dim = 0
        self.proj_w = proj.weight.detach().numpy().T.copy() if isinstance(proj, nn.Linear) else None  # (H, D)
        self.proj_b = proj.bias.detach().numpy().copy() if isinstance(proj, nn.Linear) and proj.bias is not None else None

    def word_vectors(self, grams: Sequence[Sequence[int]]) -> np.ndarray:
        """(W, E) the summed n-gram rows of each word (its n-gram ids)."""
        W, E = len(grams), self.emb.shape[1]
        if W <= CACHED_WORDS_MAX:
            # A request or a micro-batch: its words mostly in the cache, one stack (measured on medquad
            # queries: ~10 against ~55 µs a query; numpy's reduceat alone took ~30 of those).
            vec, emb = self._word_vector, self.emb
            return (np.stack([vec(tuple(g)) if len(g) <= CACHED_WORD_NGRAMS else _sum_rows(emb, g) for g in grams])
                    if W else np.zeros((0, E), np.float32))
        glen = np.fromiter((len(g) for g in grams), dtype=np.int64, count=W)
        words = np.zeros((W, E), dtype=np.float32)
        nonempty = glen > 0  # a word without n-grams is the zero vector, as in EmbeddingBag
        if nonempty.any():
            ids = np.fromiter(chain.from_iterable(grams), dtype=np.int64, count=int(glen.sum()))
            starts = np.cumsum(glen) - glen
            # Empty words take no ids, so consecutive non-empty starts bound exactly one word's ids.
            words[nonempty] = np.add.reduceat(self.emb[ids], starts[nonempty], axis=0)
        return words

    def word_inputs(self, texts: Sequence[Sequence[Sequence[int]]]) -> tuple[np.ndarray, np.ndarray]:
        """X (T, N, E) summed n-gram embeddings per word slot, zero past each text; L (N,) words per text."""
        N, E = len(texts), self.emb.shape[1]
        lengths = np.fromiter((len(w) for w in texts), dtype=np.int32, count=N)
        grams = [g for words in texts for g in words]  # all W words, text by text
        words = self.word_vectors(grams)  # (W, E)
        if N == 1 and len(grams):
            return words[:, None, :], lengths  # a lone query (a search request): its words are x, (T, 1, E)
        T = max(int(lengths.max()), 1) if N else 0  # ≥ 1: a text of no words is read as one empty word
        x = np.zeros((T, N, E), dtype=np.float32)
        step = np.concatenate([np.arange(n) for n in lengths]) if len(grams) else np.zeros(0, np.int64)
        x[step, np.repeat(np.arange(N), lengths)] = words
        return x, lengths

    def encode(self, texts: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
        x, lengths = self.word_inputs(texts)
        h = np.zeros((len(texts), self.H), dtype=np.float32)
        if len(texts):
            # A text of no words is read as one empty word (its zero slot in x), as the torch tower does.
            lengths = np.maximum(lengths, 1)
            (out,) = self.session.run(["Y_h" if self.pooling == "last" else "Y"], {"X": x, "L": lengths})
            if self.pooling == "last":
                h = out[0]  # Y_h (1, N, H)
            else:
                seq = out[:, 0]  # Y (T, 1, N, H) → (T, N, H)
                mask = (np.arange(seq.shape[0])[:, None] < lengths[None, :])[:, :, None]  # (T, N, 1)
                if self.pooling == "max":
                    h = np.where(mask, seq, -np.inf).max(axis=0)
                else:
                    h = (seq * mask).sum(axis=0) / lengths[:, None]
        y_out = h if self.proj_w is None else h @ self.proj_w + (self.proj_b if self.proj_b is not None else 0.0)
        norm = np.maximum(np.linalg.norm(y_out, axis=1, keepdims=True), 1e-12)  # F.normalize's eps
        return (y_out / norm).astype(np.float32, copy=False)


def _stamp(model_fingerprint: str, files: dict[str, str]) -> dict[str, Any]:
    return {"format": STAMP_FORMAT, "graph_version": GRAPH_VERSION, "opset": OPSET,
            "model_fingerprint": model_fingerprint, "files": files}


def write_onnx_files(model: LSTMDSSM, directory: Path, model_fingerprint: str) -> dict[str, bytes]:
    """Write the towers' ONNX files and their stamp into ``directory`` (each atomically); returns the graphs."""
    graphs = {name: tower_graph(model.tower(name)) for name in tower_files(model)}
    shas = {}
    for name, fname in tower_files(model).items():
        atomic_write(directory / fname, graphs[name])
        shas[fname] = sha256_file(directory / fname)
    atomic_write(directory / STAMP_FILE, (json.dumps(_stamp(model_fingerprint, shas), indent=2) + "\n").encode())
    return graphs


def _current_files(model: LSTMDSSM, directory: Path, model_fingerprint: str) -> dict[str, Path] | None:
    """The folder's ONNX files when they were derived from these exact weights and are intact, else None."""
    try:
        stamp = json.loads((directory / STAMP_FILE).read_text(encoding="utf-8"))
        names = tower_files(model)
        if stamp != _stamp(model_fingerprint, stamp.get("files", {})) or set(stamp["files"]) != set(names.values()):
            return None
        if any(sha256_file(directory / f) != sha for f, sha in stamp["files"].items()):
            return None
        return {name: directory / fname for name, fname in names.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def load_onnx_towers(model: LSTMDSSM, directory: Path | None, model_fingerprint: str,
                     threads: int = 1) -> dict[str, OnnxTower]:
    """Tower name ("query", "doc") → its ONNX Runtime tower, from the folder's files when current;
    otherwise derived from the loaded weights and written back (in memory only when the folder is
    read-only or there is none)."""
    sources: dict[str, bytes | Path] | None = None
    if directory is not None:
        current = _current_files(model, directory, model_fingerprint)
        if current is not None:
            sources = dict(current)
        else:
            try:
                sources = dict(write_onnx_files(model, directory, model_fingerprint))
            except OSError as e:
                log.warning("could not write the ONNX towers into %s (%s); keeping them in memory", directory, e)
    if sources is None:
        sources = {name: tower_graph(model.tower(name)) for name in tower_files(model)}
    towers = {name: OnnxTower(model.tower(name), src, threads) for name, src in sources.items()}
    towers.setdefault("doc", towers["query"])  # shared towers: one graph serves both
    return towers
