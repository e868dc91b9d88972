"""The usage model: counts, windows, caps, sessions, saving and loading."""

from __future__ import annotations

import pytest
from audit_samples import event
from hypothesis import given, settings
from hypothesis import strategies as st

from rbac_advisor import usage
from rbac_advisor.audit import parse_record
from rbac_advisor.audit.timestamps import parse_time
from rbac_advisor.errors import InputError
from rbac_advisor.events import Decision


def evs(*dicts):
    return [e for d in dicts for e in parse_record(d).events]


def at(day: int, i: int = 0, **kw):
    return event(audit_id=f"d{day}-{i}", time=f"2026-11-{day:02d}T10:00:00.{i:06d}Z", **kw)


def test_stats_and_days() -> None:
    u = usage.build(evs(at(1), at(1, 1), at(3)))
    [(k, s)] = u.entries.items()
    assert s.count == 3
    assert s.first == parse_time("2026-11-01T10:00:00Z") and s.last == parse_time(
        "2026-11-03T10:00:00Z"
    )
    assert len(s.days) == 2 and k.tool == "kubectl/v1.36.3"
    assert u.start == s.first and u.end == s.last
    assert sum(u.activity.values()) == 3


def test_window_and_kubectl_only() -> None:
    e = evs(at(1), at(2), at(3, ua="Helm/3.15.2"), at(4))
    t2, t4 = parse_time("2026-11-02T00:00:00Z"), parse_time("2026-11-04T00:00:00Z")
    u = usage.build(e, since=t2, until=t4)
    assert (u.requests, u.filtered) == (2, 2)
    k = usage.build(e, kubectl_only=True)
    assert (k.requests, k.filtered) == (3, 1)
    assert {key.tool for key in k.entries} == {"kubectl/v1.36.3"}
    assert {key.tool for key in usage.build(e).entries} == {"kubectl/v1.36.3", "helm/3.15.2"}


def test_unauthenticated_counted_but_not_in_entries() -> None:
    bad = event(audit_id="x", user="", groups=[], code=401, decision=None, stage="ResponseStarted")
    u = usage.build(evs(bad, at(1)))
    assert (u.requests, u.unauthenticated, len(u.entries)) == (2, 1, 1)


def test_via_is_the_reason_binding() -> None:
    r = 'RBAC: allowed by RoleBinding "rb/ns" of ClusterRole "view" to Group "dev"'
    u = usage.build(evs(at(1, reason=r), at(1, 1, decision="forbid", code=403)))
    vias = {k.decision: k.via for k in u.entries}
    assert vias[Decision.ALLOW] is not None and vias[Decision.ALLOW].binding.name == "rb"
    assert vias[Decision.FORBID] is None


def test_sessions_and_client_ip_caps() -> None:
    ex = {
        "verb": "create",
        "ref": {"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"},
        "uri": "/api/v1/namespaces/ns/pods/p/exec?command=cat&command=/etc/secret",
    }
    many = [at(1, i, ip=f"10.0.0.{i}", **ex) for i in range(usage.IPS_MAX + 5)]
    u = usage.build(evs(*many))
    ips = u.client_ips[("alice", "kubectl/v1.36.3")]
    assert len(ips) == usage.IPS_MAX and ips == tuple(sorted(f"10.0.0.{i}" for i in range(25))[:20])
    assert len(u.sessions) == 25 and u.sessions[-1].time >= u.sessions[0].time
    assert all("cat" not in s.uri and s.resource == "pods/exec" for s in u.sessions)


def test_client_addresses_whether_one_or_many_and_however_merged() -> None:
    from rbac_advisor.usage_builder import UsageBuilder

    def built(ips: list[str], user: str = "alice") -> UsageBuilder:
        b = UsageBuilder()
        for e in evs(*(at(1, n, user=user, ip=ip) for n, ip in enumerate(ips))):
            b.add(e)
        b.flush()
        return b

    key = ("alice", "kubectl/v1.36.3")
    one, same, two = built(["10.0.0.1"]), built(["10.0.0.1"] * 3), built(["10.0.0.2", "10.0.0.1"])
    assert one.finish().client_ips[key] == same.finish().client_ips[key] == ("10.0.0.1",)
    assert two.finish().client_ips[key] == ("10.0.0.1", "10.0.0.2")
    # Exports of one address and of several, absorbed in either order, capped alike.
    many = [f"10.0.1.{i}" for i in range(usage.IPS_MAX + 3)]
    expected = tuple(sorted([*many, "10.0.0.1", "10.0.0.9"])[: usage.IPS_MAX])
    for parts in ([["10.0.0.9"], many, ["10.0.0.1"]], [many, ["10.0.0.1"], ["10.0.0.9"]]):
        whole = UsageBuilder()
        for ips in parts:
            whole.absorb_export(built(ips).export())
        assert whole.finish().client_ips[key] == expected
    assert built([*many, "10.0.0.1", "10.0.0.9"]).finish().client_ips[key] == expected


def test_save_is_deterministic_and_loads_back() -> None:
    u = usage.build(
        evs(
            at(1),
            at(
                2,
                user="bob",
                reason='RBAC: allowed by ClusterRoleBinding "c" of ClusterRole "r" to User "bob"',
            ),
        )
    )
    text = usage.dumps(u)
    assert usage.dumps(usage.loads(text)) == text
    assert usage.loads(text) == u


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "invalid JSON"),
        ('{"format": "something-else"}', "not a saved usage model"),
        ('{"format": "rbac-advisor/usage", "version": 99}', "version 99 is not supported"),
        ('{"format": "rbac-advisor/usage", "version": 1}', "damaged usage model"),
    ],
)
def test_loads_errors_name_the_file(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        usage.loads(text, "saved.json")
    assert str(info.value).startswith("saved.json: ")


def test_skipped_sums_sources() -> None:
    src = usage.SourceInfo("a.log", "native", 10, 5, 2, "00", ())
    u = usage.freeze({}, requests=0, unauthenticated=0, start=None, end=None, sources=[src, src])
    assert u.skipped == 4


def test_pickle_round_trip() -> None:
    import pickle

    u = usage.build(evs(at(1), at(2)))
    assert pickle.loads(pickle.dumps(u)) == u


def test_a_record_without_time_counts_but_moves_no_time_and_no_day(tmp_path) -> None:
    from audit_samples import line, read_logs

    dated = at(3)
    undated = {
        k: v for k, v in at(4, 1).items() if k not in ("requestReceivedTimestamp", "stageTimestamp")
    }
    for order in ((dated, undated), (undated, dated)):
        u = usage.build(evs(*order))
        [(_k, s)] = u.entries.items()
        assert s.count == 2 and s.days == frozenset({s.first // usage.DAY})
        assert s.first == s.last == parse_time("2026-11-03T10:00:00Z")
        assert u.start == u.end == s.first
    alone = usage.build(evs(undated))
    [(_k, s)] = alone.entries.items()
    assert (s.count, s.first, s.last, s.days) == (1, 0.0, 0.0, frozenset())
    p = tmp_path / "a.log"
    p.write_bytes(b"".join(line(d) + b"\n" for d in (undated, dated)))
    assert read_logs([str(p)]).entries == usage.build(evs(undated, dated)).entries


_MIXED = [
    at(
        1 + i % 3,
        i,
        user=("alice", "bob", "system:serviceaccount:ns:sa")[i % 3],
        verb=("get", "list", "delete")[i % 4 % 3],
        uri=f"/api/v1/namespaces/ns/pods/p{i % 5}",
        ref={"resource": "pods", "namespace": "ns", "name": f"p{i % 5}", "apiVersion": "v1"},
        ip=f"10.0.0.{i % 7}",
        ua=("kubectl/v1.36.3", "Helm/3.15.2", "curl/8.0")[i % 3],
        decision="forbid" if i % 6 == 5 else "allow",
        code=403 if i % 6 == 5 else 200,
        imp={"username": "carol", "groups": ["ops"]} if i % 11 == 0 else None,
    )
    for i in range(60)
]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, len(_MIXED)), max_size=6), own=st.booleans())
def test_counts_handed_over_anywhere_add_up_to_the_whole(cuts: list[int], own: bool) -> None:
    """A worker's counts handed over at any points, added up elsewhere, equal one builder.

    ``own``: the taker may keep what a state holds instead of copying it.
    """
    from rbac_advisor.usage_builder import UsageBuilder

    events = evs(*_MIXED)
    whole = UsageBuilder()
    for e in events:
        whole.add(e)
    worker, taker = UsageBuilder(), UsageBuilder(dedupe=False)
    for k, e in enumerate(events):
        if k in cuts:
            taker.absorb_export(worker.hand_over(), own=own)
            taker.compact()
            assert worker.uses == 0
        worker.add(e)
    worker.flush()
    taker.absorb_export(worker.export(), own=own)
    expected = whole.finish()
    assert taker.finish() == expected and expected.requests == 60
