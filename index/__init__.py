"""Offline index of a corpus for LSTM-DSSM search: FAISS (dense), bm25s (lexical), SQLite (documents).

    manifest = build_index(model_dir, corpus_path, out_dir, index_type="flat")
    idx = SearchIndex.load(out_dir, encoder)          # refuses an index of another model
    hits = idx.search(encoder.encode(["query"]), k=10)
"""

from .build import build_index
from .errors import IndexBuildError, IndexLoadError, IndexMismatchError
from .search import Hit, SearchIndex

__all__ = ["Hit", "IndexBuildError", "IndexLoadError", "IndexMismatchError", "SearchIndex", "build_index"]
