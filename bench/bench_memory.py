"""Benchmark: peak memory of reading audit logs into the usage model, by phase and process.

    python bench/gen_audit.py --lines 8000000 --seed 7 -o /tmp/bench8m.log   # 9.4 GB
    python bench/bench_memory.py /tmp/bench-audit.log /tmp/bench8m.log [--workers 2]

Memory grows with distinct uses, not lines, and a longer log from the generator has more of
them; this reports, per log, in a fresh process each: one process, and ``--workers``
processes. "reading" is the peak RSS (``ru_maxrss``) of the reading process until the model
is built (for the parent, that includes taking in the workers' results), "model" the peak
including the build, "worker" the largest worker's peak. Target: 300 MB for every process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

RUN = r"""
import json, resource, sys
from rbac_advisor import usage_builder
from rbac_advisor.cli.ingest import load_usage

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

reading = []
finish = usage_builder.UsageBuilder.finish
def timed_finish(self, *args, **kwargs):
    reading.append(peak())
    return finish(self, *args, **kwargs)
usage_builder.UsageBuilder.finish = timed_finish

u = load_usage([sys.argv[1]], skip_malformed=False, since=None, until=None,
               kubectl_only=False, progress=False, workers=int(sys.argv[2]))
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"lines": sum(s.lines for s in u.sources), "uses": len(u.entries),
                  "reading": reading[0], "model": peak(), "worker": kids}))
"""


def measure(path: str, workers: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", RUN, path, str(workers)], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("logs", nargs="+", help="audit logs made by bench/gen_audit.py")
    ap.add_argument("--workers", type=int, default=2, help="processes for the shared mode")
    a = ap.parse_args()
    missing = [p for p in a.logs if not os.path.exists(p)]
    if missing:
        sys.exit(f"bench_memory: no such log: {missing[0]} (make it with bench/gen_audit.py)")
    print(f"{'log':32s} {'lines':>11s} {'uses':>8s}  mode          reading   model  worker")
    for path in a.logs:
        for workers in (1, a.workers):
            r = measure(path, workers)
            worker = f"{r['worker']:5.0f} MB" if workers > 1 else "       -"
            print(
                f"{os.path.basename(path):32s} {r['lines']:>11,.0f} {r['uses']:>8,.0f}  "
                f"{workers} process{'es' if workers > 1 else '  '}  "
                f"{r['reading']:5.0f} MB {r['model']:5.0f} MB {worker}",
                flush=True,
            )


if __name__ == "__main__":
    main()
