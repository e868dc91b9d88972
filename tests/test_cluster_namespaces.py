"""The cluster's namespaces, read live or from a snapshot file, steer ClusterRoleBinding moves.

A ClusterRoleBinding used only in namespaces is moved into RoleBindings there; a RoleBinding
in a namespace the cluster lacks cannot be applied, so such a binding stays cluster-wide.
Live reads list the namespaces on a real kube-apiserver; an identity that may not list them
gets a warning and a review that does not know them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import Kube
from kubernetes import client as kc
from typer.testing import CliRunner

from rbac_advisor import cluster, manifests
from rbac_advisor.analysis import AnalysisOptions, Result, run
from rbac_advisor.cli.app import app
from rbac_advisor.cli.rbacfiles import load_rbac
from rbac_advisor.cli.review import Inputs, load_snapshot
from rbac_advisor.diff import Observation
from rbac_advisor.events import Decision
from rbac_advisor.manifests import parse_objects
from rbac_advisor.rbac import Access, Binding, BindingKind, Identity, Snapshot

RBAC = "rbac.authorization.k8s.io"
USER = "ns-steered-user"
BINDING = "ns-steered-pods"
HOME, OTHER = "ns-steered-a", "ns-steered-b"
MISSING_WHY = "namespace(s) 'typo-ns' do not exist now"
ASSUMED = "the RoleBindings assume those namespaces exist"


def _observed(*namespaces: str) -> list[Observation]:
    """USER listing pods once in each namespace, allowed."""
    who = Identity(USER, ("system:authenticated",))
    return [
        Observation(who, Access("list", "", "pods", "", ns), Decision.ALLOW, 1, 0.0, 1.0,
                    frozenset({0}))
        for ns in namespaces
    ]  # fmt: skip


def _summary(result: Result) -> str:
    (change,) = [c for c in result.plan.changes if c.binding.name == BINDING]
    return change.summary


def _role_bindings(result: Result) -> list[str]:
    """Namespaces of the RoleBindings the plan writes for USER's binding."""
    return sorted(
        o.namespace
        for o in result.plan.apply
        if isinstance(o, Binding)
        and o.kind == BindingKind.ROLE_BINDING
        and any(s.name == USER for s in o.subjects)
    )


def _namespace_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in items if o["kind"] == "Namespace"]


@pytest.fixture(scope="module")
def steered(kube: Kube) -> None:
    """Two namespaces and a ClusterRoleBinding letting USER read pods everywhere."""
    for ns in (HOME, OTHER):
        kube.ensure_namespace(ns)
    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    rbac.create_cluster_role({
        "metadata": {"name": BINDING},
        "rules": [{"apiGroups": [""], "resources": ["pods", "secrets"],
                   "verbs": ["get", "list", "delete"]}],
    })  # fmt: skip
    rbac.create_cluster_role_binding({
        "metadata": {"name": BINDING},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": BINDING},
        "subjects": [{"kind": "User", "apiGroup": RBAC, "name": USER}],
    })  # fmt: skip


@pytest.fixture(scope="module")
def rbac_only(kube: Kube) -> Path:
    """Kubeconfig of a service account that may list the RBAC kinds but not namespaces."""
    ns, name = "ns-steered-sa", "rbac-only"
    user = f"system:serviceaccount:{ns}:{name}"
    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    rbac.create_cluster_role({
        "metadata": {"name": "ns-steered-rbac-only"},
        "rules": [{"apiGroups": [RBAC], "verbs": ["list"],
                   "resources": ["roles", "clusterroles", "rolebindings", "clusterrolebindings"]}],
    })  # fmt: skip
    rbac.create_cluster_role_binding({
        "metadata": {"name": "ns-steered-rbac-only"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "ns-steered-rbac-only"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    })  # fmt: skip
    cfg = kube.sa_kubeconfig(ns, name)
    for resource in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):
        kube.wait_allowed(user, "list", resource, group=RBAC)
    return cfg


# ---- reading namespaces from the live cluster --------------------------------------------------


@pytest.mark.cluster
def test_live_fetch_lists_existing_namespaces_by_name(kube: Kube, steered: None) -> None:
    cfg = str(kube.kubeconfig("admin"))
    items = cluster.fetch(cfg, None, False, with_namespaces=True, page_size=2)
    listed = _namespace_items(items)
    names = [o["metadata"]["name"] for o in listed]
    assert {HOME, OTHER, "default", "kube-system"} <= set(names)
    assert names == sorted(names)
    assert all(o == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
               for o, n in zip(listed, names, strict=True))  # fmt: skip
    live = kc.CoreV1Api(kube.admin_client()).list_namespace().items
    assert set(names) == {n.metadata.name for n in live if n.status.phase != "Terminating"}
    # Without the option only the four RBAC kinds come back, as before.
    assert not _namespace_items(cluster.fetch(cfg, None, False))
    snapshot = parse_objects(("cluster", o) for o in items)
    assert snapshot.namespaces == frozenset(names)


@pytest.mark.cluster
def test_a_terminating_namespace_is_left_out(kube: Kube) -> None:
    core = kc.CoreV1Api(kube.admin_client())
    ns = "ns-steered-dying"
    hold = "rbac-advisor.test/hold"
    core.create_namespace({"metadata": {"name": ns, "finalizers": [hold]}})
    core.delete_namespace(ns)
    try:
        assert core.read_namespace(ns).status.phase == "Terminating"
        items = cluster.fetch(str(kube.kubeconfig("admin")), None, False, with_namespaces=True)
        names = {o["metadata"]["name"] for o in _namespace_items(items)}
        assert ns not in names and "default" in names
    finally:
        core.patch_namespace(ns, {"metadata": {"finalizers": None}})


@pytest.mark.cluster
def test_forbidden_namespaces_give_a_warning_not_a_failure(
    kube: Kube, rbac_only: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rbac_advisor.cluster")
    items = cluster.fetch(str(rbac_only), None, False, with_namespaces=True)
    assert not _namespace_items(items)
    admin = cluster.fetch(str(kube.kubeconfig("admin")), None, False)
    assert len(items) == len(admin)  # every RBAC object is still there
    (record,) = [r for r in caplog.records if r.name == "rbac_advisor.cluster"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("this identity may not list namespaces; ")
    assert parse_objects(("cluster", o) for o in items).namespaces is None


@pytest.mark.cluster
def test_review_without_namespace_access_states_its_assumption(
    kube: Kube, steered: None, rbac_only: Path
) -> None:
    snapshot, _ = load_snapshot(Inputs(kubeconfig=rbac_only))
    assert snapshot.namespaces is None
    result = run(snapshot, _observed(HOME, "typo-ns"))
    assert _role_bindings(result) == [HOME, "typo-ns"]
    assert ASSUMED in _summary(result)


# ---- the review of a live snapshot --------------------------------------------------------------


@pytest.mark.cluster
def test_binding_used_in_a_missing_namespace_stays_cluster_wide(kube: Kube, steered: None) -> None:
    snapshot, source = load_snapshot(Inputs(kubeconfig=kube.kubeconfig("admin")))
    assert source.startswith("cluster ")
    assert snapshot.namespaces is not None and HOME in snapshot.namespaces
    assert "typo-ns" not in snapshot.namespaces
    result = run(snapshot, _observed(HOME, "typo-ns"), AnalysisOptions(measure=False))
    assert result.proof.sound
    assert _role_bindings(result) == []
    summary = _summary(result)
    assert "kept cluster-wide: " + MISSING_WHY in summary
    assert ASSUMED not in summary
    kept = [o for o in result.after.bindings if o.name == BINDING]
    assert [b.kind for b in kept] == [BindingKind.CLUSTER_ROLE_BINDING]


@pytest.mark.cluster
def test_binding_used_in_existing_namespaces_moves_to_role_bindings(
    kube: Kube, steered: None, tmp_path: Path
) -> None:
    snapshot, _ = load_snapshot(Inputs(kubeconfig=kube.kubeconfig("admin")))
    result = run(snapshot, _observed(HOME, OTHER), AnalysisOptions(measure=False))
    assert result.proof.sound
    assert _role_bindings(result) == [HOME, OTHER]
    summary = _summary(result)
    assert f"namespaced use moved to RoleBindings in {HOME}, {OTHER}" in summary
    assert ASSUMED not in summary and "do not exist" not in summary
    # The apiserver accepts what the plan writes.
    ours = [o for o in result.plan.apply if o.name.endswith(BINDING)]
    manifest = {"apiVersion": "v1", "kind": "List",
                "items": [manifests.to_manifest(o) for o in ours]}  # fmt: skip
    path = tmp_path / "roles.json"
    path.write_text(json.dumps(manifest))
    kube.kubectl("admin", "apply", "--dry-run=server", "-f", str(path))


# ---- the snapshot file -----------------------------------------------------------------------


@pytest.mark.cluster
def test_snapshot_file_keeps_the_namespaces(kube: Kube, steered: None, tmp_path: Path) -> None:
    out = tmp_path / "rbac.yaml"
    cfg = str(kube.kubeconfig("admin"))
    res = CliRunner().invoke(app, ["snapshot", "--kubeconfig", cfg, "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    items = yaml.safe_load(out.read_text())["items"]
    listed = _namespace_items(items)
    assert listed == items[-len(listed) :]  # after every RBAC object
    assert f"{len(listed)} Namespaces" in res.stderr
    live = parse_objects(
        ("cluster", o) for o in cluster.fetch(cfg, None, False, with_namespaces=True)
    )
    offline = load_rbac([out])
    assert offline.namespaces == live.namespaces and HOME in (offline.namespaces or ())
    assert offline.roles == live.roles and offline.bindings == live.bindings
    # Reviewed offline, the dump gives the live review's answer.
    result = run(offline, _observed(HOME, "typo-ns"), AnalysisOptions(measure=False))
    assert MISSING_WHY in _summary(result)


@pytest.mark.cluster
def test_snapshot_without_namespace_access_still_succeeds(rbac_only: Path, tmp_path: Path) -> None:
    out = tmp_path / "rbac.yaml"
    res = CliRunner().invoke(app, ["snapshot", "--kubeconfig", str(rbac_only), "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    assert "0 Namespaces" in res.stderr
    items = yaml.safe_load(out.read_text())["items"]
    assert items and not _namespace_items(items)
    assert load_rbac([out]).namespaces is None


# ---- reading Namespace objects from files (no cluster) ------------------------------------------


def _ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def test_a_whole_cluster_namespace_list_is_read() -> None:
    doc = {"apiVersion": "v1", "kind": "List",
           "items": [_ns("default"), _ns("kube-system"), _ns("team-a")]}  # fmt: skip
    snapshot = parse_objects([("dump", doc)])
    assert snapshot.namespaces == frozenset({"default", "kube-system", "team-a"})
    assert snapshot.ignored_objects == 3  # still no RBAC objects
    typed = {"apiVersion": "v1", "kind": "NamespaceList",
             "items": [{"metadata": {"name": n}} for n in ("default", "kube-system")]}  # fmt: skip
    assert parse_objects([("typed", typed)]).namespaces == frozenset({"default", "kube-system"})


@pytest.mark.parametrize(
    "docs",
    [
        [],
        [_ns("team-a")],  # an application's manifests: not the cluster's namespaces
        [_ns("default"), _ns("team-a")],
        [{"apiVersion": "v2", "kind": "Namespace", "metadata": {"name": "default"}},
         _ns("kube-system")],
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {}}, _ns("kube-system")],
    ],
)  # fmt: skip
def test_namespaces_stay_unknown_without_a_whole_list(docs: list[dict[str, Any]]) -> None:
    assert parse_objects(("f", d) for d in docs).namespaces is None


def test_analysis_uses_the_snapshot_namespaces() -> None:
    base = parse_objects([("rbac", {
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": BINDING},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "get"]}]},
            {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": BINDING},
             "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": BINDING},
             "subjects": [{"kind": "User", "apiGroup": RBAC, "name": USER}]},
            _ns("default"), _ns("kube-system"), _ns(HOME),
        ],
    })])  # fmt: skip
    assert base.namespaces == frozenset({"default", "kube-system", HOME})
    assert MISSING_WHY in _summary(run(base, _observed(HOME, "typo-ns")))
    assert _role_bindings(run(base, _observed(HOME))) == [HOME]
    unknown = Snapshot(base.roles, base.bindings)
    assert _role_bindings(run(unknown, _observed(HOME, "typo-ns"))) == [HOME, "typo-ns"]
