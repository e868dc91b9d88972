"""Aggregating apiserver-written audit lines without an Event per request. Pure.

Most lines of a real log are the final stage of an ordinary request: no impersonation,
an authorization annotation, not an interactive session. For those, :class:`RawAggregator`
counts on the raw decoded fields and normalises each distinct combination once at the
end, which gives exactly the model that building an Event per request would (a test
checks this); every other record takes the Event path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rbac_advisor.audit import native
from rbac_advisor.audit.dedupe import Key
from rbac_advisor.audit.normalise import identity, reason_ref, resource_access, uri_access
from rbac_advisor.audit.redact import redact_uri
from rbac_advisor.audit.timestamps import parse_time
from rbac_advisor.audit.useragent import tool as ua_tool
from rbac_advisor.events import Decision
from rbac_advisor.rbac import Identity
from rbac_advisor.usage import DAY, IPS_MAX, SESSION_SUBRESOURCES, BuildOptions
from rbac_advisor.usage_builder import UsageBuilder

_FINAL = frozenset({"ResponseComplete", "Panic"})
_DECISIONS = {"allow": Decision.ALLOW, "forbid": Decision.FORBID}
_LIST = frozenset({"list", "watch"})
RawKey = tuple[int, str, bool, str, str, str, str, str, str, str, str | None, str]


class RawAggregator:
    """A ``parse_lines`` sink feeding one UsageBuilder (call :meth:`flush` at the end).

    The per-line code is a closure (:attr:`sink`): its state lives in closure cells, which
    are faster to reach than attributes on every line.
    """

    def __init__(self, builder: UsageBuilder, options: BuildOptions) -> None:
        """Share the builder's deduplication window and options."""
        assert builder.deduper is not None
        self.builder = builder
        self._raw: dict[RawKey, list[Any]] = {}
        self._idents: dict[int, Identity] = {}  # keeps interned identities alive by id
        self._strings: dict[str, str] = {}
        self._requests: dict[int, int] = {}
        self._window: list[str] = []
        self.sink: Callable[[native.NativeStruct, str, int], Key | None]
        self._set_head: Callable[[set[int] | None, int], None]
        self._source = 0
        self._make_sink(options)

    def track_head(self, keys: set[int], lines: int) -> None:
        """Add the hash of every request key counted in the first ``lines`` lines to ``keys``."""
        self._set_head(keys, lines)

    @property
    def source(self) -> int:
        """The source index requests are counted for."""
        return self._source

    @source.setter
    def source(self, index: int) -> None:
        self._take_counts()
        self._source = index

    def __call__(self, e: native.NativeStruct, path: str, no: int) -> Key | None:
        """Take one decoded line if it qualifies; return its request key, else None."""
        return self.sink(e, path, no)

    def _make_sink(self, options: BuildOptions) -> None:
        raw = self._raw
        idents = self._idents
        strings = self._strings
        tools: dict[str, str] = {}
        days_of: dict[str, int] = {}
        finalize = self.builder.deduper.finalize  # type: ignore[union-attr]
        count_filtered = self.builder.count_filtered
        since, until, kubectl_only = options.since, options.until, options.kubectl_only
        window = since is not None or until is not None
        final, decisions, sessions, lists = _FINAL, _DECISIONS, SESSION_SUBRESOURCES, _LIST
        head: set[int] | None = None
        head_lines = 0
        n = 0
        first: str | None = None
        last: str | None = None
        agg = self

        def take_counts() -> None:
            nonlocal n, first, last
            if n:
                agg._requests[agg._source] = agg._requests.get(agg._source, 0) + n
            if first is not None and last is not None:
                agg._window += [first, last]
            n, first, last = 0, None, None

        def set_head(keys: set[int] | None, lines: int) -> None:
            nonlocal head, head_lines
            head, head_lines = keys, lines

        def sink(e: native.NativeStruct, path: str, no: int) -> Key | None:
            nonlocal n, first, last
            if e.stage not in final or e.impersonatedUser is not None or not e.auditID:
                return None
            ann = e.annotations
            if ann is None or ann.decision not in decisions:
                return None
            ref = e.objectRef
            if ref is not None and (not ref.resource or ref.subresource in sessions):
                return None
            ua = e.userAgent
            verb = e.verb
            if not ua or not e.sourceIPs or not verb:
                return None
            if verb == "patch" and e.responseStatus is not None and e.responseStatus.code == 201:
                return None  # created by apply: also authorized as create (Event path)
            # Times stay strings: the apiserver's fixed-width RFC 3339 form sorts like the
            # time it denotes; only first/last of each key are converted at the end.
            stamp = e.requestReceivedTimestamp
            user = e.user
            if len(stamp) != 27 or stamp[26] != "Z" or stamp[19] != ".":
                return None
            if user is None or not user.username or not user.groups:
                return None
            day = days_of.get(stamp[:10])
            if day is None:
                try:
                    day = int(parse_time(stamp[:10] + "T00:00:00Z") // DAY)
                except ValueError:
                    return None
                days_of[stamp[:10]] = day
            uri = e.requestURI
            if ref is None and not uri:
                return None
            key = (
                e.auditID,
                user.username,
                verb,
                uri if "command=" not in uri else redact_uri(uri),
            )
            if head is not None and no <= head_lines:
                head.add(hash(key))
            if not finalize(key):
                return key  # a duplicate of a request already counted
            tool = tools.get(ua)
            if tool is None:
                tool = tools[ua] = ua_tool(ua)
            if window:
                t = parse_time(stamp)
                if (since is not None and t < since) or (until is not None and t >= until):
                    count_filtered()
                    return key
            if kubectl_only and tool != "kubectl":
                count_filtered()
                return key
            dec = ann.decision
            reason = ann.reason if dec == "allow" else None
            ident = identity(user.username, user.groups)
            iid = id(ident)
            if iid not in idents:
                idents[iid] = ident
            rk: RawKey
            if ref is None:
                rk = (
                    iid,
                    verb,
                    False,
                    uri.partition("?")[0],
                    "",
                    "",
                    "",
                    "",
                    "",
                    dec,
                    reason,
                    tool,
                )
            else:
                u = ""
                if verb == "create" or (verb in lists and not ref.name and "fieldSelector" in uri):
                    u = uri
                rk = (
                    iid, verb, True, u, ref.apiGroup, ref.resource, ref.subresource,
                    ref.namespace, ref.name, dec, reason, tool,
                )  # fmt: skip
            ip = e.sourceIPs[0]
            cur = raw.get(rk)
            if cur is None:
                # Share equal strings between keys: many keys, few distinct strings.
                rk = tuple(  # type: ignore[assignment]
                    strings.setdefault(x, x) if type(x) is str else x for x in rk
                )
                raw[rk] = [1, stamp, stamp, day, ip]  # one day / one IP: no container yet
            else:
                cur[0] += 1
                if stamp < cur[1]:
                    cur[1] = stamp
                if stamp > cur[2]:
                    cur[2] = stamp
                days = cur[3]
                if type(days) is int:
                    if days != day:
                        cur[3] = {days: cur[0] - 1, day: 1}
                else:
                    days[day] = days.get(day, 0) + 1
                ips = cur[4]
                if type(ips) is str:
                    if ips != ip:
                        cur[4] = {ips, ip}
                elif ip not in ips:
                    ips.add(ip)
                    if len(ips) > IPS_MAX:
                        ips.remove(max(ips))
            n += 1
            if first is None or stamp < first:
                first = stamp
            if last is None or stamp > last:
                last = stamp
            return key

        self.sink = sink
        self._take_counts = take_counts
        self._set_head = set_head

    def flush(self) -> None:
        """Normalise every distinct raw combination and add it to the builder."""
        self._take_counts()
        for source, count in self._requests.items():
            self.builder.count_requests(source, count)
        if self._window:
            stamps = sorted(self._window)
            self.builder.count_window(parse_time(stamps[0]), parse_time(stamps[-1]))
        self._requests.clear()
        self._window.clear()
        raw = self._raw
        while raw:
            rk, (count, first_s, last_s, days, ips) = raw.popitem()
            first, last = parse_time(first_s), parse_time(last_s)
            (iid, verb, is_resource, u, group, resource, sub, ns, name, dec, reason, tool) = rk
            ident = self._idents[iid]
            if type(days) is int:
                days = {days: count}
            if type(ips) is str:
                ips = (ips,)
            if is_resource:
                acc = resource_access(verb, u, group, resource, sub, ns, name)
            else:
                acc = uri_access(verb, u)
            self.builder.add_aggregate(
                ident,
                acc,
                _DECISIONS[dec],
                reason_ref(reason),
                tool,
                count,
                first,
                last,
                days,
                ips,
            )
        self._strings.clear()
        self._idents.clear()
