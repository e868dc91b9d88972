"""The uses a builder has counted, held compactly. Pure.

A use is (identity, access, decision, reason, tool). Each distinct part object gets a
small index when first seen (identities, accesses and reasons by object id: the values are
interned, and equal values under different ids are merged when the rows are exported), and
a use is keyed by one integer packing its five indices. Its statistics live in columns:
counts, first and last times in typed arrays, day sets in a list (most uses share one of a
few sets). Memory grows with distinct uses, so this is what bounds a long log.

The uses counted lately are found by key in a dict (about 120 bytes each with the row
number). Once there are ``_SETTLE`` of them, and at least an eighth as many as are settled,
they settle: each becomes one integer, its key above its row number, in a list kept sorted
and searched by bisection (about 55 bytes each). With the columns, a settled use takes
about 90 bytes against about 155; a table too small to settle (a worker's share of a
2M-line log) keeps the dict alone.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Iterator
from itertools import chain, repeat
from operator import and_
from typing import Any

from rbac_advisor.errors import InputError
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import Access, Identity
from rbac_advisor.usage import access_order, identity_order, via_order
from rbac_advisor.usage_merge import Rows, index_by_value, merge

# A packed key, from the low bits: decision (5 bits), tool (25), reason (30), access (30),
# identity (the rest). Tables that large would not fit in memory anyway; add() refuses them.
_T, _V, _A, _I = 5, 30, 60, 90
_MASK30 = (1 << 30) - 1
_MASK25 = (1 << 25) - 1
_FULL = "more than {:,} distinct {} in the input: too many for one table of uses"
_NAMES = ("identities", "accesses", "reasons", "tools", "decisions")
# Settled uses are ``key << _ROW | row``: one bisection finds a key's row.
_ROW = 30
_ROW_MASK = (1 << _ROW) - 1
_SETTLE = 100_000  # uses counted lately, at least, before they settle (see above)


class UseTable:
    """Distinct uses and their statistics; see the module docstring."""

    def __init__(self) -> None:
        """Start empty."""
        self._reset()

    def _reset(self) -> None:
        self._new: dict[int, int] = {}  # packed key -> row number, uses not yet settled
        self._settled: list[int] = []  # packed key << _ROW | row number, sorted
        self._idents: list[Identity] = []
        self._accs: list[Access] = []
        self._vias: list[ReasonRef | None] = []
        self._tools: list[str] = []
        self._decs: list[Decision] = []
        self._ident_at: dict[int, int] = {}
        self._acc_at: dict[int, int] = {}
        self._via_at: dict[int, int] = {}
        self._tool_at: dict[str, int] = {}
        self._dec_at: dict[Decision, int] = {}
        self._counts = array("q")
        self._firsts = array("d")
        self._lasts = array("d")
        self._days: list[frozenset[int]] = []
        self._day_sets: dict[frozenset[int], frozenset[int]] = {}

    def __len__(self) -> int:
        """The number of distinct uses."""
        return len(self._new) + len(self._settled)

    def add(
        self,
        ident: Identity,
        acc: Access,
        dec: Decision,
        via: ReasonRef | None,
        tool: str,
        count: int,
        first: float,
        last: float,
        days: Iterable[int],
    ) -> None:
        """Add ``count`` uses seen between ``first`` and ``last`` on ``days`` to one use."""
        i = self._ident_at.get(id(ident))
        a = self._acc_at.get(id(acc))
        v = self._via_at.get(id(via))
        t = self._tool_at.get(tool)
        d = self._dec_at.get(dec)
        if i is None or a is None or v is None or t is None or d is None:
            i, a, v, t, d = self._index(ident, acc, via, tool, dec)
        key = i << _I | a << _A | v << _V | t << _T | d
        new = self._new
        row = new.get(key)
        if row is None:
            settled = self._settled
            if settled:
                at = bisect_left(settled, key << _ROW)
                if at < len(settled) and settled[at] >> _ROW == key:
                    row = settled[at] & _ROW_MASK
            if row is None:
                row = len(self._counts)
                if row > _ROW_MASK:
                    raise InputError(_FULL.format(_ROW_MASK + 1, "uses"))
                new[key] = row
                self._counts.append(count)
                self._firsts.append(first)
                self._lasts.append(last)
                fs = frozenset(days)
                self._days.append(self._day_sets.setdefault(fs, fs))
                if len(new) >= _SETTLE and len(new) >= len(settled) >> 3:
                    self._settle()
                return
        self._counts[row] += count
        seen = self._firsts[row]
        if first and (first < seen or not seen):  # 0: the record gave no time
            self._firsts[row] = first
        if last > self._lasts[row]:
            self._lasts[row] = last
        cur = self._days[row]
        if not cur.issuperset(days):
            fs = cur.union(days)
            self._days[row] = self._day_sets.setdefault(fs, fs)

    def _settle(self) -> None:
        """Move the uses counted lately into the sorted list (the sort merges them in)."""
        settled, new = self._settled, self._new
        pop, append = new.popitem, settled.append
        while new:  # each key let go as its settled form is made: the memory is reused
            key, row = pop()
            append(key << _ROW | row)
        settled.sort()

    def _index(
        self, ident: Identity, acc: Access, via: ReasonRef | None, tool: str, dec: Decision
    ) -> tuple[int, int, int, int, int]:
        """The part indices of a use, giving new parts the next index of their table."""
        parts: list[tuple[dict[Any, int], list[Any], Hashable, object, int | None]] = [
            (self._ident_at, self._idents, id(ident), ident, None),
            (self._acc_at, self._accs, id(acc), acc, _MASK30),
            (self._via_at, self._vias, id(via), via, _MASK30),
            (self._tool_at, self._tools, tool, tool, _MASK25),
            (self._dec_at, self._decs, dec, dec, 31),
        ]
        out: list[int] = []
        for at, table, key, part, limit in parts:
            k = at.get(key)
            if k is None:
                k = len(table)
                if limit is not None and k > limit:
                    raise InputError(_FULL.format(limit + 1, _NAMES[len(out)]))
                at[key] = k
                table.append(part)
            out.append(k)
        i, a, v, t, d = out
        return i, a, v, t, d

    def rows(self, *, ordered: bool) -> Rows:
        """The uses as Rows, in canonical order if ``ordered``; the table is then emptied.

        Equal values under different ids give equal rows, which ``usage_merge.merge`` adds
        up. Ordered rows are merged here (so distinct) and make a later merge cheap: worth
        it for an export merged elsewhere, not for a part merged at once.
        """
        if not self:
            return Rows([], [], [], [], [], [], [], [], [], [], [], [], [], [])
        settled, new = self._settled, self._new
        self._settled, self._new = [], {}
        if settled:  # the rows of settled uses (in key order) first, then the others
            # A column at a time: each is let go as its copy in that order replaces it.
            self._counts = array("q", map(self._counts.__getitem__, _row_order(settled, new)))
            self._firsts = array("d", map(self._firsts.__getitem__, _row_order(settled, new)))
            self._lasts = array("d", map(self._lasts.__getitem__, _row_order(settled, new)))
            self._days = list(map(self._days.__getitem__, _row_order(settled, new)))
        idents, irank = index_by_value(list(map(identity_order, self._idents)))
        accs, arank = index_by_value(list(map(access_order, self._accs)))
        vias, vrank = index_by_value(list(map(via_order, self._vias)))
        tools, trank = index_by_value(self._tools)
        decs, drank = index_by_value(self._decs)
        m30 = _MASK30
        index: list[array[int]] = []
        for rank, shift, mask in (
            (irank, _I, -1),
            (arank, _A, m30),
            (vrank, _V, m30),
            (trank, _T, _MASK25),
            (drank, 0, 31),
        ):
            # At 4 bytes a row; a settled use's key lies _ROW bits higher.
            col = array("i", [rank[c >> shift + _ROW & mask] for c in settled])
            col.extend([rank[k >> shift & mask] for k in new])
            index.append(col)
        del settled, new
        ii, ai, vi, ti, di = index
        del index
        cols = (ii, ai, di, vi, ti, self._counts, self._firsts, self._lasts, self._days)
        del ii, ai, di, vi, ti
        self._reset()
        parts = [Rows(idents, accs, vias, decs, tools, *cols)]
        del cols
        return merge(parts) if ordered else parts[0]  # merge lets the part go as it copies


def _row_order(settled: list[int], new: dict[int, int]) -> Iterator[int]:
    """The row numbers of the settled uses, in key order, then those of the others."""
    return chain(map(and_, settled, repeat(_ROW_MASK)), new.values())
