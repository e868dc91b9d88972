"""A small multi-team cluster with over-broad RBAC, and the traffic its people and workloads send.

Shared by scripts/record-demo.py (which records fixtures/demo from it) and by
tests/test_review_loop.py (which reviews it on a live apiserver, applies the result and
replays the same traffic). Everything runs against a tests/kube.py control plane
(tests/traffic.py has the step recorder and the audit-log helpers):

- setup(kube): namespaces, service accounts, RBAC as real clusters have it (cluster-admin for
  CI, `edit`/`view` for groups, a wildcard Role, `*` reads for an operator, an aggregated
  ClusterRole, idle bindings), a few objects; returns once the apiserver's RBAC cache and
  the aggregation controller have caught up. All of it as `admin` (system:masters).
- drive(kube): the traffic, as people (the built kubectl, static tokens, impersonation) and
  service accounts (kubectl and the Python client, TokenRequest tokens). Returns one Outcome
  per command or call: what it was and whether authorization let it through.
- reset(kube): removes what the traffic created, so drive() sends the same requests again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kube import DEFAULT_USERS, Kube
from traffic import Driver, Outcome, sa_user, sar_allowed, wait_until

RBAC = "rbac.authorization.k8s.io"
NAMESPACES = ("team-a", "team-b", "ci", "monitoring")
AGG_LABEL = "rbac.example.com/aggregate-to-platform-reader"
# A person with cluster-admin through a ClusterRoleBinding, not system:masters: applies the
# review's output, so the apiserver's escalation check runs for real. Bound only after the
# review (tests/test_review_loop.py); the scenario itself never uses it.
OPS_ADMIN = "ops-admin"
USERS: dict[str, tuple[str, ...]] = {**DEFAULT_USERS, OPS_ADMIN: ()}
SERVICE_ACCOUNTS = (
    ("ci", "deployer"),
    ("ci", "old-deployer"),
    ("monitoring", "prometheus-operator"),
    ("team-a", "web"),
    ("team-b", "batch-runner"),
)
# Service accounts that send traffic (tokens minted during setup, before recording).
ACTIVE_SERVICE_ACCOUNTS = (
    ("ci", "deployer"),
    ("monitoring", "prometheus-operator"),
    ("team-a", "web"),
    ("team-b", "batch-runner"),
)
# Objects the traffic creates and leaves behind: (client API class, kind, namespace, name).
LEFTOVERS = (
    ("AppsV1Api", "deployment", "team-a", "web"),
    ("AppsV1Api", "deployment", "team-b", "web"),
    ("CoreV1Api", "config_map", "team-a", "web-release"),
    ("BatchV1Api", "job", "team-b", "nightly-report"),
)


# ---- RBAC object builders ----------------------------------------------------------------


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


PLATFORM_READER_PARTS = (
    crole("platform-reader-nodes", [rule([""], ["nodes", "namespaces"], ["get", "list"])],
          labels={AGG_LABEL: "true"}),
    crole("platform-reader-storage",
          [rule([""], ["persistentvolumes"], ["get", "list"]),
           rule(["storage.k8s.io"], ["storageclasses"], ["get", "list"])],
          labels={AGG_LABEL: "true"}),
)  # fmt: skip
CLUSTER_ROLES = (
    crole("monitoring-reader", [rule(["*"], ["*"], ["get", "list", "watch"])]),
    crole("platform-reader", [], aggregate=AGG_LABEL),
    *PLATFORM_READER_PARTS,
    crole("rbac-auditor", [rule([RBAC], ["roles", "rolebindings", "clusterroles",
                                         "clusterrolebindings"], ["get", "list", "watch"]),
                           rule([""], ["namespaces"], ["get", "list"])]),
    crole("support-impersonator", [rule([""], ["users"], ["impersonate"], ["alice"]),
                                   rule([""], ["groups"], ["impersonate"], ["team-a-devs"])]),
)  # fmt: skip
ROLES = (  # (namespace, body)
    ("team-b", {"metadata": {"name": "team-b-anything"}, "rules": [rule(["*"], ["*"], ["*"])]}),
    ("team-a", {"metadata": {"name": "web-config"}, "rules": [
        rule([""], ["configmaps"], ["get", "list", "watch"]),
        rule([""], ["secrets"], ["get"], ["web-tls"])]}),
    ("team-b", {"metadata": {"name": "batch-runner"}, "rules": [
        rule(["batch"], ["jobs"], ["create", "get", "list", "delete"])]}),
)  # fmt: skip
CLUSTER_ROLE_BINDINGS = (
    binding("ci-deployer-cluster-admin", "ClusterRole", "cluster-admin",
            [subject("ServiceAccount", "deployer", "ci")]),
    binding("old-ci-edit", "ClusterRole", "edit",
            [subject("ServiceAccount", "old-deployer", "ci")]),
    binding("devs-view", "ClusterRole", "view",
            [subject("Group", "team-a-devs"), subject("Group", "team-b-devs")]),
    binding("monitoring-reader", "ClusterRole", "monitoring-reader",
            [subject("ServiceAccount", "prometheus-operator", "monitoring")]),
    binding("platform-reader", "ClusterRole", "platform-reader", [subject("Group", "platform")]),
    binding("rbac-auditors", "ClusterRole", "rbac-auditor", [subject("Group", "auditors")]),
    binding("support-impersonation", "ClusterRole", "support-impersonator",
            [subject("User", "erin")]),
)  # fmt: skip
ROLE_BINDINGS = (
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
)  # fmt: skip


# ---- setup --------------------------------------------------------------------------------


def setup(kube: Kube) -> None:
    """The cluster as a platform team would have left it (all as `admin`).

    Returns once default service accounts exist, the aggregated ClusterRole is filled and the
    apiserver's RBAC cache shows the last object of each kind, and after minting the tokens of
    the service accounts that send traffic.
    """
    from kubernetes import client as kc

    api = kube.admin_client()
    core, rbac = kc.CoreV1Api(api), kc.RbacAuthorizationV1Api(api)
    for ns in NAMESPACES:
        kube.ensure_namespace(ns)
    for ns, sa in SERVICE_ACCOUNTS:
        core.create_namespaced_service_account(ns, {"metadata": {"name": sa}})
    for body in CLUSTER_ROLES:
        rbac.create_cluster_role(body)
    for ns, body in ROLES:
        rbac.create_namespaced_role(ns, body)
    for body in CLUSTER_ROLE_BINDINGS:
        rbac.create_cluster_role_binding(body)
    for body in ROLE_BINDINGS:
        rbac.create_namespaced_role_binding(body["metadata"]["namespace"], body)

    def defaults_and_aggregation() -> bool:
        for ns in NAMESPACES:  # the serviceaccount controller's `default`; pods need it
            core.read_namespaced_service_account("default", ns)
        rules = rbac.read_cluster_role("platform-reader").rules or []
        want = sum(len(part["rules"]) for part in PLATFORM_READER_PARTS)
        return len(rules) == want

    wait_until(defaults_and_aggregation, "default service accounts and aggregated platform-reader")
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
    for ns, sa in ACTIVE_SERVICE_ACCOUNTS:
        kube.sa_kubeconfig(ns, sa)
    wait_rbac_loaded(kube)


def wait_rbac_loaded(kube: Kube, timeout: float = 60) -> None:
    """Wait until the apiserver's RBAC cache holds setup()'s objects.

    The authorizer reads each RBAC kind from its own watch, in write order, so once the last
    binding and role of each kind written (and the aggregation controller's update of
    platform-reader) decide requests, everything written before them does too.
    """
    batch_user, batch_groups = sa_user("team-b", "batch-runner")
    sentinels = [
        # ClusterRoleBinding support-impersonation -> ClusterRole support-impersonator (last)
        lambda: sar_allowed(kube, "erin", "impersonate", "users", name="alice"),
        # RoleBinding batch-runner -> Role batch-runner (last)
        lambda: sar_allowed(
            kube,
            batch_user,
            "create",
            "jobs",
            group="batch",
            namespace="team-b",
            groups=batch_groups,
        ),
        # every part aggregated into platform-reader
        lambda: sar_allowed(kube, "erin", "list", "namespaces", groups=["platform"]),
        lambda: sar_allowed(
            kube, "erin", "list", "storageclasses", group="storage.k8s.io", groups=["platform"]
        ),
    ]
    wait_until(lambda: all(s() for s in sentinels), "RBAC cache shows the setup", timeout)


def reset(kube: Kube, timeout: float = 60) -> None:
    """Delete what drive() created and left behind, and wait until it is gone."""
    from kubernetes import client as kc

    api = kube.admin_client()
    apis = {"AppsV1Api": kc.AppsV1Api(api), "CoreV1Api": kc.CoreV1Api(api),
            "BatchV1Api": kc.BatchV1Api(api)}  # fmt: skip

    def gone(group: str, kind: str, ns: str, name: str, delete: bool = False) -> bool:
        client = apis[group]
        try:
            if delete:
                getattr(client, f"delete_namespaced_{kind}")(
                    name, ns, propagation_policy="Background"
                )
            getattr(client, f"read_namespaced_{kind}")(name, ns)
        except kc.ApiException as err:
            if err.status == 404:
                return True
            raise
        return False

    for obj in LEFTOVERS:
        gone(*obj, delete=True)
    wait_until(lambda: all(gone(*o) for o in LEFTOVERS), "traffic objects deleted", timeout)


# ---- traffic ------------------------------------------------------------------------------

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
RELEASE_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: web-release, namespace: team-a}}
data: {{version: "{version}"}}
"""


def drive(kube: Kube, log: Callable[[str], None] | None = None) -> list[Outcome]:
    """Real requests from people and workloads; denials are part of the story."""
    d = Driver(kube, log)
    k = d.kubectl

    deployer = kube.sa_kubeconfig("ci", "deployer")
    for ns, image in (("team-a", "nginx:1.27"), ("team-b", "busybox:1.36")):
        k(deployer, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="web", ns=ns, image=image))
    k(deployer, "get", "deployments", "-A")
    k(deployer, "set", "image", "deployment/web", "web=nginx:1.28", "-n", "team-a")
    k(deployer, "apply", "-f", "-",
      stdin=DEPLOYMENT.format(name="web", ns="team-a", image="nginx:1.29"))  # fmt: skip
    for version in ("1.29", "1.29.1"):  # server-side apply: creates, then updates
        k(deployer, "apply", "--server-side", "--field-manager=ci", "-f", "-",
          stdin=RELEASE_CONFIGMAP.format(version=version))  # fmt: skip
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

    python_workloads(d)
    return d.outcomes


def python_workloads(d: Driver) -> None:
    """Service accounts talking through the Python client, as in-cluster workloads do."""
    from kubernetes import client as kc

    def core(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda api: f(kc.CoreV1Api(api))

    def batch(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda api: f(kc.BatchV1Api(api))

    mon = ("monitoring", "prometheus-operator")
    d.python(*mon, "list pods (all namespaces)", core(lambda c: c.list_pod_for_all_namespaces()))
    d.python(*mon, "list nodes", core(lambda c: c.list_node()))
    d.python(*mon, "list services (all namespaces)",
             core(lambda c: c.list_service_for_all_namespaces()))  # fmt: skip
    d.python(*mon, "watch pods -n team-a", core(lambda c: c.list_namespaced_pod(
        "team-a", watch=True, timeout_seconds=1, _preload_content=False)))  # fmt: skip

    web = ("team-a", "web")
    d.python(*web, "get configmap web-config",
             core(lambda c: c.read_namespaced_config_map("web-config", "team-a")))  # fmt: skip
    d.python(*web, "get secret web-tls",
             core(lambda c: c.read_namespaced_secret("web-tls", "team-a")))  # fmt: skip
    d.python(*web, "get secret db-password",
             core(lambda c: c.read_namespaced_secret("db-password", "team-a")))  # fmt: skip

    job = {
        "metadata": {"name": "nightly-report"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "r", "image": "busybox"}],
        }}},
    }  # fmt: skip
    runner = ("team-b", "batch-runner")
    d.python(*runner, "create job", batch(lambda b: b.create_namespaced_job("team-b", job)))
    d.python(*runner, "get job nightly-report",
             batch(lambda b: b.read_namespaced_job("nightly-report", "team-b")))  # fmt: skip
    d.python(*runner, "list jobs", batch(lambda b: b.list_namespaced_job("team-b")))
