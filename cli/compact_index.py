#!/usr/bin/env python
"""Compact a live index offline: fold its growing segment and deletions into a new sealed segment.

    python scripts/compact_index.py --index INDEX_DIR

The same operation as ``POST /admin/compact`` (which compacts a served index while it serves); this
command is for an index no server is writing to (stopped, or before it is served). Needs no model: the
vectors are in the index's log. Atomic: a crash leaves the previous segment in use.
"""

from __future__ import annotations

import argparse
import json
import resource

from cli._run import UsageError, run_cli
from index import IndexLoadError
from index.errors import IndexWriteError
from index.live import LiveIndex, is_live


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True, help="a live index folder (holding live.sqlite)")
    a = p.parse_args(argv)
    if not is_live(a.index):
        raise UsageError(f"{a.index}: not a live index (no live.sqlite): nothing to compact")
    try:
        with LiveIndex.open(a.index, None, create_live=False) as idx:
            before = idx.counts()
            report = idx.compact()
    except (IndexLoadError, IndexWriteError) as e:
        raise UsageError(str(e)) from e
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux → MiB
    print(json.dumps({"before": {k: before[k] for k in ("documents", "growing", "deleted_not_compacted", "last_seq")},
                      **report, "peak_rss_mib": round(peak, 1)}, indent=2))
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
