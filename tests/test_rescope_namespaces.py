"""A ClusterRoleBinding moves into RoleBindings only in namespaces that can and do exist.

Namespaces come from the log unvalidated; a subject creating namespaces would lose access
to the next one it creates; a namespace the cluster lacks cannot hold a RoleBinding.
"""

from __future__ import annotations

import pytest
from rbac_builders import cr, crb, rb, req, rule, snap, who

from rbac_advisor import diff, proof, tighten
from rbac_advisor.analysis import AnalysisOptions, run
from rbac_advisor.diff import Observation
from rbac_advisor.errors import AdvisorError
from rbac_advisor.events import Decision
from rbac_advisor.rbac import (
    Access,
    Binding,
    BindingKind,
    Identity,
    Role,
    RoleKind,
    Snapshot,
)
from rbac_advisor.validation import namespace_problem

ALICE = who("alice", "ci", "system:authenticated")
PODS = cr("podreader", rule("get,list,delete", "", "pods,secrets"))
CREATE_NS = cr("ns-creator", rule("create", "", "namespaces"))
HOSTILE = (
    "../kube-system",
    "a/b",
    "Team_B",
    "<b>",
    " ",
    "kube-system\n",
    "x%2Fy",
    "ns.with.dots",
    "a" * 64,
)


def _observed(
    identity: Identity, *accesses: Access, decision: Decision = Decision.ALLOW
) -> list[Observation]:
    """One request per access, seen once with ``decision``."""
    return [Observation(identity, a, decision, 1, 0.0, 1.0, frozenset({0})) for a in accesses]


def _in(namespace: str, spec: str = "get pods") -> Access:
    """``spec`` in ``namespace``, which may hold spaces or be empty."""
    verb, target, *name = spec.split()
    a = req(" ".join([verb, target, "-", *name]))
    return Access(a.verb, a.api_group, a.resource, a.subresource, namespace, a.name)


def _plan(
    snapshot: Snapshot, observations: list[Observation], namespaces: frozenset[str] | None = None
) -> tuple[tighten.Plan, proof.Proof]:
    """The plan for ``observations`` and its proof over the requests that could succeed."""
    findings = diff.find(snapshot, observations)
    plan = tighten.plan(snapshot, findings, tighten.TightenOptions(namespaces=namespaces))
    after = proof.intended(snapshot, plan.apply, plan.prune)
    result = proof.prove(snapshot, after, observations, plan.apply)
    assert result.sound, result  # requests in impossible namespaces are not replayed
    return plan, result


def _change(plan: tighten.Plan, name: str) -> tighten.Change:
    (change,) = [c for c in plan.changes if c.binding.name == name]
    return change


def _namespaces(plan: tighten.Plan) -> set[str]:
    return {o.namespace for o in (*plan.apply, *plan.prune)}


def _role_bindings(plan: tighten.Plan) -> list[Binding]:
    return [o for o in plan.apply if isinstance(o, Binding) and o.kind == BindingKind.ROLE_BINDING]


@pytest.mark.parametrize("name", ["team-a", "a", "0", "a" * 63, "kube-system"])
def test_valid_namespace_names(name: str) -> None:
    assert namespace_problem(name) is None


@pytest.mark.parametrize("name", [*HOSTILE, "", "-a", "a-", "\u00e9"])
def test_invalid_namespace_names(name: str) -> None:
    assert namespace_problem(name)


@pytest.mark.parametrize("bad", HOSTILE)
def test_invalid_namespaces_never_reach_generated_objects(bad: str) -> None:
    snapshot = snap(PODS, crb("podreader", "User:alice", name="alice-pods"))
    observations = _observed(ALICE, _in("team-a", "get pods p1"), _in(bad, "get pods p1"))
    plan, full = _plan(snapshot, observations)
    assert _namespaces(plan) == {"", "team-a"}
    assert [b.namespace for b in _role_bindings(plan)] == ["team-a"]
    change = _change(plan, "alice-pods")
    assert change.action == "tighten"
    assert "requests in 1 invalid namespace(s) such as" in change.summary
    assert "are not carried over: no such namespace can exist" in change.summary
    # Only the request that failed at the apiserver anyway may change its outcome.
    assert all(bad in b.description for b in full.broken)
    assert not full.escalations and not full.apply_problems


def test_use_only_in_invalid_namespaces_removes_the_binding() -> None:
    snapshot = snap(PODS, crb("podreader", "User:alice", name="alice-pods"))
    plan, _ = _plan(snapshot, _observed(ALICE, _in("../kube-system"), _in("Team_B")))
    change = _change(plan, "alice-pods")
    assert change.action == "remove"
    assert "requests in 2 invalid namespace(s)" in change.summary
    assert plan.apply == ()


def test_namespace_creator_keeps_a_cluster_wide_binding() -> None:
    snapshot = snap(
        PODS,
        CREATE_NS,
        crb("podreader", "User:alice", name="alice-pods"),
        crb("ns-creator", "User:alice", name="alice-ns"),
    )
    observations = _observed(
        ALICE, _in("team-a", "get pods p1"), _in("team-b", "list pods"), req("create namespaces -")
    )
    result = run(snapshot, observations, AnalysisOptions(window="w"))
    assert result.proof.sound
    change = _change(result.plan, "alice-pods")
    assert tighten.CREATES_NAMESPACES_WHY in change.summary
    assert _role_bindings(result.plan) == []
    assert {o.namespace for o in change.creates} == {""}
    role = next(o for o in change.creates if isinstance(o, Role))
    assert role.kind == RoleKind.CLUSTER_ROLE
    assert set(role.rules) == {rule("list", "", "pods"), rule("get", "", "pods", "p1")}


def test_namespace_creator_in_a_bound_group_keeps_it_cluster_wide() -> None:
    bob = who("bob", "ci", "system:authenticated")
    snapshot = snap(
        PODS, CREATE_NS, crb("podreader", "Group:ci", name="ci-pods"), crb("ns-creator", "User:bob")
    )
    observations = [
        *_observed(ALICE, _in("team-a", "get pods p1")),
        *_observed(bob, req("create namespaces -")),
    ]
    plan, _ = _plan(snapshot, observations)
    assert tighten.CREATES_NAMESPACES_WHY in _change(plan, "ci-pods").summary
    assert _role_bindings(plan) == []


def test_a_refused_namespace_create_does_not_block_the_rescope() -> None:
    snapshot = snap(PODS, crb("podreader", "User:alice", name="alice-pods"))
    observations = [
        *_observed(ALICE, _in("team-a", "get pods p1")),
        *_observed(ALICE, req("create namespaces -"), decision=Decision.FORBID),
    ]
    plan, _ = _plan(snapshot, observations)
    assert [b.namespace for b in _role_bindings(plan)] == ["team-a"]


def test_missing_namespace_keeps_a_cluster_wide_binding() -> None:
    snapshot = snap(PODS, crb("podreader", "User:alice", name="alice-pods"))
    observations = _observed(ALICE, _in("team-a", "list pods"), _in("typo-ns", "list pods"))
    plan, full = _plan(snapshot, observations, frozenset({"team-a", "default"}))
    assert full.sound
    change = _change(plan, "alice-pods")
    assert "namespace(s) 'typo-ns' do not exist now" in change.summary
    assert _role_bindings(plan) == []
    # The ClusterRole is narrowed in place; the ClusterRoleBinding stays.
    (role,) = change.creates
    assert isinstance(role, Role) and role.key == PODS.key
    assert role.rules == (rule("list", "", "pods"),)
    assert change.deletes == ()


def test_existing_namespaces_are_rescoped() -> None:
    snapshot = snap(PODS, crb("podreader", "User:alice", name="alice-pods"))
    observations = _observed(ALICE, _in("team-a", "list pods"), _in("team-b", "get pods p"))
    plan, full = _plan(snapshot, observations, frozenset({"team-a", "team-b", "default"}))
    assert full.sound
    assert sorted(b.namespace for b in _role_bindings(plan)) == ["team-a", "team-b"]
    change = _change(plan, "alice-pods")
    assert "namespaced use moved to RoleBindings in team-a, team-b" in change.summary
    assert "assume" not in change.summary


def test_unknown_namespaces_are_rescoped_with_the_assumption_stated() -> None:
    snapshot = snap(PODS, crb("podreader", "User:alice", name="alice-pods"))
    observations = _observed(ALICE, _in("team-a", "list pods"), _in("team-b", "list pods"))
    result = run(snapshot, observations, AnalysisOptions(window="w"))
    assert result.proof.sound
    assert sorted(b.namespace for b in _role_bindings(result.plan)) == ["team-a", "team-b"]
    summary = _change(result.plan, "alice-pods").summary
    assert summary == (
        "namespaced use moved to RoleBindings in team-a, team-b; "
        "the RoleBindings assume those namespaces exist: the RBAC input does not list them"
    )


def test_binding_in_an_invalid_namespace_is_only_reported() -> None:
    snapshot = snap(PODS, rb("Team_B", "ClusterRole:podreader", "User:alice", name="odd"))
    plan, _ = _plan(snapshot, _observed(ALICE, _in("Team_B", "get pods p1")))
    change = _change(plan, "odd")
    assert change.action == "report-only"
    assert "is not a DNS-1123 label" in change.summary
    assert plan.apply == () and plan.prune == ()


def test_an_object_in_an_invalid_namespace_is_refused() -> None:
    bad = Role(RoleKind.ROLE, "r", "a/b", (rule("get", "", "pods"),))
    with pytest.raises(AdvisorError, match=r"Role/a/b/r.*not a DNS-1123 label"):
        tighten._check_namespaces([bad])
    tighten._check_namespaces([Role(RoleKind.ROLE, "r", "team-a", (rule("get", "", "pods"),))])
