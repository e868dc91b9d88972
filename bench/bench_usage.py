"""Benchmark: audit log -> usage model, plain and gzip, against jq doing the same group-by.

    python bench/bench_usage.py [--lines 2000000] [--file /tmp/bench-audit.log] [--jq-lines 200000]
                                [--repeat 3] [--rotated]

Each mode runs in a fresh process, --repeat times; the median run is reported with the
spread, and peak RSS is the largest ru_maxrss of a process (and summed with its workers).
Targets: >= 300k lines/s, >= 10x jq, .gz <= 1.5x slower than plain, peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = r"""
import json, resource, sys, time
from rbac_advisor.cli.ingest import load_usage
t = time.perf_counter()
u = load_usage([sys.argv[1]], skip_malformed=False, since=None, until=None,
               kubectl_only=False, progress=False, workers=int(sys.argv[2]))
dt = time.perf_counter() - t
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": dt, "lines": sum(s.lines for s in u.sources), "requests": u.requests,
                  "entries": len(u.entries), "rss_mb": max(me, kids) / 1024,
                  "rss_sum_mb": (me + kids) / 1024}))
"""
# The usual shell way: jq keeps the later stages and extracts the key; sort | uniq -c groups.
JQ = (
    'select(.stage != "RequestReceived") '
    "| [(.impersonatedUser.username // .user.username), .verb, .objectRef.apiGroup, "
    ".objectRef.resource, .objectRef.subresource, .objectRef.namespace, .objectRef.name, "
    '.annotations["authorization.k8s.io/decision"]]'
)


def run_mode(path: str, workers: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", RUN, path, str(workers)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_jq(path: str, lines: int) -> float | None:
    if shutil.which("jq") is None:
        return None
    head = f"{path}.head{lines}"
    if not os.path.exists(head):
        with open(path, "rb") as src, open(head, "wb") as dst:
            for i, line in enumerate(src):
                if i >= lines:
                    break
                dst.write(line)
    t = time.perf_counter()
    cmd = f"jq -c '{JQ}' {head} | LC_ALL=C sort | uniq -c | wc -l"
    subprocess.run(["sh", "-c", cmd], check=True, capture_output=True)
    return lines / (time.perf_counter() - t)


def rotated(path: str, size: int = 100_000_000) -> str:
    """The log as a directory of rotated files, as the apiserver leaves them.

    Files of ``size`` bytes cut at line ends, all gzip-compressed at level 6 (what
    ``--audit-log-compress`` writes) except the newest; made once, next to the log.
    """
    out = path + ".rotated"
    if os.path.isdir(out):
        return out
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    print(f"writing {out}/ (rotated, gzip -6) ...", file=sys.stderr)
    # Streamed, a line at a time: this process stays small, and so do the runs it starts
    # (a child's ru_maxrss counts what it shared with this process before its exec).
    names: list[str] = []
    with open(path, "rb") as src:
        dst = None
        for line in src:
            if dst is None or dst.tell() >= size:
                if dst is not None:
                    dst.close()
                k = len(names)
                names.append(f"audit-2026-11-01T{k // 60:02d}-{k % 60:02d}-00.000.log")
                dst = open(os.path.join(tmp, names[-1]), "wb")  # noqa: SIM115
            dst.write(line)
        if dst is not None:
            dst.close()
    for name in names[:-1]:
        plain = os.path.join(tmp, name)
        with open(plain, "rb") as f, gzip.open(plain + ".gz", "wb", compresslevel=6) as g:
            shutil.copyfileobj(f, g, 1 << 20)
        os.remove(plain)
    if names:
        os.rename(os.path.join(tmp, names[-1]), os.path.join(tmp, "audit.log"))
    os.rename(tmp, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--file", default="/tmp/bench-audit.log")
    ap.add_argument("--jq-lines", type=int, default=200_000, help="jq runs on this many lines")
    ap.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode; the median is reported")
    ap.add_argument(
        "--rotated",
        action="store_true",
        help="also read the log as a directory of rotated files (100 MB each, gzip -6)",
    )
    a = ap.parse_args()
    if not os.path.exists(a.file) or not os.path.exists(a.file + ".gz"):
        print(f"generating {a.lines} lines into {a.file} (+ .gz) ...", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                str(HERE / "gen_audit.py"),
                "--lines",
                str(a.lines),
                "-o",
                a.file,
                "--gzip",
            ],
            check=True,
        )
    size = os.path.getsize(a.file) / 1e6
    print(
        f"input: {a.file} ({size:,.0f} MB), "
        f"{a.file}.gz ({os.path.getsize(a.file + '.gz') / 1e6:,.0f} MB)"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    results = {}
    modes = [
        (f"plain, {a.workers} processes", a.file, a.workers),
        ("plain, 1 process", a.file, 1),
        (f"gzip, {a.workers} processes", a.file + ".gz", a.workers),
    ]
    if a.rotated:
        modes.append((f"rotated dir, {a.workers} procs", rotated(a.file), a.workers))
    for name, path, workers in modes:
        runs = [run_mode(path, workers) for _ in range(a.repeat)]
        r = sorted(runs, key=lambda x: x["seconds"])[len(runs) // 2]  # the median run
        rate = r["lines"] / r["seconds"]
        results[name] = rate
        spread = (
            f" (runs {min(x['seconds'] for x in runs):.1f}-{max(x['seconds'] for x in runs):.1f} s)"
            if len(runs) > 1
            else ""
        )
        print(
            f"{name:24s} {r['lines']:>10,} lines {r['seconds']:7.1f} s{spread} "
            f"{rate:>10,.0f} lines/s peak RSS {max(x['rss_mb'] for x in runs):5.0f} MB "
            f"(sum {max(x['rss_sum_mb'] for x in runs):.0f} MB) "
            f"requests {r['requests']:,} entries {r['entries']:,}"
        )
    jq = run_jq(a.file, a.jq_lines)
    best = results[f"plain, {a.workers} processes"]
    if jq is None:
        print("jq: not installed (apt-get install -y jq); no comparison")
    else:
        print(f"jq (first {a.jq_lines:,} lines) {jq:>10,.0f} lines/s -> ratio {best / jq:.1f}x")
    print(f"gzip slowdown: {best / results[f'gzip, {a.workers} processes']:.2f}x")


if __name__ == "__main__":
    main()
