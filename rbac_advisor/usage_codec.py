"""Saved usage models: deterministic, versioned JSON. Pure: strings in, strings out.

Identities, accesses and reasons are stored once in sorted tables and referenced by
index from the entries, so a saved model stays small and byte-identical for equal models.

Each row of a non-empty array is written on a line of its own: a saved model reads well in
a diff, and a large one is read an array at a time and its entries a piece at a time, never
as one parsed document (a JSON string holds no raw newline, so every newline lies between
values). Any other layout of the same JSON (an older save, an edited or pretty-printed
file) loads as one document, to the same model.
"""

from __future__ import annotations

import gc
import reprlib
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import chain, islice
from operator import lt
from typing import Any, NoReturn, Protocol

import orjson

from rbac_advisor.errors import InputError
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import Access, BindingKey, BindingKind, Identity, RoleKey, RoleKind, Subject
from rbac_advisor.usage import Session, SourceInfo, Stats, Usage, UsageKey, freeze
from rbac_advisor.usage_entries import Entries
from rbac_advisor.usage_merge import keys_of, mixed_radix

FORMAT = "rbac-advisor/usage"
VERSION = 1


# Rows of a table encoded per orjson call when a model is written in pieces: a few MB each.
ROWS = 4096

_SORT = orjson.OPT_SORT_KEYS


def _json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys, as the whole document is written."""
    return orjson.dumps(value, option=_SORT).decode()


def _access(a: Access) -> list[Any]:
    """An access table row."""
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
    """A reason table row: binding, role and subject."""
    b, ro, s = r.binding, r.role, r.subject
    return [
        [str(b.kind), b.name, b.namespace],
        [str(ro.kind), ro.name, ro.namespace],
        [s.kind, s.name, s.namespace, s.api_group],
    ]


def _source_row(s: SourceInfo) -> dict[str, Any]:
    """A ``sources[]`` object."""
    return {
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


def _session_row(s: Session) -> list[Any]:
    """A ``sessions`` row."""
    return [
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


def _numbered(items: Iterable[Any]) -> dict[Any, int]:
    """Each distinct item mapped to its index in sorted order (iteration gives that order)."""
    return {x: i for i, x in enumerate(sorted(items))}


def _entry_rows(
    entries: Mapping[UsageKey, Stats],
    ii: dict[Identity, int],
    ai: dict[Access, int],
    ri: dict[ReasonRef, int],
) -> Iterator[list[Any]]:
    """The ``entries`` rows, made one at a time: indices into the tables, then statistics."""
    for k, s in entries.items():
        yield [
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


def _tables(usage: Usage) -> dict[str, Iterable[Any]]:
    """The document's arrays by name, as iterables of rows made when read."""
    entries = Entries.of(usage.entries)
    ii = _numbered(entries.identities)
    ai = _numbered(entries.accesses)
    ri = _numbered(entries.reasons)
    return {
        "sources": map(_source_row, usage.sources),
        "identities": ([i.user, list(i.groups)] for i in ii),
        "accesses": map(_access, ai),
        "reasons": map(_reason, ri),
        "entries": _entry_rows(entries, ii, ai, ri),
        "activity": ([u, t, d, n] for (u, t, d), n in usage.activity.items()),
        "client_ips": ([u, t, sorted(v)] for (u, t), v in usage.client_ips.items()),
        "sessions": map(_session_row, usage.sessions),
    }


def _scalars(usage: Usage) -> dict[str, Any]:
    """The document's single values by name."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "requests": usage.requests,
        "unauthenticated": usage.unauthenticated,
        "filtered": usage.filtered,
        "start": usage.start,
        "end": usage.end,
    }


def _key_order(names: Iterable[str]) -> list[str]:
    """``names`` in the order ``OPT_SORT_KEYS`` writes them, as orjson itself sorts them."""
    return list(orjson.loads(orjson.dumps(dict.fromkeys(names, 0), option=_SORT)))


def _array(rows: Iterable[Any], size: int) -> Iterator[str]:
    """A JSON array of ``rows``, a row per line, in pieces of ``size`` rows."""
    it = iter(rows)
    opening = "[\n"
    while batch := list(islice(it, size)):
        yield opening + ",\n".join(map(_json, batch))
        opening = ",\n"
    yield "[]" if opening == "[\n" else "\n]"


def dump_chunks(usage: Usage, rows: int | None = None) -> Iterator[str]:
    """Serialise a Usage in pieces, for writing without holding the whole text.

    The pieces joined are :func:`dumps`. Arrays are encoded ``rows`` rows at a time, so
    memory is bounded by one piece, not by the model.

    Args:
        usage: The model.
        rows: Rows per piece of an array (at least 1); ``ROWS`` when None.

    Yields:
        Consecutive pieces of the document, the last ending with a newline.

    Raises:
        ValueError: ``rows`` is less than 1.
    """
    size = ROWS if rows is None else rows
    if size < 1:
        raise ValueError(f"rows must be at least 1, not {size}")
    scalars, tables = _scalars(usage), _tables(usage)
    separator = "{"
    for name in _key_order([*scalars, *tables]):
        yield f"{separator}{_json(name)}:"
        if name in tables:
            yield from _array(tables[name], size)
        else:
            yield _json(scalars[name])
        separator = ","
    yield "}\n"


def too_large(usage: Usage) -> str | None:
    """What of ``usage`` a saved model cannot hold (counts past INT_MAX), if anything.

    Models added up with ``merge`` can pass the bound the reader checks; saving one
    would write a file that is refused when read back. Every other count added up is at
    most ``requests`` (a model agrees with itself), and sources are listed, not added.
    """
    for what, n in (("requests", usage.requests), ("filtered", usage.filtered)):
        if n > INT_MAX:
            return f"{what} ({n}) passes {INT_MAX}, the most a saved model holds"
    return None


def dumps(usage: Usage) -> str:
    """Serialise a Usage; equal models give identical text."""
    return "".join(dump_chunks(usage))


class _Bad(Exception):
    """Damage in a saved model; the message names the field or entry."""


class _Unsupported(Exception):
    """Not a saved model, or one of another format version."""


# Counts stay exact in a float and in every JSON reader, with room for merged models' sums.
INT_MAX = 2**53 - 1
# Times and days the renderers can write as RFC 3339 with four-digit years: from
# 0001-01-01T00:00:00Z up to, not including, 10000-01-01T00:00:00Z.
TIME_MIN = -62135596800.0
TIME_MAX = 253402300800.0
DAY_MIN = -719162
DAY_MAX = 2932896

_DECISIONS = {str(d): d for d in Decision}
_BINDING_KINDS = {str(k): k for k in BindingKind}
_ROLE_KINDS = {str(k): k for k in RoleKind}
_NUMBER = (int, float)  # bool is neither: ``type(True) is bool``
_CHUNK = 1 << 16

_STR = "a string"
_STRS = "a list of strings"
_COUNT = f"an integer from 0 to {INT_MAX}"
_POSITIVE = f"an integer from 1 to {INT_MAX}"
_TIME = "seconds since 1970 within the years 1 to 9999"
_DAYS = "a list of day numbers (days since 1970) within the years 1 to 9999"
_DECISION = '"allow", "forbid" or "unknown"'

# A positional field of a saved row: its name in messages, its check, what it must be.
_Field = tuple[str, Callable[[Any], bool], str]


def _is_str(v: Any) -> bool:
    """A string."""
    return type(v) is str


def _is_strs(v: Any) -> bool:
    """A list of strings."""
    return type(v) is list and all(type(s) is str for s in v)


def _is_count(v: Any) -> bool:
    """An integer (not a bool) from 0 to INT_MAX."""
    return type(v) is int and 0 <= v <= INT_MAX


def _is_positive(v: Any) -> bool:
    """An integer (not a bool) from 1 to INT_MAX."""
    return type(v) is int and 0 < v <= INT_MAX


def _is_time(v: Any) -> bool:
    """Epoch seconds, finite, within the years 1 to 9999."""
    return type(v) in _NUMBER and TIME_MIN <= v < TIME_MAX


def _is_day(v: Any) -> bool:
    """Days since the epoch within the years 1 to 9999."""
    return type(v) is int and DAY_MIN <= v <= DAY_MAX


def _is_days(v: Any) -> bool:
    """A list of days."""
    return type(v) is list and all(map(_is_day, v))


def _is_decision(v: Any) -> bool:
    """A logged decision's name."""
    return type(v) is str and v in _DECISIONS


def _is_groups(v: Any) -> bool:
    """A sorted list of distinct strings, as an Identity holds its groups."""
    return _is_strs(v) and all(map(lt, v, v[1:]))


def _index(table: str, n: int, *, none: bool = False) -> str:
    """What an index into ``table`` of ``n`` rows must be (``none``: -1 for no row too)."""
    rows = f"0 to {n - 1}" if n else "it is empty"
    return ("-1 (none) or " if none else "") + f"an index into {table} ({rows})"


_SESSION: tuple[_Field, ...] = (
    ("time", _is_time, _TIME),
    ("user", _is_str, _STR),
    ("verb", _is_str, _STR),
    ("resource", _is_str, _STR),
    ("namespace", _is_str, _STR),
    ("name", _is_str, _STR),
    ("uri", _is_str, _STR),
    ("sourceIP", _is_str, _STR),
    ("tool", _is_str, _STR),
    ("decision", _is_decision, _DECISION),
)
_ACTIVITY: tuple[_Field, ...] = (
    ("user", _is_str, _STR),
    ("tool", _is_str, _STR),
    ("day", _is_day, "a day number (days since 1970) within the years 1 to 9999"),
    ("requests", _is_positive, _POSITIVE),
)
_CLIENT_IPS: tuple[_Field, ...] = (
    ("user", _is_str, _STR),
    ("tool", _is_str, _STR),
    ("addresses", _is_strs, _STRS),
)
# sources[] objects: the SourceInfo fields in order; the last two are absent from older saves.
_SOURCE: tuple[_Field, ...] = (
    ("path", _is_str, _STR),
    ("format", _is_str, _STR),
    ("lines", _is_count, _COUNT),
    ("requests", _is_count, _COUNT),
    ("skipped", _is_count, _COUNT),
    ("sha256", _is_str, _STR),
    ("missing_fields", _is_strs, _STRS),
    ("ignored", _is_count, _COUNT),
    ("first_error", _is_str, _STR),
)
_SOURCE_DEFAULTS: dict[str, Any] = {"ignored": 0, "first_error": ""}


def _list(v: Any, what: str) -> list[Any]:
    """``v`` if it is a list (a row-per-line array is parsed now)."""
    if type(v) is _Lines:
        return v.rows()
    if type(v) is not list:
        raise _Bad(f"{what} must be a list")
    return v


def _each(v: Any, what: str) -> Iterable[Any]:
    """The rows of an array; a row-per-line one is parsed a piece at a time as they are read."""
    if type(v) is _Lines:
        return chain.from_iterable(v.pieces())
    return _list(v, what)


def _check(x: Any, where: str, spec: Sequence[_Field]) -> list[Any]:
    """``x`` if it is a list of the fields ``spec`` describes; _Bad naming the first that is not."""
    if type(x) is not list or len(x) != len(spec):
        names = ", ".join(f[0] for f in spec)
        raise _Bad(f"{where} must be a list of {len(spec)} items ({names})")
    for v, (name, ok, expected) in zip(x, spec, strict=True):
        if not ok(v):
            raise _Bad(f"{where}.{name} must be {expected}")
    return x


def _bad_row(x: Any, where: str, spec: Sequence[_Field]) -> NoReturn:
    """Raise _Bad naming what is wrong with a row that failed a quick check."""
    _check(x, where, spec)
    raise _Bad(f"{where} is invalid")


def _repeated(keys: Sequence[Hashable], table: str, same: str) -> NoReturn:
    """Raise _Bad naming the first row of ``table`` whose key an earlier row has."""
    seen: dict[Hashable, int] = {}
    for n, k in enumerate(keys):
        first = seen.setdefault(k, n)
        if first != n:
            raise _Bad(f"{table}[{n}] repeats {table}[{first}] (the same {same})")
    raise _Bad(f"{table} has repeated rows")


def _field(doc: dict[str, Any], name: str) -> Any:
    """A required top-level field."""
    if name not in doc:
        raise _Bad(f"{name} is missing")
    return doc[name]


def _count(v: Any, what: str) -> int:
    """``v`` if it is a count."""
    if not _is_count(v):
        raise _Bad(f"{what} must be {_COUNT}")
    return int(v)


# Each string read mapped to the first equal one (``seen.setdefault(s, s)``): values repeat
# across a model's tables, and are then held once.
_Seen = dict[str, str]


def _identities(rows: Any, seen: _Seen) -> list[Identity]:
    """The identity table: ``[user, [group, ...]]`` rows, groups sorted and distinct."""
    one = seen.setdefault
    groups: dict[tuple[str, ...], tuple[str, ...]] = {}
    out = []
    for n, x in enumerate(_each(rows, "identities")):
        if not (type(x) is list and len(x) == 2 and type(x[0]) is str and _is_groups(x[1])):
            raise _Bad(
                f"identities[{n}] must be [user, groups]: a string and a sorted list of "
                "distinct strings"
            )
        g = tuple([one(s, s) for s in x[1]])
        out.append(Identity(one(x[0], x[0]), groups.setdefault(g, g)))
    return out


def _accesses(rows: Any, seen: _Seen) -> list[Access]:
    """The access table: seven strings and the resource-request flag per row."""
    one = seen.setdefault
    out = []
    for n, x in enumerate(_each(rows, "accesses")):
        if not (
            type(x) is list
            and len(x) == 8
            and all(type(s) is str for s in x[:7])
            and type(x[7]) is bool
        ):
            raise _Bad(
                f"accesses[{n}] must be a list of 7 strings (verb, apiGroup, resource, "
                "subresource, namespace, name, path) and a boolean (resource request)"
            )
        verb, group, res, sub, ns, name, path, resource_request = x
        out.append(
            Access(
                one(verb, verb),
                one(group, group),
                one(res, res),
                one(sub, sub),
                one(ns, ns),
                name,
                path,
                resource_request,
            )
        )
    return out


def _read_reason(
    x: Any,
    n: int,
    seen: _Seen,
    bindings: dict[BindingKey, BindingKey],
    roles: dict[RoleKey, RoleKey],
) -> ReasonRef:
    """One row of the reason table: binding, role and subject."""
    where = f"reasons[{n}]"
    if type(x) is not list or len(x) != 3:
        raise _Bad(f"{where} must be a list of 3 items (binding, role, subject)")
    b, r, s = x
    if not (_is_strs(b) and len(b) == 3 and b[0] in _BINDING_KINDS):
        raise _Bad(
            f"{where}.binding must be [kind, name, namespace] with kind RoleBinding or "
            "ClusterRoleBinding"
        )
    if not (_is_strs(r) and len(r) == 3 and r[0] in _ROLE_KINDS):
        raise _Bad(f"{where}.role must be [kind, name, namespace] with kind Role or ClusterRole")
    if not (_is_strs(s) and len(s) == 4):
        raise _Bad(f"{where}.subject must be a list of 4 strings (kind, name, namespace, apiGroup)")
    one = seen.setdefault
    binding = BindingKey(_BINDING_KINDS[b[0]], b[1], one(b[2], b[2]))
    role = RoleKey(_ROLE_KINDS[r[0]], one(r[1], r[1]), one(r[2], r[2]))
    # Bindings and roles are read once each (many reasons name one binding of one role).
    return ReasonRef(
        bindings.setdefault(binding, binding),
        roles.setdefault(role, role),
        Subject(*[one(v, v) for v in s]),
    )


def _entry_spec(ni: int, na: int, nr: int) -> tuple[_Field, ...]:
    """The fields of an entry, given the sizes of the tables it indexes."""
    return (
        ("identity", lambda v: type(v) is int and 0 <= v < ni, _index("identities", ni)),
        ("access", lambda v: type(v) is int and 0 <= v < na, _index("accesses", na)),
        ("decision", _is_decision, _DECISION),
        ("reason", lambda v: type(v) is int and -1 <= v < nr, _index("reasons", nr, none=True)),
        ("tool", _is_str, _STR),
        ("count", _is_positive, _POSITIVE),
        ("first", _is_time, _TIME),
        ("last", _is_time, _TIME),
        ("days", _is_days, _DAYS),
    )


def _bad_entry(x: Any, n: int, sizes: tuple[int, int, int]) -> NoReturn:
    """Raise _Bad naming what is wrong with entry ``n``, which failed the quick check."""
    where = f"entries[{n}]"
    _check(x, where, _entry_spec(*sizes))
    if x[6] > x[7]:
        raise _Bad(f"{where}.first must not be after {where}.last")
    raise _Bad(f"{where} is invalid")


def _check_entries(rows: list[Any], sizes: tuple[int, int, int], at: int = 0) -> None:
    """Check every entry but its day numbers with plain comparisons (see ``_check_days``).

    ``rows`` are the entries from number ``at`` on.
    """
    ni, na, nr = sizes
    decisions, number, t_min, t_max, n_max = _DECISIONS, _NUMBER, TIME_MIN, TIME_MAX, INT_MAX
    for n, x in enumerate(rows, at):
        if type(x) is not list or len(x) != 9:
            _bad_entry(x, n, sizes)
        i, a, dec, r, tool, count, first, last, days = x
        if not (
            type(i) is int
            and 0 <= i < ni
            and type(a) is int
            and 0 <= a < na
            and type(dec) is str
            and dec in decisions
            and type(r) is int
            and -1 <= r < nr
            and type(tool) is str
            and type(count) is int
            and 0 < count <= n_max
            and type(first) in number
            and type(last) in number
            and t_min <= first <= last < t_max
            and type(days) is list
        ):
            _bad_entry(x, n, sizes)


def _check_days(
    rows: list[Any], days: Iterable[list[Any]], sizes: tuple[int, int, int], at: int = 0
) -> None:
    """Check the day numbers of entries (``days``: their lists) a chunk at a time.

    ``rows`` are the entries from number ``at`` on.
    """
    flat = chain.from_iterable(days)
    while chunk := list(islice(flat, _CHUNK)):
        if set(map(type, chunk)) != {int} or min(chunk) < DAY_MIN or max(chunk) > DAY_MAX:
            for n, x in enumerate(rows, at):
                if not _is_days(x[8]):
                    _bad_entry(x, n, sizes)
            raise _Bad("entries hold an invalid day")


def _entries(
    value: Any, idents: list[Identity], accesses: list[Access], reasons: list[ReasonRef]
) -> Entries:
    """The entries, checked, held as columns (no key or statistics object is built).

    A row-per-line array is read a piece at a time, each piece put into the columns and let
    go before the next is parsed. A model as ``dumps`` writes it (sorted tables, rows in
    order) is taken as it is; any other is ranked and sorted.
    """
    pieces = value.pieces() if type(value) is _Lines else iter([_list(value, "entries")])
    sizes = (len(idents), len(accesses), len(reasons))
    cols: list[array[int]] = [array("i") for _ in range(5)]
    counts, firsts, lasts = array("q"), array("d"), array("d")
    days: list[frozenset[int]] = []
    dec_at: dict[str, int] = {}
    tool_at: dict[str, int] = {}
    day_sets: dict[frozenset[int], frozenset[int]] = {}
    n = 0
    for rows in pieces:
        _check_entries(rows, sizes, n)
        if not rows:
            continue
        ii, ai, decs, ri, tools, cs, fs, ls, ds = zip(*rows, strict=True)
        _check_days(rows, ds, sizes, n)
        del rows
        cols[0].extend(ii)
        cols[1].extend(ai)
        cols[2].extend([dec_at.setdefault(d, len(dec_at)) for d in decs])
        cols[3].extend(ri)
        cols[4].extend([tool_at.setdefault(t, len(tool_at)) for t in tools])
        counts.extend(cs)
        firsts.extend(map(float, fs))
        lasts.extend(map(float, ls))
        days.extend([day_sets.setdefault(d, d) for d in map(frozenset, ds)])
        n += len(ii)
    if not n:
        return Entries.of({})
    # Decisions and tools in their order; no reason (-1) sorts first.
    dec_table = sorted(map(_DECISIONS.__getitem__, dec_at), key=str)
    cols[2] = _renumbered(cols[2], [dec_table.index(_DECISIONS[d]) for d in dec_at])
    tool_table = sorted(tool_at)
    tool_rank = {t: k for k, t in enumerate(tool_table)}
    cols[4] = _renumbered(cols[4], [tool_rank[t] for t in tool_at])
    vias: list[ReasonRef | None] = list(reasons)
    if -1 in cols[3]:
        vias.insert(0, None)
        cols[3] = array("i", [r + 1 for r in cols[3]])
    tables = (idents, accesses, dec_table, vias, tool_table)
    held = Entries(tables, cols, counts, firsts, lasts, days)
    if held.canonical():
        return held
    # A value repeated in a table is one value: its rows name the first copy.
    for c, table in ((0, idents), (1, accesses), (3, vias)):
        cols[c] = _renumbered(cols[c], _first_copies(table))
    sizes5 = [len(t) for t in tables]
    if len(set(mixed_radix(cols, sizes5))) != n:
        ih, ah, vh = list(map(hash, idents)), list(map(hash, accesses)), list(map(hash, vias))
        decisions = list(map(dec_table.__getitem__, cols[2]))
        tools_of = list(map(tool_table.__getitem__, cols[4]))
        parts = (idents, accesses, vias)
        keys = keys_of(parts, (ih, ah, vh), cols[0], cols[1], decisions, cols[3], tools_of)
        _repeated(keys, "entries", "identity, access, decision, reason and tool")
    return Entries.from_columns(tables, cols, counts, firsts, lasts, days)


def _renumbered(col: array[int], new: Sequence[int]) -> array[int]:
    """``col`` with each index ``i`` replaced by ``new[i]``."""
    return array("i", map(new.__getitem__, col))


def _first_copies(table: Sequence[Hashable]) -> list[int]:
    """For each position of ``table``, the first position holding an equal value."""
    first: dict[Hashable, int] = {}
    return [first.setdefault(v, i) for i, v in enumerate(table)]


def _source(s: Any, n: int) -> SourceInfo:
    """One ``sources[]`` object."""
    where = f"sources[{n}]"
    if type(s) is not dict:
        raise _Bad(f"{where} must be an object")
    values = []
    for name, ok, expected in _SOURCE:
        if name in s:
            v = s[name]
        elif name in _SOURCE_DEFAULTS:
            v = _SOURCE_DEFAULTS[name]
        else:
            raise _Bad(f"{where}.{name} is missing")
        if not ok(v):
            raise _Bad(f"{where}.{name} must be {expected}")
        values.append(v)
    path, fmt, lines, requests, skipped, sha256, missing, ignored, first_error = values
    return SourceInfo(
        path, fmt, lines, requests, skipped, sha256, tuple(missing), ignored, first_error
    )


def _sessions(rows: Any) -> list[Session]:
    """The kept interactive sessions (at most SESSIONS_MAX per model)."""
    out = []
    for n, x in enumerate(_list(rows, "sessions")):
        t, u, v, r, ns, name, uri, ip, tool, dec = _check(x, f"sessions[{n}]", _SESSION)
        out.append(Session(float(t), u, v, r, ns, name, uri, ip, tool, _DECISIONS[dec]))
    return out


def _activity(rows: Any, seen: _Seen) -> dict[tuple[str, str, int], int]:
    """Requests per (user, tool, day)."""
    one = seen.setdefault
    is_day, is_positive = _is_day, _is_positive
    out = {}
    n = -1
    for n, x in enumerate(_each(rows, "activity")):
        if not (
            type(x) is list
            and len(x) == 4
            and type(x[0]) is str
            and type(x[1]) is str
            and is_day(x[2])
            and is_positive(x[3])
        ):
            _bad_row(x, f"activity[{n}]", _ACTIVITY)
        out[(one(x[0], x[0]), one(x[1], x[1]), x[2])] = x[3]
    if len(out) != n + 1:
        _repeated([tuple(x[:3]) for x in _each(rows, "activity")], "activity", "user, tool and day")
    return out


def _client_ips(rows: Any, seen: _Seen) -> dict[tuple[str, str], tuple[str, ...]]:
    """Client addresses per (user, tool)."""
    one = seen.setdefault
    is_strs = _is_strs
    out = {}
    n = -1
    for n, x in enumerate(_each(rows, "client_ips")):
        if not (
            type(x) is list
            and len(x) == 3
            and type(x[0]) is str
            and type(x[1]) is str
            and is_strs(x[2])
        ):
            _bad_row(x, f"client_ips[{n}]", _CLIENT_IPS)
        out[(one(x[0], x[0]), one(x[1], x[1]))] = tuple(x[2])  # freeze sorts and caps
    if len(out) != n + 1:
        _repeated([tuple(x[:2]) for x in _each(rows, "client_ips")], "client_ips", "user and tool")
    return out


def _window(doc: dict[str, Any]) -> tuple[float | None, float | None]:
    """``start`` and ``end``: both null (no request gave a time) or both times, in order."""
    start, end = _field(doc, "start"), _field(doc, "end")
    for name, t in (("start", start), ("end", end)):
        if t is not None and not _is_time(t):
            raise _Bad(f"{name} must be null or {_TIME}")
    if start is None or end is None:
        if start is not end:
            raise _Bad("start and end must both be null or both be times")
        return None, None
    if start > end:
        raise _Bad("start must not be after end")
    return float(start), float(end)


# Bytes of a row-per-line array parsed at a time.
PIECE = 1 << 20


class Text(Protocol):
    """What the reader needs of a saved model's bytes: its length, ``find`` and slices.

    ``bytes`` is one; a file read where it is sliced is another (``cli.ingest``).
    """

    def __len__(self) -> int:
        """The number of bytes."""
        ...

    def find(self, sub: bytes, start: int = ..., end: int = ..., /) -> int:
        """As ``bytes.find``."""
        ...

    def __getitem__(self, span: slice, /) -> bytes:
        """The bytes of ``span`` (a step of one)."""
        ...


_PLACE = "\x00"  # the key of the stand-in for a row-per-line array in the document's outline


class _Lines:
    """A top-level array written a row per line, parsed when read, a piece at a time."""

    __slots__ = ("_text", "_start", "_end", "read", "on_piece")

    def __init__(self, text: Text, start: int, end: int) -> None:
        """The array's rows are ``text[start:end]``, between its ``[`` line and ``]`` line."""
        self._text, self._start, self._end = text, start, end
        self.read = False
        self.on_piece: Callable[[int], None] | None = None  # told each piece's bytes

    def pieces(self) -> Iterator[list[Any]]:
        """The rows, in lists of about PIECE bytes of text.

        Pieces are cut only at a comma that ends a line; each is parsed as an array of
        its own, and must hold a value unless it is the whole array. The rows are then
        those of the array as one parse would read it.

        Raises:
            orjson.JSONDecodeError: a piece is not JSON values separated by commas.
        """
        self.read = True
        text, start, end = self._text, self._start, self._end
        at = start
        while at < end:
            cut = text.find(b",\n", min(at + PIECE, end), end)
            if cut < 0:
                cut = end
            rows = orjson.loads(b"[" + text[at:cut] + b"]")
            if not rows and (at > start or cut < end):
                raise orjson.JSONDecodeError("an empty value between commas", "", 0)
            if self.on_piece is not None:
                self.on_piece(cut + 2 - at)
            yield rows
            at = cut + 2

    @property
    def size(self) -> int:
        """Bytes of the rows' text and of the line ending the array (what pieces report)."""
        return self._end + 2 - self._start

    def rows(self) -> list[Any]:
        """All the rows."""
        return list(chain.from_iterable(self.pieces()))


class _Tally:
    """Adds up the bytes read, in whatever order the arrays are read, and reports the sum."""

    def __init__(self, report: Callable[[int], None], start: int) -> None:
        self.report, self.done = report, start

    def __call__(self, n: int) -> None:
        self.done += n
        self.report(self.done)


def _outline(text: Text) -> tuple[dict[str, Any], list[_Lines]] | None:
    """The document with its row-per-line arrays left unparsed; None for another layout.

    Each ``[`` that ends a line opens such an array up to the next line starting with
    ``]``. The text around them, with a stand-in for each, must parse as an object holding
    every stand-in as one of its own values; the arrays then parse a piece at a time.
    """
    arrays: list[_Lines] = []
    parts: list[bytes] = []
    at = 0
    while (i := text.find(b"[\n", at)) >= 0:
        j = text.find(b"\n]", i + 1)
        if j < 0:
            return None
        parts += (text[at:i], b'{"\\u0000":%d}' % len(arrays))
        arrays.append(_Lines(text, i + 2, j))
        at = j + 2
    if not arrays:
        return None
    parts.append(text[at:])
    try:
        doc = orjson.loads(b"".join(parts))
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict:
        return None
    placed = {
        k: v[_PLACE]
        for k, v in doc.items()
        if type(v) is dict and len(v) == 1 and type(v.get(_PLACE)) is int
    }
    if sorted(placed.values()) != list(range(len(arrays))):
        return None  # a stand-in inside a value, or written in the file itself
    for k, n in placed.items():
        doc[k] = arrays[n]
    return doc, arrays


def _load(doc: Any) -> Usage:
    """The Usage a parsed document holds; _Bad naming the first damaged field."""
    if type(doc) is not dict or doc.get("format") != FORMAT:
        raise _Unsupported(f'not a saved usage model (no "format": "{FORMAT}")')
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise _Unsupported(
            f"usage format version {reprlib.repr(version)} is not supported (reads {VERSION})"
        )
    seen: _Seen = {}
    idents = _identities(_field(doc, "identities"), seen)
    accesses = _accesses(_field(doc, "accesses"), seen)
    bindings: dict[BindingKey, BindingKey] = {}
    roles: dict[RoleKey, RoleKey] = {}
    reasons = [
        _read_reason(x, n, seen, bindings, roles)
        for n, x in enumerate(_each(_field(doc, "reasons"), "reasons"))
    ]
    del bindings, roles
    entries = _entries(_field(doc, "entries"), idents, accesses, reasons)
    requests = _count(_field(doc, "requests"), "requests")
    unauthenticated = _count(_field(doc, "unauthenticated"), "unauthenticated")
    if unauthenticated > requests:
        raise _Bad("unauthenticated must not exceed requests (it counts some of them)")
    start, end = _window(doc)
    sources = [_source(s, n) for n, s in enumerate(_list(_field(doc, "sources"), "sources"))]
    return freeze(
        entries,
        requests=requests,
        unauthenticated=unauthenticated,
        start=start,
        end=end,
        sources=sources,
        activity=_activity(_field(doc, "activity"), seen),
        client_ips=_client_ips(_field(doc, "client_ips"), seen),
        sessions=_sessions(_field(doc, "sessions")),
        filtered=_count(doc.get("filtered", 0), "filtered"),
    )


def loads(
    text: str | Text, path: str = "<usage>", progress: Callable[[int], None] | None = None
) -> Usage:
    """Parse a saved model, checking every field: the file is input like any other.

    ``progress``, if given, is called with how many bytes of the text have been read, as
    the rows of a row-per-line layout are read a piece at a time. ``text`` may be any
    :class:`Text`, such as a file read where it is sliced: only the piece being parsed is
    then held.

    Raises:
        InputError: not JSON, not a usage model, an unknown version, or damaged (the
            message names the file and the first damaged field or row).
    """
    was = gc.isenabled()
    gc.disable()  # many small acyclic objects: generational passes would only cost time
    try:
        return _decode(text, path, progress)
    finally:
        if was:
            gc.enable()


def _decode(text: str | Text, path: str, progress: Callable[[int], None] | None) -> Usage:
    """:func:`loads` without the garbage collector's pause."""
    data = text.encode() if isinstance(text, str) else text
    outline = _outline(data)
    if outline is not None:
        doc, arrays = outline
        # The outline is read: the arrays' text is what is left to report.
        left = len(data) - sum(a.size for a in arrays)
        tally = None if progress is None else _Tally(progress, left)
        for a in arrays:
            a.on_piece = tally
        try:
            usage = _load(doc)
            for a in arrays:
                if not a.read:  # not a field of the model: still checked as JSON
                    for _ in a.pieces():
                        pass
            return usage
        except (_Bad, _Unsupported, KeyError, TypeError, ValueError, IndexError):
            # Read again as one document, which names the damage as it always does.
            del doc, arrays, outline
    return _whole(data[:], path)


def _whole(text: bytes, path: str) -> Usage:
    """A saved model parsed as one document (any layout)."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise InputError(f"{path}: not a saved usage model: invalid JSON ({err})") from None
    try:
        return _load(doc)
    except _Unsupported as err:
        raise InputError(f"{path}: {err}") from None
    except _Bad as err:
        raise damaged(path, str(err)) from None
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise damaged(path, f"{type(err).__name__}: {err}") from None


# A damaged model cannot be repaired, only built again from the logs it was built from.
REBUILD = "build it again from its audit logs (rbac-advisor usage LOGS --save FILE)"


def damaged(path: str, what: str) -> InputError:
    """The error for a saved model that is not as the tool writes it, with the way out."""
    return InputError(f"{path}: damaged usage model: {what}; {REBUILD}")
