"""ClusterRoles an aggregated ClusterRole selects, by any label selector, are not narrowed.

Narrowing such a role in place (or deleting it) would shrink the aggregate too, taking
access from the aggregate's subjects.
"""

from __future__ import annotations

import pytest
from rbac_builders import cr, crb, req, rule, snap, who

from rbac_advisor.analysis import AnalysisOptions, Result, run
from rbac_advisor.authorizer import Authorizer
from rbac_advisor.diff import Observation
from rbac_advisor.errors import UnsoundRecommendation
from rbac_advisor.events import Decision
from rbac_advisor.rbac import (
    Access,
    Identity,
    LabelRequirement,
    LabelSelector,
    PolicyRule,
    Request,
    Role,
    RoleKind,
    Snapshot,
)

U5 = who("u5", "system:authenticated")
GRP = who("grp", "custom-g", "system:authenticated")
PIECE_RULES = (rule("list", "", "secrets"), rule("list", "", "configmaps"))


def _selector(*requirements: tuple[str, str, tuple[str, ...]]) -> LabelSelector:
    return LabelSelector(tuple(LabelRequirement(k, op, v) for k, op, v in requirements))


def _aggregated(name: str, selector: LabelSelector, rules: tuple[PolicyRule, ...]) -> Role:
    """An aggregated ClusterRole with the rules the controller stored."""
    return Role(RoleKind.CLUSTER_ROLE, name, rules=rules, aggregation=(selector,))


def _snapshot(selector: LabelSelector) -> Snapshot:
    """A ClusterRole ``piece`` bound to u5, selected into ``agg-parent`` bound to grp."""
    return snap(
        cr("piece", *PIECE_RULES, labels={"team": "x"}),
        _aggregated("agg-parent", selector, PIECE_RULES),
        crb("piece", "User:u5", name="piece-crb"),
        crb("agg-parent", "User:grp", name="agg-crb"),
    )


def _observed(identity: Identity, *accesses: Access) -> list[Observation]:
    """One allowed request per access, seen once."""
    return [Observation(identity, a, Decision.ALLOW, 1, 0.0, 1.0, frozenset({0})) for a in accesses]


def _analyse(snapshot: Snapshot, observations: list[Observation]) -> Result:
    result = run(snapshot, observations, AnalysisOptions(window="w"))
    assert result.proof.sound
    return result


SELECTORS = [
    pytest.param(_selector(("team", "In", ("x",))), id="matchLabels"),
    pytest.param(_selector(("team", "In", ("x", "y"))), id="In"),
    pytest.param(_selector(("team", "NotIn", ("y",)), ("team", "Exists", ())), id="NotIn"),
    pytest.param(_selector(("team", "Exists", ())), id="Exists"),
    pytest.param(
        _selector(("team", "Exists", ()), ("owner", "DoesNotExist", ())), id="DoesNotExist"
    ),
]


@pytest.mark.parametrize("selector", SELECTORS)
def test_selected_piece_is_not_narrowed_in_place(selector: LabelSelector) -> None:
    observations = _observed(U5, req("list configmaps -")) + _observed(GRP, req("list secrets -"))
    result = _analyse(_snapshot(selector), observations)
    assert not any(o.name == "piece" for o in (*result.plan.apply, *result.plan.prune))
    (change,) = [c for c in result.plan.changes if c.binding.name == "piece-crb"]
    assert change.action == "tighten"
    (generated,) = [o for o in change.creates if isinstance(o, Role)]
    assert generated.name != "piece" and generated.rules == (rule("list", "", "configmaps"),)
    after = Authorizer(result.after)
    assert after.allows(Request(GRP, req("list secrets -")))
    assert after.allows(Request(U5, req("list configmaps -")))
    assert not after.allows(Request(U5, req("list secrets -")))


@pytest.mark.parametrize("selector", SELECTORS)
def test_selected_piece_of_an_idle_binding_is_not_deleted(selector: LabelSelector) -> None:
    uses = (req("list secrets -"), req("list configmaps -"))
    result = _analyse(_snapshot(selector), _observed(GRP, *uses))
    assert [o.name for o in result.plan.prune] == ["piece-crb"]
    after = Authorizer(result.after)
    assert all(after.allows(Request(GRP, a)) for a in uses)


def test_unselected_role_is_still_narrowed_in_place() -> None:
    snapshot = _snapshot(_selector(("team", "In", ("y",))))
    observations = _observed(U5, req("list configmaps -")) + _observed(GRP, req("list secrets -"))
    result = _analyse(snapshot, observations)
    (c,) = [c for c in result.plan.changes if c.binding.name == "piece-crb"]
    (narrowed,) = [o for o in c.creates if isinstance(o, Role)]
    assert narrowed.name == "piece" and narrowed.rules == (rule("list", "", "configmaps"),)


def test_aggregate_that_would_select_a_generated_role_is_refused() -> None:
    # "everything" selects every ClusterRole without an "owner" label: the ClusterRole
    # generated for wide-crb too, which would give u7 "get secrets".
    base = cr("base", rule("list", "", "configmaps"))
    snapshot = snap(
        base,
        cr("wide", rule("get", "", "pods"), rule("get", "", "secrets"), labels={"owner": "a"}),
        _aggregated("everything", _selector(("owner", "DoesNotExist", ())), base.rules),
        crb("wide", "User:u6", name="wide-crb"),
        crb("wide", "User:u8", name="wide-crb-2"),
        crb("everything", "User:u7", name="everything-crb"),
    )
    observations = _observed(who("u6"), req("get secrets - s1"))
    observations += _observed(who("u7"), req("list configmaps -"))
    with pytest.raises(UnsoundRecommendation, match="ClusterRole/everything would give"):
        run(snapshot, observations)
