"""The usage model: who used which permission, how often, when, with which tool. Pure.

A mergeable aggregate of normalised Events keyed by identity, authorizer attributes,
logged decision, granting binding and tool. Memory grows with distinct keys, not lines.
``build(a + b) == build(a).merge(build(b))`` when no request has stages in both pieces.
The streaming accumulator is ``usage_builder.UsageBuilder``; saving and loading live in
``usage_codec``; this module exposes ``build``, ``dumps`` and ``loads``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from itertools import chain, pairwise, starmap
from operator import attrgetter, lt
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from rbac_advisor.events import Decision, Event, ReasonRef
from rbac_advisor.rbac import Access, Identity

if TYPE_CHECKING:
    from rbac_advisor import usage_codec

DAY = 86400
SESSIONS_MAX = 2000
IPS_MAX = 20
SESSION_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})


@dataclass(frozen=True, slots=True, order=True)
class UsageKey:
    """One distinct permission use: who, what, the logged decision, via which binding, how."""

    identity: Identity
    access: Access
    decision: Decision
    via: ReasonRef | None
    tool: str
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Hash once: keys are looked up many times while models are built and merged."""
        h = key_hash(
            hash(self.identity), hash(self.access), self.decision, hash(self.via), self.tool
        )
        object.__setattr__(self, "_hash", h)

    def __hash__(self) -> int:
        """The cached hash."""
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by fields, so the hash is recomputed in the receiving process."""
        return (UsageKey, (self.identity, self.access, self.decision, self.via, self.tool))


def key_hash(hi: int, ha: int, decision: str, hv: int, tool: str) -> int:
    """The hash of a UsageKey from the hashes of its parts (see :func:`new_key`)."""
    return hash((hi, ha, decision, hv, tool))


def new_key(
    ident: Identity, acc: Access, dec: Decision, via: ReasonRef | None, tool: str, h: int
) -> UsageKey:
    """A UsageKey built without ``__init__``.

    The caller computed its hash with :func:`key_hash` from memoised part hashes (many
    keys share their parts).
    """
    k: UsageKey = object.__new__(UsageKey)
    for setter, value in zip(_KEY_SETTERS, (ident, acc, dec, via, tool, h), strict=True):
        setter(k, value)
    return k


# The slot setters: they bypass the frozen ``__setattr__`` as ``object.__setattr__`` does in
# ``__init__``, without its name lookup.
_KEY_SETTERS: tuple[Any, ...] = tuple(
    getattr(UsageKey, f).__set__ for f in ("identity", "access", "decision", "via", "tool", "_hash")
)


def earliest(a: float, b: float) -> float:
    """The earlier of two times, where 0 is a time the record did not give."""
    return min(a, b) if a and b else a or b


@dataclass(frozen=True, slots=True)
class Stats:
    """How often and when: epoch seconds, and days since the epoch (UTC) of each use.

    A request whose record gives no time adds to ``count`` only: ``first``/``last`` are 0
    when no record of the use gave one, and it adds no day.
    """

    count: int
    first: float
    last: float
    days: frozenset[int]

    def merge(self, other: Stats) -> Stats:
        """Combine the statistics of two disjoint sets of requests."""
        return Stats(
            self.count + other.count,
            earliest(self.first, other.first),
            max(self.last, other.last),
            self.days | other.days,
        )


@dataclass(frozen=True, slots=True, order=True)
class SourceInfo:
    """One input read: format(s) detected, records, requests, skips, digest, gaps.

    ``missing_fields`` names facts the source lacks for at least one record (``user.groups``
    for GKE, ``annotations.authorization.k8s.io/decision`` for old logs...), so reports can
    say what could not be known. ``ignored`` counts records of other services.
    """

    path: str
    format: str
    lines: int
    requests: int
    skipped: int
    sha256: str
    missing_fields: tuple[str, ...]
    ignored: int = 0
    first_error: str = ""


@dataclass(frozen=True, slots=True, order=True)
class Session:
    """An interactive request (exec, attach, port-forward, proxy), URI redacted."""

    time: float
    user: str
    verb: str
    resource: str
    namespace: str
    name: str
    uri: str
    source_ip: str
    tool: str
    decision: Decision


# An Identity's and an Access's parts of key_order: their fields, in order.
identity_order = attrgetter("user", "groups")
access_order = attrgetter(
    "verb", "api_group", "resource", "subresource", "namespace", "name", "path", "resource_request"
)


def via_order(via: ReasonRef | None) -> tuple[str, ...]:
    """A reason's part of :func:`key_order`: every field, ``()`` for None."""
    if via is None:
        return ()
    b, r, s = via.binding, via.role, via.subject
    return (
        b.kind,
        b.name,
        b.namespace,
        r.kind,
        r.name,
        r.namespace,
        s.kind,
        s.name,
        s.namespace,
        s.api_group,
    )


def key_order(k: UsageKey) -> tuple[Any, ...]:
    """The canonical total order on keys as plain tuples (``via`` may be None).

    Equal tuples mean equal keys. ``freeze`` gives this order without building the tuples
    (see ``usage_merge``).
    """
    return (
        *identity_order(k.identity),
        *access_order(k.access),
        str.__str__(k.decision),
        via_order(k.via),
        k.tool,
    )


def cap_ips(ips: Iterable[str]) -> tuple[str, ...]:
    """The smallest IPS_MAX distinct addresses, sorted: a cap that merges associatively."""
    return tuple(heapq.nsmallest(IPS_MAX, set(ips)))


@dataclass(frozen=True)
class Usage:
    """The aggregate of a set of requests.

    ``requests`` counts distinct API requests, 401s included; ``unauthenticated`` the 401s
    (never authorized, so not in ``entries``); ``filtered`` the requests left out by the
    time window or ``kubectl_only``.
    """

    entries: Mapping[UsageKey, Stats]
    requests: int
    unauthenticated: int
    start: float | None
    end: float | None
    sources: tuple[SourceInfo, ...] = ()
    activity: Mapping[tuple[str, str, int], int] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # Sorted distinct addresses (a tuple: most pairs have one, and a set costs 216 bytes).
    client_ips: Mapping[tuple[str, str], tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    sessions: tuple[Session, ...] = ()
    filtered: int = 0

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with entries as columns and plain dicts (MappingProxyType cannot be pickled)."""
        from rbac_advisor.usage_entries import Entries

        return (
            _unpickle,
            (
                Entries.of(self.entries),
                self.requests,
                self.unauthenticated,
                self.start,
                self.end,
                self.sources,
                dict(self.activity),
                dict(self.client_ips),
                self.sessions,
                self.filtered,
            ),
        )

    @property
    def skipped(self) -> int:
        """Malformed records skipped across all sources."""
        return sum(s.skipped for s in self.sources)

    def merge(self, other: Usage) -> Usage:
        """Combine two models of disjoint request sets (associative and commutative)."""
        from rbac_advisor.usage_entries import Entries, from_rows

        # Column by column: no key is built, and a use in both adds up (Stats.merge).
        entries = from_rows([Entries.of(self.entries).rows(), Entries.of(other.entries).rows()])
        activity = dict(self.activity)
        for ak, n in other.activity.items():
            activity[ak] = activity.get(ak, 0) + n
        ips = dict(self.client_ips)
        for ik, v in other.client_ips.items():
            ips[ik] = cap_ips(chain(ips.get(ik, ()), v))
        starts = [t for t in (self.start, other.start) if t is not None]
        ends = [t for t in (self.end, other.end) if t is not None]
        return freeze(
            entries,
            requests=self.requests + other.requests,
            unauthenticated=self.unauthenticated + other.unauthenticated,
            start=min(starts) if starts else None,
            end=max(ends) if ends else None,
            sources=self.sources + other.sources,
            activity=activity,
            client_ips=ips,
            sessions=self.sessions + other.sessions,
            filtered=self.filtered + other.filtered,
        )


def freeze(
    entries: Mapping[UsageKey, Stats],
    *,
    requests: int,
    unauthenticated: int,
    start: float | None,
    end: float | None,
    sources: Iterable[SourceInfo] = (),
    activity: Mapping[tuple[str, str, int], int] | None = None,
    client_ips: Mapping[tuple[str, str], Collection[str]] | None = None,
    sessions: Iterable[Session] = (),
    filtered: int = 0,
) -> Usage:
    """A Usage in canonical form: every mapping sorted and read-only, caps applied.

    Entries are held as columns (``usage_entries.Entries``); an ``Entries`` is taken as it is.
    """
    from rbac_advisor.usage_entries import Entries

    frozen = Entries.of(entries)
    activity = activity or {}
    ips = client_ips or {}
    return Usage(
        entries=frozen,
        requests=requests,
        unauthenticated=unauthenticated,
        start=start,
        end=end,
        sources=tuple(sorted(sources)),
        activity=MappingProxyType({k: activity[k] for k in sorted(activity)}),
        client_ips=MappingProxyType({k: _capped(ips[k]) for k in sorted(ips)}),
        sessions=tuple(sorted(sessions, key=_session_order)[-SESSIONS_MAX:]),
        filtered=filtered,
    )


def _capped(ips: Collection[str]) -> tuple[str, ...]:
    """``ips`` as held: sorted, distinct, capped (taken as it is when it already is)."""
    if type(ips) is tuple and len(ips) <= IPS_MAX and all(starmap(lt, pairwise(ips))):
        return ips
    return cap_ips(ips)


# Session's own order (order=True compares these fields as a tuple), without a Python call
# per comparison.
_session_order = attrgetter(*(f.name for f in fields(Session)))


def _unpickle(
    entries: Mapping[UsageKey, Stats],
    requests: int,
    unauthenticated: int,
    start: float | None,
    end: float | None,
    sources: tuple[SourceInfo, ...],
    activity: dict[tuple[str, str, int], int],
    client_ips: dict[tuple[str, str], tuple[str, ...]],
    sessions: tuple[Session, ...],
    filtered: int,
) -> Usage:
    return Usage(
        entries,
        requests,
        unauthenticated,
        start,
        end,
        sources,
        MappingProxyType(activity),
        MappingProxyType(client_ips),
        sessions,
        filtered,
    )


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Which requests to count: a time window ``[since, until)`` and kubectl only."""

    since: float | None = None
    until: float | None = None
    kubectl_only: bool = False


def build(
    events: Iterable[Event],
    *,
    since: float | None = None,
    until: float | None = None,
    kubectl_only: bool = False,
) -> Usage:
    """Aggregate events (any stages, any order within the dedupe window) into a Usage."""
    from rbac_advisor.usage_builder import UsageBuilder

    b = UsageBuilder(BuildOptions(since, until, kubectl_only))
    for ev in events:
        b.add(ev)
    return b.finish()


def empty() -> Usage:
    """The neutral element of :meth:`Usage.merge`."""
    return freeze({}, requests=0, unauthenticated=0, start=None, end=None)


def dumps(usage: Usage) -> str:
    """Deterministic JSON for ``--save`` (see ``usage_codec``)."""
    from rbac_advisor import usage_codec

    return usage_codec.dumps(usage)


def loads(
    text: str | usage_codec.Text,
    path: str = "<usage>",
    progress: Callable[[int], None] | None = None,
) -> Usage:
    """Read what :func:`dumps` wrote; InputError naming ``path`` on anything else.

    ``progress`` is told how many bytes of the text have been read (see ``usage_codec``).
    """
    from rbac_advisor import usage_codec

    return usage_codec.loads(text, path, progress)
