"""Builders that keep RBAC test tables short, and the shared corpus location.

rule("get,list", "", "pods"), crb("view", "User:alice", "Group:dev"),
rb("ns1", "Role:reader", "ServiceAccount:ns1/sa"), cr("view", rule(...)), role("ns1", "r", ...).
"""

from __future__ import annotations

from corpus import corpus_dir  # noqa: F401  (re-exported for the tests)

from rbac_advisor.rbac import (
    Access,
    Binding,
    BindingKind,
    Identity,
    PolicyRule,
    Role,
    RoleKind,
    RoleRef,
    Snapshot,
    Subject,
)


def _split(csv: str | None) -> list[str]:
    """Like the Go helpers: a comma-separated string; "" is one empty string, None none."""
    return [] if csv is None else csv.split(",")


def rule(
    verbs: str,
    groups: str | None = None,
    resources: str | None = None,
    names: str | None = None,
    urls: str | None = None,
) -> PolicyRule:
    """rule("get,list", "", "pods"), rule("get", urls="/healthz")."""
    return PolicyRule.of(
        _split(verbs), _split(groups), _split(resources), _split(names), _split(urls)
    )


def cr(name: str, *rules: PolicyRule, labels: dict[str, str] | None = None) -> Role:
    return Role(
        RoleKind.CLUSTER_ROLE, name, rules=rules, labels=tuple(sorted((labels or {}).items()))
    )


def role(namespace: str, name: str, *rules: PolicyRule) -> Role:
    return Role(RoleKind.ROLE, name, namespace, rules)


def subject(spec: str) -> Subject:
    """ "User:alice", "Group:dev", "ServiceAccount:ns/name" or "ServiceAccount:name"."""
    kind, _, rest = spec.partition(":")
    if kind == "ServiceAccount":
        ns, _, name = rest.rpartition("/")
        return Subject(kind, name, ns)
    return Subject(kind, rest, "", "rbac.authorization.k8s.io")


def crb(role_name: str, *subjects: str, name: str = "") -> Binding:
    return Binding(
        BindingKind.CLUSTER_ROLE_BINDING,
        name or f"{role_name}-binding",
        "",
        RoleRef(RoleKind.CLUSTER_ROLE, role_name),
        tuple(subject(s) for s in subjects),
    )


def rb(namespace: str, ref: str, *subjects: str, name: str = "") -> Binding:
    """ref is "Role:name" or "ClusterRole:name"."""
    kind, _, role_name = ref.partition(":")
    return Binding(
        BindingKind.ROLE_BINDING,
        name or f"{role_name}-binding",
        namespace,
        RoleRef(RoleKind(kind), role_name),
        tuple(subject(s) for s in subjects),
    )


def snap(*objs: Role | Binding) -> Snapshot:
    return Snapshot(
        roles=tuple(o for o in objs if isinstance(o, Role)),
        bindings=tuple(o for o in objs if isinstance(o, Binding)),
    )


def who(user: str, *groups: str) -> Identity:
    return Identity(user, tuple(sorted(groups)))


def req(spec: str) -> Access:
    """ "get pods ns1", "get pods/log ns1 name", "list deployments.apps -", "get /healthz"."""
    verb, target, *rest = spec.split()
    if target.startswith("/"):
        return Access(verb=verb, path=target, resource_request=False)
    res, _, sub = target.partition("/")
    res, _, group = res.partition(".")
    ns = rest[0] if rest and rest[0] != "-" else ""
    name = rest[1] if len(rest) > 1 else ""
    return Access(verb, group, res, sub, ns, name)
