"""Request URIs to authorizer attributes, as the apiserver's NewRequestInfo does. Pure.

Mirrors k8s.io/apiserver pkg/endpoints/request/requestinfo.go: resource requests are
``/api/<v>/...`` and ``/apis/<g>/<v>/...``; everything else is a non-resource path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes

# As namespaceSubresources in requestinfo.go: /namespaces/<ns>/<these> stay on the Namespace.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_BAD_ESCAPE = re.compile("%(?![0-9A-Fa-f]{2})")


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
    # specialVerbsNoSubresources: a /proxy/ path's further segments are no subresource
    sub = rest[2] if len(rest) > 2 and special != "proxy" else ""
    return PathInfo(group, namespace, resource, name, sub, special)


def field_selector_name(query: str) -> str:
    r"""The name a list/watch is narrowed to by ``fieldSelector=metadata.name=<n>``, else "".

    As the apiserver's RequestInfoFactory: the first ``fieldSelector`` parameter of the
    query as Go's ``url.ParseQuery`` reads it (ListOptions keeps the first value), parsed
    as ``fields.ParseSelector`` does (terms split at unescaped commas and sorted; ``\,``,
    ``\=`` and ``\\`` unescaped; one bad term fails the whole selector), then
    ``RequiresExactMatch("metadata.name")``: the first ``=`` or ``==`` term on that field,
    kept when its value is a valid path segment.
    """
    if "fieldSelector" not in query:
        return ""
    selector = _first_query_value(query, "fieldSelector")
    terms = _selector_terms(selector) if selector else None
    for field, op, value in terms or ():
        if field == "metadata.name" and op != "!=":
            return value if _path_segment(value) and _utf8(value) else ""
    return ""


def _utf8(text: str) -> bool:
    """No byte that is not UTF-8 (kept as a lone surrogate): no RBAC object can name it."""
    return text.isascii() or not any("\udc80" <= c <= "\udcff" for c in text)


def _first_query_value(query: str, key: str) -> str | None:
    """The first value of ``key`` as Go's ``url.ParseQuery`` reads the query.

    Pairs are split at ``&``; a pair holding ``;`` or a bad percent escape is dropped;
    ``+`` is a space.
    """
    for pair in query.split("&"):
        if not pair or ";" in pair:
            continue
        k, _, v = pair.partition("=")
        if _query_unescape(k) != key:
            continue
        value = _query_unescape(v)
        if value is not None:
            return value
    return None


def _query_unescape(s: str) -> str | None:
    """Go's ``url.QueryUnescape``: None for a ``%`` not followed by two hex digits."""
    s = s.replace("+", " ")
    if "%" not in s:
        return s
    if _BAD_ESCAPE.search(s):
        return None
    return unquote_to_bytes(s).decode("utf-8", "surrogateescape")


def _selector_terms(selector: str) -> list[tuple[str, str, str]] | None:
    """``fields.ParseSelector``'s (field, operator, value) terms in its order; None if it fails."""
    terms: list[str] = []
    start, escaped = 0, False
    for i, c in enumerate(selector):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    out: list[tuple[str, str, str]] = []
    for term in sorted(terms):
        if not term:
            continue
        split = _split_term(term)
        value = _unescape_value(split[2]) if split else None
        if split is None or value is None:
            return None
        out.append((split[0], split[1], value))
    return out


def _split_term(term: str) -> tuple[str, str, str] | None:
    """``fields.splitTerm``: at the first position where ``!=``, ``==`` or ``=`` starts."""
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape_value(s: str) -> str | None:
    """``fields.UnescapeValue``: None for an unknown escape or a bare ``,`` or ``=``."""
    out: list[str] = []
    escaped = False
    for c in s:
        if escaped:
            if c not in "\\,=":
                return None
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            return None
        else:
            out.append(c)
    return None if escaped else "".join(out)


def _path_segment(name: str) -> bool:
    """``path.IsValidPathSegmentName``: not ``.`` or ``..``, no ``/`` or ``%``."""
    return name not in (".", "..") and "/" not in name and "%" not in name
