"""One request = one record, whatever the stages; laws of the usage model under hypothesis."""

from __future__ import annotations

import json
import random

import pytest
from audit_samples import event, line, lines
from hypothesis import given, settings
from hypothesis import strategies as st
from request_samples import STAGES, stage_events

from rbac_advisor import usage
from rbac_advisor.audit import Deduper, parse_lines, parse_record
from rbac_advisor.audit import stream as stream_mod
from rbac_advisor.events import Decision


def build_lines(*dicts):
    return usage.build(parse_lines(lines(*dicts)))


def test_two_stages_count_once_and_keep_the_final_decision() -> None:
    u = build_lines(event(stage="RequestReceived"), event(stage="ResponseComplete"))
    assert u.requests == 1
    [(k, s)] = u.entries.items()
    assert k.decision is Decision.ALLOW and s.count == 1


def test_request_logged_only_at_request_received_still_counts() -> None:
    u = build_lines(event(stage="RequestReceived"))
    assert u.requests == 1
    assert [k.decision for k in u.entries] == [Decision.UNKNOWN]


def test_long_running_three_stages() -> None:
    e = {
        "verb": "watch",
        "uri": "/api/v1/namespaces/ns/pods?watch=true",
        "ref": {"resource": "pods", "namespace": "ns"},
    }
    u = build_lines(
        event(stage="RequestReceived", **e),
        event(stage="ResponseStarted", **e),
        event(stage="ResponseComplete", **e),
    )
    assert u.requests == 1


def test_reused_audit_id_does_not_hide_another_request() -> None:
    u = build_lines(
        event(stage="ResponseComplete"),
        event(stage="ResponseComplete", user="bob"),
        event(stage="ResponseComplete", verb="delete"),
        event(
            stage="ResponseComplete",
            uri="/api/v1/namespaces/ns/pods/q",
            ref={"resource": "pods", "namespace": "ns", "name": "q"},
        ),
    )
    assert u.requests == 4


@pytest.mark.parametrize("workers", [1, 2])
def test_an_audit_id_reused_for_the_same_call_later_is_another_request(
    workers: int, tmp_path, monkeypatch
) -> None:
    """A client sending a fixed Audit-ID header: each call is counted, and the last is seen."""
    from audit_samples import line, read_logs

    from rbac_advisor.cli import parallel

    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    texts = []
    for day in (20, 23):
        for stage in ("RequestReceived", "ResponseComplete"):
            texts.append(
                line(event(audit_id="fixed", stage=stage, time=f"2026-11-{day}T10:00:00.000001Z"))
            )
    texts += [line(event(audit_id=f"o{i}", user="bob")) for i in range(40)]
    p = tmp_path / "a.log"
    p.write_bytes(b"\n".join(texts) + b"\n")
    u = read_logs([str(p)], workers=workers)
    assert u.requests == 42
    [alice] = [s for k, s in u.entries.items() if k.identity.user == "alice"]
    assert alice.count == 2 and len(alice.days) == 2
    general = usage.build(_events([json.loads(t) for t in texts]))
    assert general.requests == 42 and general.entries == u.entries


def test_impersonated_request_stages_match_although_request_received_lacks_the_target() -> None:
    imp = {"username": "bob", "groups": ["dev"]}
    u = build_lines(
        event(stage="RequestReceived", user="admin"),
        event(stage="ResponseComplete", user="admin", imp=imp),
    )
    assert u.requests == 1
    users = {k.identity.user: k.access.verb for k in u.entries}
    assert users == {"bob": "get", "admin": "impersonate"}


def test_out_of_order_and_duplicated_stages() -> None:
    rc = event(stage="ResponseComplete")
    u = build_lines(rc, event(stage="RequestReceived"), rc, event(stage="ResponseStarted"))
    assert u.requests == 1


def test_deduper_window_is_bounded() -> None:
    d: Deduper[int] = Deduper(pending_max=3, done_max=4, held_max=2)
    for i in range(10):
        d.push(parse_record(event(audit_id=f"a{i}", stage="RequestReceived")).events[0], i)
    assert len(d.out) == 5  # 3 still pending, 2 held aside, the others counted
    d.flush()
    assert sorted(t for _, t in d.out) == list(range(10))


def _watch(stage: str) -> dict:
    return event(
        audit_id="w",
        stage=stage,
        verb="watch",
        uri="/api/v1/namespaces/ns/pods?watch=true",
        ref={"resource": "pods", "namespace": "ns"},
    )


@pytest.mark.parametrize(
    ("held", "counted"), [(None, ("ResponseComplete", 3)), (0, ("ResponseStarted", 0))]
)
def test_deduper_counts_a_request_evicted_from_the_window_once(held, counted) -> None:
    # Held aside, the request is counted from its final stage; past the held ones, from
    # its most complete early stage, and its final stage is dropped.
    d: Deduper[int] = Deduper(pending_max=2, done_max=3, held_max=held)
    push = d.push
    push(parse_record(_watch("RequestReceived")).events[0], 0)
    push(parse_record(_watch("ResponseStarted")).events[0], 0)
    for stage in ("RequestReceived", "ResponseComplete"):
        for i in range(30):  # 30 requests open at once: the watch leaves the window
            push(parse_record(event(audit_id=f"r{i}", stage=stage)).events[0], 1)
    push(parse_record(_watch("ResponseStarted")).events[0], 2)  # a repeated early stage
    push(parse_record(_watch("ResponseComplete")).events[0], 3)
    push(parse_record(_watch("ResponseComplete")).events[0], 4)  # and a repeated final one
    d.flush()
    watch = [(e.stage, t) for e, t in d.out if e.audit_id == "w"]
    assert watch == [counted]
    assert len(d.out) == 31


def test_deduper_remembers_a_bounded_number_of_evicted_requests() -> None:
    d: Deduper[int] = Deduper(pending_max=1, done_max=2, evicted_max=3, held_max=0)
    for i in range(10):
        d.push(parse_record(event(audit_id=f"a{i}", stage="RequestReceived")).events[0], i)
    assert len(d._evicted) == 3
    # The three newest evicted requests still match their final stage; older ones cannot.
    for i in range(10):
        d.push(parse_record(event(audit_id=f"a{i}", stage="ResponseComplete")).events[0], i)
    d.flush()
    assert sorted(t for _, t in d.out) == sorted([*range(10), 0, 1, 2, 3, 4, 5])


def test_long_watch_counted_once_through_the_reader(monkeypatch, tmp_path) -> None:
    from audit_samples import line, read_logs

    from rbac_advisor.audit import dedupe

    monkeypatch.setattr(dedupe, "PENDING_MAX", 4)
    monkeypatch.setattr(dedupe, "DONE_MAX", 4)
    monkeypatch.setattr(stream_mod, "DEFER_MAX", 2)
    texts = [line(_watch("RequestReceived")), line(_watch("ResponseStarted"))]
    for stage in ("RequestReceived", "ResponseComplete"):
        for i in range(50):  # 50 requests open at once: the watch leaves every window
            texts.append(line(event(audit_id=f"r{i}", stage=stage, user=f"u{i % 3}")))
    texts.append(line(_watch("ResponseComplete")))
    p = tmp_path / "a.log"
    p.write_bytes(b"\n".join(texts) + b"\n")
    u = read_logs([str(p)])
    assert u.requests == 51
    watches = [s.count for k, s in u.entries.items() if k.access.verb == "watch"]
    assert watches == [1]


def test_deferred_request_received_lines_give_the_same_model(monkeypatch) -> None:
    rng = random.Random(7)
    evs = []
    for i in range(300):
        rr = event(audit_id=f"id{i}", stage="RequestReceived", user=f"u{i % 7}")
        rc = event(audit_id=f"id{i}", stage="ResponseComplete", user=f"u{i % 7}")
        evs.append([rr, rc] if i % 5 else [rr])
    flat = [x for pair in evs for x in pair]
    rng.shuffle(flat)
    whole = usage.build(e for d in flat for e in parse_record(d).events)
    assert build_lines(*flat) == whole
    monkeypatch.setattr(stream_mod, "DEFER_MAX", 2)  # force evictions from the deferral window
    assert build_lines(*flat) == whole
    assert whole.requests == 300


# ---- properties ------------------------------------------------------------------------------

_req = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "e", "f"]),  # auditID (reused on purpose)
    st.sampled_from(["alice", "bob", "system:serviceaccount:ns:sa"]),
    st.sampled_from(["get", "list", "delete"]),
    st.sampled_from(["/api/v1/namespaces/ns/pods/p", "/api/v1/namespaces/ns/pods/q"]),
    st.sets(st.sampled_from(STAGES), min_size=1),
    st.sampled_from(["allow", "forbid"]),
    st.integers(0, 5 * 86400),
    st.booleans(),  # impersonated
)


def _stage_dicts(reqs) -> tuple[list[list[dict]], int]:
    seen = {}
    for aid, user, verb, uri, stages, dec, t, imp in reqs:
        # One request per key: the same call with the same audit ID at another time is another.
        seen.setdefault((aid, user, verb, uri, t), (stages, dec, imp))
    out = []
    for (aid, user, verb, uri, t), (stages, dec, imp) in seen.items():
        hh, mm, ss = t % 86400 // 3600, t % 3600 // 60, t % 60
        ts = f"2026-11-{20 + t // 86400:02d}T{hh:02d}:{mm:02d}:{ss:02d}.5Z"
        name = uri.rsplit("/", 1)[1]
        ref = {"resource": "pods", "namespace": "ns", "name": name}
        request = {"audit_id": aid, "verb": verb, "uri": uri, "user": user, "ref": ref, "time": ts}
        code = 200 if dec == "allow" else 403
        per = stage_events(stages, imp=imp, decision=dec, code=code, **request)
        out.append(per)
    return out, len(seen)


def _events(dicts):
    return [e for d in dicts for e in parse_record(d).events]


@settings(max_examples=200, deadline=None)
@given(st.lists(_req, max_size=25), st.randoms(use_true_random=False))
def test_order_and_duplicates_never_change_the_model(reqs, rnd) -> None:
    per, distinct = _stage_dicts(reqs)
    flat = [d for p in per for d in p]
    base = usage.build(_events(flat))
    assert base.requests == distinct
    shuffled = flat + [rnd.choice(flat) for _ in range(len(flat) // 2)] if flat else []
    rnd.shuffle(shuffled)
    assert usage.build(_events(shuffled)) == base
    assert build_lines(*shuffled) == base if shuffled else True


@settings(max_examples=200, deadline=None)
@given(st.lists(_req, max_size=25), st.integers(0, 25))
def test_split_and_merge_equals_whole(reqs, cut) -> None:
    per, _ = _stage_dicts(reqs)
    a = [d for p in per[:cut] for d in p]
    b = [d for p in per[cut:] for d in p]
    whole = usage.build(_events(a + b))
    ua, ub = usage.build(_events(a)), usage.build(_events(b))
    assert ua.merge(ub) == whole
    assert ub.merge(ua) == whole
    assert ua.merge(usage.empty()) == ua
    assert usage.loads(usage.dumps(whole)) == whole
    assert usage.dumps(ua.merge(ub)) == usage.dumps(whole)


@settings(max_examples=200, deadline=None)
@given(st.lists(_req, max_size=18), st.integers(0, 18), st.integers(0, 18))
def test_merge_is_associative(reqs, i, j) -> None:
    per, _ = _stage_dicts(reqs)
    i, j = sorted((i, j))
    parts = [
        usage.build(_events([d for p in chunk for d in p]))
        for chunk in (per[:i], per[i:j], per[j:])
    ]
    x, y, z = parts
    assert x.merge(y).merge(z) == x.merge(y.merge(z))


# An early stage wrong in a field the final stage repeats: a malformed record, wherever its
# final stage is logged (before, after, or not at all).
_BAD_EARLY = [
    ({"objectRef": 5}, "objectRef must be an object, got int"),
    ({"sourceIPs": "10.0.0.1"}, "sourceIPs must be a list of strings"),
    ({"userAgent": 7}, "userAgent must be a string, got int"),
    ({"impersonatedUser": "bob"}, "impersonatedUser must be an object, got str"),
    ({"user": {"groups": ["dev"]}}, "audit event has no user.username"),
    ({"requestReceivedTimestamp": "yesterday"}, "not a timestamp"),
    # The apiserver's form, on a day that does not exist.
    ({"requestReceivedTimestamp": "2026-02-30T10:00:00.000001Z"}, "not a timestamp"),
    # Past 64 bits: the general path's parser gives a float.
    ({"responseStatus": {"code": 10**23}}, "responseStatus.code must be an integer"),
]


@pytest.mark.parametrize(("fields", "reason"), _BAD_EARLY)
@pytest.mark.parametrize("stage", ["RequestReceived", "ResponseStarted"])
@pytest.mark.parametrize("final_at", ["after", "before", "none"])
def test_a_malformed_early_stage_is_reported_wherever_its_final_stage_is(
    fields: dict[str, object], reason: str, stage: str, final_at: str
) -> None:
    from rbac_advisor.errors import AuditParseError

    bad = {**event(stage=stage), **fields}
    good = event(stage="ResponseComplete")
    later = event(audit_id="other", stage="ResponseComplete")
    docs = {"after": [bad, good, later], "before": [good, bad, later], "none": [bad, later]}
    records = docs[final_at]
    at = records.index(bad) + 1
    # A later line that is not JSON: the first malformed record is the one reported.
    numbered = [*lines(*records), ("t.log", len(records) + 1, b"not json")]
    with pytest.raises(AuditParseError) as err:
        usage.build(parse_lines(numbered))
    assert err.value.line == at and reason in str(err.value)
    stats: dict[str, stream_mod.SourceStats] = {}
    u = usage.build(parse_lines(numbered, skip_malformed=True, stats=stats))
    assert u.requests == (1 if final_at == "none" else 2)
    [st] = stats.values()
    assert st.skipped == 2 and st.first_error.startswith(f"t.log:{at}: ")


@pytest.mark.parametrize("stage", ["RequestReceived", "ResponseComplete"])
@pytest.mark.parametrize("final_after", [False, True])
def test_text_that_is_not_utf8_in_a_field_not_read_is_malformed(
    stage: str, final_after: bool
) -> None:
    """The typed decoder skips unread fields unchecked: a line not in ASCII is checked first."""
    from rbac_advisor.errors import AuditParseError

    def with_body(d: dict[str, object], body: bytes) -> bytes:
        return line(d)[:-1] + b',"requestObject":{"x":"' + body + b'"}}'

    bad = with_body(event(stage=stage), b"\xff")
    good = with_body(event(stage=stage), "\u00fc\u4e2d".encode())  # UTF-8: read as usual
    final = [line(event(audit_id="id-1"))] if final_after else []
    numbered = [("t.log", i, t) for i, t in enumerate([bad, *final], 1)]
    with pytest.raises(AuditParseError) as err:
        usage.build(parse_lines(numbered))
    assert err.value.line == 1 and "not valid UTF-8" in str(err.value)
    u = usage.build(parse_lines([("t.log", i, t) for i, t in enumerate([good, *final], 1)]))
    assert u.requests == 1


def _with_body(d: dict[str, object], body: bytes, *, reorder: bool = False) -> bytes:
    """The line of ``d`` with ``"requestObject": body``; ``reorder``: not the apiserver's order."""
    if reorder:
        d = {"apiVersion": d["apiVersion"], **d}  # the general path reads it
    return line(d)[:-1] + b',"requestObject":' + body + b"}"


def _placed(placement: str, body: bytes) -> list[bytes]:
    """The lines of one request whose stage named by ``placement`` holds ``body``."""
    early = _with_body(event(stage="RequestReceived"), body)
    return {
        "final": [_with_body(event(), body)],
        "early+final": [early, line(event())],
        "early": [early],
        "reordered": [_with_body(event(), body, reorder=True)],
        "lacking": [_with_body(event(ua=""), body)],  # the missing fields are then read
    }[placement]


@pytest.mark.parametrize("placement", ["final", "early+final", "early", "reordered", "lacking"])
def test_a_number_past_a_double_in_a_body_is_read_on_every_path(placement: str) -> None:
    """JSON sets no limit on numbers: 1e400 in a field not read is no error, on any path."""
    texts = _placed(placement, b'{"big":1e400,"small":-1e400,"int":100000000000000000000000}')
    stats: dict[str, stream_mod.SourceStats] = {}
    numbered = [("t.log", i, t) for i, t in enumerate(texts, 1)]
    u = usage.build(parse_lines(numbered, stats=stats))
    assert u.requests == 1 and stats["t.log"].skipped == 0


@pytest.mark.parametrize("placement", ["final", "early+final", "early", "reordered"])
def test_a_lone_surrogate_in_a_body_is_malformed_on_every_path(placement: str) -> None:
    from rbac_advisor.errors import AuditParseError

    texts = _placed(placement, b'{"x":"\\ud800","y":"\\ud83d\\ude00"}')  # lone, then a pair
    numbered = [("t.log", i, t) for i, t in enumerate(texts, 1)]
    with pytest.raises(AuditParseError) as err:
        usage.build(parse_lines(numbered))
    assert err.value.line == 1 and "surrogate" in str(err.value)
    paired = [t.replace(b'"\\ud800"', b'"\\ud83d\\ude01"') for t in texts]
    u = usage.build(parse_lines([("t.log", i, t) for i, t in enumerate(paired, 1)]))
    assert u.requests == 1
