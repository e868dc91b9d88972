"""The proof a recommendation must pass before anything is written. Pure: no I/O.

Replays every observed request against current RBAC and against
current + apply - prune: no allowed request may become denied, no denied request allowed.
Then checks that no subject of a generated binding gains a permission it did not hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rbac_advisor import replay
from rbac_advisor.authorizer import Authorizer, covers, sa_username
from rbac_advisor.diff import Observation
from rbac_advisor.events import Decision
from rbac_advisor.rbac import (
    Binding,
    BindingKind,
    Identity,
    PolicyRule,
    Request,
    Role,
    Snapshot,
    Subject,
    SubjectKind,
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
    """A permission a generated binding would grant that its subject did not hold."""

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


def prove(
    current: Snapshot,
    after: Snapshot,
    observations: Iterable[Observation],
    generated: Iterable[Role | Binding],
) -> Proof:
    """Replay observations on both snapshots and check generated bindings for new access."""
    before_authz, after_authz = Authorizer(current), Authorizer(after)
    broken: list[Broken] = []
    checked = requests = 0
    for o in observations:
        if o.identity.privileged:
            continue
        req = Request(o.identity, o.access)
        b, a = before_authz.allows(req), after_authz.allows(req)
        checked += 1
        requests += o.count
        # Where the log and current RBAC disagree (RBAC changed during the window, or a
        # non-RBAC authorizer decided), either outcome matches one of them: not our change.
        logged = {Decision.ALLOW: True, Decision.FORBID: False}.get(o.decision, b)
        if a != b and logged == b:
            broken.append(Broken(o.identity, o.access.display(), b, a, o.count))
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
    problems = tuple(w for w in after.warnings if w not in set(current.warnings))
    return Proof(checked, requests, tuple(broken), tuple(escalations), problems)
