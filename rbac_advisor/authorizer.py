"""Kubernetes RBAC semantics: rule matching, subject matching, covers. Pure: no I/O.

Every function here mirrors a named upstream function; reviewers check them against it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rbac_advisor.rbac import (
    SA_PREFIX,
    Access,
    Binding,
    BindingKind,
    Grant,
    Identity,
    PolicyRule,
    Request,
    Role,
    RoleKey,
    Snapshot,
    Subject,
    SubjectKind,
)

ALL = "*"


def verb_matches(rule: PolicyRule, verb: str) -> bool:
    """As VerbMatches in evaluation_helpers.go: ``*`` or exact, case-sensitive."""
    return ALL in rule.verbs or verb in rule.verbs


def api_group_matches(rule: PolicyRule, group: str) -> bool:
    """As APIGroupMatches: ``*`` or exact; the core group is ``""``."""
    return ALL in rule.api_groups or group in rule.api_groups


def resource_matches(rule: PolicyRule, combined: str, subresource: str) -> bool:
    """As ResourceMatches: ``*`` covers all incl. subresources; ``*/sub`` any resource's sub.

    ``pods/*`` is not a wildcard: it only equals the literal string ``pods/*``.
    """
    for res in rule.resources:
        if res == ALL or res == combined:
            return True
        if subresource and len(res) == len(subresource) + 2 and res == "*/" + subresource:
            return True
    return False


def resource_name_matches(rule: PolicyRule, name: str) -> bool:
    """As ResourceNameMatches: no names means any; else the request name must be listed."""
    return not rule.resource_names or name in rule.resource_names


def non_resource_url_matches(rule: PolicyRule, path: str) -> bool:
    """As NonResourceURLMatches: ``*``, exact, or a trailing ``*`` prefix (all ``*`` stripped)."""
    for url in rule.non_resource_urls:
        if url == ALL or url == path:
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(rule: PolicyRule, a: Access) -> bool:
    """As RuleAllows in rbac.go: does one rule allow these request attributes."""
    if a.resource_request:
        return (
            verb_matches(rule, a.verb)
            and api_group_matches(rule, a.api_group)
            and resource_matches(rule, a.combined_resource, a.subresource)
            and resource_name_matches(rule, a.name)
        )
    return verb_matches(rule, a.verb) and non_resource_url_matches(rule, a.path)


def sa_username(namespace: str, name: str) -> str:
    """``system:serviceaccount:NS:NAME``."""
    return f"{SA_PREFIX}{namespace}:{name}"


def applies_to_user(identity: Identity, subject: Subject, namespace: str) -> bool:
    """As appliesToUser in rule.go; ``namespace`` is the binding's (``""`` for CRBs)."""
    if subject.kind == SubjectKind.USER:
        return identity.user == subject.name
    if subject.kind == SubjectKind.GROUP:
        return subject.name in identity.groups
    if subject.kind == SubjectKind.SERVICE_ACCOUNT:
        sa_ns = subject.namespace or namespace
        if not sa_ns:
            return False
        return identity.user == sa_username(sa_ns, subject.name)
    return False


def applies_to(identity: Identity, binding: Binding) -> Subject | None:
    """As appliesTo: the first subject of the binding that matches the user, if any."""
    ns = binding.namespace if binding.kind == BindingKind.ROLE_BINDING else ""
    for s in binding.subjects:
        if applies_to_user(identity, s, ns):
            return s
    return None


def breakdown(rule: PolicyRule) -> list[PolicyRule]:
    """As BreakdownRule: one verb, one group, one resource and at most one name per rule."""
    out: list[PolicyRule] = []
    for g in rule.api_groups:
        for r in rule.resources:
            for v in rule.verbs:
                if rule.resource_names:
                    out.extend(
                        PolicyRule((v,), (g,), (r,), (n,)) for n in rule.resource_names
                    )
                else:
                    out.append(PolicyRule((v,), (g,), (r,)))
    for u in rule.non_resource_urls:
        for v in rule.verbs:
            out.append(PolicyRule(verbs=(v,), non_resource_urls=(u,)))
    return out


def _has_all(owner: Sequence[str], wanted: Sequence[str]) -> bool:
    return all(w in owner for w in wanted)


def _resource_covers_all(owner: Sequence[str], wanted: Sequence[str]) -> bool:
    """As resourceCoversAll in policy_comparator.go."""
    if ALL in owner or _has_all(owner, wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _url_covers(owner: str, sub: str) -> bool:
    return owner == sub or (owner.endswith("*") and sub.startswith(owner.rstrip("*")))


def rule_covers(owner: PolicyRule, sub: PolicyRule) -> bool:
    """As ruleCovers: does ``owner`` grant everything the broken-down ``sub`` grants."""
    verbs = ALL in owner.verbs or _has_all(owner.verbs, sub.verbs)
    groups = ALL in owner.api_groups or _has_all(owner.api_groups, sub.api_groups)
    resources = _resource_covers_all(owner.resources, sub.resources)
    urls = all(
        any(_url_covers(o, p) for o in owner.non_resource_urls) for p in sub.non_resource_urls
    )
    if not sub.resource_names:
        names = not owner.resource_names
    else:
        names = not owner.resource_names or _has_all(owner.resource_names, sub.resource_names)
    return verbs and groups and resources and names and urls


def covers(
    owner: Sequence[PolicyRule], servant: Iterable[PolicyRule]
) -> tuple[bool, list[PolicyRule]]:
    """As Covers in policy_comparator.go: (covered, the uncovered broken-down rules)."""
    uncovered = [
        sub
        for rule in servant
        for sub in breakdown(rule)
        if not any(rule_covers(o, sub) for o in owner)
    ]
    return not uncovered, uncovered


@dataclass(frozen=True, slots=True)
class Decision:
    """The RBAC authorizer's answer: allowed, and every grant that allows it, in visit order."""

    allowed: bool
    grants: tuple[Grant, ...] = ()

    def reason(self) -> str:
        """The reason string the apiserver logs: the first grant's, or empty."""
        return self.grants[0].reason() if self.grants else ""


class Authorizer:
    """The RBAC authorizer over one snapshot, indexed by subject, caching per request.

    Mirrors RBACAuthorizer.Authorize + VisitRulesFor: every ClusterRoleBinding is
    consulted, then RoleBindings of the request's namespace. RBAC never denies.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        """Index roles by key and bindings by the subjects they name."""
        self.snapshot = snapshot
        self.roles: dict[RoleKey, Role] = {r.key: r for r in snapshot.roles}
        crbs = sorted(
            (b for b in snapshot.bindings if b.kind == BindingKind.CLUSTER_ROLE_BINDING),
            key=lambda b: b.name,
        )
        rbs = sorted(
            (b for b in snapshot.bindings if b.kind == BindingKind.ROLE_BINDING),
            key=lambda b: (b.namespace, b.name),
        )
        self._order = {b.key: i for i, b in enumerate([*crbs, *rbs])}
        # (namespace or "" for CRBs, subject key) -> bindings
        self._index: dict[tuple[str, str, str], list[Binding]] = defaultdict(list)
        for b in [*crbs, *rbs]:
            ns = b.namespace if b.kind == BindingKind.ROLE_BINDING else ""
            seen: set[tuple[str, str, str]] = set()
            for s in b.subjects:
                k = self._subject_key(s, ns)
                if k is not None and k not in seen:
                    seen.add(k)
                    self._index[k].append(b)
        self._cache: dict[Request, Decision] = {}

    @staticmethod
    def _subject_key(s: Subject, ns: str) -> tuple[str, str, str] | None:
        if s.kind == SubjectKind.USER:
            return (ns, "u", s.name)
        if s.kind == SubjectKind.GROUP:
            return (ns, "g", s.name)
        if s.kind == SubjectKind.SERVICE_ACCOUNT:
            sa_ns = s.namespace or ns
            return (ns, "u", sa_username(sa_ns, s.name)) if sa_ns else None
        return None

    def bindings_for(self, identity: Identity, namespace: str) -> list[Binding]:
        """Bindings whose subjects match the identity: all CRBs, RBs of ``namespace``."""
        found: dict[tuple[object, ...], Binding] = {}
        scopes = [""] + ([namespace] if namespace else [])
        for ns in scopes:
            keys = [(ns, "u", identity.user)] + [(ns, "g", g) for g in identity.groups]
            for k in keys:
                for b in self._index.get(k, ()):
                    found[(b.kind, b.namespace, b.name)] = b
        return sorted(found.values(), key=lambda b: self._order[b.key])

    def rules_for(
        self, identity: Identity, namespace: str
    ) -> Iterator[tuple[Binding, Role, Subject]]:
        """As VisitRulesFor: (binding, role, matched subject) for every applying binding."""
        for b in self.bindings_for(identity, namespace):
            subj = applies_to(identity, b)
            role = self.roles.get(b.role_key)
            if subj is None or role is None:
                continue
            yield b, role, subj

    def decide(self, request: Request) -> Decision:
        """Authorize one request, with every grant that allows it (cached)."""
        hit = self._cache.get(request)
        if hit is not None:
            return hit
        grants: list[Grant] = []
        a = request.access
        ns = a.namespace if a.resource_request else ""
        for b, role, subj in self.rules_for(request.identity, ns):
            for i, rule in enumerate(role.rules):
                if rule_allows(rule, a):
                    grants.append(Grant(b.key, role.key, i, rule, subj))
        d = Decision(bool(grants), tuple(grants))
        self._cache[request] = d
        return d

    def allows(self, request: Request) -> bool:
        """True when some binding allows the request."""
        return self.decide(request).allowed
