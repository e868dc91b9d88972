"""Aggregated ClusterRoles, as the clusterrole-aggregation-controller computes them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml
from rbac_builders import corpus_dir, cr, rule, snap

from rbac_advisor.aggregation import (
    aggregate,
    computed_rules,
    reaggregate,
    resolve,
    selector_matches,
)
from rbac_advisor.manifests import parse_objects
from rbac_advisor.rbac import LabelRequirement, LabelSelector, PolicyRule, Role, RoleKind


def sel(*reqs: tuple[str, str, tuple[str, ...]]) -> LabelSelector:
    return LabelSelector(tuple(LabelRequirement(k, op, v) for k, op, v in reqs))


def agg(name: str, *selectors: LabelSelector, rules: tuple[PolicyRule, ...] = ()) -> Role:
    return Role(RoleKind.CLUSTER_ROLE, name, rules=rules, aggregation=selectors)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        (sel(("a", "In", ("x",))), {"a": "x"}, True),
        (sel(("a", "In", ("x", "y"))), {"a": "z"}, False),
        (sel(("a", "In", ("x",))), {}, False),
        (sel(("a", "NotIn", ("x",))), {"a": "y"}, True),
        (sel(("a", "NotIn", ("x",))), {}, True),  # a missing key is "not in"
        (sel(("a", "NotIn", ("x",))), {"a": "x"}, False),
        (sel(("a", "Exists", ())), {"a": ""}, True),
        (sel(("a", "Exists", ())), {"b": "x"}, False),
        (sel(("a", "DoesNotExist", ())), {"b": "x"}, True),
        (sel(("a", "DoesNotExist", ())), {"a": "x"}, False),
        (sel(("a", "In", ("x",)), ("b", "Exists", ())), {"a": "x"}, False),  # requirements AND
        (sel(), {"anything": "x"}, True),  # the empty selector selects everything
    ],
)
def test_selector_operators(selector: LabelSelector, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


def test_controller_algorithm_order_dedupe_and_self_exclusion() -> None:
    label = {"agg": "true"}
    r1, r2, r3 = rule("get", "", "pods"), rule("list", "", "pods"), rule("get", "", "secrets")
    roles = [
        cr("zeta", r3, r1, labels=label),
        cr("alpha", r1, r2, labels=label),
        cr("other", r3, labels={"agg": "false"}),
        cr("second", rule("watch", "", "pods"), labels={"two": "1"}),
    ]
    target = Role(
        RoleKind.CLUSTER_ROLE,
        "target",
        rules=(rule("delete", "", "nodes"),),  # hand-written rules are overwritten
        labels=(("agg", "true"),),  # it selects itself: excluded
        aggregation=(sel(("agg", "In", ("true",))), sel(("two", "Exists", ()))),
    )
    got = aggregate(target, [*roles, target])
    # selector 1: alpha then zeta (by name), r1 once; then selector 2.
    assert got == (r1, r2, r3, rule("watch", "", "pods"))


def test_nested_aggregation_reaches_a_fixed_point() -> None:
    p = rule("get", "", "pods")
    d = rule("create", "apps", "deployments")
    s = rule("get", "", "secrets")
    objs = snap(
        agg("admin", sel(("to-admin", "In", ("true",)))),
        agg("edit", sel(("to-edit", "In", ("true",)))),
        dataclasses.replace(
            agg("view", sel(("to-view", "In", ("true",)))), labels=(("to-edit", "true"),)
        ),
        cr("view-bits", p, labels={"to-view": "true"}),
        cr("edit-bits", d, labels={"to-edit": "true"}),
        cr("admin-bits", s, labels={"to-admin": "true"}),
    )
    # edit is labelled to-admin: admin gets edit's rules, which include view's.
    objs = dataclasses.replace(
        objs,
        roles=tuple(
            dataclasses.replace(r, labels=(("to-admin", "true"),)) if r.name == "edit" else r
            for r in objs.roles
        ),
    )
    rules = {k.name: set(v) for k, v in computed_rules(objs).items()}
    assert rules == {"view": {p}, "edit": {d, p}, "admin": {s, d, p}}


def test_resolve_fills_empty_aggregates_from_bootstrap_policy() -> None:
    path = corpus_dir() / "rbac/bootstrap-policy/k8s-recent/cluster-roles.yaml"
    raw = yaml.safe_load(path.read_text())
    resolved, warnings = resolve(parse_objects([(str(path), raw)]))
    by_name = {r.name: r for r in resolved.roles}
    # Computed independently from the raw YAML: every rule of every ClusterRole labelled
    # aggregate-to-view (view itself has none stored).
    expected: set[PolicyRule] = set()
    for item in raw["items"]:
        labels: dict[str, Any] = item["metadata"].get("labels") or {}
        if (
            labels.get("rbac.authorization.k8s.io/aggregate-to-view") == "true"
            and item["metadata"]["name"] != "view"
        ):
            for r in item.get("rules") or []:
                expected.add(
                    PolicyRule.of(
                        r.get("verbs"),
                        r.get("apiGroups"),
                        r.get("resources"),
                        r.get("resourceNames"),
                        r.get("nonResourceURLs"),
                    )
                )
    assert expected and set(by_name["view"].rules) == expected
    assert set(by_name["view"].rules) <= set(by_name["edit"].rules) <= set(by_name["admin"].rules)
    assert [w.split()[0] for w in warnings] == [
        "ClusterRole/admin",
        "ClusterRole/edit",
        "ClusterRole/view",
    ]
    assert all("no stored rules" in w for w in warnings)
    assert resolved.warnings == ()  # drift goes to the caller, not into the snapshot


def test_resolve_keeps_stored_rules_and_reports_drift() -> None:
    p, s = rule("get", "", "pods"), rule("get", "", "secrets")
    stored = snap(
        agg("view", sel(("v", "In", ("1",))), rules=(s,)),  # drifted: pods missing, secrets extra
        cr("bits", p, labels={"v": "1"}),
    )
    resolved, warnings = resolve(stored)
    assert {r.name: r.rules for r in resolved.roles}["view"] == (s,)
    (w,) = warnings
    assert "ClusterRole/view stored rules differ" in w and "1 selected rule(s) missing" in w


def test_resolve_is_silent_when_stored_rules_match() -> None:
    p = rule("get", "", "pods")
    stored = snap(
        agg("view", sel(("v", "In", ("1",))), rules=(p,)), cr("bits", p, labels={"v": "1"})
    )
    resolved, warnings = resolve(stored)
    assert warnings == [] and resolved.roles == stored.roles


def test_reaggregate_after_apply_rewrites_only_changed_selections() -> None:
    p, s = rule("get", "", "pods"), rule("get", "", "secrets")
    before = snap(
        agg("view", sel(("v", "In", ("1",))), rules=(p,)),
        agg("other", sel(("o", "In", ("1",))), rules=(rule("get", "", "nodes"),)),  # drifted
        cr("bits", p, labels={"v": "1"}),
    )
    new_bits = cr("more", s, labels={"v": "1"})
    after = dataclasses.replace(before, roles=(*before.roles, new_bits))
    out = {r.name: r.rules for r in reaggregate(before, after, [new_bits.key]).roles}
    assert out["view"] == (p, s)
    assert out["other"] == (rule("get", "", "nodes"),)  # selection unchanged: stored kept
