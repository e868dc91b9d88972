"""The RBAC graph: structure, freezing, and the three queries, checked against the authorizer."""

from __future__ import annotations

import networkx as nx
import pytest
import yaml
from rbac_builders import corpus_dir, cr, crb, rb, req, role, rule, snap, who

from rbac_advisor.aggregation import resolve
from rbac_advisor.authorizer import Authorizer, applies_to
from rbac_advisor.graph import RbacGraph, Reach, RuleNode, build_graph
from rbac_advisor.manifests import parse_objects
from rbac_advisor.rbac import BindingKey, BindingKind, Identity, Request, RoleKey, RoleKind, Subject

OBJS = snap(
    cr("read-pods", rule("get,list", "", "pods")),
    cr("discovery", rule("get", urls="/healthz")),
    role("ns1", "secrets", rule("get", "", "secrets")),
    crb("read-pods", "User:alice", name="alice-pods"),
    crb("discovery", "Group:system:authenticated", name="disc"),
    rb("ns1", "ClusterRole:read-pods", "Group:dev", name="dev-pods"),
    rb("ns1", "Role:secrets", "ServiceAccount:robot", name="robot-secrets"),
    rb("ns1", "Role:gone", "User:bob", name="dangling"),
)


def test_structure_and_frozen() -> None:
    g = build_graph(OBJS)
    assert nx.is_frozen(g)
    with pytest.raises(nx.NetworkXError):
        g.add_node("x")
    types = {t for _, t in g.nodes(data="type")}
    assert types == {"subject", "binding", "role", "rule"}
    robot = Subject("ServiceAccount", "robot", "ns1")  # namespace filled from the binding
    rb_key = BindingKey(BindingKind.ROLE_BINDING, "robot-secrets", "ns1")
    assert list(g.successors(robot)) == [rb_key]
    assert g.edges[robot, rb_key, 0]["subject"] == Subject("ServiceAccount", "robot")
    assert list(g.successors(rb_key)) == [RoleKey(RoleKind.ROLE, "secrets", "ns1")]
    assert list(g.successors(RoleKey(RoleKind.ROLE, "secrets", "ns1"))) == [
        RuleNode(RoleKey(RoleKind.ROLE, "secrets", "ns1"), 0)
    ]
    assert g.nodes[RoleKey(RoleKind.ROLE, "gone", "ns1")]["missing"] is True
    # apiGroup is dropped from subject nodes, so one user is one node.
    assert (
        Subject("User", "alice") in g
        and Subject("User", "alice", "", "rbac.authorization.k8s.io") not in g
    )


def test_who_can() -> None:
    g = RbacGraph(OBJS)
    got = {(x.subject.name, x.binding.name) for x in g.who_can(req("get pods ns1"))}
    assert got == {("alice", "alice-pods"), ("dev", "dev-pods")}
    got = {(x.subject.name, x.binding.name) for x in g.who_can(req("list pods ns2"))}
    assert got == {("alice", "alice-pods")}  # the RoleBinding only counts in ns1
    assert [x.subject.name for x in g.who_can(req("get /healthz"))] == ["system:authenticated"]
    (grant,) = g.who_can(req("get secrets ns1 s"))
    assert grant.subject == Subject("ServiceAccount", "robot", "ns1")
    assert grant.reason() == (
        'RBAC: allowed by RoleBinding "robot-secrets/ns1" of Role "secrets" to '
        'ServiceAccount "robot/ns1"'
    )
    assert g.who_can(req("delete pods ns1")) == []


def test_what_can_subject_and_identity() -> None:
    g = RbacGraph(OBJS)
    assert [(x.binding.name, x.rule) for x in g.what_can(Subject("User", "alice"))] == [
        ("alice-pods", rule("get,list", "", "pods"))
    ]
    # As an identity, alice also gets what system:authenticated gets.
    names = sorted(x.binding.name for x in g.what_can(Identity("alice")))
    assert names == ["alice-pods", "disc"]
    assert g.what_can(Subject("User", "nobody")) == []


def test_bindings_reaching_through_implied_groups() -> None:
    g = RbacGraph(
        snap(
            cr("r", rule("get", "", "pods")),
            crb("r", "Group:system:serviceaccounts", name="all-sa"),
            crb("r", "Group:system:serviceaccounts:ns1", name="ns1-sa"),
            crb("r", "Group:system:authenticated", name="everyone"),
            crb("r", "ServiceAccount:ns1/robot", name="direct"),
            crb("r", "Group:team", name="team"),
        )
    )
    reaches = g.bindings_reaching(Identity("system:serviceaccount:ns1:robot", ("team",)))
    assert {(r.binding.name, r.implied) for r in reaches} == {
        ("all-sa", True),
        ("ns1-sa", True),
        ("everyone", True),
        ("direct", False),
        ("team", False),
    }
    assert all(isinstance(r, Reach) for r in reaches)
    anon = g.bindings_reaching(Identity("system:anonymous", ("system:unauthenticated",)))
    assert anon == []


def test_queries_agree_with_the_authorizer_on_bootstrap_policy() -> None:
    base = corpus_dir() / "rbac/bootstrap-policy/k8s-recent"
    docs = [
        (str(p), d) for p in sorted(base.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
    ]
    snapshot, _ = resolve(parse_objects(docs))
    g, authz = RbacGraph(snapshot), Authorizer(snapshot)
    identities = [
        who("system:kube-scheduler", "system:authenticated"),
        who("system:kube-controller-manager", "system:authenticated"),
        who(
            "system:serviceaccount:kube-system:bootstrap-signer",
            "system:authenticated",
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
        ),
        who("alice", "system:authenticated"),
        who("system:anonymous", "system:unauthenticated"),
    ]
    accesses = [
        req(spec)
        for spec in [
            "get pods kube-system",
            "list nodes -",
            "get /healthz",
            "get /version",
            "create selfsubjectaccessreviews.authorization.k8s.io -",
            "list secrets kube-system",
            "get leases.coordination.k8s.io kube-system kube-scheduler",
            "get configmaps kube-public",
            "update leases.coordination.k8s.io kube-system kube-controller-manager",
            "create events ns",
        ]
    ]
    checked = 0
    for a in accesses:
        grants = g.who_can(a)
        for identity in identities:
            allowed = authz.allows(Request(identity, a))
            via_graph = any(
                applies_to(identity, next(b for b in snapshot.bindings if b.key == x.binding))
                for x in grants
            )
            assert via_graph == allowed, (identity, a)
            checked += allowed
    assert checked >= 10
