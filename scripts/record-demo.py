"""Regenerate fixtures/demo/ (rbac.yaml + audit.jsonl) from a real control plane.

Usage: .venv/bin/python scripts/record-demo.py [--out fixtures/demo] [--time-base ISO|none]

Starts etcd + kube-apiserver + kube-controller-manager with the test harness (tests/kube.py;
binaries from scripts/build-k8s.sh), creates a small multi-team cluster as `admin`, then
drives real traffic as people (the built kubectl, static tokens) and service accounts
(kubectl and the Python client, TokenRequest tokens). Writes:

- rbac.yaml: `rbac-advisor snapshot` of every RBAC object, bootstrap ones included, so the
  demo is self-contained;
- audit.jsonl: the apiserver's own audit lines for the scenario traffic. Setup traffic
  (user `admin`), the apiserver's loopback client and the controller manager are left out.

Object names are fixed, so rbac.yaml is byte-for-byte stable between runs. audit.jsonl keeps
the real lines; only the timestamps are shifted by one constant so the first event falls at
--time-base (default 2026-06-01T09:00:00Z; `none` keeps the wall clock). auditIDs and UIDs
differ per run. Takes about 40 s once the binaries are built.
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

from kube import Kube  # noqa: E402

RBAC = "rbac.authorization.k8s.io"
NAMESPACES = ("team-a", "team-b", "ci", "monitoring")
SETUP_USERS = {"admin", "system:apiserver"}
AGG_LABEL = "rbac.example.com/aggregate-to-platform-reader"


def crole(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None,
          aggregate: str | None = None) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if aggregate:
        body["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {aggregate: "true"}}]}
    return body


def rule(groups: list[str], resources: list[str], verbs: list[str],
         names: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    r: dict[str, Any] = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        r["resourceNames"] = names
    return r


def subject(kind: str, name: str, namespace: str = "") -> dict[str, Any]:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"kind": kind, "apiGroup": RBAC, "name": name}


def binding(name: str, role_kind: str, role: str, subjects: list[dict[str, Any]],
            namespace: str = "") -> dict[str, Any]:  # fmt: skip
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"metadata": meta, "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role},
            "subjects": subjects}  # fmt: skip


def setup(kube: Kube) -> None:
    """The cluster as a platform team would have left it (all as `admin`, not recorded)."""
    from kubernetes import client as kc

    api = kube.admin_client()
    core, rbac = kc.CoreV1Api(api), kc.RbacAuthorizationV1Api(api)
    for ns in NAMESPACES:
        kube.ensure_namespace(ns)
    for ns, sa in (("ci", "deployer"), ("ci", "old-deployer"),
                   ("monitoring", "prometheus-operator"), ("team-a", "web"),
                   ("team-b", "batch-runner")):  # fmt: skip
        core.create_namespaced_service_account(ns, {"metadata": {"name": sa}})

    for body in (
        crole("monitoring-reader", [rule(["*"], ["*"], ["get", "list", "watch"])]),
        crole("platform-reader", [], aggregate=AGG_LABEL),
        crole("platform-reader-nodes", [rule([""], ["nodes", "namespaces"], ["get", "list"])],
              labels={AGG_LABEL: "true"}),
        crole("platform-reader-storage",
              [rule([""], ["persistentvolumes"], ["get", "list"]),
               rule(["storage.k8s.io"], ["storageclasses"], ["get", "list"])],
              labels={AGG_LABEL: "true"}),
        crole("rbac-auditor", [rule([RBAC], ["roles", "rolebindings", "clusterroles",
                                             "clusterrolebindings"], ["get", "list", "watch"]),
                               rule([""], ["namespaces"], ["get", "list"])]),
        crole("support-impersonator", [rule([""], ["users"], ["impersonate"], ["alice"]),
                                       rule([""], ["groups"], ["impersonate"], ["team-a-devs"])]),
    ):  # fmt: skip
        rbac.create_cluster_role(body)
    rbac.create_namespaced_role("team-b", {"metadata": {"name": "team-b-anything"},
                                           "rules": [rule(["*"], ["*"], ["*"])]})  # fmt: skip
    rbac.create_namespaced_role("team-a", {"metadata": {"name": "web-config"}, "rules": [
        rule([""], ["configmaps"], ["get", "list", "watch"]),
        rule([""], ["secrets"], ["get"], ["web-tls"])]})  # fmt: skip
    rbac.create_namespaced_role("team-b", {"metadata": {"name": "batch-runner"}, "rules": [
        rule(["batch"], ["jobs"], ["create", "get", "list", "delete"])]})  # fmt: skip

    for body in (
        binding("ci-deployer-cluster-admin", "ClusterRole", "cluster-admin",
                [subject("ServiceAccount", "deployer", "ci")]),
        binding("old-ci-edit", "ClusterRole", "edit",
                [subject("ServiceAccount", "old-deployer", "ci")]),
        binding("devs-view", "ClusterRole", "view",
                [subject("Group", "team-a-devs"), subject("Group", "team-b-devs")]),
        binding("monitoring-reader", "ClusterRole", "monitoring-reader",
                [subject("ServiceAccount", "prometheus-operator", "monitoring")]),
        binding("platform-reader", "ClusterRole", "platform-reader",
                [subject("Group", "platform")]),
        binding("rbac-auditors", "ClusterRole", "rbac-auditor", [subject("Group", "auditors")]),
        binding("support-impersonation", "ClusterRole", "support-impersonator",
                [subject("User", "erin")]),
    ):  # fmt: skip
        rbac.create_cluster_role_binding(body)
    for body in (
        binding("team-a-devs-edit", "ClusterRole", "edit", [subject("Group", "team-a-devs")],
                "team-a"),
        binding("legacy-admin", "ClusterRole", "admin",
                [subject("User", "former-employee"), subject("User", "dave")], "team-a"),
        binding("team-b-anything", "Role", "team-b-anything", [subject("Group", "team-b-devs")],
                "team-b"),
        binding("web-config", "Role", "web-config", [{"kind": "ServiceAccount", "name": "web"}],
                "team-a"),
        binding("batch-runner", "Role", "batch-runner",
                [subject("ServiceAccount", "batch-runner", "team-b")], "team-b"),
    ):  # fmt: skip
        rbac.create_namespaced_role_binding(body["metadata"]["namespace"], body)

    deadline = time.monotonic() + 60
    while True:  # the serviceaccount controller creates `default` SAs; pods need them
        try:
            for ns in NAMESPACES:
                core.read_namespaced_service_account("default", ns)
            if kc.RbacAuthorizationV1Api(api).read_cluster_role("platform-reader").rules:
                break
        except kc.ApiException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("default service accounts / aggregation did not appear")
        time.sleep(0.2)
    core.create_namespaced_pod("team-a", {
        "metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {"serviceAccountName": "web", "containers": [{"name": "web", "image": "nginx"}]},
    })  # fmt: skip
    core.create_namespaced_config_map(
        "team-a", {"metadata": {"name": "web-config"}, "data": {"mode": "prod"}}
    )
    for name in ("web-tls", "db-password"):
        core.create_namespaced_secret("team-a", {"metadata": {"name": name},
                                                 "stringData": {"k": "v"}})  # fmt: skip


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: {name}, image: "{image}"}}]}}
"""


def scenario(kube: Kube) -> None:
    """Real requests from people and workloads; failures are part of the story."""

    def k(who: str | Path, *args: str, stdin: str | None = None) -> None:
        r = kube.kubectl(who, "--request-timeout=5s", *args, check=False, input=stdin)
        label = who if isinstance(who, str) else who.stem
        status = "ok" if r.returncode == 0 else f"exit {r.returncode}"
        print(f"  {label:>22}: kubectl {' '.join(args)[:70]:<70} {status}", file=sys.stderr)

    deployer = kube.sa_kubeconfig("ci", "deployer")
    for ns, image in (("team-a", "nginx:1.27"), ("team-b", "busybox:1.36")):
        k(deployer, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="web", ns=ns, image=image))
    k(deployer, "get", "deployments", "-A")
    k(deployer, "set", "image", "deployment/web", "web=nginx:1.28", "-n", "team-a")
    k(deployer, "apply", "-f", "-",
      stdin=DEPLOYMENT.format(name="web", ns="team-a", image="nginx:1.29"))  # fmt: skip
    k(deployer, "create", "secret", "generic", "registry-token", "-n", "ci",
      "--from-literal=token=abc")  # fmt: skip
    k(deployer, "delete", "secret", "registry-token", "-n", "ci", "--wait=false")

    k("alice", "get", "pods", "-n", "team-a")
    k("alice", "get", "deployments", "-n", "team-a", "-o", "wide")
    k("alice", "get", "pod", "web-0", "-n", "team-a", "-o", "yaml")
    k("alice", "describe", "pod", "web-0", "-n", "team-a")
    k("alice", "logs", "web-0", "-n", "team-a")
    k("alice", "exec", "web-0", "-n", "team-a", "--", "ls")
    k("alice", "create", "configmap", "alice-scratch", "-n", "team-a", "--from-literal=a=1")
    k("alice", "scale", "deployment", "web", "--replicas=2", "-n", "team-a")
    k("alice", "patch", "deployment", "web", "-n", "team-a", "-p",
      '{"metadata":{"annotations":{"owner":"alice"}}}')  # fmt: skip
    k("alice", "get", "pods", "-n", "team-a", "-w", "--request-timeout=2s")
    k("alice", "get", "pods", "-n", "team-b")
    k("alice", "get", "secrets", "-n", "team-b")
    k("alice", "auth", "can-i", "delete", "pods", "-n", "team-a")
    k("alice", "delete", "configmap", "alice-scratch", "-n", "team-a")

    k("bob", "get", "all", "-n", "team-b")
    k("bob", "create", "configmap", "bob-settings", "-n", "team-b", "--from-literal=x=y")
    k("bob", "get", "secrets", "-n", "team-b")
    k("bob", "get", "pods", "-n", "team-a")
    k("bob", "delete", "pod", "web-0", "-n", "team-a")
    k("bob", "delete", "configmap", "bob-settings", "-n", "team-b")

    k("carol", "get", "clusterrolebindings")
    k("carol", "get", "rolebindings", "-A")
    k("carol", "get", "namespaces")
    k("carol", "get", "secrets", "-A")

    k("dave", "get", "pods", "-n", "team-a")

    k("erin", "get", "nodes")
    k("erin", "get", "persistentvolumes")
    k("erin", "get", "storageclasses")
    k("erin", "--as=alice", "--as-group=team-a-devs", "get", "pods", "-n", "team-a")
    k("erin", "--as=bob", "get", "pods", "-n", "team-b")

    k("mallory", "get", "secrets", "-A")
    k("mallory", "auth", "can-i", "--list")
    k("mallory", "create", "clusterrolebinding", "pwn", "--clusterrole=cluster-admin",
      "--user=mallory")  # fmt: skip

    python_workloads(kube)


def python_workloads(kube: Kube) -> None:
    """Service accounts talking through the Python client, as in-cluster workloads do."""
    from kubernetes import client as kc

    def as_sa(ns: str, name: str) -> Any:
        return kube.client(kubeconfig=kube.sa_kubeconfig(ns, name))

    def attempt(label: str, call: Any) -> None:
        try:
            call()
            status = "ok"
        except kc.ApiException as err:
            status = f"HTTP {err.status}"
        print(f"  {label:>22}: python {status}", file=sys.stderr)

    mon = kc.CoreV1Api(as_sa("monitoring", "prometheus-operator"))
    attempt("prometheus-operator", lambda: mon.list_pod_for_all_namespaces())
    attempt("prometheus-operator", lambda: mon.list_node())
    attempt("prometheus-operator", lambda: mon.list_service_for_all_namespaces())
    attempt(
        "prometheus-operator",
        lambda: mon.list_namespaced_pod(
            "team-a", watch=True, timeout_seconds=1, _preload_content=False
        ).read(),
    )

    web = kc.CoreV1Api(as_sa("team-a", "web"))
    attempt("web", lambda: web.read_namespaced_config_map("web-config", "team-a"))
    attempt("web", lambda: web.read_namespaced_secret("web-tls", "team-a"))
    attempt("web", lambda: web.read_namespaced_secret("db-password", "team-a"))

    batch = kc.BatchV1Api(as_sa("team-b", "batch-runner"))
    job = {
        "metadata": {"name": "nightly-report"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "r", "image": "busybox"}],
                }
            }
        },
    }
    attempt("batch-runner", lambda: batch.create_namespaced_job("team-b", job))
    attempt("batch-runner", lambda: batch.read_namespaced_job("nightly-report", "team-b"))
    attempt("batch-runner", lambda: batch.list_namespaced_job("team-b"))


def scenario_events(kube: Kube, offset: int) -> list[dict[str, Any]]:
    """Audit events written after ``offset``, setup identities removed, once all are complete."""
    deadline = time.monotonic() + 30
    while True:
        with kube.audit_log_path.open("rb") as f:
            f.seek(offset)
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        events = [json.loads(ln) for ln in lines]
        events = [e for e in events if e.get("user", {}).get("username") not in SETUP_USERS]
        started = {e["auditID"] for e in events if e["stage"] == "RequestReceived"}
        done = {e["auditID"] for e in events if e["stage"] in ("ResponseComplete", "Panic")}
        if started <= done or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


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
    with Kube() as kube:
        print(f"record-demo: control plane up in {kube.start_seconds:.1f}s", file=sys.stderr)
        setup(kube)
        for ns, sa in (("ci", "deployer"), ("monitoring", "prometheus-operator"),
                       ("team-a", "web"), ("team-b", "batch-runner")):  # fmt: skip
            kube.sa_kubeconfig(ns, sa)  # mint tokens before recording starts
        time.sleep(1)
        offset = kube.audit_log_path.stat().st_size
        scenario(kube)
        events = scenario_events(kube, offset)
        args.out.mkdir(parents=True, exist_ok=True)
        rbac_file = args.out / "rbac.yaml"
        subprocess.run([str(REPO / ".venv" / "bin" / "rbac-advisor"), "snapshot",
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
