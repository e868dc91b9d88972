"""What Kubernetes accepts as RBAC: apiserver validation and the rule builder. Pure, no I/O.

``rule_problems`` mirrors ValidatePolicyRule in pkg/apis/rbac/validation/validation.go (what
the apiserver rejects); ``build_rule`` mirrors PolicyRuleBuilder.Rule in pkg/apis/rbac/helpers.go,
which is stricter and is what generated rules should pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from rbac_advisor.rbac import Access, PolicyRule, is_dns_label, is_dns_subdomain

# Verbs that never carry a name, so resourceNames cannot restrict them (PolicyRuleBuilder).
NAMELESS_VERBS = ("list", "watch", "create", "deletecollection")


class RuleError(ValueError):
    """A rule Kubernetes' PolicyRuleBuilder would refuse to build."""


def rule_problems(rule: PolicyRule, *, namespaced: bool) -> list[str]:
    """As ValidatePolicyRule: every reason the apiserver would reject this rule.

    Args:
        rule: the rule to check.
        namespaced: True for a Role's rules (they may not name non-resource URLs).

    Returns:
        One message per problem, prefixed with the field name; empty when valid.
    """
    problems: list[str] = []
    if not rule.verbs:
        problems.append("verbs: must contain at least one value")
    if rule.non_resource_urls:
        if namespaced:
            problems.append("nonResourceURLs: namespaced rules cannot apply to non-resource URLs")
        if rule.api_groups or rule.resources or rule.resource_names:
            problems.append(
                "nonResourceURLs: rules cannot apply to both regular resources and "
                "non-resource URLs"
            )
        return problems
    if not rule.api_groups:
        problems.append("apiGroups: resource rules must supply at least one api group")
    if not rule.resources:
        problems.append("resources: resource rules must supply at least one resource")
    return problems


def build_rule(
    verbs: Iterable[str] | None,
    groups: Iterable[str] | None = None,
    resources: Iterable[str] | None = None,
    names: Iterable[str] | None = None,
    urls: Iterable[str] | None = None,
) -> PolicyRule:
    """As ``NewRule(verbs...).Groups(...).Resources(...).Names(...).URLs(...).Rule()``.

    Raises:
        RuleError: no verbs; a non-resource rule with groups, resources or names; a
            resource rule without groups; resourceNames with a verb that has no name
            (list, watch, create, deletecollection); neither resources nor URLs.
    """
    rule = PolicyRule.of(
        list(verbs or ()),
        list(groups or ()),
        list(resources or ()),
        list(names or ()),
        list(urls or ()),
    )
    if not rule.verbs:
        raise RuleError("verbs are required")
    if rule.non_resource_urls:
        if rule.api_groups or rule.resources or rule.resource_names:
            raise RuleError("non-resource rule may not have apiGroups, resources, or resourceNames")
    elif rule.resources:
        if not rule.api_groups:
            raise RuleError("resource rule must have apiGroups")
        illegal = [v for v in rule.verbs if v in NAMELESS_VERBS]
        if rule.resource_names and illegal:
            raise RuleError(f"verbs {illegal} do not have names available")
    else:
        raise RuleError("a rule must have either nonResourceURLs or resources")
    return rule


def name_problem(name: str) -> str | None:
    """As ValidateRBACName (path.IsValidPathSegmentName): why ``name`` is invalid, if it is."""
    if not name:
        return "name is required"
    if name in (".", ".."):
        return f"name may not be {name!r}"
    for bad in ("/", "%"):
        if bad in name:
            return f"name may not contain {bad!r}"
    return None


def service_account_name_problem(name: str) -> str | None:
    """As ValidateServiceAccountName: a DNS-1123 subdomain of at most 253 characters."""
    if not name:
        return "name is required"
    if not is_dns_subdomain(name):
        return f"invalid service account name {name!r}: must be a DNS-1123 subdomain"
    return None


__all__ = [
    "NAMELESS_VERBS",
    "RuleError",
    "build_rule",
    "name_problem",
    "rule_problems",
    "service_account_name_problem",
]


def namespace_problem(name: str) -> str | None:
    """As ValidateNamespaceName: why ``name`` cannot name a namespace, if it cannot.

    A namespace name is a DNS-1123 label: at most 63 lowercase letters, digits and ``-``,
    starting and ending with a letter or digit.
    """
    if len(name) > 63:
        return f"namespace {quoted_name(name)} is longer than 63 characters"
    if not is_dns_label(name):
        return f"namespace {quoted_name(name)} is not a DNS-1123 label"
    return None


def quoted_name(name: str) -> str:
    """``name`` quoted with escapes (it may come from a log), cut after 63 characters."""
    return repr(name[:63]) + ("..." if len(name) > 63 else "")


def impossible_namespace(access: Access) -> bool:
    """A resource request in a namespace no cluster can have: it failed whatever RBAC said."""
    return bool(access.resource_request and access.namespace) and (
        namespace_problem(access.namespace) is not None
    )
