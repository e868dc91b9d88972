"""The uses a builder has counted, held compactly. Pure.

A use is (identity, access, decision, reason, tool). Each distinct part object gets a
small index when first seen (identities, accesses and reasons by object id: the values are
interned, and equal values under different ids are merged when the rows are exported), and
a use is keyed by one integer packing its five indices. Its statistics live in columns:
counts, first and last times in typed arrays, day sets in a list (most uses share one of a
few sets). Memory grows with distinct uses, so this is what bounds a long log.

The uses counted lately are found by key in a dict (about 120 bytes each with the row
number). Once there are ``_SETTLE`` of them, and at least an eighth as many as are settled,
they settle into typed arrays kept sorted by key: the key's high and low 64 bits and the
row number, 20 bytes a use, found by bisection (a list of one integer per use took about
55). With the columns, a settled use takes about 55 bytes against about 155; a table too
small to settle (a worker's share of a 2M-line log) keeps the dict alone.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Iterable
from itertools import chain
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
# A row number fits 30 bits; a settled key is held as its high and low 64 bits, so the
# identity index fits 38 bits.
_ROW_MASK = (1 << 30) - 1
_LOW = 64
_MASK64 = (1 << _LOW) - 1
_IDENT_MAX = (1 << 38) - 1
_MOVE = 1 << 16  # settled keys moved up at once (the slice copied on the way)
_SETTLE = 100_000  # uses counted lately, at least, before they settle (see above)


class UseTable:
    """Distinct uses and their statistics; see the module docstring."""

    def __init__(self) -> None:
        """Start empty."""
        self._reset()

    def _reset(self) -> None:
        self._new: dict[int, int] = {}  # packed key -> row number, uses not yet settled
        # Settled uses, sorted by key: its high and low 64 bits, and its row number.
        self._hi = array("Q")
        self._lo = array("Q")
        self._at = array("I")
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
        return len(self._new) + len(self._hi)

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
            hi = self._hi
            if hi:
                h, low = key >> _LOW, key & _MASK64
                at = _place(hi, self._lo, h, low, len(hi))
                if at < len(hi) and hi[at] == h and self._lo[at] == low:
                    row = self._at[at]
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
                if len(new) >= _SETTLE and len(new) >= len(hi) >> 3:
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
        """Merge the uses counted lately into the sorted arrays, in place.

        The arrays grow by the new uses and are filled from their end: each new key, from
        the largest, goes where it belongs and the settled keys above it move up, a slice at
        a time. The Python loop goes over the new keys only, and nothing is held twice.
        """
        new = self._new
        fresh = sorted(new)
        hi, lo, at = self._hi, self._lo, self._at
        end, k = len(hi), len(fresh)  # settled keys not moved yet; new keys not placed yet
        hi.frombytes(bytes(hi.itemsize * k))
        lo.frombytes(bytes(lo.itemsize * k))
        at.frombytes(bytes(at.itemsize * k))
        for key in reversed(fresh):
            h, low = key >> _LOW, key & _MASK64
            pos = _place(hi, lo, h, low, end)
            if pos < end:
                for column in (hi, lo, at):
                    _move_up(column, pos, end, k)
            end = pos
            k -= 1
            hi[pos + k] = h
            lo[pos + k] = low
            at[pos + k] = new[key]
        new.clear()

    def _index(
        self, ident: Identity, acc: Access, via: ReasonRef | None, tool: str, dec: Decision
    ) -> tuple[int, int, int, int, int]:
        """The part indices of a use, giving new parts the next index of their table."""
        parts: list[tuple[dict[Any, int], list[Any], Hashable, object, int]] = [
            (self._ident_at, self._idents, id(ident), ident, _IDENT_MAX),
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
                if k > limit:
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
        hi, lo, at, new = self._hi, self._lo, self._at, self._new
        # Held here alone from now on: each is let go below once it has been read.
        self._hi, self._lo, self._at, self._new = array("Q"), array("Q"), array("I"), {}
        if hi:  # the rows of settled uses (in key order) first, then the others
            # A column at a time: each is let go as its copy in that order replaces it.
            self._counts = array("q", map(self._counts.__getitem__, chain(at, new.values())))
            self._firsts = array("d", map(self._firsts.__getitem__, chain(at, new.values())))
            self._lasts = array("d", map(self._lasts.__getitem__, chain(at, new.values())))
            self._days = list(map(self._days.__getitem__, chain(at, new.values())))
        del at
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
            # At 4 bytes a row.
            keys = zip(hi, lo, strict=True)
            col = array("i", [rank[(h << _LOW | low) >> shift & mask] for h, low in keys])
            col.extend([rank[k >> shift & mask] for k in new])
            index.append(col)
        del hi, lo, new
        ii, ai, vi, ti, di = index
        del index
        cols = (ii, ai, di, vi, ti, self._counts, self._firsts, self._lasts, self._days)
        del ii, ai, di, vi, ti
        self._reset()
        parts = [Rows(idents, accs, vias, decs, tools, *cols)]
        del cols
        return merge(parts) if ordered else parts[0]  # merge lets the part go as it copies


def _place(hi: array[int], lo: array[int], h: int, low: int, end: int) -> int:
    """Where the key ``h``, ``low`` (high and low words) is, or goes, in ``[0, end)``."""
    pos = bisect_left(hi, h, 0, end)
    if pos < end and hi[pos] == h:
        pos = bisect_left(lo, low, pos, bisect_right(hi, h, pos, end))
    return pos


def _move_up(column: array[int], start: int, end: int, by: int) -> None:
    """Move ``column[start:end]`` up by ``by`` places, from its end: no large copy held."""
    while end > start:
        low = max(start, end - _MOVE)
        column[low + by : end + by] = column[low:end]
        end = low
