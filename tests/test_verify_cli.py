"""`verify`: replay audit traffic against rbac + apply - prune; exit 0 unchanged, 5 changed.

The audit loading belongs to the `usage` command; these tests read their small audit files
through a minimal adapter so they exercise verify's own logic (loading RBAC, the intended
state, replay, output and exit codes).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rbac_advisor.cli import app
from rbac_advisor.cli.commands import verify as verify_cmd
from rbac_advisor.events import Decision
from rbac_advisor.rbac import Access, Identity

runner = CliRunner()

RBAC = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: edit-pods}
  rules:
  - {apiGroups: [""], resources: [pods], verbs: [get, list, create, delete]}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: alice-edit, namespace: team}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit-pods}
  subjects: [{kind: User, name: alice}]
"""

MINIMAL = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: alice-minimal, namespace: team}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-minimal, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: alice-minimal}
subjects: [{kind: User, name: alice}]
"""

PRUNE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-edit, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit-pods}
"""


def event(
    user: str, verb: str, resource: str, ns: str, decision: str = "allow", **extra: str
) -> str:
    ev: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "objectRef": {"resource": resource, "namespace": ns, **extra},
    }
    if decision:
        ev["annotations"] = {"authorization.k8s.io/decision": decision}
    return json.dumps(ev)


def read_audit(
    paths: list[Path], skip_malformed: bool, jobs: int | None = None
) -> tuple[list[Any], list[str]]:
    """Minimal stand-in for the usage loader: (identity, access, decision, count)."""
    counts: collections.Counter[tuple[Identity, Access, Decision]] = collections.Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            ev = json.loads(line)
            ref = ev["objectRef"]
            identity = Identity(ev["user"]["username"], tuple(sorted(ev["user"]["groups"])))
            access = Access(
                ev["verb"], ref.get("apiGroup", ""), ref["resource"], ref.get("subresource", ""),
                ref.get("namespace", ""), ref.get("name", ""),
            )  # fmt: skip
            raw = ev.get("annotations", {}).get("authorization.k8s.io/decision", "unknown")
            counts[(identity, access, Decision(raw))] += 1
    return [(i, a, d, n) for (i, a, d), n in counts.items()], []


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr(verify_cmd, "_load_entries", read_audit)
    out = {}
    for name, text in {"rbac.yaml": RBAC, "roles.yaml": MINIMAL, "prune.yaml": PRUNE}.items():
        out[name] = tmp_path / name
        out[name].write_text(text)
    out["audit"] = tmp_path / "audit.log"
    out["audit"].write_text(
        "\n".join(
            [
                event("alice", "list", "pods", "team"),
                event("alice", "list", "pods", "team"),
                event("alice", "get", "pods", "team", name="web-1"),
                event("alice", "delete", "pods", "team", name="web-1"),
                event("bob", "get", "pods", "team", decision="forbid", name="web-1"),
                event("alice", "create", "pods", "team", decision=""),  # no annotation
            ]
        )
        + "\n"
    )
    return out


def args(f: dict[str, Path], *more: str) -> list[str]:
    return ["verify", "--audit", str(f["audit"]), "--rbac", str(f["rbac.yaml"]), *more]


def test_nothing_applied_nothing_changes(files: dict[str, Path]) -> None:
    r = runner.invoke(app, args(files))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("0 of 5 distinct requests would change")


def test_minimal_roles_without_prune_change_nothing(files: dict[str, Path]) -> None:
    r = runner.invoke(app, args(files, "--apply", str(files["roles.yaml"])))
    assert r.exit_code == 0, r.stdout


def test_prune_breaks_delete_and_create(files: dict[str, Path]) -> None:
    r = runner.invoke(
        app, args(files, "--apply", str(files["roles.yaml"]), "--prune", str(files["prune.yaml"]))
    )
    assert r.exit_code == 5, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == (
        "allow -> forbid  alice  create pods in team  x1  "
        "(no logged decision; compared with current RBAC)"
    )
    assert lines[1] == (
        '    was RBAC: allowed by RoleBinding "alice-edit/team" of ClusterRole "edit-pods" '
        'to User "alice"'
    )
    assert lines[2] == 'allow -> forbid  alice  delete pods "web-1" in team  x1'
    assert lines[4].startswith(
        "2 of 5 distinct requests would change (2 observed requests would be denied"
    )


def test_json_output(files: dict[str, Path]) -> None:
    r = runner.invoke(app, args(files, "--prune", str(files["prune.yaml"]), "--json"))
    assert r.exit_code == 5
    doc = json.loads(r.stdout)
    assert doc["requests"] == 6 and doc["distinct"] == 5 and doc["evaluated"] == 1
    assert sorted((c["access"]["verb"], c["count"]) for c in doc["changes"]) == [
        ("create", 1), ("delete", 1), ("get", 1), ("list", 2),
    ]  # fmt: skip
    assert all(c["user"] == "alice" and c["after"] == "forbid" for c in doc["changes"])


def test_new_access_is_a_change(files: dict[str, Path], tmp_path: Path) -> None:
    grant = tmp_path / "grant.yaml"
    grant.write_text(MINIMAL.replace("alice", "bob"))
    r = runner.invoke(app, args(files, "--apply", str(grant)))
    assert r.exit_code == 5
    assert r.stdout.splitlines()[0] == 'forbid -> allow  bob  get pods "web-1" in team  x1'


def test_roleref_change_is_warned(files: dict[str, Path], tmp_path: Path) -> None:
    moved = tmp_path / "moved.yaml"
    moved.write_text(
        MINIMAL.split("---\n")[1].replace(
            "name: alice-minimal, namespace", "name: alice-edit, namespace"
        )
    )
    r = runner.invoke(app, args(files, "--apply", str(moved), "--apply", str(files["roles.yaml"])))
    assert "warning: RoleBinding/team/alice-edit: apply changes roleRef" in r.stderr


def test_bad_apply_file_exits_3(files: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: RoleBinding\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: x}\n"
    )
    r = runner.invoke(app, args(files, "--apply", str(bad)))
    assert r.exit_code == 3
    assert r.stderr == f"error: {bad}: RoleBinding/x: roleRef: required\n"


def test_real_audit_log_and_bootstrap_policy(tmp_path: Path) -> None:
    """End to end with the real usage loader on captured audit events."""
    from rbac_builders import corpus_dir

    audit = corpus_dir() / "audit/native/falco-k8s_audit"
    rbac = corpus_dir() / "rbac/bootstrap-policy/k8s-master-2018-07-28"
    r = runner.invoke(app, ["verify", "--audit", str(audit), "--rbac", str(rbac), "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["changes"] == [] and doc["requests"] > 0
    prune = tmp_path / "prune.yaml"
    prune.write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
        "metadata: {name: 'system:controller:replicaset-controller'}\n"
        "roleRef: {kind: ClusterRole, name: 'system:controller:replicaset-controller'}\n"
    )
    args = ["verify", "--audit", str(audit), "--rbac", str(rbac), "--prune", str(prune), "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 5, r.stderr
    doc = json.loads(r.stdout)
    got = sorted((c["access"]["namespace"], c["count"]) for c in doc["changes"])
    assert got == [("default", 7), ("kube-public", 1), ("kube-system", 1)]
    # The reason we give for the lost allow is the one the apiserver logged for these events.
    logged = (
        'RBAC: allowed by ClusterRoleBinding "system:controller:replicaset-controller" of '
        'ClusterRole "system:controller:replicaset-controller" to ServiceAccount '
        '"replicaset-controller/kube-system"'
    )
    assert {c["reason"] for c in doc["changes"]} == {logged}
    assert all(
        c["access"]["verb"] == "create" and c["access"]["resource"] == "pods"
        for c in doc["changes"]
    )
