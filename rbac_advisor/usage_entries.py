"""A model's entries held as columns, read as a mapping of UsageKey to Stats. Pure.

A frozen Usage holds one row per distinct use, in canonical order (``usage.key_order``):
five index columns into sorted tables of identities, accesses, decisions, reasons and tools,
and four statistics columns. That is about 50 bytes per use, against about 290 for a dict
of UsageKey and Stats objects, and memory grows with distinct uses. Keys and statistics are
built when read (a block of rows at a time when iterated); a lookup is a binary search on
the rows' mixed-radix codes, which rise with the canonical order.
"""

from __future__ import annotations

import gc
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from contextlib import contextmanager
from itertools import chain, pairwise, starmap
from operator import attrgetter, lt
from typing import Any, NamedTuple

from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import Access, Identity
from rbac_advisor.usage import (
    Stats,
    UsageKey,
    access_order,
    identity_order,
    key_hash,
    new_key,
    via_order,
)
from rbac_advisor.usage_merge import (
    Merged,
    Rows,
    index_by_value,
    keys_of,
    mixed_radix,
    new_stats,
    radix_codes,
    reason_of,
)

_CHUNK = 1 << 14
_FEW = 6  # rows read one by one rather than as a block (a block costs about 6 rows)
# A key's parts, in key order, with their part of ``usage.key_order`` (None: themselves).
_PARTS: tuple[tuple[str, Callable[[Any], Any] | None], ...] = (
    ("identity", identity_order),
    ("access", access_order),
    ("decision", str.__str__),
    ("via", via_order),
    ("tool", None),
)


class UseColumns(NamedTuple):
    """The columns of :class:`Entries` a check of every use reads (see ``use_columns``)."""

    ii: Sequence[int]
    ai: Sequence[int]
    di: Sequence[int]
    ti: Sequence[int]
    decisions: Sequence[Decision]
    tools: Sequence[str]
    counts: Sequence[int]
    firsts: Sequence[float]
    lasts: Sequence[float]
    days: Sequence[frozenset[int]]


class Entries(Mapping[UsageKey, Stats]):
    """Distinct uses and their statistics as columns; see the module docstring.

    The part tables are sorted by their part of ``usage.key_order`` and hold each value
    once; the rows are sorted and distinct.
    """

    __slots__ = (
        "_idents",
        "_accs",
        "_decs",
        "_vias",
        "_tools",
        "_hashes",
        "_cols",
        "_counts",
        "_firsts",
        "_lasts",
        "_days",
        "_sizes",
    )

    def __init__(
        self,
        tables: tuple[
            list[Identity], list[Access], list[Decision], list[ReasonRef | None], list[str]
        ],
        index: Sequence[array[int]],
        counts: array[int],
        firsts: array[float],
        lasts: array[float],
        days: list[frozenset[int]],
    ) -> None:
        """Take sorted part tables, then columns of rows already in canonical order.

        ``index``: the identity, access, decision, reason and tool columns of indices into
        ``tables``; then the statistics columns.
        """
        self._idents, self._accs, self._decs, self._vias, self._tools = tables
        self._hashes: tuple[list[int], list[int], list[int]] | None = None
        self._cols = tuple(index)
        self._counts, self._firsts, self._lasts, self._days = counts, firsts, lasts, days
        self._sizes = [len(t) for t in tables]

    @classmethod
    def from_columns(
        cls,
        tables: Sequence[Sequence[Any]],
        index: Sequence[Sequence[int]],
        counts: Sequence[int],
        firsts: Sequence[float],
        lasts: Sequence[float],
        days: Sequence[frozenset[int]],
    ) -> Entries:
        """Distinct rows given as indices into tables of distinct values, in any order.

        ``tables``: identities, accesses, decisions, reasons and tools; values no row uses
        are left out, as a model built from keys holds none.
        """
        ranked: list[list[Any]] = []
        at: list[list[int]] = []
        for (_, part_order), table, idx in zip(_PARTS, tables, index, strict=True):
            used = sorted(set(idx), key=_by_value(table, part_order))
            rank = dict(zip(used, range(len(used)), strict=True))
            ranked.append([table[i] for i in used])
            at.append(list(map(rank.__getitem__, idx)))
        codes = mixed_radix(at, [len(t) for t in ranked])
        order = sorted(range(len(codes)), key=codes.__getitem__)
        del codes
        t = ranked
        return cls(
            (t[0], t[1], t[2], t[3], t[4]),
            [array("i", map(c.__getitem__, order)) for c in at],
            array("q", map(counts.__getitem__, order)),
            array("d", map(firsts.__getitem__, order)),
            array("d", map(lasts.__getitem__, order)),
            _shared(map(days.__getitem__, order)),
        )

    def canonical(self) -> bool:
        """True when the columns hold as the class says, checked in one pass each.

        That is: every table strictly rising in its part of the key order (so distinct),
        each of its values used, and the rows' codes strictly rising (so distinct). A saved
        model is written so; taking it as it is spares ranking and sorting every row again
        (``from_columns`` does that for any other).
        """
        tables: tuple[Sequence[Any], ...] = (
            self._idents,
            self._accs,
            self._decs,
            self._vias,
            self._tools,
        )
        for (_, part_order), table, idx in zip(_PARTS, tables, self._cols, strict=True):
            order: Iterable[Any] = table if part_order is None else map(part_order, table)
            if not all(starmap(lt, pairwise(order))) or len(set(idx)) != len(table):
                return False
        return all(starmap(lt, pairwise(radix_codes(self._cols, self._sizes))))

    @classmethod
    def of(cls, entries: Mapping[UsageKey, Stats]) -> Entries:
        """The columns of any mapping of keys to statistics, put in canonical order."""
        if isinstance(entries, Entries):
            return entries
        keys = list(entries)
        tables: list[list[Any]] = []
        index: list[list[int]] = []
        for name, part_order in _PARTS:
            table, idx = _table(list(map(attrgetter(name), keys)), part_order)
            tables.append(table)
            index.append(idx)
        stats = list(map(entries.__getitem__, keys))
        del keys
        return cls.from_columns(
            tables,
            index,
            list(map(attrgetter("count"), stats)),
            list(map(attrgetter("first"), stats)),
            list(map(attrgetter("last"), stats)),
            list(map(attrgetter("days"), stats)),
        )

    @property
    def identities(self) -> Sequence[Identity]:
        """The distinct identities of the uses, in key order."""
        return self._idents

    @property
    def accesses(self) -> Sequence[Access]:
        """The distinct accesses of the uses, in key order."""
        return self._accs

    @property
    def reasons(self) -> Sequence[ReasonRef]:
        """The distinct reasons of the uses (None left out), in key order."""
        return [v for v in self._vias if v is not None]

    def use_columns(self) -> UseColumns:
        """The identity, access, decision and tool indices and the uses' statistics, in order.

        No table is copied (see :meth:`rows` for what merging needs).
        """
        ii, ai, di, _, ti = self._cols
        return UseColumns(
            ii,
            ai,
            di,
            ti,
            self._decs,
            self._tools,
            self._counts,
            self._firsts,
            self._lasts,
            self._days,
        )

    def rows(self) -> Rows:
        """The uses as ``usage_merge.Rows`` (to be merged by value, see :func:`from_rows`)."""
        ii, ai, di, vi, ti = self._cols
        return Rows(
            list(map(identity_order, self._idents)),
            list(map(access_order, self._accs)),
            list(map(via_order, self._vias)),
            list(self._decs),
            list(self._tools),
            ii,
            ai,
            di,
            vi,
            ti,
            self._counts,
            self._firsts,
            self._lasts,
            self._days,
        )

    def __len__(self) -> int:
        """The number of distinct uses."""
        return len(self._counts)

    def _part_hashes(self) -> tuple[list[int], list[int], list[int]]:
        if self._hashes is None:
            self._hashes = (
                list(map(hash, self._idents)),
                list(map(hash, self._accs)),
                list(map(hash, self._vias)),
            )
        return self._hashes

    def _keys(self, start: int, stop: int) -> list[UsageKey]:
        ii, ai, di, vi, ti = (c[start:stop] for c in self._cols)
        with gc_paused():
            return keys_of(
                (self._idents, self._accs, self._vias),
                self._part_hashes(),
                ii,
                ai,
                list(map(self._decs.__getitem__, di)),
                vi,
                list(map(self._tools.__getitem__, ti)),
            )

    def _stats(self, start: int, stop: int) -> list[Stats]:
        with gc_paused():
            return new_stats(
                self._counts[start:stop],
                self._firsts[start:stop],
                self._lasts[start:stop],
                self._days[start:stop],
            )

    def __iter__(self) -> Iterator[UsageKey]:
        """The keys in canonical order, built a block at a time."""
        for at in range(0, len(self), _CHUNK):
            yield from self._keys(at, at + _CHUNK)

    def items_between(self, start: int, stop: int) -> Iterator[tuple[UsageKey, Stats]]:
        """(key, statistics) of rows ``start`` to ``stop``, built a block at a time."""
        if stop - start <= _FEW:  # one subject's uses: a block's set-up would cost more
            yield from map(self._item, range(start, stop))
            return
        for at in range(start, stop, _CHUNK):
            end = min(at + _CHUNK, stop)
            yield from zip(self._keys(at, end), self._stats(at, end), strict=True)

    def _item(self, row: int) -> tuple[UsageKey, Stats]:
        """(key, statistics) of one row."""
        i, a, d, v, t = (c[row] for c in self._cols)
        hi, ha, hv = self._part_hashes()
        dec, tool = self._decs[d], self._tools[t]
        h = key_hash(hi[i], ha[a], dec, hv[v], tool)
        key = new_key(self._idents[i], self._accs[a], dec, self._vias[v], tool, h)
        return key, Stats(self._counts[row], self._firsts[row], self._lasts[row], self._days[row])

    def items(self) -> ItemsView[UsageKey, Stats]:
        """(key, statistics) pairs in canonical order, built a block at a time."""
        return _Items(self)

    def values(self) -> ValuesView[Stats]:
        """The statistics in canonical order, built a block at a time."""
        return _Values(self)

    def user_runs(self) -> Iterator[tuple[str, int, int]]:
        """(user, first row, row past the last) for each user, in canonical order.

        Identities sort by user first: a user's rows are one run.
        """
        users = list(map(attrgetter("user"), self._idents))  # sorted
        ii = self._cols[0]  # rising
        start = 0
        n = len(ii)
        while start < n:
            user = users[ii[start]]
            stop = bisect_left(ii, bisect_right(users, user), lo=start)
            yield user, start, stop
            start = stop

    def _row(self, key: UsageKey) -> int:
        """The row of ``key``, or -1."""
        at: list[int] = []
        tables: tuple[list[Any], ...] = (
            self._idents,
            self._accs,
            self._decs,
            self._vias,
            self._tools,
        )
        for table, (name, order) in zip(tables, _PARTS, strict=True):
            value = getattr(key, name)
            want = value if order is None else order(value)
            k = bisect_left(table, want, key=order)
            if k == len(table) or table[k] != value:
                return -1
            at.append(k)
        code = mixed_radix([[k] for k in at], self._sizes)[0]
        n = len(self)
        row = bisect_left(range(n), code, key=self._code)
        return row if row < n and self._code(row) == code else -1

    def _code(self, row: int) -> int:
        return mixed_radix([[c[row]] for c in self._cols], self._sizes)[0]

    def __getitem__(self, key: UsageKey) -> Stats:
        """The statistics of ``key``."""
        row = self._row(key) if isinstance(key, UsageKey) else -1
        if row < 0:
            raise KeyError(key)
        c, f, la, d = self._counts, self._firsts, self._lasts, self._days
        return Stats(c[row], f[row], la[row], d[row])

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is one of the uses."""
        return isinstance(key, UsageKey) and self._row(key) >= 0

    def __eq__(self, other: object) -> bool:
        """Equal uses with equal statistics (row by row between two Entries)."""
        if isinstance(other, Entries):
            return len(self) == len(other) and all(
                a == b for a, b in zip(self.items(), other.items(), strict=True)
            )
        if isinstance(other, Mapping):
            return len(self) == len(other) and dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """A short description (the rows can be many)."""
        return f"Entries({len(self)} uses)"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the columns."""
        tables = (self._idents, self._accs, self._decs, self._vias, self._tools)
        cols = self._cols, self._counts, self._firsts, self._lasts, self._days
        return (Entries, (tables, *cols))


class _Items(ItemsView[UsageKey, Stats]):
    _mapping: Entries

    def __iter__(self) -> Iterator[tuple[UsageKey, Stats]]:
        return self._mapping.items_between(0, len(self._mapping))


class _Values(ValuesView[Stats]):
    _mapping: Entries

    def __iter__(self) -> Iterator[Stats]:
        m = self._mapping
        return chain.from_iterable(m._stats(at, at + _CHUNK) for at in range(0, len(m), _CHUNK))


def _by_value(table: Sequence[Any], order: Callable[[Any], Any] | None) -> Callable[[int], Any]:
    """A sort key for positions of ``table``: the value's part of the key order."""
    if order is None:
        return table.__getitem__
    return lambda i: order(table[i])


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic GC while many small acyclic objects are made (keys, statistics).

    A collection in their midst would walk every object alive, for nothing to free.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _table(col: list[Any], order: Callable[[Any], Any] | None) -> tuple[list[Any], list[int]]:
    """The distinct values of a column sorted by ``order``, and each row's index among them.

    Rows mostly share objects: each distinct object is ordered once, and equal values
    under different objects get one index.
    """
    if order is None:
        return index_by_value(col)
    by_id = dict(zip(map(id, col), col, strict=True))
    values = dict(zip(by_id, map(order, by_id.values()), strict=True))
    first: dict[Any, Any] = {}
    for i, v in values.items():
        first.setdefault(v, by_id[i])
    table = sorted(first)
    pos = dict(zip(table, range(len(table)), strict=True))
    at = {i: pos[v] for i, v in values.items()}
    return [first[v] for v in table], [at[id(x)] for x in col]


def _shared(days: Iterable[frozenset[int]]) -> list[frozenset[int]]:
    """Day sets with equal sets shared (most uses have one of a few)."""
    seen: dict[frozenset[int], frozenset[int]] = {}
    return [seen.setdefault(d, d) for d in days]


def from_rows(parts: list[Rows]) -> Entries:
    """The entries of Rows combined by value (see ``usage_merge``); ``parts`` is emptied."""
    m = Merged(parts)
    order = m.order
    # The tables' field tuples are let go once the tables are built; each column once its
    # replacement is built, so one at a time stands beside it.
    tables = (
        list(starmap(Identity, m.idents)),
        list(starmap(Access, m.accs)),
        m.decs,
        list(map(reason_of, m.vias)),
        m.tools,
    )
    m.idents = m.accs = m.vias = []
    src = m.columns
    cols: list[Any] = []
    for k, typecode in enumerate("iiiiiqdd"):
        col, src[k] = src[k], None
        cols.append(array(typecode, map(col.__getitem__, order)))
        del col
    days = _shared(map(src[8].__getitem__, order))
    src.clear()
    counts, firsts, lasts = cols[5:]
    return Entries(tables, cols[:5], counts, firsts, lasts, days)
