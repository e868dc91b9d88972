"""The streaming accumulator behind ``usage.build``: events in, a frozen Usage out. Pure.

Counted uses are kept compactly (``usage_table``), keyed by the interned Identity, Access
and ReasonRef objects; equal values under different objects are merged when the Usage is
frozen, column by column (``usage_merge``). Exported states (a worker's share of a file)
are kept as they come and merged with the rest at the end.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any, NamedTuple

from rbac_advisor.audit import useragent
from rbac_advisor.audit.dedupe import Deduper
from rbac_advisor.events import Decision, Event, ReasonRef
from rbac_advisor.rbac import Access, Identity
from rbac_advisor.usage import (
    DAY,
    IPS_MAX,
    SESSION_SUBRESOURCES,
    SESSIONS_MAX,
    BuildOptions,
    Session,
    SourceInfo,
    Usage,
    cap_ips,
    freeze,
)
from rbac_advisor.usage_entries import from_rows, gc_paused
from rbac_advisor.usage_merge import Rows, merge
from rbac_advisor.usage_table import UseTable


class Export(NamedTuple):
    """A builder's counted state as plain picklable values (see ``UsageBuilder.export``)."""

    rows: Rows
    requests: int
    unauthenticated: int
    filtered: int
    start: float | None
    end: float | None
    activity: dict[tuple[str, str, int], int]
    client_ips: dict[tuple[str, str], str | set[str]]
    sessions: list[Session]
    by_source: dict[int, int]


class UsageBuilder:
    """Streaming accumulator behind :func:`build`; tags events with a source index."""

    def __init__(self, options: BuildOptions | None = None, *, dedupe: bool = True) -> None:
        """Start empty; ``dedupe`` False when the caller already collapsed stages."""
        self.options = options if options is not None else BuildOptions()
        self.deduper: Deduper[int] | None = Deduper() if dedupe else None
        self._tools: dict[str, str] = {}
        self._empty()

    def _empty(self) -> None:
        """Hold no counted state (the deduplication window and caches stay)."""
        self.by_source: dict[int, int] = {}
        self._uses = UseTable()
        self._parts: list[Rows] = []  # absorbed exports, merged in finish()
        self._requests = 0
        self._unauth = 0
        self._filtered = 0
        self._start: float | None = None
        self._end: float | None = None
        self._activity: dict[tuple[str, str, int], int] = {}
        # Client addresses per (user, tool); one address is held as the string itself.
        self._ips: dict[tuple[str, str], str | set[str]] = {}
        self._sessions: list[Session] = []

    @property
    def uses(self) -> int:
        """The distinct uses counted here (not those of absorbed exports)."""
        return len(self._uses)

    def add(self, ev: Event, source: int = 0) -> None:
        """Add one (stage) event read from source number ``source``."""
        d = self.deduper
        if d is None:
            self.count(ev, source)
            return
        d.push(ev, source)
        if d.out:
            for e, s in d.out:
                self.count(e, s)
            d.out.clear()

    def count(self, ev: Event, source: int = 0) -> None:
        """Count one request (stages already collapsed)."""
        opts = self.options
        t = ev.time
        if (opts.since is not None and (t < opts.since or not t)) or (
            opts.until is not None and (t >= opts.until or not t)
        ):
            self._filtered += 1
            return
        tool = self._tools.get(ev.user_agent)
        if tool is None:
            tool = self._tools[ev.user_agent] = useragent.label(ev.user_agent)
        if opts.kubectl_only and useragent.name_of(tool) != "kubectl":
            self._filtered += 1
            return
        self.by_source[source] = self.by_source.get(source, 0) + 1
        self._requests += 1
        if t:
            if self._start is None or t < self._start:
                self._start = t
            if self._end is None or t > self._end:
                self._end = t
        if ev.code == 401 and ev.decision is Decision.UNKNOWN:
            self._unauth += 1
            return
        ident = ev.identity
        day = int(t // DAY)
        once = (1, t, t, (day,) if t else ())  # one use at t (no day when the time is unknown)
        entry = self._uses.add
        if ev.impersonator is None and ev.impersonation:
            for check in ev.impersonation:  # refused impersonation: no request authorized
                entry(ident, check, Decision.FORBID, None, tool, *once)
        else:
            entry(ident, ev.access, ev.decision, ev.reason, tool, *once)
            for extra, decided in ev.implied:
                entry(ident, extra, decided, None, tool, *once)
            if ev.impersonator is not None:
                for check in ev.impersonation:
                    entry(ev.impersonator, check, Decision.ALLOW, None, tool, *once)
        ak = (ident.user, tool, day)
        self._activity[ak] = self._activity.get(ak, 0) + 1
        ip = ev.source_ip
        if ip:
            ik = (ident.user, tool)
            ips = self._ips.get(ik)
            if ips is None:
                self._ips[ik] = ip
            elif isinstance(ips, str):
                if ips != ip:
                    self._ips[ik] = {ips, ip}
            elif ip not in ips:
                ips.add(ip)
                if len(ips) > IPS_MAX:
                    ips.remove(max(ips))
        a = ev.access
        if a.subresource in SESSION_SUBRESOURCES and a.resource_request:
            # A session is refused when the extra create check of its upgrade was.
            refused = any(d is Decision.FORBID for _, d in ev.implied)
            s = Session(
                t,
                ident.user,
                a.verb,
                a.combined_resource,
                a.namespace,
                a.name,
                ev.uri,
                ev.source_ip,
                tool,
                Decision.FORBID if refused else ev.decision,
            )
            if len(self._sessions) < SESSIONS_MAX:
                heapq.heappush(self._sessions, s)
            else:
                heapq.heappushpop(self._sessions, s)

    def count_filtered(self) -> None:
        """Count one request left out by the window or ``kubectl_only``."""
        self._filtered += 1

    def count_requests(self, source: int, n: int) -> None:
        """Count ``n`` requests aggregated elsewhere (see ``usage_fast``)."""
        self.by_source[source] = self.by_source.get(source, 0) + n
        self._requests += n

    def count_window(self, first: float, last: float) -> None:
        """Widen the observed window to include ``[first, last]``."""
        for t in (first, last):
            if t:
                if self._start is None or t < self._start:
                    self._start = t
                if self._end is None or t > self._end:
                    self._end = t

    def add_aggregate(
        self,
        ident: Identity,
        acc: Access,
        dec: Decision,
        via: ReasonRef | None,
        tool: str,
        count: int,
        first: float,
        last: float,
        days: dict[int, int],
        ips: Iterable[str],
    ) -> None:
        """Add ``count`` uses already counted as requests (see ``usage_fast``)."""
        self._uses.add(ident, acc, dec, via, tool, count, first, last, days)
        for day, n in days.items():
            ak = (ident.user, tool, day)
            self._activity[ak] = self._activity.get(ak, 0) + n
        if ips:
            ik = (ident.user, tool)
            self._ips[ik] = _with_ips(self._ips.get(ik), ips)

    def _rows(self) -> Rows:
        if not self._parts:
            return self._uses.rows(ordered=True)
        if len(self._parts) == 1 and not self._uses:
            return self._parts.pop()  # as it came: whoever takes the export merges it
        return merge([*self._parts, self._uses.rows(ordered=False)])

    def hand_over(self) -> Export:
        """What :meth:`export` gives, then start counting afresh.

        A worker hands its counts over this way before they outgrow its memory; adding up
        the states handed over (``absorb_export``) gives what one export at the end would.
        """
        out = self.export()
        self._empty()
        return out

    def compact(self) -> None:
        """Merge the absorbed exports into one (the rows of uses in several, added up)."""
        if len(self._parts) > 1:
            self._parts = [merge(self._parts)]

    def export(self) -> Export:
        """The counted state as plain picklable values (see :meth:`absorb_export`)."""
        rows = self._rows()
        return Export(
            rows,
            self._requests,
            self._unauth,
            self._filtered,
            self._start,
            self._end,
            self._activity,
            self._ips,
            self._sessions,
            self.by_source,
        )

    def absorb_export(self, state: tuple[Any, ...], *, own: bool = False) -> None:
        """Add what another builder exported (a worker's share of the files).

        Requests count for the sources the other builder counted them for. ``own``: the
        caller lets ``state`` go, so its activity and addresses may be taken as they are
        rather than copied (while this builder holds none).
        """
        rows, requests, unauth, filtered, start, end, activity, ips, sessions, by_source = state
        if own and not self._activity and not self._ips:
            self._activity, activity = activity, {}
            self._ips, ips = ips, {}
        self._parts.append(rows)
        for source, n in by_source.items():
            self.by_source[source] = self.by_source.get(source, 0) + n
        self._requests += requests
        self._unauth += unauth
        self._filtered += filtered
        for t in (start, end):
            if t is not None:
                self._start = t if self._start is None else min(self._start, t)
                self._end = t if self._end is None else max(self._end, t)
        for ak, n in activity.items():
            self._activity[ak] = self._activity.get(ak, 0) + n
        for ik, v in ips.items():
            self._ips[ik] = _with_ips(self._ips.get(ik), (v,) if type(v) is str else v)
        for s in sessions:
            if len(self._sessions) < SESSIONS_MAX:
                heapq.heappush(self._sessions, s)
            else:
                heapq.heappushpop(self._sessions, s)

    def flush(self) -> None:
        """Count the requests still waiting for a later stage."""
        if self.deduper is not None:
            self.deduper.flush()
            for e, s in self.deduper.out:
                self.count(e, s)
            self.deduper.out.clear()

    def finish(self, sources: Iterable[SourceInfo] = ()) -> Usage:
        """Flush and freeze into a Usage (the counted uses move into it)."""
        self.flush()
        with gc_paused():
            parts = [*self._parts, self._uses.rows(ordered=False)]
            self._parts = []
            entries = from_rows(parts)
            return freeze(
                entries,
                requests=self._requests,
                unauthenticated=self._unauth,
                start=self._start,
                end=self._end,
                sources=sources,
                activity=self._activity,
                client_ips={
                    k: (v,) if isinstance(v, str) else tuple(sorted(v))
                    for k, v in self._ips.items()
                },
                sessions=self._sessions,
                filtered=self._filtered,
            )


def _with_ips(cur: str | set[str] | None, ips: Iterable[str]) -> str | set[str]:
    """``cur`` with ``ips`` added, capped (``cap_ips``); one address as the string itself."""
    have = set() if cur is None else {cur} if isinstance(cur, str) else cur
    have.update(ips)
    if len(have) > IPS_MAX:
        have = set(cap_ips(have))
    return next(iter(have)) if len(have) == 1 else have
