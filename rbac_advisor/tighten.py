"""Recommendation: the smallest roles and bindings that still allow what was observed.

Per reviewable binding; built-in objects are never changed. Pure: no I/O.

Two things an audit log cannot show limit the recommendation: which ClusterRoles an
aggregated ClusterRole selects (those are never narrowed in place nor deleted), and the
apiserver's escalation check on writes of RBAC objects (bindings of a subject seen writing
them are left as they are, and no role is deleted while anyone writes them).

A ClusterRoleBinding used only in namespaces is moved into RoleBindings there, but never
into a namespace that cannot exist (not a DNS-1123 label), that the cluster is known not to
have, or when a subject creates namespaces (it would lose access to the next one).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rbac_advisor.aggregation import selector_matches
from rbac_advisor.authorizer import applies_to, breakdown
from rbac_advisor.diff import BindingFinding, Findings, Observation, Use
from rbac_advisor.errors import AdvisorError
from rbac_advisor.events import Decision
from rbac_advisor.proof import escalation_checked
from rbac_advisor.rbac import (
    Binding,
    BindingKey,
    BindingKind,
    Identity,
    PolicyRule,
    Role,
    RoleKey,
    RoleKind,
    RoleRef,
    Snapshot,
    Subject,
)
from rbac_advisor.rules import Need, minimal_rules
from rbac_advisor.validation import namespace_problem, quoted_name, rule_problems

PREFIX = "rbac-advisor:"
GENERATED_LABEL = ("rbac-advisor.io/generated", "true")
AGGREGATE_LABEL_PREFIX = "rbac.authorization.k8s.io/aggregate-to-"
WRITES_RBAC_WHY = (
    "its subjects write RBAC objects: the apiserver's escalation check needs them to hold "
    "every permission they grant (unless they may bind/escalate), which an audit log cannot "
    "show; review by hand"
)
CREATES_NAMESPACES_WHY = (
    "kept cluster-wide: its subjects create namespaces, and RoleBindings would not reach "
    "the namespaces they create next"
)
KEEPS_ROLES_WHY = (
    "RBAC objects were written in the window, and a binding written later may reference "
    "any role (the apiserver refuses a binding to a missing role unless its writer may bind it)"
)


@dataclass(frozen=True, slots=True)
class TightenOptions:
    """Knobs of the recommendation."""

    max_names: int = 5
    keep_unobservable: bool = True
    window: str = ""
    namespaces: frozenset[str] | None = None
    """The namespaces the cluster has; None when unknown (an offline RBAC dump)."""


@dataclass(frozen=True, slots=True)
class Change:
    """What the recommendation does to one binding, and why."""

    binding: BindingKey
    action: str  # "remove", "tighten", "unchanged", "report-only"
    summary: str
    creates: tuple[Role | Binding, ...] = ()
    deletes: tuple[Role | Binding, ...] = ()
    kept_unobservable: tuple[PolicyRule, ...] = ()
    dropped_wildcard_unobservable: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole recommendation: objects to apply and to delete, per-binding changes."""

    changes: tuple[Change, ...]
    apply: tuple[Role | Binding, ...] = ()
    prune: tuple[Role | Binding, ...] = ()
    notes: tuple[str, ...] = field(default=())


def _safe_name(base: str) -> str:
    name = PREFIX + base.removeprefix(PREFIX)
    if len(name) > 200:
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        name = f"{name[:189]}-{digest}"
    return name


def _meta(
    source: BindingKey, options: TightenOptions
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    labels = (GENERATED_LABEL,)
    ann = [("rbac-advisor.io/source", source.display())]
    if options.window:
        ann.append(("rbac-advisor.io/window", options.window))
    return labels, tuple(ann)


def _aggregation_sources(snapshot: Snapshot) -> frozenset[RoleKey]:
    """ClusterRoles some aggregated ClusterRole of the snapshot selects (not itself)."""
    aggregated = [
        r for r in snapshot.roles if r.kind == RoleKind.CLUSTER_ROLE and r.aggregation is not None
    ]
    return frozenset(
        role.key
        for role in snapshot.roles
        if role.kind == RoleKind.CLUSTER_ROLE
        and any(
            selector_matches(selector, dict(role.labels))
            for parent in aggregated
            if parent.name != role.name
            for selector in parent.aggregation or ()
        )
    )


def _rbac_writers(observations: Iterable[Observation]) -> frozenset[Identity]:
    """Identities seen writing Roles, ClusterRoles or bindings, unless the write was refused.

    ``system:masters`` members skip the escalation check, so they are left out.
    """
    return frozenset(
        o.identity
        for o in observations
        if not o.identity.privileged
        and o.decision != Decision.FORBID
        and escalation_checked(o.access)
    )


def _namespace_creators(observations: Iterable[Observation]) -> frozenset[Identity]:
    """Identities seen creating namespaces, unless the request was refused."""
    return frozenset(
        o.identity
        for o in observations
        if o.decision != Decision.FORBID
        and o.access.resource_request
        and o.access.verb == "create"
        and o.access.api_group == ""
        and o.access.resource == "namespaces"
        and not o.access.subresource
    )


def _used_subjects(f: BindingFinding) -> tuple[Subject, ...]:
    used = {u.subject for u in f.uses if not u.also_builtin}
    return tuple(s for s in f.binding.subjects if s in used)


def _unobservable(f: BindingFinding) -> tuple[tuple[PolicyRule, ...], bool]:
    """Explicit atoms with verbs an audit log cannot show; and whether ``*`` verbs hid some.

    Through a RoleBinding, non-resource atoms grant nothing (a RoleBinding only grants
    namespaced resource permissions), so they are neither kept nor counted.
    """
    namespaced = f.binding.kind == BindingKind.ROLE_BINDING
    kept: list[PolicyRule] = []
    wildcard = False
    for rr in f.rules:
        for a in rr.atoms:
            if namespaced and a.atom.non_resource_urls:
                continue
            if a.observable:
                if "*" in a.atom.verbs:
                    wildcard = True
                continue
            kept.append(a.atom)
    return tuple(kept), wildcard


def _needs(uses: Iterable[Use]) -> list[Need]:
    """What the new rules must allow: uses a built-in binding also allows are left out."""
    return [Need(u.access, u.names_required) for u in uses if not u.also_builtin]


class _Planner:
    def __init__(
        self,
        snapshot: Snapshot,
        options: TightenOptions,
        writers: frozenset[Identity] = frozenset(),
        creators: frozenset[Identity] = frozenset(),
    ) -> None:
        self.snapshot = snapshot
        self.options = options
        self.writers = writers
        self.creators = creators
        self.sources = _aggregation_sources(snapshot)
        self.refs: dict[RoleKey, int] = defaultdict(int)
        for b in snapshot.bindings:
            self.refs[b.role_key] += 1
        self.taken: set[tuple[str, str, str]] = {
            (r.kind, r.namespace, r.name) for r in snapshot.roles
        } | {(b.kind, b.namespace, b.name) for b in snapshot.bindings}

    def name(self, kind: str, namespace: str, base: str, replaces: str | None = None) -> str:
        """A deterministic, valid name not used by another object."""
        name = _safe_name(base)
        candidate, i = name, 2
        while (kind, namespace, candidate) in self.taken and candidate != replaces:
            candidate = f"{name}-{i}"
            i += 1
        self.taken.add((kind, namespace, candidate))
        return candidate

    def feeds_aggregation(self, role: Role) -> bool:
        """Selected by an aggregated ClusterRole, or labelled for a built-in one."""
        return role.key in self.sources or any(
            k.startswith(AGGREGATE_LABEL_PREFIX) for k, _ in role.labels
        )

    def sole_use(self, role: Role | None) -> bool:
        """Only one binding grants the role's rules: changing it touches nobody else."""
        return (
            role is not None
            and not role.builtin
            and self.refs[role.key] == 1
            and not self.feeds_aggregation(role)
        )

    def in_place(self, role: Role | None) -> bool:
        """The role may be narrowed where it is, for its one binding."""
        return self.sole_use(role) and role is not None and role.aggregation is None

    def retire(self, role: Role | None) -> tuple[tuple[Role, ...], str]:
        """Deletions for a role whose one binding goes, or why it stays although unused."""
        if role is None or not self.sole_use(role):
            return (), ""
        if self.writers:
            return (), f"keep {role.key.display()}: {KEEPS_ROLES_WHY}"
        return (role,), ""

    def writes_rbac(self, f: BindingFinding) -> bool:
        """A subject of the binding was seen writing RBAC objects.

        Also when a writer's request went through it: a log without groups may leave the
        writer outside the group the binding names.
        """
        return _involves(f, self.writers)

    def keeps_cluster_wide(self, f: BindingFinding, namespaces: Iterable[str]) -> str:
        """Why the binding's use in ``namespaces`` must stay cluster-wide, or ``""``."""
        if _involves(f, self.creators):
            return CREATES_NAMESPACES_WHY
        existing = self.options.namespaces
        missing = sorted(set(namespaces) - existing) if existing is not None else []
        if missing:
            return (
                f"kept cluster-wide: namespace(s) {_listed(missing)} do not exist now (deleted "
                "during the window, or never created): a RoleBinding there cannot be applied"
            )
        return ""


def _involves(f: BindingFinding, identities: frozenset[Identity]) -> bool:
    """One of ``identities`` is a subject of the binding, or sent a request through it.

    The latter also when a log without groups leaves it outside the group the binding names.
    """
    return any(applies_to(i, f.binding) is not None for i in identities) or any(
        u.identity in identities for u in f.uses
    )


def _listed(names: Iterable[str], limit: int = 3) -> str:
    """A few names, quoted, and how many more there are."""
    names = list(names)
    shown = ", ".join(quoted_name(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def plan(
    snapshot: Snapshot, findings: Findings, options: TightenOptions = TightenOptions()
) -> Plan:
    """Build the recommendation for every reviewable binding."""
    p = _Planner(
        snapshot,
        options,
        _rbac_writers(findings.observations),
        _namespace_creators(findings.observations),
    )
    changes = [_plan_binding(p, f) for f in findings.bindings]
    apply: list[Role | Binding] = []
    prune: list[Role | Binding] = []
    for c in changes:
        apply.extend(c.creates)
        prune.extend(c.deletes)
    _check_rules(apply)
    _check_namespaces([*apply, *prune])
    notes = (f"no Role or ClusterRole is deleted: {KEEPS_ROLES_WHY}",) if p.writers else ()
    return Plan(
        changes=tuple(changes),
        apply=tuple(sorted(set(apply), key=_order)),
        prune=tuple(sorted(set(prune), key=_order)),
        notes=notes,
    )


def _check_rules(objects: Iterable[Role | Binding]) -> None:
    """Refuse generated roles the apiserver would reject (a Role may not name URLs).

    Raises:
        AdvisorError: a generated rule fails ``rule_problems`` for its role's kind.
    """
    problems = [
        f"{o.key.display()} rules[{i}].{problem}"
        for o in objects
        if isinstance(o, Role)
        for i, rule in enumerate(o.rules)
        for problem in rule_problems(rule, namespaced=o.kind == RoleKind.ROLE)
    ]
    if problems:
        raise AdvisorError("generated a rule Kubernetes would reject: " + "; ".join(problems))


def _check_namespaces(objects: Iterable[Role | Binding]) -> None:
    """Refuse Roles and RoleBindings in a namespace that cannot exist.

    Raises:
        AdvisorError: an object's namespace fails ``namespace_problem``.
    """
    problems = [
        f"{o.key.display()!r}: {problem}"
        for o in objects
        if o.namespace and (problem := namespace_problem(o.namespace))
    ]
    if problems:
        raise AdvisorError("generated an object Kubernetes would reject: " + "; ".join(problems))


def _order(obj: Role | Binding) -> tuple[int, str, str]:
    if isinstance(obj, Role):
        return (0 if obj.kind == RoleKind.CLUSTER_ROLE else 1, obj.namespace, obj.name)
    return (2 if obj.kind == BindingKind.CLUSTER_ROLE_BINDING else 3, obj.namespace, obj.name)


def _plan_binding(p: _Planner, f: BindingFinding) -> Change:
    b = f.binding
    if not f.reviewable:
        return Change(b.key, "report-only", f.not_reviewable_why)
    if p.writes_rbac(f):
        return Change(b.key, "report-only", WRITES_RBAC_WHY)
    if b.namespace and (problem := namespace_problem(b.namespace)):
        return Change(b.key, "report-only", f"{problem}: no cluster can hold this binding")
    role = f.role
    assert role is not None
    kept, hidden = _unobservable(f) if p.options.keep_unobservable else ((), False)
    needed = [u for u in f.uses if not u.also_builtin]
    if not needed and not kept:
        retired, keep = p.retire(role)
        why = (
            "no request used this binding in the window"
            if f.idle
            else "every request it served is also allowed by built-in bindings"
        )
        why = f"{why}; {keep}" if keep else why
        return Change(b.key, "remove", why, (), (b, *retired))
    subjects = _used_subjects(f) or b.subjects
    scopes: dict[str, list[Use]] = {b.namespace: needed}
    cluster: list[Use] = []
    notes: list[str] = []
    if b.kind == BindingKind.CLUSTER_ROLE_BINDING:
        scopes, cluster, notes = _rescope(p, f, needed)
        if not scopes and not cluster and not kept:
            retired, keep = p.retire(role)
            return Change(b.key, "remove", _joined(*notes, keep), (), (b, *retired))
    max_names = p.options.max_names
    cluster_rules = minimal_rules(
        _needs(cluster), kept if b.kind != BindingKind.ROLE_BINDING else (), max_names
    )
    ns_rules = {
        ns: minimal_rules(_needs(us), kept if b.kind == BindingKind.ROLE_BINDING else (), max_names)
        for ns, us in sorted(scopes.items())
    }
    change = _emit(p, f, subjects, cluster_rules, ns_rules)
    return Change(
        change.binding,
        change.action,
        _joined(change.summary, *notes),
        change.creates,
        change.deletes,
        kept,
        hidden,
    )


def _rescope(
    p: _Planner, f: BindingFinding, needed: list[Use]
) -> tuple[dict[str, list[Use]], list[Use], list[str]]:
    """Split a ClusterRoleBinding's uses into those moved to namespaces and cluster-wide ones.

    Uses in a namespace that cannot exist are dropped: such a request failed at the
    apiserver after authorization, and no RoleBinding can be written there. When
    ``p.keeps_cluster_wide`` says why, every use stays cluster-wide and nothing is dropped.

    Returns:
        Uses per namespace to move, uses kept cluster-wide, notes for the change's summary.
    """
    scopes: dict[str, list[Use]] = defaultdict(list)
    cluster: list[Use] = []
    for u in needed:
        ns = u.access.namespace if u.access.resource_request else ""
        (scopes[ns] if ns else cluster).append(u)
    invalid = sorted(ns for ns in scopes if namespace_problem(ns))
    valid = sorted(ns for ns in scopes if ns not in invalid)
    why = p.keeps_cluster_wide(f, valid) if valid else ""
    if why:
        return {}, list(needed), [why]
    notes: list[str] = []
    if valid and p.options.namespaces is None:
        notes.append(
            "the RoleBindings assume those namespaces exist: the RBAC input does not list them"
        )
    if invalid:
        notes.append(
            f"requests in {len(invalid)} invalid namespace(s) such as {quoted_name(invalid[0])} "
            "are not carried over: no such namespace can exist"
        )
    return {ns: scopes[ns] for ns in valid}, cluster, notes


def _joined(*parts: str) -> str:
    """The non-empty parts of a summary, joined."""
    return "; ".join(part for part in parts if part)


def _same(old: tuple[PolicyRule, ...], new: tuple[PolicyRule, ...]) -> bool:
    atoms_old = {a for r in old for a in breakdown(r)}
    atoms_new = {a for r in new for a in breakdown(r)}
    return atoms_old == atoms_new


def _emit(
    p: _Planner,
    f: BindingFinding,
    subjects: tuple[Subject, ...],
    cluster_rules: tuple[PolicyRule, ...],
    ns_rules: dict[str, tuple[PolicyRule, ...]],
) -> Change:
    b = f.binding
    role = f.role
    assert role is not None
    labels, ann = _meta(b.key, p.options)
    creates: list[Role | Binding] = []
    deletes: list[Role | Binding] = []
    parts: list[str] = []
    same_subjects = subjects == b.subjects
    if b.kind == BindingKind.ROLE_BINDING:
        rules = ns_rules[b.namespace]
        if _same(role.rules, rules) and same_subjects and role.kind == RoleKind.ROLE:
            return Change(b.key, "unchanged", "every granted permission was used")
        if role.kind == RoleKind.ROLE and p.in_place(role):
            if not _same(role.rules, rules):
                creates.append(_replace_rules(role, rules, ann))
                parts.append(f"narrow {role.key.display()} to {len(rules)} rule(s)")
            if not same_subjects:
                creates.append(_with_subjects(b, subjects))
                parts.append("drop idle subjects")
        else:
            rname = p.name("Role", b.namespace, b.name)
            new_role = Role(RoleKind.ROLE, rname, b.namespace, rules, labels, ann)
            new_b = _binding(
                p, b, b.namespace, RoleRef(RoleKind.ROLE, rname), subjects, labels, ann
            )
            creates += [new_role, new_b]
            retired, keep = p.retire(role)
            deletes += [b, *retired]
            parts += [
                f"replace with Role {rname} ({len(rules)} rule(s))",
                *([keep] if keep else []),
            ]
        return Change(b.key, "tighten", "; ".join(parts), tuple(creates), tuple(deletes))
    # ClusterRoleBinding: keep only cluster-wide use on it, move the rest to namespaces.
    if not ns_rules and _same(role.rules, cluster_rules) and same_subjects:
        return Change(b.key, "unchanged", "every granted permission was used")
    if cluster_rules:
        if not ns_rules and p.in_place(role):
            creates.append(_replace_rules(role, cluster_rules, ann))
            if not same_subjects:
                creates.append(_with_subjects(b, subjects))
            parts.append(f"narrow {role.key.display()} to {len(cluster_rules)} rule(s)")
        else:
            rname = p.name("ClusterRole", "", b.name)
            creates.append(Role(RoleKind.CLUSTER_ROLE, rname, "", cluster_rules, labels, ann))
            ref = RoleRef(RoleKind.CLUSTER_ROLE, rname)
            creates.append(_binding(p, b, "", ref, subjects, labels, ann))
            deletes.append(b)
            parts.append(f"cluster-wide: {len(cluster_rules)} rule(s)")
    else:
        deletes.append(b)
    if ns_rules:
        distinct = set(ns_rules.values())
        if len(distinct) == 1:
            rules = next(iter(distinct))
            rname = p.name("ClusterRole", "", b.name + ":namespaced")
            creates.append(Role(RoleKind.CLUSTER_ROLE, rname, "", rules, labels, ann))
            ref = RoleRef(RoleKind.CLUSTER_ROLE, rname)
            creates += [_binding(p, b, ns, ref, subjects, labels, ann) for ns in ns_rules]
        else:
            for ns, rules in ns_rules.items():
                rname = p.name("Role", ns, b.name)
                creates.append(Role(RoleKind.ROLE, rname, ns, rules, labels, ann))
                ref = RoleRef(RoleKind.ROLE, rname)
                creates.append(_binding(p, b, ns, ref, subjects, labels, ann))
        parts.append("namespaced use moved to RoleBindings in " + ", ".join(ns_rules))
    if b in deletes:
        retired, keep = p.retire(role)
        deletes += retired
        parts += [keep] if keep else []
    return Change(b.key, "tighten", "; ".join(parts), tuple(creates), tuple(deletes))


def _binding(
    p: _Planner,
    b: Binding,
    ns: str,
    ref: RoleRef,
    subjects: tuple[Subject, ...],
    labels: tuple[tuple[str, str], ...],
    ann: tuple[tuple[str, str], ...],
) -> Binding:
    """A new binding named after ``b``: a RoleBinding in ``ns``, cluster-wide when empty."""
    kind = BindingKind.ROLE_BINDING if ns else BindingKind.CLUSTER_ROLE_BINDING
    return Binding(kind, p.name(kind.value, ns, b.name), ns, ref, subjects, labels, ann)


def _replace_rules(
    role: Role, rules: tuple[PolicyRule, ...], ann: tuple[tuple[str, str], ...]
) -> Role:
    labels = tuple(sorted(set(role.labels) | {GENERATED_LABEL}))
    annotations = tuple(sorted((dict(role.annotations) | dict(ann)).items()))
    return Role(role.kind, role.name, role.namespace, rules, labels, annotations)


def _with_subjects(b: Binding, subjects: tuple[Subject, ...]) -> Binding:
    return Binding(b.kind, b.name, b.namespace, b.role_ref, subjects, b.labels, b.annotations)
