"""Counted uses as columns: merged by value and put in canonical order without comparing keys.

Pure. :class:`Rows` holds distinct uses as five index columns into small sorted tables of
identities, accesses, reasons, decisions and tools, given as their fields (``usage``'s
``identity_order``, ``access_order``, ``via_order``), and four statistics columns. Builders
export their state this way: plain tuples, strings and arrays pickle and unpickle several
times faster than the dataclasses. :func:`merge` and ``usage_entries.from_rows`` combine any number
of Rows: each table is ranked once by value, so a key's rank is one integer, the
mixed-radix number of its five part ranks; sorting those integers gives exactly the order
of sorting the keys with ``usage.key_order``. Keys and statistics are then built column by
column, each distinct identity, access and reason once.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, compress, islice, repeat, tee
from operator import add, and_, le, not_, or_, xor
from typing import Any, NamedTuple

from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import Access, BindingKey, Identity, RoleKey, Subject
from rbac_advisor.usage import Stats, UsageKey, earliest

Fields = tuple[Any, ...]


class Rows(NamedTuple):
    """Distinct uses as columns: indices into the part tables, then the statistics.

    Tables hold distinct values, sorted: identities, accesses and reasons as their fields
    (``()`` for no reason), decisions and tools as themselves.
    """

    identities: list[Fields]
    accesses: list[Fields]
    vias: list[Fields]
    decisions: list[Decision]
    tools: list[str]
    ii: Sequence[int]
    ai: Sequence[int]
    di: Sequence[int]
    vi: Sequence[int]
    ti: Sequence[int]
    counts: Sequence[int]
    firsts: Sequence[float]
    lasts: Sequence[float]
    days: Sequence[frozenset[int]]


def new_keys(
    identities: Sequence[Identity],
    accesses: Iterable[Access],
    decisions: Iterable[Decision],
    vias: Iterable[ReasonRef | None],
    tools: Iterable[str],
    hashes: Iterable[int],
) -> list[UsageKey]:
    """UsageKeys from columns of equal length, as :func:`usage.new_key` builds each one.

    Column by column, with no Python-level call per key: about a third of the cost of
    :func:`usage.new_key` per key.
    """
    keys: list[UsageKey] = list(map(object.__new__, repeat(UsageKey, len(identities))))
    for setter, col in zip(
        _KEY_SETTERS, (identities, accesses, decisions, vias, tools, hashes), strict=True
    ):
        deque(map(setter, keys, col), maxlen=0)
    return keys


# The slot setters: they bypass the frozen ``__setattr__`` as ``object.__setattr__`` does in
# ``__init__``, without its name lookup.
_KEY_SETTERS: tuple[Any, ...] = tuple(
    getattr(UsageKey, f).__set__ for f in ("identity", "access", "decision", "via", "tool", "_hash")
)
_STATS_SETTERS: tuple[Any, ...] = tuple(
    getattr(Stats, f).__set__ for f in ("count", "first", "last", "days")
)


def new_stats(
    counts: Sequence[int],
    firsts: Iterable[float],
    lasts: Iterable[float],
    days: Iterable[frozenset[int]],
) -> list[Stats]:
    """Stats from columns of equal length, as ``Stats(count, first, last, days)`` each."""
    out: list[Stats] = list(map(object.__new__, repeat(Stats, len(counts))))
    for setter, col in zip(_STATS_SETTERS, (counts, firsts, lasts, days), strict=True):
        deque(map(setter, out, col), maxlen=0)
    return out


def index_by_value(col: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """The sorted distinct values of a column, and each row's index among them."""
    table = sorted(set(col))
    pos = dict(zip(table, range(len(table)), strict=True))
    return table, list(map(pos.__getitem__, col))


def radix_codes(columns: Sequence[Sequence[int]], sizes: Sequence[int]) -> Iterator[int]:
    """Mixed-radix numbers of rows of indices (``sizes``: each column's number of values)."""
    _, na, nd, nv, nt = sizes
    rows = zip(*columns, strict=True)
    return ((((i * na + a) * nd + d) * nv + v) * nt + t for i, a, d, v, t in rows)


def mixed_radix(columns: Sequence[Sequence[int]], sizes: Sequence[int]) -> list[int]:
    """:func:`radix_codes` as a list."""
    return list(radix_codes(columns, sizes))


def _rank(tables: Iterable[Sequence[Any]]) -> tuple[list[Any], list[list[int]]]:
    """The sorted distinct values of sorted tables, and each table's ranks among them."""
    tables = list(tables)
    values = sorted(dict.fromkeys(chain.from_iterable(tables)))  # sorted runs: cheap
    rank = dict(zip(values, range(len(values)), strict=True))
    return values, [list(map(rank.__getitem__, t)) for t in tables]


def _fold(
    gs: list[int],
    hs: list[int],
    counts: list[int],
    firsts: list[float],
    lasts: list[float],
    days: list[frozenset[int]],
) -> None:
    """Fold the statistics of row ``gs[k]`` into row ``hs[k]``, column by column.

    No ``hs`` row is in ``gs``. A round takes each target once; a target with several
    sources (a use in three parts) gets the others in later rounds.
    """
    shared: dict[frozenset[int], frozenset[int]] = {}
    while gs:
        once = dict(zip(hs, gs, strict=True))
        rest = []
        if len(once) < len(gs):
            taken = set(once.values())
            rest = [(g, h) for g, h in zip(gs, hs, strict=True) if g not in taken]
        h, g = list(once), list(once.values())
        for col, op in ((counts, add), (firsts, earliest), (lasts, max)):
            get = col.__getitem__
            deque(map(col.__setitem__, h, map(op, map(get, h), map(get, g))), maxlen=0)
        # Unions made one at a time and shared at once (a list of them all would hold a new
        # set per folded row); each target is read and written before the next is made.
        unions = tee(map(or_, map(days.__getitem__, h), map(days.__getitem__, g)))
        deque(map(days.__setitem__, h, map(shared.setdefault, *unions)), maxlen=0)
        gs, hs = [g for g, _ in rest], [h for _, h in rest]


def _run_ends(dup: list[int], order: Sequence[int]) -> list[int]:
    """For each position in ``dup`` (rows equal to the next), the row that ends its run."""
    ends = [0] * len(dup)
    nxt = -2
    end = 0
    for j in range(len(dup) - 1, -1, -1):
        p = dup[j]
        if p + 1 != nxt:
            end = order[p + 1]
        ends[j] = end
        nxt = p
    return ends


class Merged:
    """Rows of several parts ranked together; ``order`` lists the kept rows, sorted.

    ``parts`` is emptied before its rows are copied, a column at a time: each part's column
    can be let go once copied, and all of them before the result is built.
    """

    def __init__(self, parts: list[Rows]) -> None:
        """Rank ``parts`` together, fold uses present in several, and let ``parts`` go."""
        self.idents, imaps = _rank(p.identities for p in parts)
        self.accs, amaps = _rank(p.accesses for p in parts)
        self.vias, vmaps = _rank(p.vias for p in parts)
        self.decs, dmaps = _rank(p.decisions for p in parts)
        self.tools, tmaps = _rank(p.tools for p in parts)
        # Typed arrays: the rank and statistics columns of all parts at 4 or 8 bytes a row.
        # Column by column, each part's column let go once copied: the parts' columns stand
        # beside one new column at a time, not beside all of them.
        held: list[list[Any]] = [list(islice(p, 5, None)) for p in parts]  # ii .. ti, stats
        parts.clear()
        maps = (imaps, amaps, dmaps, vmaps, tmaps)
        cols: list[Any] = [*(array("i") for _ in range(5)), array("q"), array("d"), array("d"), []]
        for c, new in enumerate(cols):
            for k, h in enumerate(held):
                col, h[c] = h[c], None
                new.extend(map(maps[c][k].__getitem__, col) if c < 5 else col)
                del col
        del held, maps, imaps, amaps, vmaps, dmaps, tmaps
        ri, ra, rd, rv, rt, counts, firsts, lasts, days = cols
        n = len(ri)
        # Each row's code with its position below it: sorting these integers in place puts
        # the rows in code order, equal codes in part order (each part's rows are a sorted
        # run, which the sort merges), with no list of positions and no keys beside them.
        shift = max(n - 1, 0).bit_length()
        low = (1 << shift) - 1
        sizes = list(map(len, (self.idents, self.accs, self.decs, self.vias, self.tools)))
        codes = radix_codes((ri, ra, rd, rv, rt), sizes)
        keyed = [c << shift | p for c, p in zip(codes, range(n), strict=True)]
        keyed.sort()
        order = array("q", map(and_, keyed, repeat(low)))  # at 8 bytes a row
        # A use in several parts (or under different ids in one) has adjacent equal codes:
        # the last row of each run is kept, the others are folded into it. Two neighbours'
        # codes are equal when their keys differ only in the position bits.
        same = array("b", map(le, map(xor, keyed, islice(keyed, 1, None)), repeat(low)))
        del codes, keyed
        if any(same):
            dup = list(compress(range(n - 1), same))
            gs = list(map(order.__getitem__, dup))
            hs = _run_ends(dup, order)
            _fold(gs, hs, counts, firsts, lasts, days)
            order = array("q", compress(order, map(not_, chain(same, (False,)))))
        self.order = order
        self.columns = cols

    def column(self, k: int) -> Iterator[Any]:
        """Column ``k`` (ranks of the five parts, then count, first, last, days), in order."""
        return map(self.columns[k].__getitem__, self.order)


def merge(parts: list[Rows]) -> Rows:
    """Combine Rows by value: each use once, rows in canonical order; ``parts`` is emptied."""
    m = Merged(parts)
    src = m.columns
    cols: list[Any] = []
    for k in range(len(src)):  # each column let go once its replacement is built
        c = m.column(k)
        cols.append(array(src[k].typecode, c) if isinstance(src[k], array) else list(c))
        src[k] = None
    ii, ai, di, vi, ti, counts, firsts, lasts, days = cols
    return Rows(
        m.idents, m.accs, m.vias, m.decs, m.tools, ii, ai, di, vi, ti, counts, firsts, lasts, days
    )


def reason_of(f: Fields) -> ReasonRef | None:
    """The reason ``via_order`` gave ``f`` for."""
    if not f:
        return None
    return ReasonRef(BindingKey(*f[0:3]), RoleKey(*f[3:6]), Subject(*f[6:10]))


def keys_of(
    parts: tuple[Sequence[Identity], Sequence[Access], Sequence[ReasonRef | None]],
    hashes: tuple[Sequence[int], Sequence[int], Sequence[int]],
    ri: Sequence[int],
    ra: Sequence[int],
    decisions: Sequence[Decision],
    rv: Sequence[int],
    tools: Sequence[str],
) -> list[UsageKey]:
    """UsageKeys from columns of indices into part tables (identities, accesses, reasons).

    ``hashes`` are the parts' hashes: each key's is combined from them as
    :func:`usage.key_hash` does, without hashing a part again.
    """
    idents, accs, vias = parts
    hi, ha, hv = hashes
    key_hashes = map(
        hash,
        zip(
            map(hi.__getitem__, ri),
            map(ha.__getitem__, ra),
            decisions,
            map(hv.__getitem__, rv),
            tools,
            strict=True,
        ),
    )
    return new_keys(
        list(map(idents.__getitem__, ri)),
        map(accs.__getitem__, ra),
        decisions,
        map(vias.__getitem__, rv),
        tools,
        key_hashes,
    )
