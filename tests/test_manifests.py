"""Manifests -> Snapshot: the real corpus loads, lists unwrap, invalid objects are refused."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
import yaml
from rbac_builders import corpus_dir

from rbac_advisor.errors import ManifestError
from rbac_advisor.manifests import ParseOptions, parse_objects, to_list, to_manifest
from rbac_advisor.rbac import (
    LabelRequirement,
    LabelSelector,
    PolicyRule,
    RoleKind,
    RoleRef,
    Snapshot,
    Subject,
)
from rbac_advisor.validation import rule_problems

RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


def _docs(paths: list[Path]) -> list[tuple[str, Any]]:
    return [(str(p), d) for p in paths for d in yaml.safe_load_all(p.read_text())]


def _raw_counts(paths: list[Path]) -> collections.Counter[str]:
    """Count object kinds straight from the YAML, walking Lists, without our parser."""
    counts: collections.Counter[str] = collections.Counter()

    def walk(obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        if obj.get("kind", "").endswith("List"):
            for item in obj.get("items") or []:
                walk(item)
            return
        rbac = str(obj.get("apiVersion", "")).startswith("rbac.authorization.k8s.io/")
        counts[obj["kind"] if rbac and obj["kind"] in RBAC_KINDS else "other"] += 1

    for p in paths:
        for d in yaml.safe_load_all(p.read_text()):
            walk(d)
    return counts


def _sets() -> list[Any]:
    """Each bootstrap version, and each component, as one consistent set of files."""
    out = [pytest.param("rbac/bootstrap-policy/k8s-master-2018-07-28", id="bootstrap-2018")]
    out.append(pytest.param("rbac/bootstrap-policy/k8s-recent", id="bootstrap-recent"))
    for name in [
        "argo-cd", "calico", "cert-manager", "cluster-autoscaler", "external-dns",
        "ingress-nginx", "kube-prometheus", "kube-state-metrics/examples/standard",
        "kube-state-metrics/examples/autosharding", "metrics-server", "prometheus-operator",
    ]:  # fmt: skip
        out.append(pytest.param(f"rbac/components/{name}", id=name))
    return out


@pytest.mark.parametrize("rel", _sets())
def test_corpus_loads_with_counts_computed_from_raw_yaml(rel: str) -> None:
    paths = sorted((corpus_dir() / rel).rglob("*.yaml"))
    assert paths
    snap = parse_objects(_docs(paths))
    raw = _raw_counts(paths)
    roles = collections.Counter(str(r.kind) for r in snap.roles)
    bindings = collections.Counter(str(b.kind) for b in snap.bindings)
    assert roles["ClusterRole"] == raw["ClusterRole"]
    assert roles["Role"] == raw["Role"]
    assert bindings["ClusterRoleBinding"] == raw["ClusterRoleBinding"]
    assert bindings["RoleBinding"] == raw["RoleBinding"]
    assert snap.ignored_objects == raw["other"]
    # Round trip: every object written back reads back equal.
    again = parse_objects([("rt", to_manifest(o)) for o in (*snap.roles, *snap.bindings)])
    assert again.roles == snap.roles and again.bindings == snap.bindings


def test_bootstrap_counts_match_the_source_documentation() -> None:
    # SOURCES.md: 27 + 26 ClusterRoles, 7 Roles, 10 + 26 CRBs, 6 RBs (2018);
    # 31 + 38 ClusterRoles, 7 Roles, 10 CRBs, 7 RBs (recent).
    for rel, roles, bindings in [
        ("k8s-master-2018-07-28", (53, 7), (36, 6)),
        ("k8s-recent", (69, 7), (10, 7)),
    ]:
        paths = sorted((corpus_dir() / "rbac/bootstrap-policy" / rel).glob("*.yaml"))
        snap = parse_objects(_docs(paths))
        kinds = collections.Counter(str(r.kind) for r in snap.roles)
        bkinds = collections.Counter(str(b.kind) for b in snap.bindings)
        assert (kinds["ClusterRole"], kinds["Role"]) == roles
        assert (bkinds["ClusterRoleBinding"], bkinds["RoleBinding"]) == bindings
        assert snap.warnings == ()


def test_helm_output_mixed_kinds_are_ignored_and_counted() -> None:
    path = corpus_dir() / "rbac/components/ingress-nginx/deploy/static/provider/cloud/deploy.yaml"
    snap = parse_objects(_docs([path]))
    # Namespace, 2 ServiceAccounts, ConfigMap, 2 Services, Deployment, 2 Jobs, IngressClass,
    # ValidatingWebhookConfiguration.
    assert snap.ignored_objects == 11
    assert len(snap.roles) == 4 and len(snap.bindings) == 4


def test_namespace_less_objects_default_like_kubectl() -> None:
    base = corpus_dir() / "rbac/components/argo-cd/manifests/base/server"
    snap = parse_objects(_docs(sorted(base.glob("*.yaml"))), ParseOptions("argocd"))
    assert {r.namespace for r in snap.roles} == {"argocd"}
    (binding,) = snap.bindings
    assert binding.namespace == "argocd"
    # The ServiceAccount subject keeps its empty namespace; the authorizer fills it in.
    assert binding.subjects == (Subject("ServiceAccount", "argocd-server"),)
    assert len(snap.warnings) == 1 and '"argocd"' in snap.warnings[0]


ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "r", "namespace": "ns"},
    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
}


def test_kubectl_list_typed_list_and_v1beta1() -> None:
    typed = {
        "apiVersion": "rbac.authorization.k8s.io/v1beta1",
        "kind": "RoleList",
        "items": [{"metadata": {"name": "a", "namespace": "ns"}, "rules": ROLE["rules"]}],
    }
    plain = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [ROLE, {"kind": "Secret", "apiVersion": "v1"}],
    }
    snap = parse_objects([("typed", typed), ("plain", plain), ("empty", None)])
    assert [r.name for r in snap.roles] == ["a", "r"]
    assert snap.roles[0].kind == RoleKind.ROLE
    assert snap.roles[0].rules == (PolicyRule.of(["get"], [""], ["pods"]),)
    assert snap.ignored_objects == 1


def test_subject_and_role_ref_defaults() -> None:
    doc = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "b"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
        ],
    }
    (b,) = parse_objects([("f", doc)]).bindings
    assert b.role_ref == RoleRef(RoleKind.CLUSTER_ROLE, "view")
    assert b.subjects == (
        Subject("User", "alice", "", "rbac.authorization.k8s.io"),
        Subject("ServiceAccount", "sa", "ns", ""),
    )


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not ...}


CRB: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "b"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
    "subjects": [{"kind": "Group", "name": "dev"}],
}

INVALID = [
    (
        "no verbs",
        _with(ROLE, rules=[{"apiGroups": [""], "resources": ["pods"]}]),
        "Role/ns/r",
        "rules[0].verbs: ",
    ),
    (
        "no apiGroups",
        _with(ROLE, rules=[{"resources": ["pods"], "verbs": ["get"]}]),
        "Role/ns/r",
        "rules[0].apiGroups: ",
    ),
    (
        "no resources",
        _with(ROLE, rules=[{"apiGroups": [""], "verbs": ["get"]}]),
        "Role/ns/r",
        "rules[0].resources: ",
    ),
    (
        "urls in a Role",
        _with(ROLE, rules=[{"nonResourceURLs": ["/x"], "verbs": ["get"]}]),
        "Role/ns/r",
        "namespaced rules cannot",
    ),
    (
        "urls mixed with resources",
        {
            **ROLE,
            "kind": "ClusterRole",
            "rules": [
                {
                    "nonResourceURLs": ["/x"],
                    "resources": ["pods"],
                    "apiGroups": [""],
                    "verbs": ["get"],
                }
            ],
        },
        "ClusterRole/r",
        "both regular resources and non-resource URLs",
    ),
    (
        "unknown rule field",
        _with(ROLE, rules=[{"apiGroups": [""], "resource": ["pods"], "verbs": ["get"]}]),
        "Role/ns/r",
        "rules[0].resource: unknown field",
    ),
    (
        "verbs not a list",
        _with(ROLE, rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": "get"}]),
        "Role/ns/r",
        "rules[0].verbs: expected a list",
    ),
    (
        "no name",
        _with(ROLE, metadata={"namespace": "ns"}),
        "Role without a name",
        "metadata.name: name is required",
    ),
    ("slash in name", _with(ROLE, metadata={"name": "a/b"}), "Role/a/b", "may not contain '/'"),
    (
        "label not a string",
        _with(ROLE, metadata={"name": "r", "labels": {"x": True}}),
        "Role/r",
        "metadata.labels.x",
    ),
    ("no roleRef", _with(CRB, roleRef=...), "ClusterRoleBinding/b", "roleRef: required"),
    (
        "CRB to a Role",
        _with(CRB, roleRef={"kind": "Role", "name": "x"}),
        "ClusterRoleBinding/b",
        "roleRef.kind",
    ),
    (
        "roleRef group",
        _with(CRB, roleRef={"apiGroup": "x", "kind": "ClusterRole", "name": "v"}),
        "ClusterRoleBinding/b",
        "roleRef.apiGroup",
    ),
    (
        "SA without namespace in a CRB",
        _with(CRB, subjects=[{"kind": "ServiceAccount", "name": "sa"}]),
        "ClusterRoleBinding/b",
        "subjects[0].namespace: required",
    ),
    (
        "SA with apiGroup",
        _with(
            CRB,
            subjects=[
                {
                    "kind": "ServiceAccount",
                    "name": "sa",
                    "namespace": "n",
                    "apiGroup": "rbac.authorization.k8s.io",
                }
            ],
        ),
        "ClusterRoleBinding/b",
        "subjects[0].apiGroup",
    ),
    (
        "bad SA name",
        _with(CRB, subjects=[{"kind": "ServiceAccount", "name": "Bad_Name", "namespace": "n"}]),
        "ClusterRoleBinding/b",
        "subjects[0].name",
    ),
    (
        "unknown subject kind",
        _with(CRB, subjects=[{"kind": "Robot", "name": "r2"}]),
        "ClusterRoleBinding/b",
        "subjects[0].kind",
    ),
    (
        "subject without name",
        _with(CRB, subjects=[{"kind": "User"}]),
        "ClusterRoleBinding/b",
        "subjects[0].name: required",
    ),
    (
        "old apiVersion",
        _with(ROLE, apiVersion="rbac.authorization.k8s.io/v1alpha1"),
        "Role/ns/r",
        "unsupported apiVersion",
    ),
    (
        "aggregationRule on a Role",
        _with(ROLE, aggregationRule={"clusterRoleSelectors": [{}]}),
        "Role/ns/r",
        "aggregationRule: unknown field",
    ),
    (
        "empty selectors",
        {**ROLE, "kind": "ClusterRole", "aggregationRule": {"clusterRoleSelectors": []}},
        "ClusterRole/r",
        "at least one clusterRoleSelector",
    ),
    (
        "In without values",
        {
            **ROLE,
            "kind": "ClusterRole",
            "aggregationRule": {
                "clusterRoleSelectors": [{"matchExpressions": [{"key": "k", "operator": "In"}]}]
            },
        },
        "ClusterRole/r",
        "values: must be specified",
    ),
    ("no kind", {"apiVersion": "v1", "metadata": {}}, "", "object has no kind"),
    ("not a mapping", ["a", "b"], "", "expected a Kubernetes object"),
]


@pytest.mark.parametrize(
    ("doc", "obj", "message"), [pytest.param(d, o, m, id=n) for n, d, o, m in INVALID]
)
def test_invalid_objects_name_file_object_and_field(doc: Any, obj: str, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_objects([("dir/rbac.yaml", doc)])
    err = info.value
    assert str(err).startswith("dir/rbac.yaml: ")
    assert err.obj == obj
    assert message in err.reason
    assert "\n" not in str(err)


def test_duplicates_identical_are_merged_conflicting_are_refused() -> None:
    snap = parse_objects([("a.yaml", ROLE), ("b.yaml", dict(ROLE))])
    assert len(snap.roles) == 1
    other = _with(ROLE, rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    with pytest.raises(ManifestError, match=r"b.yaml: Role/ns/r: defined twice .*also in a.yaml"):
        parse_objects([("a.yaml", ROLE), ("b.yaml", other)])


def test_resource_names_with_list_is_accepted_like_the_apiserver() -> None:
    # The PolicyRuleBuilder refuses it (see test_vectors), the apiserver does not.
    r = PolicyRule.of(["list"], [""], ["pods"], ["a"])
    assert rule_problems(r, namespaced=True) == []


def test_to_manifest_key_order_and_aggregation_round_trip() -> None:
    doc = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "agg", "labels": {"a": "b"}},
        "aggregationRule": {
            "clusterRoleSelectors": [
                {
                    "matchLabels": {"x": "y"},
                    "matchExpressions": [{"key": "k", "operator": "Exists"}],
                }
            ]
        },
        "rules": None,
    }
    (role,) = parse_objects([("f", doc)]).roles
    assert role.aggregation == (
        LabelSelector((LabelRequirement("k", "Exists"), LabelRequirement("x", "In", ("y",)))),
    )
    out = to_manifest(role)
    assert list(out) == ["apiVersion", "kind", "metadata", "aggregationRule", "rules"]
    assert out["aggregationRule"] == {
        "clusterRoleSelectors": [
            {"matchLabels": {"x": "y"}, "matchExpressions": [{"key": "k", "operator": "Exists"}]}
        ]
    }
    rule_doc = to_manifest(parse_objects([("f", ROLE)]).roles[0])["rules"]
    assert rule_doc == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    b = to_manifest(parse_objects([("f", CRB)]).bindings[0])
    assert list(b) == ["apiVersion", "kind", "metadata", "roleRef", "subjects"]


def test_snapshot_round_trip_through_yaml_text() -> None:
    paths = sorted((corpus_dir() / "rbac/bootstrap-policy/k8s-recent").glob("*.yaml"))
    snap = parse_objects(_docs(paths))
    text = yaml.safe_dump(to_list(snap), sort_keys=False)
    again = parse_objects([("dump.yaml", d) for d in yaml.safe_load_all(text)])
    assert again == Snapshot(snap.roles, snap.bindings)
