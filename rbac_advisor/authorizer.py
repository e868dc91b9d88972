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
        if res in (ALL, combined):
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
        if url in (ALL, path):
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
                    out.extend(PolicyRule((v,), (g,), (r,), (n,)) for n in rule.resource_names)
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


def url_covers(owner: str, sub: str) -> bool:
    """As nonResourceURLCovers: exact, or ``owner`` ends in ``*`` and prefixes ``sub``."""
    return owner == sub or (owner.endswith("*") and sub.startswith(owner.rstrip("*")))


def rule_covers(owner: PolicyRule, sub: PolicyRule) -> bool:
    """As ruleCovers: does ``owner`` grant everything the broken-down ``sub`` grants."""
    verbs = ALL in owner.verbs or _has_all(owner.verbs, sub.verbs)
    groups = ALL in owner.api_groups or _has_all(owner.api_groups, sub.api_groups)
    resources = _resource_covers_all(owner.resources, sub.resources)
    urls = all(
        any(url_covers(o, p) for o in owner.non_resource_urls) for p in sub.non_resource_urls
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

    Bindings are numbered in visit order (ClusterRoleBindings by name, then RoleBindings by
    namespace and name) and indexed by the subject keys they match: (scope, ``u``, user name)
    for users and service accounts, (scope, ``g``, group); scope is ``""`` for
    ClusterRoleBindings and the namespace for RoleBindings. An index hit is exactly
    appliesToUser. Caches: applying bindings per identity (cluster scope) and per (identity,
    namespace); the rules to try per identity and per (identity, namespace); the decision and
    the bare allow per request.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        """Index roles by key and bindings by the subjects they name."""
        self.snapshot = snapshot
        self.roles: dict[RoleKey, Role] = {r.key: r for r in snapshot.roles}
        crbs = sorted(
            (b for b in snapshot.bindings if b.kind == BindingKind.CLUSTER_ROLE_BINDING),
            key=lambda b: b.name,
        )
        # A RoleBinding always has a namespace; one without could never apply.
        rbs = sorted(
            (b for b in snapshot.bindings if b.kind == BindingKind.ROLE_BINDING and b.namespace),
            key=lambda b: (b.namespace, b.name),
        )
        self._bindings: list[Binding] = [*crbs, *rbs]
        self._role_of: list[Role | None] = [self.roles.get(b.role_key) for b in self._bindings]
        self._index: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        for i, b in enumerate(self._bindings):
            ns = b.namespace if b.kind == BindingKind.ROLE_BINDING else ""
            for k in {self._subject_key(s, ns) for s in b.subjects} - {None}:
                assert k is not None
                self._index[k].append(i)
        self.missing_roles: frozenset[RoleKey] = frozenset(
            b.role_key for b in snapshot.bindings if b.role_key not in self.roles
        )
        self._scoped: dict[tuple[Identity, str], tuple[int, ...]] = {}
        self._rules: dict[tuple[Identity, str], tuple[PolicyRule, ...]] = {}
        self._cache: dict[Request, Decision] = {}
        self._allowed: dict[Request, bool] = {}

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

    def _in_scope(self, identity: Identity, scope: str) -> tuple[int, ...]:
        """Numbers of the bindings of one scope that apply to the identity (cached)."""
        key = (identity, scope)
        hit = self._scoped.get(key)
        if hit is None:
            index = self._index
            found = set(index.get((scope, "u", identity.user), ()))
            for g in identity.groups:
                found.update(index.get((scope, "g", g), ()))
            hit = self._scoped[key] = tuple(sorted(found))
        return hit

    def _applying(self, identity: Identity, namespace: str) -> tuple[int, ...]:
        cluster = self._in_scope(identity, "")
        return cluster + self._in_scope(identity, namespace) if namespace else cluster

    def _rules_in_scope(self, identity: Identity, scope: str) -> tuple[PolicyRule, ...]:
        """The distinct rules of one scope's applying bindings, in visit order (cached)."""
        key = (identity, scope)
        hit = self._rules.get(key)
        if hit is None:
            rules: dict[PolicyRule, None] = {}
            for i in self._in_scope(identity, scope):
                role = self._role_of[i]
                if role is not None:
                    rules.update(dict.fromkeys(role.rules))
            hit = self._rules[key] = tuple(rules)
        return hit

    def bindings_for(self, identity: Identity, namespace: str) -> list[Binding]:
        """Bindings whose subjects match the identity: all CRBs, RBs of ``namespace``."""
        return [self._bindings[i] for i in self._applying(identity, namespace)]

    def rules_for(
        self, identity: Identity, namespace: str
    ) -> Iterator[tuple[Binding, Role, Subject]]:
        """As VisitRulesFor: (binding, role, matched subject) for every applying binding.

        Bindings whose role is missing are skipped, as the resolver skips them after
        recording the error (see ``missing_roles``).
        """
        for i in self._applying(identity, namespace):
            role = self._role_of[i]
            subject = applies_to(identity, self._bindings[i])
            if role is not None and subject is not None:
                yield self._bindings[i], role, subject

    def effective_rules(self, identity: Identity, namespace: str) -> list[PolicyRule]:
        """As RulesFor: every rule that applies to the identity in ``namespace``."""
        return [rule for _, role, _ in self.rules_for(identity, namespace) for rule in role.rules]

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
        """True when some binding allows the request (stops at the first allowing rule)."""
        hit = self._allowed.get(request)
        if hit is not None:
            return hit
        a = request.access
        identity = request.identity
        result = False
        for rule in self._rules_in_scope(identity, ""):
            if rule_allows(rule, a):
                result = True
                break
        else:
            if a.resource_request and a.namespace:
                for rule in self._rules_in_scope(identity, a.namespace):
                    if rule_allows(rule, a):
                        result = True
                        break
        self._allowed[request] = result
        return result
