"""Generated namespaced Roles never carry nonResourceURLs; every generated rule is valid."""

from __future__ import annotations

import pytest
from rbac_builders import cr, crb, rb, req, rule, snap, who

from rbac_advisor import tighten
from rbac_advisor.analysis import AnalysisOptions, Result, run
from rbac_advisor.diff import Observation
from rbac_advisor.errors import AdvisorError
from rbac_advisor.events import Decision
from rbac_advisor.rbac import Access, Identity, Role, RoleKind, Snapshot
from rbac_advisor.validation import rule_problems

U3 = who("u3", "system:authenticated")

# A ClusterRole mixing resource and non-resource rules; "watch" on a URL never shows in a log.
ODD = cr(
    "odd-role",
    rule("list,get", "", "pods"),
    rule("put,watch", urls="/debug/flags/v"),
)


def _observed(identity: Identity, *accesses: Access) -> list[Observation]:
    """One allowed request per access, seen once."""
    return [Observation(identity, a, Decision.ALLOW, 1, 0.0, 1.0, frozenset({0})) for a in accesses]


def _roles(result: Result) -> list[Role]:
    """The Roles and ClusterRoles the plan applies."""
    return [o for o in result.plan.apply if isinstance(o, Role)]


def _assert_valid(result: Result) -> None:
    """Every generated rule passes the apiserver's validation for its role's kind."""
    for role in _roles(result):
        for r in role.rules:
            assert rule_problems(r, namespaced=role.kind == RoleKind.ROLE) == [], (role, r)


def _analyse(snapshot: Snapshot, observations: list[Observation]) -> Result:
    result = run(snapshot, observations, AnalysisOptions(window="w"))
    assert result.proof.sound
    _assert_valid(result)
    return result


def test_role_binding_of_cluster_role_with_urls_gets_no_urls() -> None:
    snapshot = snap(ODD, rb("team-a", "ClusterRole:odd-role", "User:u3", name="u3-odd"))
    result = _analyse(snapshot, _observed(U3, req("list pods team-a")))
    (role,) = _roles(result)
    assert role.kind == RoleKind.ROLE and role.namespace == "team-a"
    assert role.rules == (rule("list", "", "pods"),)
    (change,) = [c for c in result.plan.changes if c.binding.name == "u3-odd"]
    assert change.kept_unobservable == ()
    assert not change.dropped_wildcard_unobservable


def test_unobservable_url_verbs_alone_do_not_keep_a_role_binding() -> None:
    snapshot = snap(
        cr("urls-only", rule("watch", urls="/debug/*")),
        rb("team-a", "ClusterRole:urls-only", "User:u3", name="u3-urls"),
    )
    result = _analyse(snapshot, [])
    (change,) = [c for c in result.plan.changes if c.binding.name == "u3-urls"]
    assert change.action == "remove"
    assert _roles(result) == []


def test_wildcard_url_verbs_through_a_role_binding_hide_nothing() -> None:
    snapshot = snap(
        cr("star-urls", rule("get", "", "pods"), rule("*", urls="*")),
        rb("team-a", "ClusterRole:star-urls", "User:u3", name="u3-star"),
    )
    result = _analyse(snapshot, _observed(U3, req("get pods team-a p1")))
    (change,) = [c for c in result.plan.changes if c.binding.name == "u3-star"]
    assert not change.dropped_wildcard_unobservable
    assert all(not r.non_resource_urls for role in _roles(result) for r in role.rules)


def test_cluster_role_binding_keeps_unobservable_url_verbs() -> None:
    snapshot = snap(ODD, crb("odd-role", "User:u3", name="u3-odd"))
    result = _analyse(snapshot, _observed(U3, req("list pods -")))
    (role,) = _roles(result)
    assert role.kind == RoleKind.CLUSTER_ROLE
    assert rule("watch", urls="/debug/flags/v") in role.rules


def test_cluster_role_binding_moves_namespaced_use_without_urls() -> None:
    snapshot = snap(ODD, crb("odd-role", "User:u3", name="u3-odd"))
    observations = _observed(U3, req("list pods team-a"), req("get pods team-b p"))
    result = _analyse(snapshot, observations)
    cluster_wide = [r for r in _roles(result) if not r.name.endswith(":namespaced")]
    namespaced = [r for r in _roles(result) if r not in cluster_wide]
    assert all(not r.non_resource_urls for role in namespaced for r in role.rules)
    assert any(r.non_resource_urls for role in cluster_wide for r in role.rules)


def test_a_generated_role_the_apiserver_would_reject_is_refused() -> None:
    bad = Role(RoleKind.ROLE, "r", "ns", (rule("get", "", "pods"), rule("get", urls="/x")))
    with pytest.raises(AdvisorError, match=r"Role/ns/r rules\[1\]\.nonResourceURLs"):
        tighten._check_rules([bad])
    tighten._check_rules([Role(RoleKind.CLUSTER_ROLE, "c", "", (rule("get", urls="/x"),))])
