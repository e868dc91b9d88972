"""Aggregated ClusterRoles, as the clusterrole-aggregation-controller computes them. Pure.

The authorizer reads only the *stored* rules of a ClusterRole; kube-controller-manager writes
them for roles with an ``aggregationRule``. ``resolve`` therefore keeps stored rules whenever
there are any (that is what the apiserver authorizes with) and only reports drift from the
computed union; when an aggregated role has no stored rules at all (bare manifests, or a
control plane without the controller) it uses the computed union and says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from rbac_advisor.rbac import LabelSelector, PolicyRule, Role, RoleKey, RoleKind, Snapshot


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """As labels.Selector.Matches: every requirement holds (an empty selector matches all)."""
    for req in selector.requirements:
        present = req.key in labels
        if req.operator == "In":
            ok = present and labels[req.key] in req.values
        elif req.operator == "NotIn":
            ok = not present or labels[req.key] not in req.values
        elif req.operator == "Exists":
            ok = present
        elif req.operator == "DoesNotExist":
            ok = not present
        else:
            ok = False
        if not ok:
            return False
    return True


def aggregate(role: Role, cluster_roles: Iterable[Role]) -> tuple[PolicyRule, ...]:
    """As syncClusterRole: the rules the controller would write for ``role``.

    For each selector in order, the matching ClusterRoles sorted by name (``role`` itself
    excluded) contribute each of their stored rules unless an equal rule is already present.
    """
    if role.aggregation is None:
        return role.rules
    candidates = sorted(
        (r for r in cluster_roles if r.kind == RoleKind.CLUSTER_ROLE and r.name != role.name),
        key=lambda r: r.name,
    )
    out: list[PolicyRule] = []
    seen: set[PolicyRule] = set()
    for selector in role.aggregation:
        for other in candidates:
            if not selector_matches(selector, dict(other.labels)):
                continue
            for rule in other.rules:
                if rule not in seen:
                    seen.add(rule)
                    out.append(rule)
    return tuple(out)


def computed_rules(snapshot: Snapshot) -> dict[RoleKey, tuple[PolicyRule, ...]]:
    """The controller's fixed point: rules of every aggregated ClusterRole once it settles.

    Aggregated roles may select other aggregated roles (``admin`` selects ``edit``, which
    selects ``view``), so the controller is run in name order until nothing changes; a
    selection cycle that keeps growing stops after one round per aggregated role.
    """
    current = {r.name: r for r in snapshot.roles if r.kind == RoleKind.CLUSTER_ROLE}
    aggregated = sorted(n for n, r in current.items() if r.aggregation is not None)
    result: dict[RoleKey, tuple[PolicyRule, ...]] = {}
    for _ in range(len(aggregated) + 1):
        changed = False
        for name in aggregated:
            role = current[name]
            rules = aggregate(role, current.values())
            if rules != role.rules:
                current[name] = dataclasses.replace(role, rules=rules)
                changed = True
        if not changed:
            break
    for name in aggregated:
        result[current[name].key] = current[name].rules
    return result


def resolve(snapshot: Snapshot) -> tuple[Snapshot, list[str]]:
    """Fill in aggregated ClusterRoles that have no stored rules, and report drift.

    Returns:
        The snapshot (aggregated roles without stored rules now carry the computed union;
        every other role and the warnings are unchanged), and the drift messages.
    """
    computed = computed_rules(snapshot)
    warnings: list[str] = []
    roles: list[Role] = []
    for role in snapshot.roles:
        if role.key not in computed:
            roles.append(role)
            continue
        if not role.rules:
            union = computed[role.key]
            if union:
                warnings.append(
                    f"{role.key.display()} is aggregated but has no stored rules (no "
                    f"controller-manager has written them); using the {len(union)} rule(s) "
                    "its aggregationRule selects"
                )
            roles.append(dataclasses.replace(role, rules=union))
            continue
        expected = computed[role.key]
        if set(expected) != set(role.rules):
            missing = len(set(expected) - set(role.rules))
            extra = len(set(role.rules) - set(expected))
            warnings.append(
                f"{role.key.display()} stored rules differ from its aggregationRule "
                f"({missing} selected rule(s) missing, {extra} rule(s) not selected); "
                "using the stored rules, which are what the apiserver authorizes with"
            )
        roles.append(role)
    return dataclasses.replace(snapshot, roles=tuple(roles)), warnings


def reaggregate(before: Snapshot, after: Snapshot, applied: Iterable[RoleKey]) -> Snapshot:
    """Rules of aggregated ClusterRoles after objects were applied or deleted.

    The controller rewrites an aggregated role when its selection changes, and rewrites an
    applied aggregated role whatever rules it was given (A4: hand-written rules are
    overwritten). Aggregated roles whose selection did not change keep their stored rules.
    """
    applied_keys = set(applied)
    old = computed_rules(before)
    new = computed_rules(after)
    roles = []
    for role in after.roles:
        union = new.get(role.key)
        if union is not None and (role.key in applied_keys or old.get(role.key) != union):
            role = dataclasses.replace(role, rules=union)
        roles.append(role)
    return dataclasses.replace(after, roles=tuple(roles))
