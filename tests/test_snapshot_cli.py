"""`rbac-advisor snapshot` against a real kube-apiserver."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import Kube, free_port
from kubernetes import client as kc
from typer.testing import CliRunner

from rbac_advisor import cluster
from rbac_advisor.cli.app import app
from rbac_advisor.manifests import parse_objects

RBAC = "rbac.authorization.k8s.io"
VOLATILE = ("managedFields", "uid", "resourceVersion", "creationTimestamp")


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def seeded(kube: Kube) -> None:
    kube.ensure_namespace("snap-a")
    rbac = kc.RbacAuthorizationV1Api(kube.admin_client())
    rbac.create_namespaced_role("snap-a", {
        "metadata": {"name": "cm-editor", "annotations": {"owner": "team-a"}},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a", "b"],
                   "verbs": ["get", "update"]}],
    })  # fmt: skip
    rbac.create_namespaced_role_binding("snap-a", {
        "metadata": {"name": "cm-editor"},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "cm-editor"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer"},
                     {"kind": "Group", "apiGroup": RBAC, "name": "team-a-devs"}],
    })  # fmt: skip
    rbac.create_cluster_role_binding({
        "metadata": {"name": "snap-view"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "mon", "namespace": "snap-a"}],
    })  # fmt: skip


@pytest.mark.cluster
def test_snapshot_round_trips_through_the_parser(kube: Kube, seeded: None, tmp_path: Path) -> None:
    out = tmp_path / "rbac.yaml"
    res = run("snapshot", "--kubeconfig", str(kube.kubeconfig("admin")), "-o", str(out))
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert res.stderr.startswith("snapshot: ") and f"-> {out}" in res.stderr

    doc = yaml.safe_load(out.read_text())
    assert doc["apiVersion"] == "v1" and doc["kind"] == "List"
    live = cluster.fetch(str(kube.kubeconfig("admin")), None, False, with_namespaces=True)
    assert len(doc["items"]) == len(live)
    from_file = parse_objects([(str(out), doc)])
    from_live = parse_objects((f"live:{i}", obj) for i, obj in enumerate(live))
    assert from_file.roles == from_live.roles
    assert from_file.bindings == from_live.bindings
    assert from_file.namespaces == from_live.namespaces
    names = {(r.kind, r.namespace, r.name) for r in from_file.roles}
    assert ("Role", "snap-a", "cm-editor") in names
    assert ("ClusterRole", "", "admin") in names
    rb = next(b for b in from_file.bindings if b.name == "cm-editor")
    assert {s.name for s in rb.subjects} == {"deployer", "team-a-devs"}


@pytest.mark.cluster
def test_snapshot_file_is_clean_sorted_and_stable(kube: Kube, seeded: None, tmp_path: Path) -> None:
    cfg = str(kube.kubeconfig("admin"))
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert run("snapshot", "--kubeconfig", cfg, "-o", str(a)).exit_code == 0
    assert run("snapshot", "--kubeconfig", cfg, "--page-size", "7", "-o", str(b)).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    items = yaml.safe_load(a.read_text())["items"]
    for obj in items:
        assert not set(VOLATILE) & set(obj["metadata"]), obj["metadata"]
        assert list(obj)[:3] == ["apiVersion", "kind", "metadata"]
    order = {"ClusterRole": 0, "ClusterRoleBinding": 1, "Role": 2, "RoleBinding": 3,
             "Namespace": 4}  # fmt: skip
    keys = [(order[o["kind"]], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for o in items]  # fmt: skip
    assert keys == sorted(keys)
    role = next(o for o in items if o["metadata"]["name"] == "cm-editor" and o["kind"] == "Role")
    assert role == {
        "apiVersion": f"{RBAC}/v1", "kind": "Role",
        "metadata": {"name": "cm-editor", "namespace": "snap-a",
                     "annotations": {"owner": "team-a"}},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a", "b"],
                   "verbs": ["get", "update"]}],
    }  # fmt: skip


@pytest.mark.cluster
def test_snapshot_to_stdout(kube: Kube, seeded: None) -> None:
    res = run("snapshot", "--kubeconfig", str(kube.kubeconfig("admin")), "-o", "-")
    assert res.exit_code == 0, res.stderr
    doc = yaml.safe_load(res.stdout)
    assert any(o["metadata"]["name"] == "snap-view" for o in doc["items"])
    assert "-> stdout" in res.stderr


@pytest.mark.cluster
def test_forbidden_is_exit_4_with_one_line(kube: Kube, tmp_path: Path) -> None:
    out = tmp_path / "x.yaml"
    res = run("snapshot", "--kubeconfig", str(kube.kubeconfig("nobody")), "-o", str(out))
    assert res.exit_code == 4
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: the cluster refused to list roles.rbac.authorization.k8s.io")
    assert 'User "nobody"' in lines[0] and "reader-clusterrole.yaml" in lines[0]
    assert not out.exists()


@pytest.mark.cluster
def test_bad_token_is_exit_4(kube: Kube, tmp_path: Path) -> None:
    cfg = kube.write_kubeconfig(tmp_path / "bad.yaml", "wrong")
    res = run("snapshot", "--kubeconfig", str(cfg), "-o", str(tmp_path / "x.yaml"))
    assert res.exit_code == 4
    assert res.stderr.count("\n") == 1 and "credentials rejected" in res.stderr


def test_unreachable_is_exit_4(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))  # fmt: skip
    res = run("snapshot", "--kubeconfig", str(cfg), "-o", str(tmp_path / "x.yaml"))
    assert res.exit_code == 4
    assert res.stderr == f"error: cannot reach https://127.0.0.1:{port}: " + (
        "[Errno 111] Connection refused\n"
    )


def test_in_cluster_excludes_kubeconfig(tmp_path: Path) -> None:
    res = run("snapshot", "--in-cluster", "--kubeconfig", "x", "-o", str(tmp_path / "x.yaml"))
    assert res.exit_code == 2
    assert "--in-cluster cannot be combined" in res.stderr


def test_in_cluster_outside_a_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    res = run("snapshot", "--in-cluster", "-o", str(tmp_path / "x.yaml"))
    assert res.exit_code == 4
    assert res.stderr.startswith("error: in-cluster service account:")


def test_output_is_required() -> None:
    res = run("snapshot")
    assert res.exit_code == 2


def test_an_output_that_is_no_regular_file_fails_before_the_cluster_is_read(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for out in (tmp_path, fifo):  # no kubeconfig: reading the cluster would fail with 4
        res = run("snapshot", "--kubeconfig", str(tmp_path / "none"), "-o", str(out))
        assert res.exit_code == 3, res.output
        assert res.stderr.startswith(f"error: {out}: cannot write: it is a ")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.cluster
def test_unwritable_output_is_exit_3(kube: Kube, tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "x.yaml"
    res = run("snapshot", "--kubeconfig", str(kube.kubeconfig("admin")), "-o", str(out))
    assert res.exit_code == 3
    assert res.stderr == f"error: {out}: cannot write: directory {out.parent} does not exist\n"


@pytest.mark.cluster
def test_in_cluster_with_the_example_reader_binding(
    kube: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pod environment: service host/port variables plus token and CA files. The client
    # library reads those files from fixed /var/run/secrets paths, so they are redirected.
    import kubernetes.config.incluster_config as incluster

    repo = Path(__file__).resolve().parents[1]
    kube.kubectl("admin", "apply", "-f", str(repo / "deploy" / "reader-clusterrole.yaml"))
    token = tmp_path / "token"
    token.write_text(kube.sa_token("rbac-advisor", "rbac-advisor"))
    sa = "system:serviceaccount:rbac-advisor:rbac-advisor"
    for resource in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):
        kube.wait_allowed(sa, "list", resource, group=RBAC)
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(kube.ca_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube.port))
    out = tmp_path / "rbac.yaml"
    res = run("snapshot", "--in-cluster", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    names = {o["metadata"]["name"] for o in yaml.safe_load(out.read_text())["items"]}
    assert {"rbac-advisor-reader", "cluster-admin", "system:discovery"} <= names
