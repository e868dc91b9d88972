"""Typed readers for the fields of raw RBAC objects, with apiserver defaulting and validation.

Private helpers of ``manifests``; each raises ``Invalid(field path, problem)`` which the caller
turns into a ManifestError naming the file and object. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rbac_advisor.errors import ManifestError
from rbac_advisor.rbac import (
    RBAC_GROUP,
    LabelRequirement,
    LabelSelector,
    PolicyRule,
    RoleKind,
    RoleRef,
    Subject,
    SubjectKind,
    norm,
)
from rbac_advisor.validation import name_problem, rule_problems, service_account_name_problem

RULE_FIELDS = {"apiGroups", "resources", "resourceNames", "nonResourceURLs", "verbs"}
SUBJECT_FIELDS = {"kind", "apiGroup", "name", "namespace"}
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class Invalid(Exception):
    """One invalid field: ``path: problem``."""

    def __init__(self, path: str, problem: str) -> None:
        """Keep the field path and the problem."""
        super().__init__(f"{path}: {problem}" if path else problem)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def type_of(label: str, obj: object) -> tuple[str, str]:
    """(apiVersion, kind) of an object, or a ManifestError when either is missing."""
    assert isinstance(obj, Mapping)
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ManifestError(label, "", "object has no kind")
    if not isinstance(api_version, str) or not api_version:
        name = (
            obj.get("metadata", {}).get("name", "")
            if isinstance(obj.get("metadata"), Mapping)
            else ""
        )
        raise ManifestError(label, f"{kind}/{name}", "object has no apiVersion")
    return api_version, kind


def mapping(value: object, path: str) -> Mapping[str, object]:
    """A mapping field; null reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Invalid(path, f"expected a mapping, got {type(value).__name__}")
    return value


def seq(value: object, path: str) -> list[object]:
    """A list field; null reads as empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(path, f"expected a list, got {type(value).__name__}")
    return value


def string(value: object, path: str) -> str:
    """A string field; null reads as empty."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid(path, f"expected a string, got {type(value).__name__} ({value!r})")
    return value


def strings(value: object, path: str) -> list[str]:
    """A list of strings; null reads as empty (and a null item as ``""``, as Go decodes it)."""
    return [string(v, f"{path}[{i}]") for i, v in enumerate(seq(value, path))]


def check_fields(obj: Mapping[str, object], allowed: set[str], path: str) -> None:
    """Reject unknown fields, as strict field validation (kubectl's default) does."""
    for key in obj:
        if key not in allowed:
            raise Invalid(_join(path, str(key)), "unknown field")


def string_map(value: object, path: str) -> tuple[tuple[str, str], ...]:
    """Labels or annotations: string to string, as sorted pairs."""
    out = []
    for k, v in mapping(value, path).items():
        if not isinstance(v, str):
            raise Invalid(f"{path}.{k}", f"values must be strings, got {v!r} (quote it)")
        out.append((str(k), v))
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class Meta:
    """The parts of ObjectMeta we keep."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    defaulted: bool


def metadata(obj: Mapping[str, object], namespaced: bool, default_namespace: str) -> Meta:
    """Read metadata; namespaced objects without a namespace get ``default_namespace``."""
    if "metadata" not in obj or obj["metadata"] is None:
        raise Invalid("metadata", "required")
    meta = mapping(obj["metadata"], "metadata")
    name = string(meta.get("name"), "metadata.name")
    problem = name_problem(name)
    if problem:
        raise Invalid("metadata.name", problem)
    namespace = string(meta.get("namespace"), "metadata.namespace") if namespaced else ""
    defaulted = namespaced and not namespace
    if defaulted:
        namespace = default_namespace
    return Meta(
        name=name,
        namespace=namespace,
        labels=string_map(meta.get("labels"), "metadata.labels"),
        annotations=string_map(meta.get("annotations"), "metadata.annotations"),
        defaulted=defaulted,
    )


def rule(raw: object, path: str) -> PolicyRule:
    """One PolicyRule from its manifest form."""
    m = mapping(raw, path)
    check_fields(m, RULE_FIELDS, path)
    return PolicyRule.of(
        strings(m.get("verbs"), f"{path}.verbs"),
        strings(m.get("apiGroups"), f"{path}.apiGroups"),
        strings(m.get("resources"), f"{path}.resources"),
        strings(m.get("resourceNames"), f"{path}.resourceNames"),
        strings(m.get("nonResourceURLs"), f"{path}.nonResourceURLs"),
    )


def check_rule(r: PolicyRule, namespaced: bool, path: str) -> None:
    """Raise the first apiserver validation problem of a rule, if any."""
    problems = rule_problems(r, namespaced=namespaced)
    if problems:
        field, _, problem = problems[0].partition(": ")
        raise Invalid(f"{path}.{field}", problem)


def aggregation_rule(raw: object, path: str) -> tuple[LabelSelector, ...]:
    """``aggregationRule.clusterRoleSelectors`` as label selectors."""
    m = mapping(raw, path)
    check_fields(m, {"clusterRoleSelectors"}, path)
    spath = f"{path}.clusterRoleSelectors"
    selectors = seq(m.get("clusterRoleSelectors"), spath)
    if not selectors:
        raise Invalid(
            spath, "at least one clusterRoleSelector required if aggregationRule is non-nil"
        )
    return tuple(label_selector(s, f"{spath}[{i}]") for i, s in enumerate(selectors))


def label_selector(raw: object, path: str) -> LabelSelector:
    """As LabelSelectorAsSelector: matchLabels become ``In`` requirements; sorted."""
    m = mapping(raw, path)
    check_fields(m, {"matchLabels", "matchExpressions"}, path)
    reqs = [
        LabelRequirement(k, "In", (v,))
        for k, v in string_map(m.get("matchLabels"), f"{path}.matchLabels")
    ]
    for i, e in enumerate(seq(m.get("matchExpressions"), f"{path}.matchExpressions")):
        epath = f"{path}.matchExpressions[{i}]"
        em = mapping(e, epath)
        check_fields(em, {"key", "operator", "values"}, epath)
        key = string(em.get("key"), f"{epath}.key")
        if not key:
            raise Invalid(f"{epath}.key", "required")
        op = string(em.get("operator"), f"{epath}.operator")
        values = norm(strings(em.get("values"), f"{epath}.values"))
        if op not in SELECTOR_OPERATORS:
            raise Invalid(f"{epath}.operator", f"not a valid selector operator: {op!r}")
        if op in ("In", "NotIn") and not values:
            raise Invalid(f"{epath}.values", f"must be specified when operator is {op}")
        if op in ("Exists", "DoesNotExist") and values:
            raise Invalid(f"{epath}.values", f"may not be specified when operator is {op}")
        reqs.append(LabelRequirement(key, op, values))
    return LabelSelector(tuple(sorted(set(reqs))))


def aggregation_to_manifest(selectors: tuple[LabelSelector, ...]) -> dict[str, object]:
    """The inverse of ``aggregation_rule``: single-value ``In`` goes back to matchLabels."""
    out = []
    for sel in selectors:
        labels: dict[str, str] = {}
        exprs: list[dict[str, object]] = []
        for r in sel.requirements:
            if r.operator == "In" and len(r.values) == 1 and r.key not in labels:
                labels[r.key] = r.values[0]
                continue
            expr: dict[str, object] = {"key": r.key, "operator": r.operator}
            if r.values:
                expr["values"] = list(r.values)
            exprs.append(expr)
        item: dict[str, object] = {}
        if labels:
            item["matchLabels"] = labels
        if exprs:
            item["matchExpressions"] = exprs
        out.append(item)
    return {"clusterRoleSelectors": out}


def role_ref(raw: object, namespaced: bool) -> RoleRef:
    """Read roleRef with v1 defaulting (empty apiGroup -> rbac) and validation."""
    if raw is None:
        raise Invalid("roleRef", "required")
    m = mapping(raw, "roleRef")
    check_fields(m, {"apiGroup", "kind", "name"}, "roleRef")
    group = string(m.get("apiGroup"), "roleRef.apiGroup") or RBAC_GROUP
    if group != RBAC_GROUP:
        raise Invalid("roleRef.apiGroup", f"supported values: {RBAC_GROUP!r}, got {group!r}")
    kind = string(m.get("kind"), "roleRef.kind")
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if kind not in kinds:
        raise Invalid("roleRef.kind", f"supported values: {', '.join(kinds)}, got {kind!r}")
    name = string(m.get("name"), "roleRef.name")
    problem = name_problem(name)
    if problem:
        raise Invalid("roleRef.name", problem)
    return RoleRef(RoleKind(kind), name)


def subject(raw: object, namespaced: bool, path: str) -> Subject:
    """A subject with v1 defaulting of apiGroup and ValidateRoleBindingSubject's checks.

    The namespace is kept as written: ServiceAccount namespace defaulting is the
    authorizer's job (an empty one means the binding's namespace).
    """
    m = mapping(raw, path)
    check_fields(m, SUBJECT_FIELDS, path)
    kind = string(m.get("kind"), f"{path}.kind")
    name = string(m.get("name"), f"{path}.name")
    namespace = string(m.get("namespace"), f"{path}.namespace")
    group = string(m.get("apiGroup"), f"{path}.apiGroup")
    if not name:
        raise Invalid(f"{path}.name", "required")
    if kind == SubjectKind.SERVICE_ACCOUNT:
        if group:
            raise Invalid(f"{path}.apiGroup", f'must be "" for a ServiceAccount, got {group!r}')
        problem = service_account_name_problem(name)
        if problem:
            raise Invalid(f"{path}.name", problem)
        if not namespace and not namespaced:
            raise Invalid(
                f"{path}.namespace", "required for a ServiceAccount in a ClusterRoleBinding"
            )
    elif kind in (SubjectKind.USER, SubjectKind.GROUP):
        group = group or RBAC_GROUP
        if group != RBAC_GROUP:
            raise Invalid(f"{path}.apiGroup", f"must be {RBAC_GROUP!r} for a {kind}, got {group!r}")
    else:
        raise Invalid(
            f"{path}.kind", f"supported values: User, Group, ServiceAccount, got {kind!r}"
        )
    return Subject(kind=kind, name=name, namespace=namespace, api_group=group)
