"""Freezing usage models column by column: same keys, hashes, order and statistics.

The reference is the plain way: one ``UsageKey`` per use, ``Stats.merge`` for repeats and
``sorted(..., key=usage.key_order)``.
"""

from __future__ import annotations

import pickle
from dataclasses import fields
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbac_advisor import usage
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import (
    Access,
    BindingKey,
    BindingKind,
    Identity,
    RoleKey,
    RoleKind,
    Subject,
)
from rbac_advisor.usage import Stats, UsageKey
from rbac_advisor.usage_builder import UsageBuilder
from rbac_advisor.usage_merge import new_keys, new_stats

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Small alphabets, so that uses collide; each draw builds new objects, so equal values
# arrive under different ids as they do from separate workers.
identities = st.builds(
    Identity,
    st.sampled_from(["alice", "bob", "system:serviceaccount:ns:sa"]),
    st.sampled_from([(), ("dev",), ("dev", "ops")]),
)
accesses = st.one_of(
    st.builds(
        Access,
        st.sampled_from(["get", "list", "create"]),
        st.sampled_from(["", "apps"]),
        st.sampled_from(["pods", "deployments"]),
        st.sampled_from(["", "log"]),
        st.sampled_from(["", "ns1", "ns2"]),
        st.sampled_from(["", "x"]),
    ),
    st.builds(
        Access,
        st.sampled_from(["get", "post"]),
        path=st.sampled_from(["/healthz", "/api"]),
        resource_request=st.just(False),
    ),
)
reasons = st.one_of(
    st.none(),
    st.builds(
        ReasonRef,
        st.builds(BindingKey, st.sampled_from(list(BindingKind)), st.sampled_from(["rb", "b"])),
        st.builds(RoleKey, st.sampled_from(list(RoleKind)), st.sampled_from(["view", "edit"])),
        st.builds(
            Subject,
            st.sampled_from(["User", "Group", "ServiceAccount"]),
            st.sampled_from(["dev", "sa"]),
            st.sampled_from(["", "ns1"]),
            # Differs only here: the order must still be total.
            st.sampled_from(["", "rbac.authorization.k8s.io"]),
        ),
    ),
)
uses = st.tuples(
    identities,
    accesses,
    st.sampled_from(list(Decision)),
    reasons,
    st.sampled_from(["kubectl", "helm", "other"]),
    st.integers(1, 5),
    st.floats(0, 5 * 86400, allow_nan=False).map(lambda t: 1.7e9 + t),
    st.floats(0, 86400),
)
Use = tuple[Identity, Access, Decision, ReasonRef | None, str, int, float, float]


def add(b: UsageBuilder, use: Use) -> None:
    ident, acc, dec, via, tool, count, first, span = use
    last = first + span
    days = {int(first // usage.DAY): 1, int(last // usage.DAY): 0}
    b.add_aggregate(ident, acc, dec, via, tool, count, first, last, days, ())


def reference(all_uses: list[Use]) -> list[tuple[UsageKey, Stats]]:
    entries: dict[UsageKey, Stats] = {}
    for ident, acc, dec, via, tool, count, first, span in all_uses:
        last = first + span
        s = Stats(count, first, last, frozenset({int(first // usage.DAY), int(last // usage.DAY)}))
        k = UsageKey(ident, acc, dec, via, tool)
        entries[k] = entries[k].merge(s) if k in entries else s
    return sorted(entries.items(), key=lambda kv: usage.key_order(kv[0]))


def check_keys(u: usage.Usage) -> None:
    for k in u.entries:
        fresh = UsageKey(k.identity, k.access, k.decision, k.via, k.tool)
        assert hash(k) == hash(fresh) and fresh in u.entries
        assert u.entries[fresh] == u.entries[k]


@SETTINGS
@given(st.lists(st.lists(uses, max_size=12), max_size=4), st.lists(uses, max_size=6), st.booleans())
def test_workers_then_parent_equal_one_builder(
    parts: list[list[Use]], tail: list[Use], own: bool
) -> None:
    parent = UsageBuilder()
    for part in parts:
        worker = UsageBuilder()
        for use in part:
            add(worker, use)
        parent.absorb_export(pickle.loads(pickle.dumps(worker.export())), own=own)
    for use in tail:  # requests the parent counts itself after the workers' shares
        add(parent, use)
    split = parent.finish()
    one = UsageBuilder()
    all_uses = [use for part in parts for use in part] + tail
    for use in all_uses:
        add(one, use)
    single = one.finish()
    expected = reference(all_uses)
    assert list(split.entries.items()) == expected
    assert list(single.entries.items()) == expected
    assert usage.dumps(split) == usage.dumps(single)
    check_keys(split)


@SETTINGS
@given(st.lists(st.lists(uses, max_size=10), min_size=1, max_size=3))
def test_export_after_absorbing_keeps_everything(parts: list[list[Use]]) -> None:
    inner = UsageBuilder()
    for part in parts:
        b = UsageBuilder()
        for use in part:
            add(b, use)
        inner.absorb_export(b.export())
    outer = UsageBuilder()
    outer.absorb_export(pickle.loads(pickle.dumps(inner.export())))
    assert list(outer.finish().entries.items()) == reference([u for p in parts for u in p])


@SETTINGS
@given(st.lists(uses, max_size=30))
def test_freeze_and_merge_sort_like_key_order(all_uses: list[Use]) -> None:
    expected = reference(all_uses)
    shuffled = dict(reversed(expected))
    u = usage.freeze(shuffled, requests=0, unauthenticated=0, start=None, end=None)
    assert list(u.entries.items()) == expected
    for k, s in expected:  # every key is found by its value, none besides
        assert u.entries[UsageKey(k.identity, k.access, k.decision, k.via, k.tool)] == s
    if expected:
        k = expected[0][0]
        assert UsageKey(k.identity, k.access, k.decision, k.via, k.tool + "x") not in u.entries
    half = len(expected) // 2
    a = usage.freeze(dict(expected[:half]), requests=0, unauthenticated=0, start=None, end=None)
    b = usage.freeze(dict(expected[half:]), requests=0, unauthenticated=0, start=None, end=None)
    assert list(a.merge(b).entries.items()) == expected


def test_key_order_is_total_on_reasons() -> None:
    b, r = BindingKey(BindingKind.ROLE_BINDING, "rb", "ns"), RoleKey(RoleKind.ROLE, "r", "ns")
    x = ReasonRef(b, r, Subject("Group", "dev", "", ""))
    y = ReasonRef(b, r, Subject("Group", "dev", "", "rbac.authorization.k8s.io"))
    assert usage.via_order(x) < usage.via_order(y)


def test_orders_read_every_field() -> None:
    """The export rebuilds parts from these fields: they must be all of them, in order."""
    acc = Access("get", "apps", "deployments", "scale", "ns", "d", "", True)
    ident = Identity("alice", ("dev",))

    def values(obj: Any) -> tuple[Any, ...]:
        return tuple(getattr(obj, f.name) for f in fields(obj))

    assert usage.access_order(acc) == values(acc) and Access(*values(acc)) == acc
    assert usage.identity_order(ident) == values(ident)
    via = ReasonRef(
        BindingKey(BindingKind.ROLE_BINDING, "rb", "ns"),
        RoleKey(RoleKind.ROLE, "r", "ns"),
        Subject("ServiceAccount", "sa", "ns", ""),
    )
    assert usage.via_order(via) == values(via.binding) + values(via.role) + values(via.subject)
    assert [f.name for f in fields(ReasonRef)] == ["binding", "role", "subject"]


def test_new_keys_and_stats_equal_constructed() -> None:
    ident, acc = Identity("bob"), Access("list", resource="pods")
    keys = new_keys(
        [ident, ident],
        [acc, acc],
        [Decision.ALLOW, Decision.FORBID],
        [None, None],
        ["kubectl", "helm"],
        [
            usage.key_hash(hash(ident), hash(acc), d, hash(None), t)
            for d, t in ((Decision.ALLOW, "kubectl"), (Decision.FORBID, "helm"))
        ],
    )
    assert keys == [
        UsageKey(ident, acc, Decision.ALLOW, None, "kubectl"),
        UsageKey(ident, acc, Decision.FORBID, None, "helm"),
    ]
    assert hash(keys[1]) == hash(UsageKey(ident, acc, Decision.FORBID, None, "helm"))
    one = usage.new_key(ident, acc, Decision.ALLOW, None, "kubectl", hash(keys[0]))
    assert one == keys[0] and hash(one) == hash(keys[0])
    days = frozenset({3})
    assert new_stats([2], [1.0], [4.0], [days]) == [Stats(2, 1.0, 4.0, days)]


def test_empty_builder() -> None:
    b = UsageBuilder()
    b.absorb_export(pickle.loads(pickle.dumps(UsageBuilder().export())))
    assert b.finish() == usage.empty()
