"""Saved usage models: deterministic, versioned JSON. Pure: strings in, strings out.

Identities, accesses and reasons are stored once in sorted tables and referenced by
index from the entries, so a saved model stays small and byte-identical for equal models.
"""

from __future__ import annotations

from typing import Any

import orjson

from rbac_advisor.errors import InputError
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import Access, BindingKey, BindingKind, Identity, RoleKey, RoleKind, Subject
from rbac_advisor.usage import Session, SourceInfo, Stats, Usage, UsageKey, freeze

FORMAT = "rbac-advisor/usage"
VERSION = 1


def _access(a: Access) -> list[Any]:
    return [
        a.verb,
        a.api_group,
        a.resource,
        a.subresource,
        a.namespace,
        a.name,
        a.path,
        a.resource_request,
    ]


def _reason(r: ReasonRef) -> list[Any]:
    b, ro, s = r.binding, r.role, r.subject
    return [
        [str(b.kind), b.name, b.namespace],
        [str(ro.kind), ro.name, ro.namespace],
        [s.kind, s.name, s.namespace, s.api_group],
    ]


def dumps(usage: Usage) -> str:
    """Serialise a Usage; equal models give identical text."""
    idents = sorted({k.identity for k in usage.entries})
    accesses = sorted({k.access for k in usage.entries})
    reasons = sorted({k.via for k in usage.entries if k.via is not None})
    ii = {x: i for i, x in enumerate(idents)}
    ai = {x: i for i, x in enumerate(accesses)}
    ri = {x: i for i, x in enumerate(reasons)}
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "requests": usage.requests,
        "unauthenticated": usage.unauthenticated,
        "filtered": usage.filtered,
        "start": usage.start,
        "end": usage.end,
        "sources": [
            {
                "path": s.path,
                "format": s.format,
                "lines": s.lines,
                "requests": s.requests,
                "skipped": s.skipped,
                "ignored": s.ignored,
                "sha256": s.sha256,
                "missing_fields": list(s.missing_fields),
                "first_error": s.first_error,
            }
            for s in usage.sources
        ],
        "identities": [[i.user, list(i.groups)] for i in idents],
        "accesses": [_access(a) for a in accesses],
        "reasons": [_reason(r) for r in reasons],
        "entries": [
            [
                ii[k.identity],
                ai[k.access],
                str(k.decision),
                -1 if k.via is None else ri[k.via],
                k.tool,
                s.count,
                s.first,
                s.last,
                sorted(s.days),
            ]
            for k, s in usage.entries.items()
        ],
        "activity": [[u, t, d, n] for (u, t, d), n in usage.activity.items()],
        "client_ips": [[u, t, sorted(v)] for (u, t), v in usage.client_ips.items()],
        "sessions": [
            [
                s.time,
                s.user,
                s.verb,
                s.resource,
                s.namespace,
                s.name,
                s.uri,
                s.source_ip,
                s.tool,
                str(s.decision),
            ]
            for s in usage.sessions
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode() + "\n"


class _Bad(Exception):
    pass


def _list(v: Any, what: str, n: int | None = None) -> list[Any]:
    if not isinstance(v, list) or (n is not None and len(v) != n):
        raise _Bad(f"{what} must be a list" + (f" of {n} items" if n is not None else ""))
    return v


def _load(doc: Any) -> Usage:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Bad(f'not a saved usage model (no "format": "{FORMAT}")')
    if doc.get("version") != VERSION:
        raise _Bad(
            f"usage format version {doc.get('version')!r} is not supported (reads {VERSION})"
        )
    idents = [
        Identity(str(u), tuple(g)) for u, g in (_list(x, "identity", 2) for x in doc["identities"])
    ]
    accesses = [
        Access(str(a[0]), a[1], a[2], a[3], a[4], a[5], a[6], bool(a[7]))
        for a in (_list(x, "access", 8) for x in doc["accesses"])
    ]
    reasons = []
    for x in doc["reasons"]:
        b, r, s = _list(x, "reason", 3)
        reasons.append(
            ReasonRef(
                BindingKey(BindingKind(b[0]), b[1], b[2]),
                RoleKey(RoleKind(r[0]), r[1], r[2]),
                Subject(s[0], s[1], s[2], s[3]),
            )
        )
    entries = {}
    for x in doc["entries"]:
        i, a, dec, r, tool, count, first, last, days = _list(x, "entry", 9)
        key = UsageKey(idents[i], accesses[a], Decision(dec), None if r < 0 else reasons[r], tool)
        entries[key] = Stats(int(count), float(first), float(last), frozenset(int(d) for d in days))
    sources = [
        SourceInfo(
            s["path"],
            s["format"],
            s["lines"],
            s["requests"],
            s["skipped"],
            s["sha256"],
            tuple(s["missing_fields"]),
            s.get("ignored", 0),
            s.get("first_error", ""),
        )
        for s in doc["sources"]
    ]
    sessions = [
        Session(float(t), u, v, r, ns, n, uri, ip, tool, Decision(dec))
        for t, u, v, r, ns, n, uri, ip, tool, dec in (
            _list(x, "session", 10) for x in doc["sessions"]
        )
    ]
    return freeze(
        entries,
        requests=int(doc["requests"]),
        unauthenticated=int(doc["unauthenticated"]),
        start=doc["start"],
        end=doc["end"],
        sources=sources,
        activity={(u, t, int(d)): int(n) for u, t, d, n in doc["activity"]},
        client_ips={(u, t): frozenset(v) for u, t, v in doc["client_ips"]},
        sessions=sessions,
        filtered=int(doc.get("filtered", 0)),
    )


def loads(text: str | bytes, path: str = "<usage>") -> Usage:
    """Parse a saved model.

    Raises:
        InputError: not JSON, not a usage model, an unknown version, or damaged.
    """
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise InputError(f"{path}: not a saved usage model: invalid JSON ({err})") from None
    try:
        return _load(doc)
    except _Bad as err:
        raise InputError(f"{path}: {err}") from None
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise InputError(f"{path}: damaged usage model ({type(err).__name__}: {err})") from None
