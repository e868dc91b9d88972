"""`can-i`: resource arguments, identities, answers, and the command line (kubectl's exit codes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rbac_builders import corpus_dir, cr, rb, rule, snap
from typer.testing import CliRunner

from rbac_advisor.authorizer import Authorizer
from rbac_advisor.cani import Question, access_for, ask, identity_for
from rbac_advisor.cli import app
from rbac_advisor.errors import InputError
from rbac_advisor.rbac import RBAC_GROUP as RBAC
from rbac_advisor.rbac import Access, Identity

SA_GROUPS = ("system:authenticated", "system:serviceaccounts", "system:serviceaccounts:ns")


@pytest.mark.parametrize(
    ("resource", "name", "namespace", "expected"),
    [
        ("pods", "", "ns", Access("get", "", "pods", "", "ns")),
        ("po", "x", "ns", Access("get", "", "pods", "", "ns", "x")),
        ("pod/log", "x", "ns", Access("get", "", "pods", "log", "ns", "x")),
        ("deploy", "", "ns", Access("get", "apps", "deployments", "", "ns")),
        ("deployments.apps/scale", "", "ns", Access("get", "apps", "deployments", "scale", "ns")),
        ("deployments.v1.apps", "", "ns", Access("get", "apps", "deployments", "", "ns")),
        ("Widgets.example.com", "", "ns", Access("get", "example.com", "widgets", "", "ns")),
        ("nodes", "n1", "ns", Access("get", "", "nodes", "", "", "n1")),  # cluster-scoped
        ("namespaces", "team", "ns", Access("get", "", "namespaces", "", "team", "team")),
        ("clusterroles.rbac.authorization.k8s.io", "", "ns", Access("get", RBAC, "clusterroles")),
        ("*", "", "ns", Access("get", "", "*", "", "ns")),
        ("/healthz", "", "ns", Access(verb="get", path="/healthz", resource_request=False)),
    ],
)  # fmt: skip
def test_access_for(resource: str, name: str, namespace: str, expected: Access) -> None:
    access, notes = access_for(Question("get", resource, name, namespace))
    assert access == expected
    assert notes == []


def test_unknown_resource_assumes_core_group_with_a_note() -> None:
    access, notes = access_for(Question("get", "widgets", namespace="ns"))
    assert access == Access("get", "", "widgets", "", "ns")
    assert len(notes) == 1 and "core API group" in notes[0]


def test_all_namespaces_and_bad_input() -> None:
    assert access_for(Question("list", "pods", all_namespaces=True))[0].namespace == ""
    with pytest.raises(InputError):
        access_for(Question("get", "/healthz", name="x"))
    with pytest.raises(InputError):
        access_for(Question("get", ""))


@pytest.mark.parametrize(
    ("user", "groups", "expected"),
    [
        ("alice", (), ("system:authenticated",)),
        ("alice", ("dev",), ("dev", "system:authenticated")),
        ("alice", ("system:unauthenticated",), ("system:unauthenticated",)),
        ("system:anonymous", (), ()),
        ("system:serviceaccount:ns:sa", (), SA_GROUPS),
        # As impersonation: explicit groups replace the service-account ones.
        ("system:serviceaccount:ns:sa", ("g",), ("g", "system:authenticated")),
    ],
)  # fmt: skip
def test_identity_for(user: str, groups: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert identity_for(user, groups) == Identity(user, expected)


def test_ask_reasons_masters_and_nodes() -> None:
    authz = Authorizer(
        snap(
            cr("read", rule("get", "", "pods")),
            rb("ns", "ClusterRole:read", "Group:system:serviceaccounts:ns", name="sa-read"),
        )
    )
    answer = ask(authz, Question("get", "pods", namespace="ns", user="system:serviceaccount:ns:x"))
    assert answer.allowed
    assert answer.reason() == (
        'RBAC: allowed by RoleBinding "sa-read/ns" of ClusterRole "read" to Group '
        '"system:serviceaccounts:ns"'
    )
    assert not ask(
        authz, Question("get", "pods", namespace="other", user="system:serviceaccount:ns:x")
    ).allowed
    root = ask(authz, Question("delete", "nodes", user="root", groups=("system:masters",)))
    assert root.allowed and root.privileged and root.grants == ()
    node = ask(authz, Question("get", "secrets", user="system:node:n1", groups=("system:nodes",)))
    assert not node.allowed and any("Node authorizer" in n for n in node.notes)


runner = CliRunner()


@pytest.fixture
def rbac_file(tmp_path: Path) -> Path:
    path = tmp_path / "rbac.yaml"
    path.write_text(
        """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pod-reader}
rules:
- {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list]}
- {apiGroups: [""], resources: [pods], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs, namespace: dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-reader}
subjects:
- {kind: Group, name: developers}
"""
    )
    return path


def test_cli_yes_prints_reason_and_exits_0(rbac_file: Path) -> None:
    r = runner.invoke(
        app,
        [
            "can-i",
            "get",
            "pods/log",
            "-n",
            "dev",
            "--as",
            "ann",
            "--as-group",
            "developers",
            "--rbac",
            str(rbac_file),
        ],
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "yes\n"
    assert r.stderr == (
        'RBAC: allowed by RoleBinding "devs/dev" of ClusterRole "pod-reader" to Group '
        '"developers"\n'
    )


def test_cli_no_exits_1_like_kubectl(rbac_file: Path) -> None:
    r = runner.invoke(
        app,
        [
            "can-i",
            "delete",
            "pods",
            "-n",
            "dev",
            "--as",
            "ann",
            "--as-group",
            "developers",
            "--rbac",
            str(rbac_file),
        ],
    )
    assert r.exit_code == 1
    assert r.stdout == "no\n"
    assert r.stderr == (
        'no RBAC rule allows User "ann" (groups: developers, system:authenticated) to delete '
        "pods in dev\n"
    )


def test_cli_all_lists_every_grant_and_quiet_prints_nothing(rbac_file: Path) -> None:
    args = [
        "can-i",
        "get",
        "pods",
        "x",
        "-n",
        "dev",
        "--as",
        "ann",
        "--as-group",
        "developers",
        "--rbac",
        str(rbac_file),
    ]
    r = runner.invoke(app, [*args, "--all"])
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "yes" and len(lines) == 3
    assert lines[1].endswith(
        'rule 0 {APIGroups:[""], Resources:["pods" "pods/log"], Verbs:["get" "list"]}'
    )
    assert lines[2].endswith('rule 1 {APIGroups:[""], Resources:["pods"], Verbs:["get"]}')
    r = runner.invoke(app, [*args, "--quiet"])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")


def test_cli_bad_input_exits_3_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: Role\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: r}\n"
        "rules: [{verbs: []}]\n"
    )
    r = runner.invoke(app, ["can-i", "get", "pods", "--as", "ann", "--rbac", str(bad)])
    assert r.exit_code == 3
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(
        f"error: {bad}: Role/r: rules[0].verbs"
    )


def test_cli_on_bootstrap_policy() -> None:
    base = str(corpus_dir() / "rbac/bootstrap-policy/k8s-recent")
    r = runner.invoke(
        app,
        [
            "can-i",
            "get",
            "/healthz",
            "--as",
            "system:anonymous",
            "--as-group",
            "system:unauthenticated",
            "--rbac",
            base,
        ],
    )
    assert (r.exit_code, r.stdout) == (0, "yes\n")
    assert 'ClusterRoleBinding "system:public-info-viewer"' in r.stderr
    r = runner.invoke(
        app, ["can-i", "create", "selfsubjectaccessreviews", "--as", "alice", "--rbac", base]
    )
    assert (r.exit_code, r.stdout) == (0, "yes\n")
    assert 'ClusterRoleBinding "system:basic-user"' in r.stderr
    r = runner.invoke(app, ["can-i", "list", "secrets", "-A", "--as", "alice", "--rbac", base])
    assert (r.exit_code, r.stdout) == (1, "no\n")
