"""Raw RBAC objects (dicts from YAML, JSON or the API) to a Snapshot, and back. Pure: no I/O.

Accepts single objects, ``kind: List`` and typed lists (``RoleList``...), in
rbac.authorization.k8s.io/v1 or v1beta1; other kinds are counted and ignored. Objects are
defaulted and validated as the apiserver does (v1 defaults.go, validation.go), so a file the
apiserver would reject is rejected here with the file, the object and the field.

The names of v1 Namespace objects (``rbac-advisor snapshot`` writes them) become the
snapshot's namespaces, but only when they look like a whole cluster's list: they must
include the namespaces every cluster keeps (``LASTING_NAMESPACES``), so a manifest directory
with its application's one Namespace does not pass for a cluster without the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from rbac_advisor import _rawfields as f
from rbac_advisor.errors import ManifestError
from rbac_advisor.rbac import (
    RBAC_GROUP,
    Binding,
    BindingKey,
    BindingKind,
    PolicyRule,
    Role,
    RoleKey,
    RoleKind,
    Snapshot,
    Subject,
)

RBAC_API_VERSIONS = (f"{RBAC_GROUP}/v1", f"{RBAC_GROUP}/v1beta1")
ROLE_KINDS = {k.value: k for k in RoleKind}
BINDING_KINDS = {k.value: k for k in BindingKind}
# Created by the apiserver and protected from deletion (NamespaceLifecycle admission).
LASTING_NAMESPACES = frozenset({"default", "kube-system"})
K = TypeVar("K", RoleKey, BindingKey)
Obj = TypeVar("Obj", Role, Binding)


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """How to read manifests.

    Attributes:
        default_namespace: namespace for Roles and RoleBindings that do not name one, as
            ``kubectl apply`` without ``-n`` does.
    """

    default_namespace: str = "default"


def parse_objects(
    docs: Iterable[tuple[str, object]], options: ParseOptions | None = None
) -> Snapshot:
    """Parse documents into a Snapshot, sorted by key.

    Non-RBAC objects count as ``ignored_objects``; Namespace objects among them also give
    the snapshot's ``namespaces`` (see the module docstring).

    Args:
        docs: (source label, parsed document) pairs; the label (a path) names the document
            in errors. ``None`` documents (empty YAML documents) are skipped.
        options: parsing options.

    Raises:
        ManifestError: a malformed or invalid RBAC object, or one key defined twice with
            different content.
    """
    opts = options or ParseOptions()
    roles: dict[RoleKey, tuple[Role, str]] = {}
    bindings: dict[BindingKey, tuple[Binding, str]] = {}
    namespaces: set[str] = set()
    ignored = 0
    defaulted = 0
    for label, doc in docs:
        for obj in _flatten(label, doc, "", ""):
            api_version, kind = f.type_of(label, obj)
            group = api_version.rpartition("/")[0]
            if group != RBAC_GROUP or (kind not in ROLE_KINDS and kind not in BINDING_KINDS):
                ignored += 1
                namespaces.update(_namespace_name(obj, api_version, kind))
                continue
            parsed, used_default = _parse_one(label, obj, api_version, kind, opts)
            defaulted += used_default
            if isinstance(parsed, Role):
                _add(roles, parsed.key, parsed, label)
            else:
                _add(bindings, parsed.key, parsed, label)
    warnings: list[str] = []
    if defaulted:
        warnings.append(
            f"{defaulted} Role/RoleBinding object(s) had no metadata.namespace and were placed "
            f'in namespace "{opts.default_namespace}" (as kubectl apply does without -n)'
        )
    return Snapshot(
        roles=tuple(r for _, (r, _) in sorted(roles.items())),
        bindings=tuple(b for _, (b, _) in sorted(bindings.items())),
        warnings=tuple(warnings),
        ignored_objects=ignored,
        namespaces=frozenset(namespaces) if namespaces >= LASTING_NAMESPACES else None,
    )


def _namespace_name(obj: object, api_version: str, kind: str) -> tuple[str, ...]:
    """The name of a v1 Namespace object, or ``()`` for any other object."""
    if api_version != "v1" or kind != "Namespace" or not isinstance(obj, Mapping):
        return ()
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return (name,) if isinstance(name, str) and name else ()


def _add(seen: dict[K, tuple[Obj, str]], key: K, obj: Obj, label: str) -> None:
    prev = seen.get(key)
    if prev is None:
        seen[key] = (obj, label)
    elif prev[0] != obj:
        raise ManifestError(
            label, key.display(), f"defined twice with different content (also in {prev[1]})"
        )


def _flatten(label: str, doc: object, list_version: str, item_kind: str) -> Iterator[object]:
    """Yield the objects in a document, unwrapping ``List`` and ``*List`` kinds."""
    if doc is None:
        return
    if not isinstance(doc, Mapping):
        raise ManifestError(label, "", f"expected a Kubernetes object, got {type(doc).__name__}")
    kind = doc.get("kind", item_kind)
    if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise ManifestError(label, kind, "items: expected a list")
        version = doc.get("apiVersion", list_version)
        for item in items:
            inner_kind = "" if kind == "List" else kind[: -len("List")]
            if isinstance(item, Mapping) and inner_kind:
                item = {"apiVersion": version, "kind": inner_kind, **item}
            yield from _flatten(label, item, "", "")
        return
    if item_kind and "kind" not in doc:
        doc = {"kind": item_kind, "apiVersion": list_version, **doc}
    yield doc


def _parse_one(
    label: str, obj: object, api_version: str, kind: str, opts: ParseOptions
) -> tuple[Role | Binding, bool]:
    assert isinstance(obj, Mapping)
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    namespaced = kind in (RoleKind.ROLE, BindingKind.ROLE_BINDING)
    if not isinstance(name, str) or not name:
        desc = f"{kind} without a name"
    elif namespaced and isinstance(namespace, str) and namespace:
        desc = f"{kind}/{namespace}/{name}"
    else:
        desc = f"{kind}/{name}"
    if api_version not in RBAC_API_VERSIONS:
        raise ManifestError(
            label, desc, f"unsupported apiVersion {api_version!r}; use {RBAC_API_VERSIONS[0]}"
        )
    try:
        if kind in ROLE_KINDS:
            return _parse_role(obj, ROLE_KINDS[kind], opts)
        return _parse_binding(obj, BINDING_KINDS[kind], opts)
    except f.Invalid as err:
        raise ManifestError(label, desc, str(err)) from None


def _parse_role(obj: Mapping[str, object], kind: RoleKind, opts: ParseOptions) -> tuple[Role, bool]:
    namespaced = kind == RoleKind.ROLE
    allowed = {"apiVersion", "kind", "metadata", "rules"}
    if not namespaced:
        allowed.add("aggregationRule")
    f.check_fields(obj, allowed, "")
    meta = f.metadata(obj, namespaced, opts.default_namespace)
    rules = []
    for i, raw in enumerate(f.seq(obj.get("rules"), "rules")):
        rule = f.rule(raw, f"rules[{i}]")
        f.check_rule(rule, namespaced, f"rules[{i}]")
        rules.append(rule)
    aggregation = None
    if "aggregationRule" in obj and obj["aggregationRule"] is not None:
        aggregation = f.aggregation_rule(obj["aggregationRule"], "aggregationRule")
    role = Role(
        kind=kind,
        name=meta.name,
        namespace=meta.namespace,
        rules=tuple(rules),
        labels=meta.labels,
        annotations=meta.annotations,
        aggregation=aggregation,
    )
    return role, meta.defaulted


def _parse_binding(
    obj: Mapping[str, object], kind: BindingKind, opts: ParseOptions
) -> tuple[Binding, bool]:
    namespaced = kind == BindingKind.ROLE_BINDING
    f.check_fields(obj, {"apiVersion", "kind", "metadata", "roleRef", "subjects"}, "")
    meta = f.metadata(obj, namespaced, opts.default_namespace)
    role_ref = f.role_ref(obj.get("roleRef"), namespaced)
    subjects = tuple(
        f.subject(raw, namespaced, f"subjects[{i}]")
        for i, raw in enumerate(f.seq(obj.get("subjects"), "subjects"))
    )
    binding = Binding(
        kind=kind,
        name=meta.name,
        namespace=meta.namespace,
        role_ref=role_ref,
        subjects=subjects,
        labels=meta.labels,
        annotations=meta.annotations,
    )
    return binding, meta.defaulted


def to_manifest(obj: Role | Binding) -> dict[str, object]:
    """A Role or Binding as a camelCase manifest dict in the usual key order.

    ``parse_objects`` of the result gives back an equal object (the snapshot round trip).
    """
    metadata: dict[str, object] = {"name": obj.name}
    if obj.namespace:
        metadata["namespace"] = obj.namespace
    if obj.labels:
        metadata["labels"] = dict(obj.labels)
    if obj.annotations:
        metadata["annotations"] = dict(obj.annotations)
    out: dict[str, object] = {
        "apiVersion": RBAC_API_VERSIONS[0],
        "kind": str(obj.kind),
        "metadata": metadata,
    }
    if isinstance(obj, Role):
        if obj.aggregation is not None:
            out["aggregationRule"] = f.aggregation_to_manifest(obj.aggregation)
        out["rules"] = [rule_to_manifest(r) for r in obj.rules]
        return out
    out["roleRef"] = {
        "apiGroup": RBAC_GROUP,
        "kind": str(obj.role_ref.kind),
        "name": obj.role_ref.name,
    }
    if obj.subjects:
        out["subjects"] = [subject_to_manifest(s) for s in obj.subjects]
    return out


def rule_to_manifest(rule: PolicyRule) -> dict[str, list[str]]:
    """A rule as a manifest dict, empty fields left out.

    Keys come in the order ``apiGroups, resources, resourceNames, nonResourceURLs, verbs``.
    """
    out: dict[str, list[str]] = {}
    for key, values in (
        ("apiGroups", rule.api_groups),
        ("resources", rule.resources),
        ("resourceNames", rule.resource_names),
        ("nonResourceURLs", rule.non_resource_urls),
        ("verbs", rule.verbs),
    ):
        if values:
            out[key] = list(values)
    return out


def subject_to_manifest(subject: Subject) -> dict[str, str]:
    """A subject as a manifest dict (``kind, apiGroup, name, namespace``), empty fields left out."""
    out = {"kind": subject.kind}
    if subject.api_group:
        out["apiGroup"] = subject.api_group
    out["name"] = subject.name
    if subject.namespace:
        out["namespace"] = subject.namespace
    return out


def to_list(snapshot: Snapshot) -> dict[str, object]:
    """The whole snapshot as one ``kind: List``, like ``kubectl get ... -o yaml`` writes."""
    items = [to_manifest(r) for r in snapshot.roles] + [to_manifest(b) for b in snapshot.bindings]
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}
