"""Regenerate fixtures/demo/ (rbac.yaml + audit.jsonl) from a real control plane.

Usage: .venv/bin/python scripts/record-demo.py [--out fixtures/demo] [--time-base ISO|none]

Starts etcd + kube-apiserver + kube-controller-manager with the test harness (tests/kube.py;
binaries from scripts/build-k8s.sh), creates a small multi-team cluster as `admin`, then
drives real traffic as people (the built kubectl, static tokens) and service accounts
(kubectl and the Python client, TokenRequest tokens). The cluster and the traffic are
tests/scenario.py, the same scenario tests/test_review_loop.py reviews end to end. Writes:

- rbac.yaml: `rbac-advisor snapshot` of every RBAC object, bootstrap ones included, so the
  demo is self-contained;
- audit.jsonl: the apiserver's own audit lines for the scenario traffic. Setup traffic
  (user `admin`), the apiserver's loopback client and the controller manager are left out.

Object names are fixed, so rbac.yaml is byte-for-byte stable between runs. audit.jsonl keeps
the real lines; only the timestamps are shifted by one constant so the first event falls at
--time-base (default 2026-06-01T09:00:00Z; `none` keeps the wall clock). auditIDs and UIDs
differ per run. Takes about 15 s once the binaries are built.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import scenario  # noqa: E402
import traffic  # noqa: E402
from kube import Kube  # noqa: E402


def rebase(events: list[dict[str, Any]], base: dt.datetime) -> None:
    """Shift every timestamp by one constant so the first event is at ``base``."""

    def parse(s: str) -> dt.datetime:
        return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)

    first = min(parse(e["requestReceivedTimestamp"]) for e in events)
    shift = base - first
    for e in events:
        for key in ("requestReceivedTimestamp", "stageTimestamp"):
            e[key] = (parse(e[key]) + shift).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "fixtures" / "demo")
    ap.add_argument("--time-base", default="2026-06-01T09:00:00Z")
    args = ap.parse_args()
    t0 = time.monotonic()
    with Kube(users=scenario.USERS) as kube:
        print(f"record-demo: control plane up in {kube.start_seconds:.1f}s", file=sys.stderr)
        scenario.setup(kube)
        offset = traffic.audit_size(kube)
        scenario.drive(kube, log=lambda line: print(line, file=sys.stderr))
        events = traffic.scenario_events(kube, offset)
        args.out.mkdir(parents=True, exist_ok=True)
        rbac_file = args.out / "rbac.yaml"
        subprocess.run([sys.executable, "-m", "rbac_advisor", "snapshot",
                        "--kubeconfig", str(kube.kubeconfig("admin")), "-o", str(rbac_file)],
                       check=True)  # fmt: skip
    if args.time_base != "none":
        rebase(events, dt.datetime.fromisoformat(args.time_base.replace("Z", "+00:00")))
    with (args.out / "audit.jsonl").open("w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    users = sorted({e["user"].get("username", "") for e in events})
    print(f"record-demo: {len(events)} audit events from {len(users)} identities "
          f"-> {args.out} in {time.monotonic() - t0:.0f}s", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
