"""Aggregating apiserver-written audit lines without an Event per request. Pure.

Most lines of a real log are the final stage of an ordinary request: no impersonation,
an authorization annotation, not an interactive session. For those, :class:`RawAggregator`
counts on the decoded (hashable) structs themselves, keyed by (user, verb, URI where the
authorizer reads it, objectRef, annotations, userAgent), and normalises each distinct
combination once at the end. Whether a combination may take this path is decided once,
when it is first seen; a refused one, and every other record, takes the Event path. Both
paths give exactly the same model (``tests/test_usage_fast.py`` checks this).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rbac_advisor.audit import native
from rbac_advisor.audit.dedupe import Key
from rbac_advisor.audit.normalise import (
    identity,
    name_from_body,
    reason_ref,
    resource_access,
    uri_access,
)
from rbac_advisor.audit.redact import redact_uri
from rbac_advisor.audit.requestinfo import resource_info, split_uri
from rbac_advisor.audit.timestamps import GO_STAMP, parse_time
from rbac_advisor.audit.useragent import label as ua_label
from rbac_advisor.audit.useragent import tool as ua_tool
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import Identity
from rbac_advisor.usage import DAY, IPS_MAX, SESSION_SUBRESOURCES, BuildOptions
from rbac_advisor.usage_builder import UsageBuilder

_FINAL = frozenset({"ResponseComplete", "Panic"})
_DECISIONS = {"allow": Decision.ALLOW, "forbid": Decision.FORBID}
# Raw combinations held before they are normalised into the builder (memory bound; a
# combination seen again later is merged there, at the cost of normalising it twice).
# About 600 bytes each: 50k keeps a worker of the 16M-line benchmark log under 300 MB,
# for about 2 % more time than 80k on the 2M-line one. When the bound is reached, the
# combinations first seen last are normalised and the older half is kept: a combination
# that came early and is still held is a frequent one (traffic is skewed), and keeping it
# spares normalising it again.
RAW_MAX = 50_000
# Final stages of requests that may have begun before a share, reported past its head.
LONG_MAX = 250_000
# (user, verb, URI the authorizer reads or non-resource path, objectRef, annotations, agent)
RawKey = tuple[native.UserStruct, str, str, native.RefStruct | None, native.AnnStruct | None, str]


def _qualifies(rk: RawKey) -> bool:
    """True when requests of this combination need nothing but counting."""
    user, verb, u, ref, ann, ua = rk
    if not verb or not ua or not user.username or not user.groups:
        return False
    if ann is None or ann.decision not in _DECISIONS:
        return False
    if ref is None:
        # A resource request logged without objectRef (rewritten or exported logs): its
        # attributes come from the whole URI on the Event path (query names, implied
        # checks, sessions). Keyed here by the path alone, only non-resource requests fit.
        return bool(u) and resource_info(split_uri(u)[0]) is None
    return bool(ref.resource) and ref.subresource not in SESSION_SUBRESOURCES


class RawAggregator:
    """A ``parse_blocks`` sink feeding one UsageBuilder (call :meth:`flush` at the end).

    The per-line code is a closure (:attr:`sink`): its state lives in closure cells, which
    are faster to reach than attributes on every line.
    """

    def __init__(self, builder: UsageBuilder, options: BuildOptions) -> None:
        """Share the builder's deduplication window and options."""
        assert builder.deduper is not None
        self.builder = builder
        self._raw: dict[RawKey, list[Any]] = {}
        self._requests: dict[int, int] = {}
        self.sink: Callable[[native.NativeStruct, str, int], Key | None]
        self._set_head: Callable[[set[int] | None, int], None]
        self._set_long: Callable[[set[int] | None, str], None]
        self._take_counts: Callable[[], None]
        self._forget: Callable[[], None]
        self._source = 0
        self._make_sink(options)

    def track_head(self, keys: set[int], lines: int) -> None:
        """Add the hash of every request key counted in the first ``lines`` lines to ``keys``."""
        self._set_head(keys, lines)

    def track_long(self, keys: set[int], begun: str) -> None:
        """Report in ``keys`` final stages past the head of requests that may have begun before.

        That is the key hash of a request received at ``begun`` or earlier (RFC 3339, UTC,
        with microseconds), a watch or a session as any other; at most ``LONG_MAX``. Needs
        :meth:`track_head`.
        """
        self._set_long(keys, begun)

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
        refused: set[RawKey] = set()
        # Canonical instances: equal users, annotations, agents and strings shared by keys.
        users: dict[native.UserStruct, native.UserStruct] = {}
        anns: dict[native.AnnStruct | None, native.AnnStruct | None] = {}
        strings: dict[str, str] = {}
        kubectl: dict[str, bool] = {}
        days_of: dict[str, int] = {}
        deduper = self.builder.deduper
        assert deduper is not None
        finalize = deduper.finalize
        count_filtered = self.builder.count_filtered
        since, until, kubectl_only = options.since, options.until, options.kubectl_only
        window = since is not None or until is not None
        final, qualifies, go_stamp = _FINAL, _qualifies, GO_STAMP.fullmatch
        unnamed = native.RefStruct
        raw_max = RAW_MAX
        head: set[int] | None = None
        head_lines = 0
        long: set[int] | None = None
        begun = ""  # requests received until then may have begun before the share
        long_max = LONG_MAX
        n = 0
        agg = self

        def take_counts() -> None:
            nonlocal n
            if n:
                agg._requests[agg._source] = agg._requests.get(agg._source, 0) + n
            n = 0

        def set_head(keys: set[int] | None, lines: int) -> None:
            nonlocal head, head_lines
            head, head_lines = keys, lines

        def set_long(keys: set[int] | None, stamp: str) -> None:
            nonlocal long, begun
            long, begun = keys, stamp

        def forget() -> None:
            for d in (refused, users, anns, strings):
                d.clear()
            # The combinations kept stay found by identity.
            for rk in raw:
                users[rk[0]] = rk[0]
                anns[rk[4]] = rk[4]
                strings[rk[5]] = rk[5]

        def sink(e: native.NativeStruct, path: str, no: int) -> Key | None:
            nonlocal n
            if e.stage not in final or e.impersonatedUser is not None:
                return None
            aid = e.auditID
            ips = e.sourceIPs
            # Times stay strings: the apiserver's fixed-width RFC 3339 form sorts like the
            # time it denotes; only first/last of each key are converted at the end. Any
            # other form, or an impossible time of day, takes the Event path (which parses
            # it or says why not); the date is checked below, once per day.
            stamp = e.requestReceivedTimestamp
            if not aid or not ips or not go_stamp(stamp):
                return None
            verb = e.verb
            uri = e.requestURI
            ref = e.objectRef
            user = e.user
            assert user is not None  # checked by parse_blocks
            # The canonical instances (small, hot tables): the key lookup below then
            # compares them by identity instead of field by field.
            cu = users.get(user, user)
            ann = e.annotations
            ann = anns.get(ann, ann)
            ua = e.userAgent
            ua = strings.get(ua, ua)
            rk: RawKey
            if ref is None:
                rk = (cu, verb, uri.partition("?")[0], None, ann, ua)
            elif verb == "create":
                if ref.name and name_from_body(verb, ref.subresource):
                    # One combination for all objects created alike.
                    ref = unnamed(ref.resource, ref.namespace, "", ref.apiGroup, "")
                rk = (cu, verb, uri, ref, ann, ua)
            else:
                if (
                    (verb == "patch" or verb == "update")
                    and e.responseStatus is not None
                    and e.responseStatus.code == 201
                ):
                    return None  # created: also authorized as create (Event path)
                rk = (cu, verb, "", ref, ann, ua)
            cur = raw.get(rk)
            if cur is None and (rk in refused or not qualifies(rk)):
                refused.add(rk)
                return None
            day = days_of.get(stamp[:10])
            if day is None:
                try:
                    day = int(parse_time(stamp[:10] + "T00:00:00Z") // DAY)
                except ValueError:
                    return None
                days_of[stamp[:10]] = day
            key = (
                aid,
                user.username,
                verb,
                uri if "command=" not in uri and "%" not in uri else redact_uri(uri),
                stamp,
            )
            h = hash(key)
            if head is not None:
                if no <= head_lines:
                    head.add(h)
                elif long is not None and stamp <= begun and len(long) < long_max:
                    long.add(h)
            if not finalize(key, h):
                return key  # a request already counted adds nothing
            if window:
                t = parse_time(stamp)
                if (since is not None and t < since) or (until is not None and t >= until):
                    count_filtered()
                    return key
            if kubectl_only:
                is_kubectl = kubectl.get(ua)
                if is_kubectl is None:
                    is_kubectl = kubectl[ua] = ua_tool(ua) == "kubectl"
                if not is_kubectl:
                    count_filtered()
                    return key
            n += 1
            ip = ips[0]
            if cur is None:
                # First use: make its parts canonical (later lines find them by identity)
                # and share equal strings between keys (many keys, few distinct strings).
                if cu is user:
                    users[user] = user
                if ann is e.annotations:
                    anns[ann] = ann
                sd = strings.setdefault
                if ua is e.userAgent:
                    strings[ua] = ua
                if ref is not None:
                    ref = native.RefStruct(
                        sd(ref.resource, ref.resource),
                        sd(ref.namespace, ref.namespace),
                        ref.name,
                        sd(ref.apiGroup, ref.apiGroup),
                        sd(ref.subresource, ref.subresource),
                    )
                rk = (cu, sd(verb, verb), rk[2], ref, ann, ua)
                raw[rk] = [1, stamp, stamp, day, ip]  # one day / one IP: no container yet
                if len(raw) >= raw_max:
                    # Bounded memory: the builder merges what follows; the canonical
                    # tables start again from the combinations kept (they only spare
                    # equal copies).
                    agg._normalise(keep=raw_max // 2)
                    forget()
                return key
            cur[0] += 1
            if stamp < cur[1]:
                cur[1] = stamp
            elif stamp > cur[2]:
                cur[2] = stamp
            days = cur[3]
            if type(days) is int:
                if days != day:
                    cur[3] = {days: cur[0] - 1, day: 1}
            else:
                days[day] = days.get(day, 0) + 1
            cips = cur[4]
            if type(cips) is str:
                if cips != ip:
                    cur[4] = {cips, ip}
            elif ip not in cips:
                cips.add(ip)
                if len(cips) > IPS_MAX:
                    cips.remove(max(cips))
            return key

        self.sink = sink
        self._take_counts = take_counts
        self._set_head = set_head
        self._set_long = set_long
        self._forget = forget

    def flush(self) -> None:
        """Normalise every distinct raw combination and add it to the builder.

        Call it once, at the end of the input: the deduplication window is let go.
        """
        self.builder.deduper.forget()  # type: ignore[union-attr]
        self._normalise()
        self._forget()

    def _normalise(self, keep: int = 0) -> None:
        """Move the raw combinations counted so far into the builder, but the ``keep`` first seen.

        The combinations first seen last go first (``popitem``); the requests counted so far
        all go.
        """
        self._take_counts()
        for source, count in self._requests.items():
            self.builder.count_requests(source, count)
        self._requests.clear()
        raw = self._raw
        if len(raw) <= keep:
            return
        idents: dict[native.UserStruct, Identity] = {}
        vias: dict[str, ReasonRef | None] = {}
        tools: dict[str, str] = {}
        add = self.builder.add_aggregate
        earliest, latest = float("inf"), float("-inf")
        while len(raw) > keep:
            (user, verb, u, ref, ann, ua), (count, first_s, last_s, days, ips) = raw.popitem()
            first = parse_time(first_s)
            last = first if last_s is first_s else parse_time(last_s)
            earliest, latest = min(earliest, first), max(latest, last)
            ident = idents.get(user)
            if ident is None:
                ident = idents[user] = identity(user.username, user.groups)
            assert ann is not None and ann.decision is not None
            dec = _DECISIONS[ann.decision]
            via = None
            if dec is Decision.ALLOW and ann.reason:
                if ann.reason in vias:
                    via = vias[ann.reason]
                else:
                    via = vias[ann.reason] = reason_ref(ann.reason)
            tool = tools.get(ua)
            if tool is None:
                tool = tools[ua] = ua_label(ua)
            if ref is None:
                acc = uri_access(verb, u)
            else:
                acc = resource_access(
                    verb, u, ref.apiGroup, ref.resource, ref.subresource, ref.namespace, ref.name
                )
            add(
                ident,
                acc,
                dec,
                via,
                tool,
                count,
                first,
                last,
                {days: count} if type(days) is int else days,
                (ips,) if type(ips) is str else ips,
            )
        self.builder.count_window(earliest, latest)
