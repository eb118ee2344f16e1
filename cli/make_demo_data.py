#!/usr/bin/env python
"""Build the demo dataset (a BEIR folder) from the Python standard library's own documentation.

    python scripts/make_demo_data.py --out DIR [--force] [--from-pairs FILE]

Every machine with Python has this corpus, so the demo needs neither ../shared nor a download:

- **pydoc topics** (``pydoc_data.topics``, the language reference that ``help("assert")`` shows): each
  section of a topic is a document titled "topic heading: section heading"; its query is the section's
  heading.
- **docstrings** of public stdlib modules, classes, functions and methods, titled by the qualified name
  (``json.dumps``). The query is the docstring's summary sentence and the document is the *rest* of the
  docstring (with the signature), so a query never just repeats its document's first line. Docstrings too
  short to split are kept as documents without a query: they are searchable distractors.

Queries are split into train/dev/test (~80/10/10) by a hash of the entry's name, so reruns split the same
way. The output is deterministic for a given Python version (modules and names are walked in sorted order).
Written atomically: the folder appears complete or not at all.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import os
import pkgutil
import re
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from cli._run import UsageError, run_cli
from common.fs import atomic_dir, guard_target

# Modules never imported: they open a browser, print, start a GUI, patch the interpreter, or are test
# suites / deprecated shims whose import pulls in third-party code (distutils → setuptools' copy).
DENY_TOP = {
    "antigravity", "this", "tkinter", "turtle", "turtledemo", "idlelib", "test", "lib2to3", "distutils",
    "ensurepip", "pydoc_data", "msilib", "winreg", "winsound", "msvcrt", "_winapi", "nt", "xxlimited",
    "xxlimited_35", "xxsubtype", "sitecustomize", "usercustomize", "site", "__future__", "__hello__",
    "__phello__", "idle", "pip", "venv", "webbrowser", "pty", "tty", "getpass", "readline", "rlcompleter",
    "encodings",  # codec tables: hundreds of near-identical classes that nobody searches for
}
# Names as users write them: os.listdir (C function from posix), os.path.join (posixpath), len (builtins).
MODULE_ALIASES = {"posixpath": "os.path", "posix": "os", "builtins": ""}
# Implementation modules whose objects a public module re-exports under its own name.
OWNER_ALIASES = {"os": {"posix"}}
# Submodule name parts that mark test suites, script entry points or platform-specific back ends.
DENY_PART = {"test", "tests", "idle_test", "__main__", "popen_spawn_win32", "windows_events", "windows_utils"}

SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.*)?$")
MIN_QUERY_WORDS = 3
MIN_REST_WORDS = 5
MAX_DOC_WORDS = 300  # the model reads far fewer; a cap keeps corpus.jsonl and BM25 small
SPLITS = (("train", 800), ("dev", 900), ("test", 1000))  # cumulative per-mille by hash


@dataclass
class Entry:
    """One corpus document and, when the docstring could be split, its query."""

    doc_id: str
    title: str
    text: str
    query: str | None
    kind: str


def _words(s: str) -> int:
    return len(s.split())


def _cap(text: str, n: int = MAX_DOC_WORDS) -> str:
    """At most ``n`` words, keeping the line structure of what is kept (it is what the search page shows)."""
    out, count = [], 0
    for line in text.splitlines():
        w = line.split()
        if count + len(w) > n:
            out.append(" ".join(w[: n - count]) + " …")
            break
        out.append(line)
        count += len(w)
    return "\n".join(out).strip()


def split_of(name: str) -> str:
    """train/dev/test by a fixed hash of the entry name (crc32 is stable across runs and platforms)."""
    h = zlib.crc32(name.encode("utf-8")) % 1000
    return next(s for s, limit in SPLITS if h < limit)


def split_docstring(doc: str) -> tuple[str | None, str, str]:
    """(signature line or None, summary sentence, the rest) of a cleaned docstring."""
    lines = doc.strip().splitlines()
    sig = None
    if lines and SIGNATURE_LINE.match(lines[0].strip()) or re.match(r"^[\w.]+\(", lines[0]) and \
            lines[0].count("(") > lines[0].count(")"):
        # C functions without a text signature spell it on the first line(s): not a summary. A long
        # one wraps, so take lines until its parentheses balance.
        sig_lines = [lines.pop(0).strip()]
        while lines and lines[0].strip() and " ".join(sig_lines).count("(") > " ".join(sig_lines).count(")"):
            sig_lines.append(lines.pop(0).strip())
        sig = " ".join(sig_lines)
    body = "\n".join(lines).strip()
    paras = re.split(r"\n\s*\n", body, maxsplit=1)
    first = " ".join(paras[0].split())
    rest_paras = paras[1] if len(paras) > 1 else ""
    # The summary is the first sentence of the first paragraph; what follows it stays in the document.
    m = re.match(r"(.+?[.!?])\s+(?=[A-Z(`'\"])", first)
    if (not m or _words(m.group(1)) > 30) and _words(first) > 30:
        # A long paragraph whose next sentence starts in lower case ("… (new_string, number). new_string
        # is …"): any full stop will do, queries are meant to be short.
        m = re.match(r"(.+?\.)\s+", first)
    summary, tail = (m.group(1), first[m.end():]) if m and _words(m.group(1)) >= MIN_QUERY_WORDS else (first, "")
    rest = "\n\n".join(p for p in (tail, rest_paras.strip()) if p)
    return sig, summary, rest


class _Elided:
    """Stands for a default whose repr is run-dependent (``<object object at 0x7f…>``) or long."""

    def __repr__(self) -> str:
        return "..."


def _signature(obj: object) -> str | None:
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except Exception:  # C signatures can fail in many ways (e.g. defaults naming constants a build lacks)
        return None
    params = []
    for prm in sig.parameters.values():
        d = prm.default
        if d is not prm.empty and (" at 0x" in repr(d) or len(repr(d)) > 40):
            prm = prm.replace(default=_Elided())  # memory addresses would make every run differ
        params.append(prm)
    return str(sig.replace(parameters=params))


def doc_entry(name: str, obj: object, kind: str) -> Entry | None:
    raw = obj.__doc__ if isinstance(getattr(obj, "__doc__", None), str) else None
    if not raw or not raw.strip():
        return None
    doc = inspect.cleandoc(raw)
    sig_line, summary, rest = split_docstring(doc)
    short = name.rsplit(".", 1)[-1]
    sig = sig_line or (f"{short}{s}" if kind in ("function", "method", "class") and (s := _signature(obj)) else None)
    head = f"{sig}\n\n" if sig else ""
    if _words(summary) >= MIN_QUERY_WORDS and _words(rest) >= MIN_REST_WORDS:
        return Entry(name, name, _cap(head + rest), summary, kind)
    # Too short to split into (query, rest): a document only, with its whole docstring (less a
    # signature line, which ``head`` already holds).
    whole = "\n\n".join(p for p in (summary, rest) if p)
    return Entry(name, name, _cap(head + whole), None, kind)


def topic_entries() -> list[Entry]:
    """Sections of the pydoc topics; a section heading is underlined with === or ***."""
    from pydoc_data.topics import topics

    out: list[Entry] = []
    for key in sorted(topics):
        text = topics[key].strip("\n")
        lines = text.splitlines()
        # A heading is a line followed by an underline of the same length made of one symbol.
        heads = [i for i in range(len(lines) - 1)
                 if lines[i].strip() and re.fullmatch(r"([=*\-~^])\1{2,}", lines[i + 1].strip())
                 and len(lines[i + 1].strip()) == len(lines[i].rstrip())]
        if not heads or heads[0] != 0:
            heads = [-1, *heads]  # text before the first heading belongs to an untitled first section
        topic_title = lines[heads[0]].strip() if heads[0] == 0 else key
        for n, h in enumerate(heads):
            end = heads[n + 1] if n + 1 < len(heads) else len(lines)
            heading = lines[h].strip() if h >= 0 else topic_title
            body = "\n".join(lines[h + 2 if h >= 0 else 0: end]).strip()
            if _words(body) < MIN_REST_WORDS:
                continue
            title = topic_title if heading == topic_title else f"{topic_title}: {heading}"
            doc_id = f"topic:{key}" + (f"#{n}" if n else "")
            query = heading if _words(heading) >= 2 else f"{heading} ({topic_title})"
            out.append(Entry(doc_id, title, _cap(body), query, "topic"))
    return out


def _walk(paths: list[str], prefix: str) -> list[str]:
    """Submodule names under ``paths`` without importing anything (pkgutil.walk_packages imports
    every package it descends into, which would run code before we chose to)."""
    found = []
    for info in pkgutil.iter_modules(paths, prefix):
        part = info.name.rsplit(".", 1)[-1]
        if part.startswith("_") or part in DENY_PART:
            continue
        found.append(info.name)
        if info.ispkg and hasattr(info.module_finder, "path"):
            found += _walk([os.path.join(info.module_finder.path, part)], info.name + ".")
    return found


def stdlib_module_names() -> list[str]:
    """Public stdlib modules and their submodules, minus the deny lists, in sorted order."""
    tops = sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in DENY_TOP)
    names: set[str] = set()
    for top in tops:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        names.add(top)
        if spec.submodule_search_locations:
            names.update(_walk(list(spec.submodule_search_locations), top + "."))
    return sorted(names)


def quiet_import(name: str) -> object | None:
    """Import ``name``; None when it fails, warns loudly or prints (we only want modules with no effects)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.simplefilter("ignore")
            mod = importlib.import_module(name)
    except (Exception, SystemExit):  # a module missing on this platform, a failed optional dependency …
        return None
    return None if out.getvalue() or err.getvalue() else mod


def public_names(mod: object) -> list[str]:
    names = getattr(mod, "__all__", None)
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        names = [n for n in vars(mod) if not n.startswith("_")]
    return sorted(set(names))


def docstring_entries() -> list[Entry]:
    out: list[Entry] = []
    seen_docs: set[str] = set()
    seen_objs: set[int] = set()

    seen_names: set[str] = set()

    def add(name: str, obj: object, kind: str) -> None:
        e = doc_entry(name, obj, kind)
        if e is None or name in seen_names:
            return
        key = " ".join((obj.__doc__ or "").split())
        # Re-exports (os.listdir is posix.listdir) and shared boilerplate docstrings would be duplicate
        # documents that no query could tell apart; the first in sorted order wins.
        if key in seen_docs or id(obj) in seen_objs:
            return
        seen_docs.add(key)
        seen_objs.add(id(obj))
        seen_names.add(name)
        out.append(e)

    # Modules with an alias first, so that "os.listdir" wins over "posix.listdir".
    names = stdlib_module_names()
    for mod_name in sorted(names, key=lambda n: (n.split(".")[0] not in OWNER_ALIASES, n)):
        mod = quiet_import(mod_name)
        if mod is None:
            continue
        top = mod_name.split(".")[0]
        alias = MODULE_ALIASES.get(mod_name, mod_name)
        prefix = f"{alias}." if alias else ""
        if alias:
            add(alias, mod, "module")
        for attr in public_names(mod):
            obj = getattr(mod, attr, None)
            owner = getattr(obj, "__module__", None)
            # Only objects defined in this module or a private C helper of it (json.scanner → _json).
            if not isinstance(owner, str) or not (owner == mod_name or owner.startswith("_")
                                                  or owner in OWNER_ALIASES.get(top, ())):
                continue
            if inspect.isclass(obj):
                add(f"{prefix}{attr}", obj, "class")
                for m_name, m in sorted(vars(obj).items()):
                    if m_name.startswith("_"):
                        continue
                    if isinstance(m, staticmethod | classmethod):
                        m = m.__func__
                    if inspect.isroutine(m) or isinstance(m, property):
                        add(f"{prefix}{attr}.{m_name}", m, "method")
            elif inspect.isroutine(obj):
                add(f"{prefix}{attr}", obj, "function")
    return out


Rows = tuple[list[dict[str, str]], list[dict[str, str]], dict[str, list[tuple[str, str, int]]]]


def stdlib_rows() -> Rows:
    """(corpus rows, query rows, qrels by split) of the stdlib documentation."""
    entries = topic_entries() + docstring_entries()
    ids = [e.doc_id for e in entries]
    if len(set(ids)) != len(ids):  # a bug here would make load_beir reject the folder; fail early
        raise RuntimeError("duplicate document ids in the demo corpus")
    docs = [{"_id": e.doc_id, "title": e.title, "text": e.text, "kind": e.kind} for e in entries]
    queries: list[dict[str, str]] = []
    qrels: dict[str, list[tuple[str, str, int]]] = {s: [] for s, _ in SPLITS}
    for e in entries:
        if e.query is not None:
            qid = f"q:{e.doc_id}"
            queries.append({"_id": qid, "text": e.query})
            qrels[split_of(e.doc_id)].append((qid, e.doc_id, 1))
    return docs, queries, qrels


def pairs_rows(path: Path) -> Rows:
    """A user's pairs file as BEIR rows, split exactly as ``train.py`` splits it (models.data.load_pairs),
    so that ``make demo DATA=pairs.tsv`` can index a corpus and train on the same folder."""
    from models.data import load_pairs

    data = load_pairs(path)
    c = data.corpus
    docs = [{"_id": c.ids[i], "title": c.titles[i], "text": c.texts[i]} for i in range(len(c))]
    queries = [{"_id": q, "text": t} for q, t in data.queries.items()]
    qrels = {s: [(q, d, g) for q, rel in qr.items() for d, g in rel.items()] for s, qr in data.qrels.items()}
    return docs, queries, qrels


def write_beir(out: Path, rows: Rows, note: str) -> None:
    """Write a BEIR folder to ``out`` atomically: built beside it, then renamed into place."""
    docs, queries, qrels = rows
    with atomic_dir(out) as tmp:
        (tmp / "qrels").mkdir()
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(q, ensure_ascii=False) + "\n" for q in queries)
        for split, pairs in qrels.items():
            with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
                f.write("query-id\tcorpus-id\tscore\n")
                f.writelines(f"{q}\t{d}\t{g}\n" for q, d, g in pairs)
        (tmp / "README.txt").write_text(note + "\n", encoding="utf-8")


def is_dataset_dir(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="BEIR folder to write (replaced atomically)")
    p.add_argument("--force", action="store_true", help="replace an existing dataset folder")
    p.add_argument("--from-pairs", metavar="FILE",
                   help="instead of the stdlib docs, convert this pairs file (TSV query<TAB>document or JSONL "
                        "{query, document}) into a BEIR folder, with train.py's dev split")
    a = p.parse_args(argv)
    out = Path(a.out)
    # Never replace something that is not ours, even with --force.
    guard_target(out, is_dataset_dir, "a dataset folder (no corpus.jsonl)")
    if is_dataset_dir(out) and not a.force:
        print(f"{out} already exists; keeping it (--force rebuilds it)")
        return 0
    if a.from_pairs:
        src = Path(a.from_pairs)
        if not src.is_file():
            raise UsageError(f"--from-pairs {src}: no such file")
        rows = pairs_rows(src)
        note = f"BEIR folder made by scripts/make_demo_data.py from the pairs file {src.name}."
    else:
        rows = stdlib_rows()
        note = (f"Demo dataset made by scripts/make_demo_data.py from the documentation of Python "
                f"{sys.version.split()[0]}'s standard library (pydoc topics and docstrings).")
    write_beir(out, rows, note)
    docs, _, qrels = rows
    counts = "/".join(str(len(qrels.get(s, []))) for s, _ in SPLITS)
    print(f"wrote {out}: {len(docs)} documents, queries train/dev/test {counts}")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
