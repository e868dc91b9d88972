"""The compact table of counted uses: every part and statistic comes back out exactly."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from rbac_advisor import usage, usage_entries, usage_table
from rbac_advisor.errors import InputError
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import Access, BindingKey, BindingKind, Identity, RoleKey, RoleKind, Subject
from rbac_advisor.usage import Stats, UsageKey, access_order, identity_order, via_order
from rbac_advisor.usage_builder import UsageBuilder
from rbac_advisor.usage_merge import Rows
from rbac_advisor.usage_table import UseTable

Use = tuple[Identity, Access, Decision, ReasonRef | None, str, int, float, float]


def _uses(n: int, seed: int) -> list[Use]:
    """``n`` uses over enough distinct parts to fill several bits of every packed index."""
    rng = random.Random(seed)
    idents = [Identity(f"user-{i}", (f"g{i % 7}",)) for i in range(300)]
    accs = [
        Access(v, "", r, "", f"ns{i}")
        for i, (v, r) in enumerate(
            itertools.product(
                ["get", "list", "watch", "create"], ["pods", "secrets", "configmaps"] * 30
            )
        )
    ]
    vias: list[ReasonRef | None] = [None] + [
        ReasonRef(
            BindingKey(BindingKind.ROLE_BINDING, f"rb{i}", "ns"),
            RoleKey(RoleKind.ROLE, f"r{i}", "ns"),
            Subject("User", f"user-{i}"),
        )
        for i in range(70)
    ]
    tools = [f"tool-{i}" for i in range(40)]
    out: list[Use] = []
    for _ in range(n):
        t = 1.7e9 + rng.randrange(10 * 86400)
        out.append(
            (
                rng.choice(idents),
                rng.choice(accs),
                rng.choice(list(Decision)),
                rng.choice(vias),
                rng.choice(tools),
                rng.randint(1, 4),
                t,
                t + rng.randrange(86400),
            )
        )
    return out


def _again(uses: list[Use], seed: int) -> list[Use]:
    """The same uses, shuffled, with other counts and times."""
    rng = random.Random(seed)
    out: list[Use] = []
    for ident, acc, dec, via, tool, _, _, _ in rng.sample(uses, len(uses)):
        t = 1.7e9 + rng.randrange(20 * 86400)
        out.append((ident, acc, dec, via, tool, rng.randint(1, 4), t, t + rng.randrange(86400)))
    return out


def _expected(uses: list[Use]) -> dict[tuple[Any, ...], list[Any]]:
    out: dict[tuple[Any, ...], list[Any]] = {}
    for ident, acc, dec, via, tool, count, first, last in uses:
        key = (identity_order(ident), access_order(acc), dec, via_order(via), tool)
        days = {int(first // usage.DAY), int(last // usage.DAY)}
        cur = out.get(key)
        if cur is None:
            out[key] = [count, first, last, frozenset(days)]
        else:
            cur[0] += count
            cur[1] = min(cur[1], first)
            cur[2] = max(cur[2], last)
            cur[3] = cur[3] | days
    return out


def _by_key(r: Rows) -> dict[tuple[Any, ...], list[Any]]:
    """Each row's statistics by its key's values; no key may come twice."""
    got: dict[tuple[Any, ...], list[Any]] = {}
    for i, a, d, v, t, count, first, last, days in zip(
        r.ii, r.ai, r.di, r.vi, r.ti, r.counts, r.firsts, r.lasts, r.days, strict=True
    ):
        key = (r.identities[i], r.accesses[a], r.decisions[d], r.vias[v], r.tools[t])
        assert key not in got
        got[key] = [count, first, last, days]
    return got


def _add_all(table: UseTable, uses: list[Use]) -> None:
    for use in uses:
        table.add(*use, (int(use[6] // usage.DAY), int(use[7] // usage.DAY)))


@pytest.mark.parametrize("ordered", [True, False])
def test_rows_give_back_every_use(ordered: bool) -> None:
    uses = _uses(5000, seed=1)
    table = UseTable()
    _add_all(table, uses)
    expected = _expected(uses)
    assert len(table) == len(expected)
    r = table.rows(ordered=ordered)
    assert len(table) == 0  # handed over
    got = _by_key(r)
    assert got == expected
    keys = list(got)
    if ordered:
        assert keys == sorted(keys, key=lambda k: (k[0], k[1], k[2], k[3], k[4]))
    # Tables are sorted and hold each value once.
    tables: list[list[Any]] = [r.identities, r.accesses, r.vias, list(r.decisions), r.tools]
    for values in tables:
        assert values == sorted(set(values))


def test_equal_values_under_other_objects_meet_in_one_row() -> None:
    table = UseTable()
    for _ in range(3):  # new, equal objects each time
        table.add(
            Identity("u", ("g",)),
            Access("get", "", "pods"),
            Decision.ALLOW,
            None,
            "k",
            2,
            5.0,
            9.0,
            (0,),
        )
    r = table.rows(ordered=True)
    assert len(r.identities) == len(r.accesses) == 1
    entries = usage_entries.from_rows([r])
    key = UsageKey(Identity("u", ("g",)), Access("get", "", "pods"), Decision.ALLOW, None, "k")
    assert entries == {key: Stats(6, 5.0, 9.0, frozenset({0}))}


def test_entries_built_in_small_chunks_equal_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    uses = _uses(3000, seed=2)

    def finish(workers: int) -> usage.Usage:
        parent = UsageBuilder()
        for k in range(workers):
            w = UsageBuilder()
            for ident, acc, dec, via, tool, count, first, last in uses[k::workers]:
                days = {int(first // usage.DAY): 1}
                w.add_aggregate(ident, acc, dec, via, tool, count, first, last, days, ())
            parent.absorb_export(w.export())
        return parent.finish()

    whole = usage.dumps(finish(3))
    monkeypatch.setattr(usage_entries, "_CHUNK", 7)
    assert usage.dumps(finish(3)) == whole
    assert usage.dumps(finish(1)) == whole


def test_a_table_refuses_more_values_than_its_key_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """An index past its bits would pack into the next part's: refused, never merged."""
    monkeypatch.setattr(usage_table, "_MASK25", 2)
    table = UseTable()
    for t in range(3):
        table.add(Identity("u"), Access("get"), Decision.ALLOW, None, f"tool{t}", 1, 0.0, 0.0, ())
    with pytest.raises(InputError, match="more than 3 distinct tools in the input"):
        table.add(Identity("u"), Access("get"), Decision.ALLOW, None, "tool3", 1, 0.0, 0.0, ())


def test_a_table_refuses_more_identities_than_its_settled_key_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(usage_table, "_IDENT_MAX", 1)
    table = UseTable()
    for u in ("u0", "u1"):
        table.add(Identity(u), Access("get"), Decision.ALLOW, None, "kubectl", 1, 0.0, 0.0, ())
    with pytest.raises(InputError, match="more than 2 distinct identities in the input"):
        table.add(Identity("u2"), Access("get"), Decision.ALLOW, None, "kubectl", 1, 0.0, 0.0, ())


@pytest.mark.parametrize("settle", [1, 3, 64])
@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("move", [2, 1 << 16])
def test_settled_uses_are_found_again_and_come_back_exactly(
    monkeypatch: pytest.MonkeyPatch, settle: int, ordered: bool, move: int
) -> None:
    """Uses settled into the sorted arrays are counted on, not counted twice."""
    uses = _uses(1500, seed=3)
    uses += _again(uses, seed=4) + _again(uses, seed=5)
    expected = _expected(uses)
    monkeypatch.setattr(usage_table, "_SETTLE", settle)
    monkeypatch.setattr(usage_table, "_MOVE", move)
    table = UseTable()
    _add_all(table, uses)
    assert table._hi, "the uses never settled"
    assert len(table) == len(expected)
    keys = [h << 64 | low for h, low in zip(table._hi, table._lo, strict=True)]
    assert keys == sorted(set(keys)), "the settled keys are not strictly sorted"
    assert sorted(table._at) == sorted({*range(len(table))} - {*table._new.values()})
    r = table.rows(ordered=ordered)
    assert len(table) == 0
    got = _by_key(r)
    assert got == expected


def test_a_model_is_the_same_whenever_its_uses_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    uses = _uses(1000, seed=4)
    uses += _again(uses, seed=6)

    def model() -> str:
        b = UsageBuilder()
        for ident, acc, dec, via, tool, count, first, last in uses:
            days = {int(first // usage.DAY): count}
            b.add_aggregate(ident, acc, dec, via, tool, count, first, last, days, ())
        return usage.dumps(b.finish())

    whole = model()
    for settle in (1, 5, 250):
        monkeypatch.setattr(usage_table, "_SETTLE", settle)
        assert model() == whole
