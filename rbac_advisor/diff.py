"""Granted versus used: attribute every observed request to bindings. Pure: no I/O.

For each binding this finds which requests it served, which of its rules (and rule atoms)
were exercised, which subjects were idle, and what was denied.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rbac_advisor.authorizer import Authorizer, breakdown, rule_allows
from rbac_advisor.events import Decision
from rbac_advisor.rbac import (
    Access,
    Binding,
    BindingKey,
    BindingKind,
    Grant,
    Identity,
    PolicyRule,
    Request,
    Role,
    Snapshot,
    Subject,
    SubjectKind,
)
from rbac_advisor.risk import classify
from rbac_advisor.usage import earliest

# Verbs an audit log can show for resources; anything else (bind, escalate, approve,
# sign, use, custom verbs) is never observed and so never judged unused.
OBSERVABLE_VERBS = frozenset(
    {
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "impersonate",
        "proxy",
    }
)
OBSERVABLE_URL_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "options"})


@dataclass(frozen=True, slots=True)
class Observation:
    """One distinct observed request with its aggregate statistics (usage-model agnostic).

    ``via`` is the binding the logged allow reason names and ``via_subject`` the subject
    it names (None when not known).
    """

    identity: Identity
    access: Access
    decision: Decision
    count: int
    first: float
    last: float
    days: frozenset[int]
    via: BindingKey | None = None
    tools: frozenset[str] = frozenset()
    via_subject: Subject | None = None


@dataclass(frozen=True, slots=True)
class DiffOptions:
    """How requests are attributed to bindings."""

    attribute_all: bool = False


@dataclass(frozen=True, slots=True)
class Use:
    """A distinct request served by one binding."""

    identity: Identity
    access: Access
    subject: Subject
    rule_indexes: tuple[int, ...]
    names_required: bool
    count: int
    first: float
    last: float
    days: frozenset[int]
    by_reason: bool
    tools: frozenset[str] = frozenset()
    also_builtin: str = ""


@dataclass(frozen=True, slots=True)
class AtomReport:
    """One broken-down permission of a rule and whether it was exercised."""

    atom: PolicyRule
    used: bool
    count: int
    last: float | None
    risks: tuple[str, ...]
    observable: bool
    covered: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleReport:
    """One rule of a binding's role with its atoms."""

    index: int
    rule: PolicyRule
    atoms: tuple[AtomReport, ...]

    @property
    def used(self) -> bool:
        """True when any atom of the rule was exercised."""
        return any(a.used for a in self.atoms)


@dataclass(frozen=True, slots=True)
class SubjectUse:
    """How much one subject of a binding used it."""

    subject: Subject
    requests: int
    last: float | None
    users: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BindingFinding:
    """Everything observed about one binding."""

    binding: Binding
    role: Role | None
    reviewable: bool
    not_reviewable_why: str
    uses: tuple[Use, ...]
    rules: tuple[RuleReport, ...]
    subjects: tuple[SubjectUse, ...]

    @property
    def idle(self) -> bool:
        """No observed request went through this binding."""
        return not self.uses

    @property
    def idle_subjects(self) -> tuple[Subject, ...]:
        """Subjects of the binding that sent no request through it."""
        return tuple(s.subject for s in self.subjects if s.requests == 0)


@dataclass(frozen=True, slots=True)
class Denied:
    """A distinct request that was denied."""

    identity: Identity
    access: Access
    count: int
    last: float


@dataclass(frozen=True, slots=True)
class Findings:
    """The diff of one snapshot against one usage model."""

    bindings: tuple[BindingFinding, ...]
    denied: tuple[Denied, ...]
    unexplained: tuple[Observation, ...]
    privileged_requests: int
    observations: tuple[Observation, ...]
    warnings: tuple[str, ...] = field(default=())
    snapshot: Snapshot = field(default_factory=Snapshot)


def _choose(
    grants_by_binding: dict[BindingKey, list[int]],
    bindings: dict[BindingKey, Binding],
    used_by: set[tuple[str, BindingKey]],
    identity: Identity,
) -> BindingKey:
    """Pick the binding that keeps the recommendation tightest.

    Built-in bindings first (they are never changed, so using them costs nothing), then a
    binding the subject already uses, then namespaced over cluster-wide, then name order.
    """

    def key(bk: BindingKey) -> tuple[int, int, int, str, str]:
        b = bindings[bk]
        return (
            0 if b.builtin else 1,
            0 if (identity.user, bk) in used_by else 1,
            0 if bk.kind == BindingKind.ROLE_BINDING else 1,
            bk.namespace,
            bk.name,
        )

    return min(grants_by_binding, key=key)


def find(
    snapshot: Snapshot,
    observations: Iterable[Observation],
    options: DiffOptions = DiffOptions(),
) -> Findings:
    """Attribute observations to bindings and report used and unused grants per binding."""
    authz = Authorizer(snapshot)
    bindings = {b.key: b for b in snapshot.bindings}
    obs = sorted(observations, key=lambda o: (o.identity, o.access, o.decision))
    used_by = {(o.identity.user, o.via) for o in obs if o.via is not None}
    # Requests only one reviewable binding can serve pin that binding for the subject:
    # preferring pinned bindings for the other requests keeps fewer bindings alive.
    for o in obs:
        if o.identity.privileged or o.decision == Decision.FORBID:
            continue
        grants = authz.decide(Request(o.identity, o.access)).grants
        keys = {g.binding for g in grants}
        if len(keys) == 1:
            used_by.add((o.identity.user, next(iter(keys))))
    uses: dict[BindingKey, dict[tuple[Identity, Access, Subject], Use]] = defaultdict(dict)
    denied: dict[tuple[Identity, Access], Denied] = {}
    unexplained: list[Observation] = []
    privileged = 0
    for o in obs:
        if o.identity.privileged:
            privileged += o.count
            continue
        decision = authz.decide(Request(o.identity, o.access))
        if o.decision == Decision.FORBID or (
            o.decision == Decision.UNKNOWN and not decision.allowed
        ):
            _add_denied(denied, o)
            continue
        per_binding, subjects = _by_binding(decision.grants)
        cited = _cited(o, bindings, authz, per_binding)
        if cited is not None and o.via is not None:
            per_binding[o.via], subjects[o.via] = cited
        if not per_binding:
            unexplained.append(o)
            continue
        if options.attribute_all:
            chosen = list(per_binding)
        elif o.via is not None and o.via in per_binding:
            chosen = [o.via]
        else:
            chosen = [_choose(per_binding, bindings, used_by, o.identity)]
        # A built-in binding that also allows the request stays as it is, so a
        # reviewable binding need not keep this permission even when the reason named it.
        builtin = next((bk for bk in per_binding if bindings[bk].builtin), None)
        for bk in chosen:
            role = authz.roles[bindings[bk].role_key]
            also = builtin.display() if builtin is not None and builtin != bk else ""
            for subject in subjects[bk]:
                _add_use(
                    uses[bk], o, subject, per_binding[bk], role, by_reason=o.via == bk, also=also
                )
    findings = tuple(
        _binding_finding(b, authz.roles.get(b.role_key), uses.get(b.key, {}))
        for b in sorted(snapshot.bindings, key=lambda b: b.key)
    )
    return Findings(
        bindings=findings,
        denied=tuple(sorted(denied.values(), key=lambda d: (d.identity, d.access))),
        unexplained=tuple(unexplained),
        privileged_requests=privileged,
        observations=tuple(obs),
        warnings=snapshot.warnings,
        snapshot=snapshot,
    )


def _by_binding(
    grants: Iterable[Grant],
) -> tuple[dict[BindingKey, list[int]], dict[BindingKey, tuple[Subject, ...]]]:
    """The allowing rule indexes and the matched subject of each binding among ``grants``."""
    per_binding: dict[BindingKey, list[int]] = defaultdict(list)
    subjects: dict[BindingKey, tuple[Subject, ...]] = {}
    for g in grants:
        per_binding[g.binding].append(g.rule_index)
        subjects[g.binding] = (g.subject,)
    return per_binding, subjects


def _cited(
    o: Observation,
    bindings: dict[BindingKey, Binding],
    authz: Authorizer,
    evaluated: dict[BindingKey, list[int]],
) -> tuple[list[int], tuple[Subject, ...]] | None:
    """Rules and subjects of the binding a reason names that the log cannot show matching.

    Some logs (GKE's) carry no group memberships, so evaluation cannot match the identity
    to a Group subject the apiserver did match. When no binding allows the request by
    evaluation, the reason is the evidence: the binding it names is credited when it exists,
    it can grant the access in its scope, its role allows the access, and the subject the
    reason names is one of its Group subjects the logged identity lacks. When the reason's
    subject is not known, every such Group subject is credited (the log cannot say which
    one admitted the request). A request some binding allows by evaluation is attributed
    among those grants, which the replay proof can check.
    """
    if o.via is None or evaluated:
        return None
    b = bindings.get(o.via)
    role = authz.roles.get(b.role_key) if b is not None else None
    if b is None or role is None or not _in_scope(b, o.access):
        return None
    rules = [i for i, r in enumerate(role.rules) if rule_allows(r, o.access)]
    hidden = tuple(
        s for s in b.subjects if s.kind == SubjectKind.GROUP and s.name not in o.identity.groups
    )
    named = o.via_subject
    if named is not None:
        hidden = tuple(s for s in hidden if (s.kind, s.name) == (named.kind, named.name))
    return (rules, hidden) if rules and hidden else None


def _in_scope(b: Binding, a: Access) -> bool:
    """Can the binding grant ``a``: a RoleBinding only resources in its own namespace."""
    if b.kind == BindingKind.CLUSTER_ROLE_BINDING:
        return True
    return a.resource_request and a.namespace != "" and a.namespace == b.namespace


def _add_denied(denied: dict[tuple[Identity, Access], Denied], o: Observation) -> None:
    k = (o.identity, o.access)
    prev = denied.get(k)
    if prev is None:
        denied[k] = Denied(o.identity, o.access, o.count, o.last)
    else:
        denied[k] = Denied(o.identity, o.access, prev.count + o.count, max(prev.last, o.last))


def _add_use(
    table: dict[tuple[Identity, Access, Subject], Use],
    o: Observation,
    subject: Subject,
    rule_indexes: list[int],
    role: Role,
    *,
    by_reason: bool,
    also: str = "",
) -> None:
    names_required = all(role.rules[i].resource_names for i in rule_indexes)
    k = (o.identity, o.access, subject)
    prev = table.get(k)
    if prev is None:
        table[k] = Use(
            o.identity,
            o.access,
            subject,
            tuple(sorted(set(rule_indexes))),
            names_required,
            o.count,
            o.first,
            o.last,
            o.days,
            by_reason,
            o.tools,
            also,
        )
        return
    table[k] = Use(
        o.identity,
        o.access,
        prev.subject,
        tuple(sorted(set(prev.rule_indexes) | set(rule_indexes))),
        prev.names_required and names_required,
        prev.count + o.count,
        earliest(prev.first, o.first),
        max(prev.last, o.last),
        prev.days | o.days,
        prev.by_reason or by_reason,
        prev.tools | o.tools,
        prev.also_builtin and also,
    )


def is_observable(atom: PolicyRule) -> bool:
    """Can an audit log ever show this atom being used.

    Not when a verb is one no request carries, nor when the permission is also checked
    by delegated authorization: the kubelet asks the apiserver (SubjectAccessReview)
    whether a caller may use ``nodes/metrics``, ``nodes/stats``, ``nodes/proxy``..., and
    components behind kube-rbac-proxy or the controller manager and scheduler do so for
    ``/metrics`` and health paths. The audit log then shows the component's review, never
    the caller's permission.
    """
    if atom.non_resource_urls:
        if any(_delegated_path(u) for u in atom.non_resource_urls):
            return False
        verbs = OBSERVABLE_URL_VERBS
    else:
        if "" in atom.api_groups and any(r in KUBELET_RESOURCES for r in atom.resources):
            return False
        verbs = OBSERVABLE_VERBS
    return all(v == "*" or v in verbs for v in atom.verbs)


# What the kubelet authorizes through the apiserver (kubelet/server/auth.go, with
# KubeletFineGrainedAuthz): subresources of nodes, in the core group.
KUBELET_RESOURCES = frozenset(
    {
        "nodes/proxy",
        "nodes/stats",
        "nodes/metrics",
        "nodes/log",
        "nodes/spec",
        "nodes/configz",
        "nodes/healthz",
        "nodes/pods",
        "nodes/checkpoint",
    }
)
_DELEGATED_PATHS = ("/metrics", "/healthz", "/livez", "/readyz")


def _delegated_path(url: str) -> bool:
    """A path other components serve behind delegated authorization, or a glob within one.

    A broader glob (``/*``, ``*``) stays observable: it is narrowed to what was seen.
    """
    return any(url.startswith(p) for p in _DELEGATED_PATHS)


def _binding_finding(
    b: Binding, role: Role | None, uses: dict[tuple[Identity, Access, Subject], Use]
) -> BindingFinding:
    ordered = tuple(uses[k] for k in sorted(uses))
    if role is None:
        why = f"{b.role_key.display()} does not exist (the binding grants nothing)"
    elif b.builtin:
        why = "built-in binding (never changed)"
    else:
        why = ""
    rules = tuple(_rule_report(i, r, ordered) for i, r in enumerate(role.rules)) if role else ()
    return BindingFinding(
        binding=b,
        role=role,
        reviewable=not why,
        not_reviewable_why=why,
        uses=ordered,
        rules=rules,
        subjects=_subject_uses(b, ordered),
    )


def _rule_report(index: int, rule: PolicyRule, uses: tuple[Use, ...]) -> RuleReport:
    mine = [u for u in uses if index in u.rule_indexes]
    atoms = []
    for atom in breakdown(rule):
        hit = [u for u in mine if rule_allows(atom, u.access)]
        wildcard = (
            "*" in atom.verbs
            or "*" in atom.resources
            or "*" in atom.api_groups
            or (any(r.startswith("*/") for r in atom.resources))
        )
        covered = (
            tuple(sorted({f"{u.access.verb} {u.access.target}" for u in hit}))[:50]
            if wildcard
            else ()
        )
        atoms.append(
            AtomReport(
                atom=atom,
                used=bool(hit),
                count=sum(u.count for u in hit),
                last=max((u.last for u in hit), default=None),
                risks=tuple(c.name for c in classify(atom)),
                observable=is_observable(atom),
                covered=covered,
            )
        )
    return RuleReport(index, rule, tuple(atoms))


def _subject_uses(b: Binding, uses: tuple[Use, ...]) -> tuple[SubjectUse, ...]:
    out = []
    for s in b.subjects:
        mine = [u for u in uses if u.subject == s]
        out.append(
            SubjectUse(
                subject=s,
                requests=sum(u.count for u in mine),
                last=max((u.last for u in mine), default=None),
                users=tuple(sorted({u.identity.user for u in mine})),
            )
        )
    return tuple(out)
