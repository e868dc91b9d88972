"""Benchmark: `rbac-advisor snapshot` of a real cluster holding 10,000 extra RBAC objects.

Usage: .venv/bin/python bench/bench_snapshot.py [--objects N] [--namespaces N] [--budget S]

Starts etcd + kube-apiserver (tests/kube.py, binaries from scripts/build-k8s.sh), creates
N objects (a quarter each of Roles, RoleBindings, ClusterRoles, ClusterRoleBindings) with
parallel POSTs, then times the CLI end to end (process start, kubernetes import, paginated
lists, YAML) and checks the file holds every object. Exits 1 when slower than --budget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from kube import Kube  # noqa: E402

RBAC = "rbac.authorization.k8s.io"
RULES = [
    {"apiGroups": [""], "resources": ["pods", "pods/log", "configmaps"], "verbs": ["get", "list"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
]


def bodies(n: int, namespaces: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, namespace, body) for n objects spread over the four kinds."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    quarter = n // 4
    for i in range(n - 3 * quarter):
        ns = f"bench-{i % namespaces}"
        out.append(("Role", ns, {"metadata": {"name": f"role-{i}"}, "rules": RULES}))
    for i in range(quarter):
        ns = f"bench-{i % namespaces}"
        out.append(("RoleBinding", ns, {
            "metadata": {"name": f"rb-{i}"},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": f"role-{i}"},
            "subjects": [{"kind": "User", "apiGroup": RBAC, "name": f"user-{i}"},
                         {"kind": "ServiceAccount", "name": "default"}],
        }))  # fmt: skip
    for i in range(quarter):
        out.append(("ClusterRole", "", {"metadata": {"name": f"bench-cr-{i}"}, "rules": RULES}))
    for i in range(quarter):
        out.append(("ClusterRoleBinding", "", {
            "metadata": {"name": f"bench-crb-{i}"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": f"bench-cr-{i}"},
            "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": f"group-{i % 50}"}],
        }))  # fmt: skip
    return out


def populate(kube: Kube, n: int, namespaces: int) -> float:
    from kubernetes import client as kc

    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    for i in range(namespaces):
        kube.ensure_namespace(f"bench-{i}")
    create = {
        "Role": lambda ns, b: rbac.create_namespaced_role(ns, b, _preload_content=False),
        "RoleBinding": lambda ns, b: rbac.create_namespaced_role_binding(
            ns, b, _preload_content=False
        ),
        "ClusterRole": lambda ns, b: rbac.create_cluster_role(b, _preload_content=False),
        "ClusterRoleBinding": lambda ns, b: rbac.create_cluster_role_binding(
            b, _preload_content=False
        ),
    }
    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda o: create[o[0]](o[1], o[2]), bodies(n, namespaces)))
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--budget", type=float, default=10.0, help="seconds allowed for snapshot")
    args = ap.parse_args()

    with Kube(controllers=False) as kube, tempfile.TemporaryDirectory() as tmp:
        print(f"control plane ready in {kube.start_seconds:.1f}s", file=sys.stderr)
        t_create = populate(kube, args.objects, args.namespaces)
        print(f"created {args.objects} objects in {t_create:.1f}s "
              f"({args.objects / t_create:.0f}/s)", file=sys.stderr)  # fmt: skip
        out = Path(tmp) / "rbac.yaml"
        cmd = [str(REPO / ".venv/bin/rbac-advisor"), "snapshot",
               "--kubeconfig", str(kube.kubeconfig("admin")), "-o", str(out)]  # fmt: skip
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.monotonic() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        items = yaml.load(out.read_text(), Loader=loader)["items"]
        bench = sum(o["metadata"]["name"].startswith(("role-", "rb-", "bench-")) for o in items)
        result = {
            "objects_created": args.objects,
            "objects_in_snapshot": len(items),
            "created_objects_in_snapshot": bench,
            "snapshot_seconds": round(elapsed, 2),
            "file_mb": round(out.stat().st_size / 1e6, 1),
            "cli_summary": proc.stderr.strip(),
        }
        print(json.dumps(result, indent=1))
        if bench != args.objects:
            print(f"error: snapshot holds {bench} of {args.objects} objects", file=sys.stderr)
            return 1
        if elapsed > args.budget:
            print(f"error: snapshot took {elapsed:.1f}s > {args.budget:.0f}s", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
