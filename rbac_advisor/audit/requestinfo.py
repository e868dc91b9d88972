"""Request URIs to authorizer attributes, as the apiserver's NewRequestInfo does. Pure.

Mirrors k8s.io/apiserver pkg/endpoints/request/requestinfo.go: resource requests are
``/api/<v>/...`` and ``/apis/<g>/<v>/...``; everything else is a non-resource path.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

# As namespaceSubresources in requestinfo.go: /namespaces/<ns>/<these> stay on the Namespace.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_SPECIAL_VERBS = frozenset({"proxy", "watch"})


@dataclass(frozen=True, slots=True)
class PathInfo:
    """What a resource path says: group, namespace, resource, name, subresource."""

    api_group: str
    namespace: str
    resource: str
    name: str = ""
    subresource: str = ""
    special_verb: str = ""  # "watch" or "proxy" for the deprecated /watch/, /proxy/ forms


def split_uri(uri: str) -> tuple[str, str]:
    """Split a request URI into its decoded path and its query (without the ``?``).

    The apiserver reads Go's ``URL.Path``, which is percent-decoded (``/logs/a%2Db`` is
    ``/logs/a-b`` to RBAC); the audit log keeps the URI as sent.
    """
    path, _, query = uri.partition("?")
    return (unquote(path) if "%" in path else path), query


def resource_info(path: str) -> PathInfo | None:
    """Parse an API path; None when it is not a resource request (a non-resource URL).

    >>> resource_info("/api/v1/namespaces/ns/pods/p/log").subresource
    'log'
    >>> resource_info("/apis/apps/v1") is None
    True
    """
    parts = list(path.strip("/").split("/"))
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return None
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        if len(parts) < 4:
            return None
        group, rest = parts[1], parts[3:]
    return parts_info(group, rest)


def parts_info(group: str, rest: list[str]) -> PathInfo | None:
    """Parse the path segments after ``<group>/<version>``, as NewRequestInfo does.

    The segments are decoded already (:func:`split_uri`), as Go's ``URL.Path`` is.
    """
    special = ""
    if rest and rest[0] in _SPECIAL_VERBS and len(rest) > 1:
        special, rest = rest[0], rest[1:]
    if not rest or not rest[0]:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    return PathInfo(group, namespace, resource, name, sub, special)


def field_selector_name(query: str) -> str:
    """The name a list/watch is narrowed to by ``fieldSelector=metadata.name=<n>``, else "".

    As the apiserver's RequestInfoFactory: the first ``fieldSelector`` parameter (the query
    decodes into ListOptions, which keeps the first value), whose first AND term
    ``metadata.name=<n>`` or ``metadata.name==<n>`` names the object
    (``fields.Selector.RequiresExactMatch``) when ``<n>`` is a valid path segment.
    """
    if "fieldSelector" not in query:
        return ""
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "fieldSelector":
            continue
        for term in value.split(","):
            field, op, val = _split_term(term)
            if field == "metadata.name" and op in ("=", "==") and val:
                return val if _path_segment(val) else ""
        return ""
    return ""


def _path_segment(name: str) -> bool:
    """``path.IsValidPathSegmentName``: not ``.`` or ``..``, no ``/`` or ``%``."""
    return name not in (".", "..") and "/" not in name and "%" not in name


def _split_term(term: str) -> tuple[str, str, str]:
    for op in ("!=", "==", "="):
        field, sep, val = term.partition(op)
        if sep:
            return field.strip(), op, val.strip()
    return term, "", ""
