"""Replay observed requests against an intended RBAC state and list what would change. Pure.

The intended state is ``current + apply - prune`` (``kubectl apply -f`` then ``kubectl delete
-f``). Each observed request is compared with its *logged* decision; requests logged without
one are compared with the current RBAC's answer instead. Two authorizers that run before RBAC
are modelled as special cases:

- ``system:masters`` members are allowed by the privileged-group authorizer whatever RBAC
  says, so their requests never change (counted as ``privileged``);
- the Node authorizer allows kubelets (``system:node:*`` users in group ``system:nodes``)
  what RBAC does not; a node request that RBAC would stop allowing is not reported, since
  the Node authorizer keeps allowing it (counted as ``node_authorized``). This can hide a
  node request that only RBAC granted; node grants are rare since the system:node binding
  lost its subjects (Kubernetes 1.8).

Some logs (GKE's) carry no group memberships. A logged allow whose reason names a Group
subject of a binding the current RBAC has, a group the logged identity lacks, is replayed
as the apiserver authorized it: with that group added (see :func:`admitted`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from rbac_advisor.aggregation import reaggregate
from rbac_advisor.authorizer import Authorizer
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import (
    NODE_PREFIX,
    NODES_GROUP,
    Access,
    Binding,
    BindingKey,
    Identity,
    Request,
    Role,
    RoleKey,
    Snapshot,
    Subject,
    SubjectKind,
)
from rbac_advisor.validation import impossible_namespace

Entry = tuple[Identity, Access, Decision, int]
"""One observed request: who, what, the logged decision, and how many times."""
CitedEntry = tuple[Identity, Access, Decision, int, ReasonRef | None]
"""An :data:`Entry` plus the parsed allow reason logged with it (None when there is none)."""

LOGGED = "logged"
EVALUATED = "evaluated"


@dataclass(frozen=True, slots=True, order=True)
class Change:
    """A request whose outcome would change.

    Attributes:
        identity: who sent it, as authorized: the logged groups, plus the group a logged
            allow's reason names when the log lacks it (see :func:`admitted`).
        access: what it asked for.
        count: how many times it was observed with this before-decision.
        before: the decision it got (logged, or evaluated when the log did not say).
        after: the decision the intended RBAC gives it.
        basis: ``logged`` or ``evaluated``: where ``before`` comes from.
        reason: the grant that allowed it: before (for a lost allow) or after (for a new
            allow), as the apiserver's reason string; empty when RBAC gave no allow.
        current: what the current RBAC says (None when not known). A logged allow that the
            current RBAC does not explain came from another authorizer or an RBAC state the
            snapshot does not show.
    """

    identity: Identity
    access: Access
    count: int
    before: Decision
    after: Decision
    basis: str = LOGGED
    reason: str = ""
    current: Decision | None = None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Every change plus what the replay counted.

    Attributes:
        changes: the changed requests, sorted by identity and access.
        requests: observed requests (sum of counts).
        entries: usage entries replayed.
        distinct: distinct requests (identity and access) among them.
        evaluated: requests logged without a decision, compared with the current RBAC.
        privileged: requests from system:masters members (never change).
        node_authorized: node requests RBAC would deny that the Node authorizer allows.
        undetermined: requests without a logged decision and no current RBAC to ask.
        warnings: notes about the intended state (what kubectl would refuse).
    """

    changes: tuple[Change, ...] = ()
    requests: int = 0
    entries: int = 0
    distinct: int = 0
    evaluated: int = 0
    privileged: int = 0
    node_authorized: int = 0
    undetermined: int = 0
    warnings: tuple[str, ...] = ()


def intended(base: Snapshot, apply: Snapshot, prune: Snapshot) -> Snapshot:
    """The RBAC state after ``kubectl apply -f apply`` then ``kubectl delete -f prune``.

    Applied objects create or replace by key; pruned ones are deleted by key. Aggregated
    ClusterRoles whose selection changed get the union the controller would write. The
    result's warnings name what ``kubectl`` would refuse: a binding whose roleRef changes
    (roleRef is immutable) and pruning an object that does not exist.
    """
    roles: dict[RoleKey, Role] = {r.key: r for r in base.roles}
    bindings: dict[BindingKey, Binding] = {b.key: b for b in base.bindings}
    warnings: list[str] = []
    for r in apply.roles:
        roles[r.key] = r
    for b in apply.bindings:
        old = bindings.get(b.key)
        if old is not None and old.role_ref != b.role_ref:
            warnings.append(
                f"{b.key.display()}: apply changes roleRef from {old.role_ref.kind}/"
                f"{old.role_ref.name} to {b.role_ref.kind}/{b.role_ref.name}, but roleRef is "
                "immutable and kubectl apply will fail; create a binding with a new name and "
                "prune this one"
            )
        bindings[b.key] = b
    for key in [r.key for r in prune.roles] + [b.key for b in prune.bindings]:
        gone = roles.pop(key, None) if isinstance(key, RoleKey) else bindings.pop(key, None)
        if gone is None:
            warnings.append(f"{key.display()}: in the prune set but not in the current RBAC")
    after = Snapshot(
        roles=tuple(v for _, v in sorted(roles.items())),
        bindings=tuple(v for _, v in sorted(bindings.items())),
        warnings=tuple(warnings),
        source=base.source,
    )
    return reaggregate(base, after, (r.key for r in apply.roles))


def admitted(
    identity: Identity,
    via: BindingKey | None,
    cited: Subject | None,
    bindings: Mapping[BindingKey, Binding],
) -> Identity:
    """``identity`` with the group an allow reason names added, when the log lacks it.

    GKE audit entries carry no group memberships, so a request the apiserver allowed
    through a Group subject is denied when replayed with the logged groups: replayed so, a
    plan that drops the group's grant would go unnoticed. The reason is the evidence of the
    membership when it names a Group subject (``cited``) that the binding it names (``via``)
    has in ``bindings``. Otherwise ``identity`` is returned unchanged. Callers pass only
    allows: a denial names no binding.
    """
    if via is None or cited is None or cited.kind != SubjectKind.GROUP:
        return identity
    if cited.name in identity.groups:
        return identity
    b = bindings.get(via)
    if b is None or not any(_same_group(s, cited) for s in b.subjects):
        return identity
    return replace(identity, groups=tuple(sorted({*identity.groups, cited.name})))


def _same_group(s: Subject, cited: Subject) -> bool:
    """Does binding subject ``s`` name the group ``cited`` (API group aside)."""
    return s.kind == SubjectKind.GROUP and s.name == cited.name


def _authorized_identity(
    entry: Entry | CitedEntry, bindings: Mapping[BindingKey, Binding]
) -> Identity:
    """Who an entry was authorized as: a logged allow gets the group its reason names."""
    identity, decision = entry[0], entry[2]
    via = entry[4] if len(entry) == 5 else None
    if via is None or decision is not Decision.ALLOW:
        return identity
    return admitted(identity, via.binding, via.subject, bindings)


def is_node(identity: Identity) -> bool:
    """A kubelet identity, which the Node authorizer handles before RBAC."""
    return identity.user.startswith(NODE_PREFIX) and NODES_GROUP in identity.groups


def replay_report(
    entries: Iterable[Entry | CitedEntry], before: Authorizer | None, after: Authorizer
) -> ReplayResult:
    """Replay every entry; see the module docstring for the rules.

    Args:
        entries: (identity, access, logged decision, count) for each observed request,
            optionally with its parsed allow reason. The same request may appear several
            times (e.g. per user agent); counts add up.
        before: the current RBAC, used for requests logged with ``unknown`` decision and
            for the reason strings; None to rely on logged decisions only (unknown ones are
            then counted as ``undetermined``).
        after: the intended RBAC.
    """
    counts: dict[tuple[Request, bool, str], int] = {}
    seen: set[Request] = set()
    requests = n_entries = evaluated = privileged = node_authorized = undetermined = 0
    # Without the current RBAC, no binding a reason names can be confirmed.
    bindings = {b.key: b for b in before.snapshot.bindings} if before is not None else {}
    for entry in entries:
        identity, access, decision, count = entry[:4]
        requests += count
        n_entries += 1
        seen.add(Request(identity, access))
        identity = _authorized_identity(entry, bindings)
        request = Request(identity, access)
        if identity.privileged:
            privileged += count
            continue
        if impossible_namespace(access):
            continue  # no such namespace can exist: it failed whatever RBAC says
        if decision is Decision.ALLOW or decision is Decision.FORBID:
            was, basis = decision is Decision.ALLOW, LOGGED
        elif before is None:
            undetermined += count
            continue
        else:
            was, basis = before.allows(request), EVALUATED
            evaluated += count
        now = after.allows(request)
        if was == now:
            continue
        if was and is_node(identity):
            node_authorized += count
            continue
        key = (request, was, basis)
        counts[key] = counts.get(key, 0) + count
    changes = []
    for (request, was, basis), count in counts.items():
        now = not was
        current = None if before is None else before.allows(request)
        if was:
            reason = before.decide(request).reason() if before is not None else ""
        else:
            reason = after.decide(request).reason()
        changes.append(
            Change(
                request.identity,
                request.access,
                count,
                Decision.ALLOW if was else Decision.FORBID,
                Decision.ALLOW if now else Decision.FORBID,
                basis,
                reason,
                None if current is None else (Decision.ALLOW if current else Decision.FORBID),
            )
        )
    return ReplayResult(
        changes=tuple(sorted(changes)),
        requests=requests,
        entries=n_entries,
        distinct=len(seen),
        evaluated=evaluated,
        privileged=privileged,
        node_authorized=node_authorized,
        undetermined=undetermined,
        warnings=after.snapshot.warnings,
    )


def replay(entries: Iterable[Entry], before: Authorizer | None, after: Authorizer) -> list[Change]:
    """The requests whose outcome changes between the logged (or current) RBAC and ``after``."""
    return list(replay_report(entries, before, after).changes)


def change_to_json(change: Change) -> dict[str, object]:
    """One change as a JSON-ready dict (camelCase keys, like the Kubernetes API)."""
    a = change.access
    access: dict[str, object] = {"verb": a.verb}
    if a.resource_request:
        access |= {
            "apiGroup": a.api_group,
            "resource": a.resource,
            "subresource": a.subresource,
            "namespace": a.namespace,
            "name": a.name,
        }
    else:
        access["path"] = a.path
    return {
        "user": change.identity.user,
        "groups": list(change.identity.groups),
        "access": access,
        "request": a.display(),
        "count": change.count,
        "before": str(change.before),
        "after": str(change.after),
        "basis": change.basis,
        "reason": change.reason,
        "currentRbac": None if change.current is None else str(change.current),
    }


def result_to_json(result: ReplayResult) -> dict[str, object]:
    """The whole replay as one JSON-ready object: ``changes`` first, then the counts."""
    return {
        "changes": [change_to_json(c) for c in result.changes],
        "requests": result.requests,
        "entries": result.entries,
        "distinct": result.distinct,
        "changed": len(result.changes),
        "changedRequests": sum(c.count for c in result.changes),
        "evaluated": result.evaluated,
        "privileged": result.privileged,
        "nodeAuthorized": result.node_authorized,
        "undetermined": result.undetermined,
        "warnings": list(result.warnings),
    }


def result_to_text(result: ReplayResult) -> str:
    """Human-readable replay: one line per change, then a summary line."""
    lines = []
    for c in sorted(result.changes, key=lambda c: (-c.count, c.identity, c.access)):
        line = f"{c.before} -> {c.after}  {c.identity.user}  {c.access.display()}  x{c.count}"
        if c.basis == EVALUATED:
            line += "  (no logged decision; compared with current RBAC)"
        if c.before == Decision.ALLOW and c.current == Decision.FORBID:
            line += "  (the current RBAC does not allow it either)"
        if c.reason:
            line += f"\n    {'was' if c.before == Decision.ALLOW else 'now'} {c.reason}"
        lines.append(line)
    lost = sum(c.count for c in result.changes if c.before == Decision.ALLOW)
    gained = sum(c.count for c in result.changes if c.after == Decision.ALLOW)
    lines.append(
        f"{len(result.changes)} of {result.distinct} distinct requests would change "
        f"({lost} observed requests would be denied, {gained} newly allowed; "
        f"{result.requests} replayed)"
    )
    extra = []
    if result.privileged:
        extra.append(f"{result.privileged} from system:masters (always allowed)")
    if result.node_authorized:
        extra.append(f"{result.node_authorized} node requests left to the Node authorizer")
    if result.evaluated:
        extra.append(f"{result.evaluated} without a logged decision, compared with current RBAC")
    if result.undetermined:
        extra.append(f"{result.undetermined} without a logged decision, not compared")
    if extra:
        lines.append("  " + "; ".join(extra))
    return "\n".join(lines) + "\n"


__all__ = [
    "change_to_json",
    "result_to_json",
    "result_to_text",
    "EVALUATED",
    "LOGGED",
    "Change",
    "CitedEntry",
    "Entry",
    "ReplayResult",
    "admitted",
    "intended",
    "is_node",
    "replay",
    "replay_report",
]
