"""A model's entries as columns behave as the sorted dict of keys and statistics they hold.

The reference is a plain dict of ``UsageKey`` to ``Stats`` sorted with ``usage.key_order``.
"""

from __future__ import annotations

import pickle
from itertools import groupby

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_usage_merge import SETTINGS, Use, reference, uses

from rbac_advisor import usage, usage_entries
from rbac_advisor.usage import Stats, UsageKey
from rbac_advisor.usage_entries import Entries


def _model(all_uses: list[Use]) -> dict[UsageKey, Stats]:
    return dict(reference(all_uses))


@SETTINGS
@given(st.lists(uses, max_size=40), st.lists(uses, max_size=10))
def test_entries_read_as_the_sorted_dict(all_uses: list[Use], others: list[Use]) -> None:
    plain = _model(all_uses)
    e = Entries.of(dict(reversed(plain.items())))
    assert len(e) == len(plain)
    assert list(e) == list(plain)  # canonical order
    assert list(e.items()) == list(plain.items())
    assert list(e.values()) == list(plain.values())
    assert e == plain and plain == e and e == Entries.of(plain)
    for k, s in plain.items():
        fresh = UsageKey(k.identity, k.access, k.decision, k.via, k.tool)
        assert fresh in e and e[fresh] == s and e.get(fresh) == s
        assert hash(next(x for x in e if x == fresh)) == hash(fresh)
    # Keys whose parts are all in the tables but not together, and keys with unknown parts.
    for k in _model(others):
        assert (k in e) == (k in plain)
        assert e.get(k) == plain.get(k)
    assert "not a key" not in e
    assert pickle.loads(pickle.dumps(e)) == e


@SETTINGS
@given(st.lists(uses, max_size=40))
def test_user_runs_cover_each_users_rows(all_uses: list[Use]) -> None:
    plain = list(_model(all_uses).items())
    e = Entries.of(dict(plain))
    runs = list(e.user_runs())
    expected = []
    at = 0
    for user, group in groupby(plain, key=lambda kv: kv[0].identity.user):
        n = len(list(group))
        expected.append((user, at, at + n))
        at += n
    assert runs == expected
    for _, start, stop in runs:
        assert list(e.items_between(start, stop)) == plain[start:stop]


@SETTINGS
@given(st.lists(uses, min_size=10, max_size=60))
def test_entries_read_in_small_blocks_equal_whole(all_uses: list[Use]) -> None:
    plain = _model(all_uses)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(usage_entries, "_CHUNK", 3)
        e = Entries.of(plain)
        assert list(e.items()) == list(plain.items())
        assert list(e) == list(plain)
        assert list(e.values()) == list(plain.values())
        runs = list(e.user_runs())
        assert [kv for _, a, b in runs for kv in e.items_between(a, b)] == list(plain.items())
        for few in (0, len(plain)):  # every range made as blocks, then row by row
            mp.setattr(usage_entries, "_FEW", few)
            got = list(e.items_between(0, len(e)))
            assert got == list(plain.items())
            assert [hash(k) for k, _ in got] == [hash(k) for k in plain]


def test_an_empty_model_has_no_rows() -> None:
    e = usage.empty().entries
    assert isinstance(e, Entries) and len(e) == 0 and list(e.items()) == []
    assert list(e.user_runs()) == [] and e == {}


@SETTINGS
@given(st.lists(uses, max_size=30), st.lists(uses, max_size=30))
def test_merging_and_saving_read_rows_not_lookups(a: list[Use], b: list[Use]) -> None:
    """A lookup is a binary search: merge and save go through the rows, a block at a time."""
    kw = {"requests": 0, "unauthenticated": 0, "start": None, "end": None}
    ua, ub = usage.freeze(_model(a), **kw), usage.freeze(_model(b), **kw)  # type: ignore[arg-type]
    expected = _model(a + b)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Entries, "__getitem__", _no_lookup)
        merged = ua.merge(ub)
        text = usage.dumps(merged)
    assert list(merged.entries.items()) == list(expected.items())
    assert usage.loads(text) == merged


def _no_lookup(self: Entries, key: UsageKey) -> Stats:
    raise AssertionError(f"looked up {key}")


@SETTINGS
@given(st.lists(uses, min_size=1, max_size=10))
def test_a_usage_built_by_hand_pickles(some: list[Use]) -> None:
    from types import MappingProxyType

    plain = _model(some)
    u = usage.Usage(MappingProxyType(plain), 0, 0, None, None)
    back = pickle.loads(pickle.dumps(u))
    assert isinstance(back.entries, Entries) and back == u
