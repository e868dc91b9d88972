"""The proof a recommendation must pass before anything is written. Pure: no I/O.

Replays every observed request against current RBAC and against
current + apply - prune: no allowed request may become denied, no denied request allowed.
An allowed request whose reason names a group the log lacks (GKE logs carry no groups) is
replayed with that group, as the apiserver authorized it.
Allowed writes of RBAC objects also pass the apiserver's escalation check, which the audit
log does not show: the writer must keep every permission it held in the write's scope, and
a binding write must still find every role it may reference. Then checks that no subject
of a generated binding gains a permission it did not hold, and no existing role grows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rbac_advisor import replay
from rbac_advisor.authorizer import Authorizer, covers, sa_username
from rbac_advisor.diff import Observation
from rbac_advisor.events import Decision
from rbac_advisor.rbac import (
    Access,
    Binding,
    BindingKey,
    BindingKind,
    Identity,
    PolicyRule,
    Request,
    Role,
    RoleKey,
    RoleKind,
    Snapshot,
    Subject,
    SubjectKind,
)
from rbac_advisor.validation import impossible_namespace

RBAC_GROUP = "rbac.authorization.k8s.io"
# Writes the apiserver's RBAC storage checks for escalation (ConfirmNoEscalation): the
# writer must hold every permission the written role has, or the role a binding refers to.
ESCALATION_CHECKED_VERBS = frozenset({"create", "update", "patch"})
ROLE_RESOURCES = frozenset({"roles", "clusterroles"})
BINDING_RESOURCES = frozenset({"rolebindings", "clusterrolebindings"})


def escalation_checked(access: Access) -> bool:
    """True for a write of a Role, ClusterRole or binding, which the escalation check guards.

    Unless the writer may ``escalate`` (roles) or ``bind`` (the referenced role), the
    apiserver requires it to hold every permission granted; the audit log shows neither the
    written object nor that check.
    """
    return (
        access.resource_request
        and access.api_group == RBAC_GROUP
        and not access.subresource
        and access.verb in ESCALATION_CHECKED_VERBS
        and access.resource in ROLE_RESOURCES | BINDING_RESOURCES
    )


@dataclass(frozen=True, slots=True)
class Broken:
    """A request whose outcome the recommendation would change."""

    identity: Identity
    description: str
    before: bool
    after: bool
    count: int


@dataclass(frozen=True, slots=True)
class Escalation:
    """A permission a generated binding, or a grown existing role, would newly grant."""

    binding: str
    subject: str
    rules: tuple[PolicyRule, ...]


@dataclass(frozen=True, slots=True)
class Proof:
    """Result of replaying the usage against the intended RBAC."""

    checked: int
    requests: int
    broken: tuple[Broken, ...]
    escalations: tuple[Escalation, ...]
    apply_problems: tuple[str, ...] = ()

    @property
    def sound(self) -> bool:
        """True when nothing observed changes, nobody gains access, and kubectl can apply it."""
        return not self.broken and not self.escalations and not self.apply_problems


def intended(
    current: Snapshot, apply: Iterable[Role | Binding], prune: Iterable[Role | Binding]
) -> Snapshot:
    """Current + apply (create or replace by identity) - prune (by identity), as kubectl does."""
    apply, prune = list(apply), list(prune)

    def snap(objs: list[Role | Binding]) -> Snapshot:
        return Snapshot(
            roles=tuple(o for o in objs if isinstance(o, Role)),
            bindings=tuple(o for o in objs if isinstance(o, Binding)),
        )

    return replay.intended(current, snap(apply), snap(prune))


def _identity(s: Subject, namespace: str) -> Identity | None:
    if s.kind == SubjectKind.USER:
        return Identity(s.name)
    if s.kind == SubjectKind.GROUP:
        return Identity("rbac-advisor:probe", (s.name,))
    if s.kind == SubjectKind.SERVICE_ACCOUNT:
        ns = s.namespace or namespace
        return Identity(sa_username(ns, s.name)) if ns else None
    return None


def _authorized_as(o: Observation, bindings: dict[BindingKey, Binding]) -> Identity:
    """Who ``o`` was authorized as: an allow gets the group its reason names, if logged without.

    Replayed with the logged groups only, such a request is denied before and after, and
    the proof could not notice a plan that drops the group's grant.
    """
    if o.decision != Decision.ALLOW:
        return o.identity
    return replay.admitted(o.identity, o.via, o.via_subject, bindings)


def prove(
    current: Snapshot,
    after: Snapshot,
    observations: Iterable[Observation],
    generated: Iterable[Role | Binding],
) -> Proof:
    """Replay observations on both snapshots and check generated bindings for new access."""
    before_authz, after_authz = Authorizer(current), Authorizer(after)
    deleted = sorted({r.key for r in current.roles} - {r.key for r in after.roles})
    bindings = {b.key: b for b in current.bindings}
    lost: dict[tuple[Identity, str], list[PolicyRule]] = {}
    broken: list[Broken] = []
    checked = requests = 0
    for o in observations:
        identity = _authorized_as(o, bindings)
        if identity.privileged or impossible_namespace(o.access):
            continue  # allowed before RBAC, or failed whatever RBAC said
        req = Request(identity, o.access)
        b, a = before_authz.allows(req), after_authz.allows(req)
        checked += 1
        requests += o.count
        # Where the log and current RBAC disagree (RBAC changed during the window, or a
        # non-RBAC authorizer decided), either outcome matches one of them: not our change.
        logged = {Decision.ALLOW: True, Decision.FORBID: False}.get(o.decision, b)
        if a != b and logged == b:
            broken.append(Broken(identity, o.access.display(), b, a, o.count))
        elif logged and escalation_checked(o.access):
            why = _escalation_failure(req, before_authz, after_authz, lost, deleted)
            if why:
                broken.append(
                    Broken(identity, f"{o.access.display()}: {why}", True, False, o.count)
                )
    escalations: list[Escalation] = []
    for obj in generated:
        if not isinstance(obj, Binding):
            continue
        role = after_authz.roles.get(obj.role_key)
        if role is None:
            continue
        scope = obj.namespace if obj.kind == BindingKind.ROLE_BINDING else ""
        for s in obj.subjects:
            ident = _identity(s, scope)
            if ident is None:
                continue
            held = [
                r
                for _, held_role, _ in before_authz.rules_for(ident, scope)
                for r in held_role.rules
            ]
            ok, missing = covers(held, role.rules)
            if not ok:
                escalations.append(Escalation(obj.key.display(), s.display(), tuple(missing)))
    escalations.extend(_widened(current, after))
    problems = tuple(w for w in after.warnings if w not in set(current.warnings))
    return Proof(checked, requests, tuple(broken), tuple(escalations), problems)


def _escalation_failure(
    req: Request,
    before: Authorizer,
    after: Authorizer,
    lost: dict[tuple[Identity, str], list[PolicyRule]],
    deleted: Sequence[RoleKey],
) -> str:
    """Why the escalation check could refuse this RBAC write on the intended RBAC, or ``""``.

    Which role is written or referenced is not in the log, so the writer must keep every
    permission it holds in the write's scope (RulesFor: ClusterRoleBindings, plus the
    namespace's RoleBindings for Roles and RoleBindings), and no role a binding of that
    scope could reference may be deleted. ``lost`` caches the first check per scope.
    """
    scope = (req.identity, req.access.namespace)
    if scope not in lost:
        lost[scope] = _lost_rules(req.identity, req.access.namespace, before, after)
    missing = lost[scope]
    if missing:
        shown = ", ".join(r.compact() for r in missing[:3])
        return f"the escalation check needs permissions the writer would lose ({shown})"
    gone = _referable(req.access, deleted)
    if gone:
        return (
            "a binding written here may reference "
            + ", ".join(k.display() for k in gone[:3])
            + ", which would be deleted"
        )
    return ""


def _lost_rules(
    identity: Identity, namespace: str, before: Authorizer, after: Authorizer
) -> list[PolicyRule]:
    """Permissions ``identity`` holds in ``namespace`` (``""``: cluster-wide) only before."""
    held = before.effective_rules(identity, namespace)
    kept = after.effective_rules(identity, namespace)
    if set(held) <= set(kept):
        return []
    return covers(kept, held)[1]


def _referable(access: Access, deleted: Sequence[RoleKey]) -> list[RoleKey]:
    """Deleted roles a binding written by ``access`` could name (none for role writes)."""
    if access.resource not in BINDING_RESOURCES:
        return []
    return [
        k
        for k in deleted
        if k.kind == RoleKind.CLUSTER_ROLE
        or (access.resource == "rolebindings" and k.namespace == access.namespace)
    ]


def _widened(current: Snapshot, after: Snapshot) -> list[Escalation]:
    """Roles of the current RBAC that the intended RBAC lets grant something new.

    In-place narrowing only removes rules; a role can grow when the aggregation controller
    selects a generated ClusterRole into an aggregated one.
    """
    old = {r.key: r.rules for r in current.roles}
    out: list[Escalation] = []
    for role in after.roles:
        rules = old.get(role.key)
        if rules is None or rules == role.rules:
            continue
        ok, missing = covers(rules, role.rules)
        if not ok:
            out.append(Escalation(role.key.display(), "its subjects", tuple(missing)))
    return out
