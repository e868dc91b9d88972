"""Benchmark: the whole review (diff, recommendation, proof, report) on a large cluster.

Usage: .venv/bin/python bench/bench_review.py [--bindings N] [--requests N] [--seed S]

Reuses bench_verify's synthetic cluster (1,500 users, 100 groups, 400 service accounts:
2,000 subjects; 700 roles) with the requested number of bindings, draws observed requests
whose decisions come from the cluster itself, then times each stage and prints the report's
size.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_verify import make_cluster, make_entries  # noqa: E402

from rbac_advisor.analysis import AnalysisOptions, run  # noqa: E402
from rbac_advisor.authorizer import Authorizer  # noqa: E402
from rbac_advisor.diff import Observation  # noqa: E402
from rbac_advisor.events import Decision  # noqa: E402
from rbac_advisor.render.report import render  # noqa: E402
from rbac_advisor.render.review_view import build_view  # noqa: E402
from rbac_advisor.usage import Stats, UsageKey, freeze  # noqa: E402

DAY = 86400.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/out/large-report.html"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    # 1,500 users + 100 groups + 400 service accounts: 2,000 subjects
    snap, identities, namespaces = make_cluster(rng, args.bindings, 1500, 4)
    entries = make_entries(rng, Authorizer(snap), identities, namespaces, args.requests)
    obs: dict[tuple[object, ...], Observation] = {}
    usage_entries: dict[UsageKey, Stats] = {}
    for ident, access, decision, count in entries:
        if decision == Decision.FORBID and rng.random() < 0.9:
            continue  # random requests are mostly denied; real traffic mostly is not
        dec = Decision.FORBID if decision == Decision.FORBID else Decision.ALLOW
        if decision == Decision.UNKNOWN:
            dec = Decision.UNKNOWN
        day = rng.randint(0, 89)
        t = 1_780_000_000.0 + day * DAY
        obs[(ident, access, dec)] = Observation(ident, access, dec, count, t, t, frozenset({day}))
        usage_entries[UsageKey(ident, access, dec, None, "kubectl")] = Stats(
            count, t, t, frozenset({int(t // DAY)})
        )
    usage = freeze(
        usage_entries, requests=sum(c for *_, c in entries), unauthenticated=0,
        start=1_780_000_000.0, end=1_780_000_000.0 + 89 * DAY,
    )  # fmt: skip
    t0 = time.perf_counter()
    result = run(snap, obs.values(), AnalysisOptions())
    t1 = time.perf_counter()
    view = build_view(result, usage, {"rbacSource": "synthetic"}, "bench")
    t2 = time.perf_counter()
    html = render(view, "2026-11-27T00:00:00Z")
    t3 = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(html, encoding="utf-8")
    subjects = {s for b in snap.bindings for s in b.subjects}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"cluster: {len(snap.roles)} roles, {len(snap.bindings)} bindings, {len(subjects)} subjects"
    )
    print(
        f"observations: {len(obs)} distinct; proof replayed {result.proof.checked}, "
        f"sound={result.proof.sound}"
    )
    print(f"plan: {len(result.plan.apply)} objects to apply, {len(result.plan.prune)} to delete")
    print(f"diff+recommend+proof: {t1 - t0:.1f} s; view: {t2 - t1:.1f} s; render: {t3 - t2:.1f} s")
    print(f"report: {len(html.encode()) / 1e6:.2f} MB -> {args.out}; peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
