"""Who did what: per-subject summaries of a Usage as a text table or JSON. Pure.

The JSON schema is documented in docs/usage-json.md.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson

from rbac_advisor.audit.timestamps import format_second
from rbac_advisor.audit.useragent import name_of
from rbac_advisor.events import Decision
from rbac_advisor.rbac import Access
from rbac_advisor.usage import SourceInfo, Stats, Usage, UsageKey
from rbac_advisor.usage_entries import Entries

REPORT_FORMAT = "rbac-advisor/usage-report"
REPORT_VERSION = 1
# Share of the summarising work (subjects and their uses) between two progress reports.
PROGRESS_STEP = 0.005


def iso(t: float | None) -> str | None:
    """Epoch seconds as RFC 3339 UTC; None for None and for 0 (no record gave a time)."""
    if not t:
        return None
    return format_second(t)


def is_impersonation_check(k: UsageKey) -> bool:
    """True for the extra authorizations made for an impersonator (not a request of its own)."""
    return k.access.verb.startswith("impersonate")


@dataclass(slots=True)
class _Acc:
    stats: Stats | None = None
    tools: set[str] = field(default_factory=set)


@dataclass(slots=True)
class SubjectSummary:
    """One user or service account and what it did."""

    kind: str
    name: str
    namespace: str
    user: str
    requests: int = 0
    allowed: int = 0
    denied: int = 0
    unknown: int = 0
    groups: set[str] = field(default_factory=set)
    tools: Counter[str] = field(default_factory=Counter)
    ips: set[str] = field(default_factory=set)
    first: float | None = None
    last: float | None = None
    days: set[int] = field(default_factory=set)
    accesses: dict[tuple[Access, str, str], _Acc] = field(default_factory=dict)


def summarize(usage: Usage) -> list[SubjectSummary]:
    """Per-subject summaries, most active first (ties by kind, namespace, name)."""
    return list(iter_summaries(usage))


def iter_summaries(
    usage: Usage, progress: Callable[[float], None] | None = None
) -> Iterator[SubjectSummary]:
    """:func:`summarize`'s summaries one at a time, each built when it is reached.

    Only each user's request count is held for the whole run; its activity, addresses and
    uses are found when it is reached (runs of the sorted keys and rows). A log with as
    many subjects as uses would otherwise hold every subject's sets and maps at once.
    ``progress`` is told the share summarised so far (subjects and their uses) each time
    another ``PROGRESS_STEP`` of it is done.
    """
    activity, client_ips = usage.activity, usage.client_ips
    user_of = itemgetter(0)
    act_keys = sorted(activity)  # a frozen model's are in order already: one pass
    act_users = list(map(user_of, act_keys))
    ip_keys = sorted(client_ips)
    ip_users = list(map(user_of, ip_keys))
    entries = Entries.of(usage.entries)
    row_users: list[str] = []
    row_starts, row_stops = array("q"), array("q")  # each user's run of rows
    for user, start, stop in entries.user_runs():
        row_users.append(user)
        row_starts.append(start)
        row_stops.append(stop)
    requests: dict[str, int] = dict.fromkeys(chain(ip_users, row_users), 0)
    for (user, _tool, _day), n in activity.items():
        requests[user] = requests.get(user, 0) + n
    # Most requests first, ties by kind, namespace and name: two stable sorts, the first on
    # one string per user rather than a tuple of its parts.
    order = sorted(requests, key=_name_order)
    order.sort(key=requests.__getitem__, reverse=True)
    # The share done counts each subject and each of its uses: the most active come first,
    # and a share of subjects alone would promise the rest at their pace.
    work, done, report = len(order) + len(entries), 0, 0.0
    for user in order:
        if progress is not None and done >= report:
            progress(done / work)
            report = done + work * PROGRESS_STEP
        a = bisect_left(act_users, user)
        b = bisect_right(act_users, user, lo=a)
        i = bisect_left(ip_users, user)
        j = bisect_right(ip_users, user, lo=i)
        r = bisect_left(row_users, user)
        start, stop = 0, 0  # a user with addresses or activity but no use
        if r < len(row_users) and row_users[r] == user:
            start, stop = row_starts[r], row_stops[r]
        done += 1 + stop - start
        yield _summary(
            *_kind_namespace_name(user),
            user,
            requests[user],
            [(key[1], activity[key]) for key in act_keys[a:b]],
            [client_ips[key] for key in ip_keys[i:j]],
            entries.items_between(start, stop),
        )


def _name_order(user: str) -> str:
    """One string that sorts as (kind, namespace, name, user) of :func:`_kind_namespace_name`.

    A service account's namespace and name are DNS names, without NUL, and name it alone;
    a user's is its name. ServiceAccount sorts before User.
    """
    kind, namespace, name = _kind_namespace_name(user)
    return f"\x00{namespace}\x00{name}" if kind == "ServiceAccount" else f"\x01{user}"


def _kind_namespace_name(user: str) -> tuple[str, str, str]:
    from rbac_advisor.rbac import Identity

    sa = Identity(user).service_account
    return ("ServiceAccount", sa[0], sa[1]) if sa is not None else ("User", "", user)


def _summary(
    kind: str,
    namespace: str,
    name: str,
    user: str,
    requests: int,
    activity: Iterable[tuple[str, int]],
    addresses: Iterable[Iterable[str]],
    entries: Iterable[tuple[UsageKey, Stats]],
) -> SubjectSummary:
    s = SubjectSummary(kind, name, namespace, user, requests=requests)
    for tool, n in activity:
        s.tools[tool or "unknown"] += n
    for ips in addresses:
        s.ips.update(ips)
    accesses, days, groups = s.accesses, s.days, s.groups
    first: float | None = None
    last: float | None = None
    denied = unknown = 0
    ident = via = None
    via_text = ""
    for k, st in entries:
        # A subject's uses share few identities and bindings: each is read once.
        if k.identity is not ident:
            ident = k.identity
            groups.update(ident.groups)
        if k.via is not via:
            via = k.via
            via_text = via.binding.display() if via is not None else ""
        dec = k.decision
        key = (k.access, dec.value, via_text)
        acc = accesses.get(key)
        if acc is None:
            accesses[key] = _Acc(st, {k.tool or "unknown"})
        else:
            acc.stats = st if acc.stats is None else acc.stats.merge(st)
            acc.tools.add(k.tool or "unknown")
        # The earliest time a record gave (0: none did).
        if first is None or (st.first and (not first or st.first < first)):
            first = st.first
        if last is None or st.last > last:
            last = st.last
        days |= st.days
        if dec is Decision.FORBID:
            denied += st.count
        elif dec is Decision.UNKNOWN and not is_impersonation_check(k):
            # An impersonation check is made on behalf of another request, counted there.
            unknown += st.count
    s.first, s.last, s.denied, s.unknown = first, last, denied, unknown
    # Per request: one request can hold several allowed checks (server-side apply that
    # creates is also authorized as create), but it is one allowed request.
    s.allowed = max(0, s.requests - s.denied - s.unknown)
    return s


def _access_json(a: Access, decision: str, via: str, acc: _Acc) -> dict[str, Any]:
    st = acc.stats
    assert st is not None
    out: dict[str, Any] = {"verb": a.verb}
    if a.resource_request:
        out.update(
            apiGroup=a.api_group,
            resource=a.resource,
            subresource=a.subresource,
            namespace=a.namespace,
            name=a.name,
        )
    else:
        out["path"] = a.path
    out.update(
        decision=decision,
        count=st.count,
        firstSeen=iso(st.first),
        lastSeen=iso(st.last),
        days=len(st.days),
        tools=sorted(acc.tools),
        via=via or None,
    )
    return out


def to_json(usage: Usage) -> str:
    """One JSON object: totals, window, sources, subjects (with accesses), sessions."""
    return "".join(iter_json(usage))


def iter_json(usage: Usage, progress: Callable[[float], None] | None = None) -> Iterator[str]:
    """The text of :func:`to_json` in pieces, one subject at a time (bounded memory).

    ``progress``: see :func:`iter_summaries`.
    """
    doc = _document(usage, _SUBJECTS)
    head, _, tail = (
        orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        .decode()
        .partition(orjson.dumps(_SUBJECTS).decode())
    )
    yield head
    first = True
    texts: dict[Access, str] = {}
    for summary in iter_summaries(usage, progress):  # built when reached, let go once written
        if len(texts) > _TEXTS_MAX:
            texts.clear()
        doc = _subject_json(summary, texts)
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
        yield ("[\n" if first else ",\n") + "    " + text.replace("\n", "\n    ")
        first = False
    yield "[]" if first else "\n  ]"
    yield tail + "\n"


# The access texts kept while the subjects are written (about 200 bytes each).
_TEXTS_MAX = 50_000
_SUBJECTS = "\x00subjects\x00"  # placeholder in the document, replaced by the streamed list


def _subject_json(s: SubjectSummary, texts: dict[Access, str]) -> dict[str, Any]:
    """The JSON of one subject; ``texts`` keeps the ``repr`` of accesses between subjects.

    Uses are listed most frequent first, ties in the order of the text of their
    ``(access, decision, via)`` key. Subjects share many accesses, whose text is kept.
    """

    def order(kv: tuple[tuple[Access, str, str], _Acc]) -> tuple[int, str]:
        (a, decision, via), acc = kv
        text = texts.get(a)
        if text is None:
            text = texts[a] = repr(a)
        # str() of the key tuple, with the access's text kept
        return -(acc.stats.count if acc.stats else 0), f"({text}, {decision!r}, {via!r})"

    accesses = sorted(s.accesses.items(), key=order)
    return {
        "kind": s.kind,
        "name": s.name,
        "namespace": s.namespace,
        "user": s.user,
        "groups": sorted(s.groups),
        "requests": s.requests,
        "allowed": s.allowed,
        "denied": s.denied,
        "unknown": s.unknown,
        "permissions": len({k[0] for k in s.accesses}),
        "tools": dict(sorted(s.tools.items())),
        "sourceIPs": sorted(s.ips),
        "firstSeen": iso(s.first),
        "lastSeen": iso(s.last),
        "daysActive": len(s.days),
        "accesses": [_access_json(a, d, v, acc) for (a, d, v), acc in accesses],
    }


def _document(usage: Usage, subjects: Any) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "requests": usage.requests,
        "unauthenticated": usage.unauthenticated,
        "filtered": usage.filtered,
        "skipped": usage.skipped,
        "window": {"start": iso(usage.start), "end": iso(usage.end)},
        "sources": [
            {
                "path": x.path,
                "format": x.format,
                "lines": x.lines,
                "requests": x.requests,
                "skipped": x.skipped,
                "ignored": x.ignored,
                "sha256": x.sha256,
                "missingFields": list(x.missing_fields),
                "firstError": x.first_error or None,
            }
            for x in usage.sources
        ],
        "subjects": subjects,
        "sessions": [
            {
                "time": iso(x.time),
                "user": x.user,
                "verb": x.verb,
                "resource": x.resource,
                "namespace": x.namespace,
                "name": x.name,
                "uri": x.uri,
                "sourceIP": x.source_ip,
                "tool": x.tool,
                "decision": x.decision.value,
            }
            for x in usage.sessions
        ],
    }


def printable(text: str) -> str:
    r"""``text`` with control and other unprintable characters escaped (``\n``, ``\x1b``).

    Names and file names come from audit logs and their directories: a newline or terminal
    escape in one must not forge a row or a line, nor reach the terminal.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _cell(text: str, width: int) -> str:
    text = printable(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def malformed(n: int) -> str:
    """``n`` malformed record(s), in words."""
    return f"{n} malformed record{'' if n == 1 else 's'}"


_HEADER = (
    "KIND",
    "NAME",
    "NAMESPACE",
    "REQUESTS",
    "ALLOWED",
    "DENIED",
    "UNKNOWN",
    "PERMS",
    "TOOLS",
    "LAST SEEN",
)
_NUMERIC = frozenset({3, 4, 5, 6, 7})
_SEP = "\x1f"  # between a row's cells while the rows wait for the column widths


def to_table(usage: Usage) -> str:
    """A plain-text table, one row per subject, with a summary line above it."""
    return "".join(iter_table(usage))


def iter_table(usage: Usage, progress: Callable[[float], None] | None = None) -> Iterator[str]:
    """The text of :func:`to_table` in pieces, a line at a time.

    Each subject's row is kept as one string until every width is known: a log with as
    many subjects as uses holds one short string per subject, not its summary.
    ``progress``: see :func:`iter_summaries`.
    """
    widths = [len(h) for h in _HEADER]
    rows: list[str] = []
    for s in iter_summaries(usage, progress):
        cells = _row(s)
        widths = list(map(max, widths, map(len, cells)))
        rows.append(_SEP.join(cells))
    head = (
        f"{usage.requests} requests ({usage.unauthenticated} unauthenticated"
        + (f", {usage.filtered} filtered out" if usage.filtered else "")
        + (f", {malformed(usage.skipped)} skipped" if usage.skipped else "")
        + ")"
        + (f" from {iso(usage.start)} to {iso(usage.end)}" if usage.start is not None else "")
    )
    yield head + "\n"
    missing = sorted({f for src in usage.sources for f in src.missing_fields})
    if missing:
        yield "missing in some records: " + ", ".join(missing) + "\n"
    yield "\n"
    yield _line(_HEADER, widths)
    for k, row in enumerate(rows):
        yield _line(row.split(_SEP), widths)
        rows[k] = ""  # let each row go once written


def _row(s: SubjectSummary) -> tuple[str, ...]:
    by_name: Counter[str] = Counter()
    for label, n in s.tools.items():
        by_name[name_of(label)] += n  # versions are in --json
    tools = ",".join(t for t, _ in sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    return (
        s.kind,
        _cell(s.name, 48),
        _cell(s.namespace, 64) or "-",
        str(s.requests),
        str(s.allowed),
        str(s.denied),
        str(s.unknown),
        str(len({k[0] for k in s.accesses})),
        _cell(tools or "-", 30),
        iso(s.last) or "-",
    )


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [
        c.rjust(w) if i in _NUMERIC else c.ljust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(padded).rstrip() + "\n"


def skipped_summary(sources: Sequence[SourceInfo]) -> str:
    """What was skipped, per file when several had skips, and the first problem."""
    total = sum(s.skipped for s in sources)
    parts = []
    hit = [s for s in sources if s.skipped]
    if len(hit) > 1:
        parts.append(", ".join(f"{s.path}: {s.skipped}" for s in hit[:5]))
        if len(hit) > 5:
            parts[-1] += f" and {len(hit) - 5} more files"
    first = next((s.first_error for s in sources if s.first_error), "")
    if first:
        parts.append(f"first: {first}")
    return f"skipped {malformed(total)}" + (f" ({'; '.join(parts)})" if parts else "")


def read_twice(sources: Sequence[SourceInfo]) -> list[str]:
    """Warnings for log files whose bytes went into the result more than once.

    Models saved from the same log and merged (or a model merged with the log it was
    built from) count its requests twice: the sources' digests tell.
    """
    by_digest: dict[str, list[str]] = {}
    for s in sources:
        if s.sha256 and s.requests:
            by_digest.setdefault(s.sha256, []).append(s.path)
    out = []
    for paths in by_digest.values():
        if len(paths) > 1:
            others = sorted(set(paths) - {paths[0]})
            also = f" (also as {', '.join(others)})" if others else ""
            out.append(
                f"{paths[0]} was read for {len(paths)} models{also}: their requests are "
                "counted once per model, unless --since/--until kept the models apart"
            )
    return out
