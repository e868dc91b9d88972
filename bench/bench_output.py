"""How long `rbac-advisor usage` takes to write its table and its JSON once the model is built.

    python bench/bench_output.py [--file /tmp/bench-audit.log] [--repeat 3]

Builds the usage model of the benchmark log (``bench/gen_audit.py``) once and saves it
next to the log (``LOG.usage.json``; reused while it is newer than the log), then, in this
process, times writing the table and the JSON of ``usage`` over it, each ``--repeat``
times (the fastest is shown). The text written is hashed, not kept: the digest shows that
two versions of the code write the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rbac_advisor import usage_codec, usage_report  # noqa: E402
from rbac_advisor.cli.ingest import load_usage  # noqa: E402
from rbac_advisor.usage import Usage  # noqa: E402


def _model(log: str) -> Usage:
    saved = log + ".usage.json"
    if not os.path.exists(saved) or os.path.getmtime(saved) < os.path.getmtime(log):
        print(f"building the model of {log} ...", flush=True)
        u = load_usage(
            [log], skip_malformed=False, since=None, until=None, kubectl_only=False, progress=False
        )
        with open(saved, "w", encoding="utf-8") as f:
            f.writelines(usage_codec.dump_chunks(u))
    with open(saved, encoding="utf-8") as f:
        return usage_codec.loads(f.read(), saved)


def _time(write: Callable[[Usage], Iterator[str]], u: Usage) -> tuple[float, int, str]:
    h = hashlib.sha256()
    size = 0
    t = time.perf_counter()
    for piece in write(u):
        data = piece.encode()
        size += len(data)
        h.update(data)
    return time.perf_counter() - t, size, h.hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default="/tmp/bench-audit.log")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not os.path.exists(args.file):
        sys.exit(f"{args.file} not found: make it with bench/gen_audit.py --lines 2000000 -o ...")
    u = _model(args.file)
    subjects = sum(1 for _ in usage_report.iter_summaries(u))
    print(f"{len(u.entries)} uses, {subjects} subjects")
    for name, write in (("table", usage_report.iter_table), ("json", usage_report.iter_json)):
        runs = [_time(write, u) for _ in range(args.repeat)]
        best = min(r[0] for r in runs)
        _, size, digest = runs[0]
        print(f"{name:5}  {best:6.2f} s  {size / 1e6:6.1f} MB  sha256 {digest}...", flush=True)


if __name__ == "__main__":
    main()
