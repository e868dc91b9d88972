"""How much is granted per permission used, before and after a recommendation. Pure.

A cell is one (verb, API group, resource, namespace). For every identity seen using the
cluster, we count the cells its RBAC allows over a finite universe (built-in resources and
their common subresources, every resource seen in the logs or named in a rule, every
namespace seen), and the cells it actually used. Wildcards are thus measured over what
exists, not as infinity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rbac_advisor.apiresources import BUILTIN
from rbac_advisor.authorizer import Authorizer
from rbac_advisor.diff import Observation
from rbac_advisor.events import Decision
from rbac_advisor.rbac import Access, Identity, Request, Snapshot
from rbac_advisor.validation import impossible_namespace

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
SUBRESOURCES = (
    ("", "pods", "log"), ("", "pods", "exec"), ("", "pods", "attach"),
    ("", "pods", "portforward"), ("", "serviceaccounts", "token"), ("", "nodes", "proxy"),
    ("apps", "deployments", "scale"), ("apps", "statefulsets", "scale"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tightness:
    """Granted and used cells summed over identities."""

    identities: int
    used_cells: int
    granted_before: int
    granted_after: int

    @property
    def before_per_used(self) -> float:
        """Granted cells per used cell before the change."""
        return self.granted_before / self.used_cells if self.used_cells else 0.0

    @property
    def after_per_used(self) -> float:
        """Granted cells per used cell after the change."""
        return self.granted_after / self.used_cells if self.used_cells else 0.0


def _granted(authz: Authorizer, ident: Identity, access: Access, names: list[str]) -> bool:
    """Allowed on any object, or (for name-limited grants) on one of the names seen."""
    if authz.allows(Request(ident, access)):
        return True
    return any(
        authz.allows(
            Request(
                ident,
                Access(
                    access.verb,
                    access.api_group,
                    access.resource,
                    access.subresource,
                    access.namespace,
                    n,
                ),
            )
        )
        for n in names
    )


# Each cell is two authorizations (before and after) per identity; past this many cells the
# measure would dominate the run on a large cluster, so it is not taken.
MAX_CELLS = 300_000


def tightness(
    before: Snapshot, after: Snapshot, observations: Iterable[Observation]
) -> Tightness | None:
    """Granted cells per used cell over every identity seen, before and after.

    None when identities x cells exceeds MAX_CELLS (too costly to enumerate).
    """
    obs = [
        o for o in observations if not o.identity.privileged and not impossible_namespace(o.access)
    ]
    namespaced = {(r.group, r.name): r.namespaced for r in BUILTIN}
    res_keys: set[tuple[str, str, str, bool]] = set()
    for g, r, s in [(r.group, r.name, "") for r in BUILTIN] + list(SUBRESOURCES):
        res_keys.add((g, r, s, namespaced.get((g, r), True)))
    namespaces: set[str] = {r.namespace for r in before.roles if r.namespace}
    namespaces |= {b.namespace for b in before.bindings if b.namespace}
    used: dict[Identity, set[tuple[str, str, str, str, str]]] = {}
    names: dict[tuple[str, str, str, str], set[str]] = {}
    b_authz, a_authz = Authorizer(before), Authorizer(after)
    for o in obs:
        a = o.access
        if not a.resource_request or o.decision == Decision.FORBID:
            continue
        if not b_authz.allows(Request(o.identity, a)):
            continue
        if a.namespace:
            namespaces.add(a.namespace)
        is_ns = bool(a.namespace) or namespaced.get((a.api_group, a.resource), False)
        res_keys.add((a.api_group, a.resource, a.subresource, is_ns))
        if a.name:
            names.setdefault((a.api_group, a.resource, a.subresource, a.namespace), set()).add(
                a.name
            )
        if a.verb in VERBS:
            used.setdefault(o.identity, set()).add(
                (a.verb, a.api_group, a.resource, a.subresource, a.namespace)
            )
    ns_list = sorted(namespaces)
    per_identity = sum(len(ns_list) if is_ns else 1 for *_, is_ns in res_keys) * len(VERBS)
    if per_identity * len(used) > MAX_CELLS:
        return None
    granted_b = granted_a = used_n = 0
    for ident, cells in sorted(used.items()):
        used_n += len(cells)
        for g, r, s, is_ns in sorted(res_keys):
            for ns in ns_list if is_ns else [""]:
                seen = sorted(names.get((g, r, s, ns), ()))
                for v in VERBS:
                    granted_b += _granted(b_authz, ident, Access(v, g, r, s, ns), seen)
                    granted_a += _granted(a_authz, ident, Access(v, g, r, s, ns), seen)
    return Tightness(len(used), used_n, granted_b, granted_a)
