"""A usage model agrees with itself: every model read is, an edited one is refused.

The same requests are held as uses, as activity per user, tool and day, per source and as
totals. Models built from logs (every path: the typed fast path, the general one, spilled
counts, pieces merged, saved and loaded) never contradict themselves; a saved model edited
so that they do is refused with one line naming the file.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from audit_samples import corpus, event, line, read_logs
from hypothesis import given, settings
from hypothesis import strategies as st
from request_samples import interleave, request, request_lines
from typer.testing import CliRunner

from rbac_advisor import usage
from rbac_advisor.audit import parse_lines
from rbac_advisor.cli import app, parallel, spool
from rbac_advisor.usage_codec import REBUILD
from rbac_advisor.usage_consistency import contradiction

ROOT = Path(__file__).resolve().parent.parent
DEMO_LOG = ROOT / "fixtures" / "demo" / "audit.jsonl"
DEMO_RBAC = ROOT / "fixtures" / "demo" / "rbac.yaml"
USE = "the use of configmaps (create) by 'alice'"

runner = (
    CliRunner(mix_stderr=False)
    if "mix_stderr" in CliRunner.__init__.__code__.co_varnames
    else CliRunner()
)

Doc = dict[str, Any]


def _agrees(u: usage.Usage) -> None:
    assert contradiction(u) is None
    assert contradiction(usage.loads(usage.dumps(u))) is None


# ---- every model the tool builds agrees with itself --------------------------------------------

_AGENTS = ("kubectl/v1.36.3 (linux/amd64)", "Helm/3.15.2", "curl/8.0", "")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(request, max_size=30),
    st.randoms(use_true_random=False),
    st.lists(st.sampled_from(_AGENTS), min_size=1, max_size=4),
    st.integers(0, 30),
    st.sets(st.integers(0, 80), max_size=6),
)
def test_models_read_from_any_log_agree(tmp_path_factory, reqs, rnd, agents, cut, untimed) -> None:
    """Fast and general paths, pieces merged, agents and records without a time."""
    texts = []
    for n, text in enumerate(interleave(request_lines(reqs), rnd)):
        d = json.loads(text)
        d["userAgent"] = agents[n % len(agents)]
        if n in untimed:  # exported logs may lack the times
            d.pop("requestReceivedTimestamp")
            d.pop("stageTimestamp")
        texts.append(line(d))
    d = tmp_path_factory.mktemp("c")
    whole, first, second = d / "all.log", d / "a.log", d / "b.log"
    whole.write_bytes(b"".join(t + b"\n" for t in texts))
    first.write_bytes(b"".join(t + b"\n" for t in texts[:cut]))
    second.write_bytes(b"".join(t + b"\n" for t in texts[cut:]))
    if texts:
        _agrees(read_logs([str(whole)]))
        _agrees(usage.build(parse_lines(("g", i, b" " + t) for i, t in enumerate(texts, 1))))
    if texts[:cut] and texts[cut:]:
        _agrees(read_logs([str(first)]).merge(read_logs([str(second)])))


def test_refused_impersonation_and_times_before_1970(tmp_path: Path) -> None:
    """Checks of a refused impersonation are the request's only uses; a use with one time
    before 1970 and one record without a time has ``last`` 0."""
    refused = (
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users" '
        'in API group "" at the cluster scope'
    )
    old = event(audit_id="o1", time="1969-12-30T10:00:00.000001Z")
    untimed = event(audit_id="o2")
    untimed.pop("requestReceivedTimestamp")
    untimed.pop("stageTimestamp")
    p = tmp_path / "a.log"
    denied = event(audit_id="r1", code=403, decision=None)
    denied["responseStatus"] = {"code": 403, "message": refused}
    p.write_bytes(b"".join(line(e) + b"\n" for e in (denied, old, untimed)))
    u = read_logs([str(p)])
    stats = [s for k, s in u.entries.items() if k.access.verb == "get"]
    assert [(s.count, s.last, min(s.days)) for s in stats] == [(2, 0.0, -2)]
    assert any(k.access.verb == "impersonate" for k in u.entries)
    _agrees(u)


@pytest.mark.parametrize("name", ["native", "gke", "eks", "aks", "mixed-elastic"])
def test_corpus_models_agree(name: str) -> None:
    _agrees(read_logs([str(corpus() / "audit" / name)], skip_malformed=True))


def test_spilled_shared_and_windowed_models_agree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(spool, "SPILL_AT", 5)
    _agrees(read_logs([str(DEMO_LOG)]))
    _agrees(read_logs([str(DEMO_LOG)], since="2026-06-01T09:00:03Z", kubectl_only=True))
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    monkeypatch.setattr(parallel, "HAND_OVER", 5)
    rotated = [tmp_path / "audit-1.log", tmp_path / "audit-2.log"]
    text = DEMO_LOG.read_bytes().splitlines(keepends=True)
    rotated[0].write_bytes(b"".join(text[:150]))
    rotated[1].write_bytes(b"".join(text[150:]))
    _agrees(read_logs([str(p) for p in rotated], workers=2))


# ---- an edited model is refused -----------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Doc:
    out = tmp_path_factory.mktemp("model") / "demo.model"
    r = runner.invoke(app, ["usage", str(DEMO_LOG), "--save", str(out)])
    assert r.exit_code == 0, r.output
    doc: Doc = json.loads(out.read_text())
    return doc


def _activity_moved(doc: Doc) -> None:
    """One request of alice's counted as bob's: the totals still add up."""
    rows = doc["activity"]
    a = next(r for r in rows if r[0] == "alice")
    b = next(r for r in rows if r[0] == "bob")
    a[3] -= 20
    b[3] += 20


def _entry(doc: Doc, n: int = 0) -> list[Any]:
    row: list[Any] = doc["entries"][n]
    return row


def _stretch(doc: Doc) -> None:
    """A use counted 2 over one day, with a second day after its last time."""
    e = _entry(doc)
    e[5], e[8] = 2, [*e[8], e[8][-1] + 1]
    _moved_activity_by(doc, e, 1)


def _moved_activity_by(doc: Doc, e: list[Any], n: int) -> None:
    """Keep the activity of the entry's user and tool matching ``n`` more requests."""
    user = doc["identities"][e[0]][0]
    row = next(r for r in doc["activity"] if (r[0], r[1]) == (user, e[4]))
    row[3] += n
    doc["requests"] += n
    doc["sources"][0]["requests"] += n


def _request_of_nobody(doc: Doc) -> None:
    """One more request, made by a user of whom no use is held."""
    doc["activity"].append(["nobody-else", "curl/8.0", doc["activity"][0][2], 1])
    doc["requests"] += 1
    doc["sources"][0]["requests"] += 1


def _activity_next_day(doc: Doc) -> None:
    """Alice's requests moved to the next day, which the window now reaches."""
    doc["activity"][0][2] += 1
    doc["end"] += 86400


def _activity_on_day_one(doc: Doc) -> None:
    """One of alice's requests moved to a new day in year 1 (the totals unchanged)."""
    row = next(r for r in doc["activity"] if r[0] == "alice" and r[3] > 1)
    row[3] -= 1
    doc["activity"].append([row[0], row[1], -719162, 1])


def _late(doc: Doc) -> None:
    """A use's time past the window's end (its day unchanged)."""
    e = _entry(doc)
    e[7] = doc["end"] + 1


def _untimed_with_days(doc: Doc) -> None:
    e = _entry(doc)
    e[6] = e[7] = 0


def _day_missing(doc: Doc) -> None:
    e = _entry(doc)
    e[8] = [e[8][0] - 1]


CASES: list[tuple[str, Callable[[Doc], None], str]] = [
    (
        "activity-more",
        lambda d: d["activity"][0].__setitem__(3, d["activity"][0][3] + 1),
        "its activity (requests per user, tool and day) does not add up to requests",
    ),
    (
        "requests-more",
        lambda d: d.__setitem__("requests", d["requests"] + 1),
        "the requests of its sources do not add up to requests",
    ),
    (
        "activity-moved",
        _activity_moved,
        "the activity of 'bob' with 'kubectl/v1.36.3' does not match",
    ),
    (
        "no-line-read",
        lambda d: d["sources"][0].__setitem__("lines", 0),
        f"its source {str(DEMO_LOG)!r} counts requests but read no record",
    ),
    (
        "skipped-unnamed",
        lambda d: d["sources"][0].__setitem__("skipped", 2),
        f"its source {str(DEMO_LOG)!r} skipped records but names none of them",
    ),
    (
        "named-not-skipped",
        lambda d: d["sources"][0].__setitem__("first_error", f"{DEMO_LOG}:3: invalid JSON"),
        f"its source {str(DEMO_LOG)!r} names a skipped record but skipped none",
    ),
    (
        "activity-renamed",
        lambda d: d["activity"][0].__setitem__(0, "nobody-else"),
        "'alice' has uses with 'kubectl/v1.36.3' but no activity",
    ),
    (
        "activity-of-nobody",
        _request_of_nobody,
        "its activity names requests of 'nobody-else' with 'curl/8.0' that no use holds",
    ),
    (
        "days-more-than-count",
        lambda d: _entry(d)[8].append(_entry(d)[8][0] + 1),
        f"{USE} has more active days than requests",
    ),
    ("day-outside", _stretch, f"{USE} has a day outside its first and last times"),
    ("day-missing", _day_missing, f"{USE} lacks the day of its first or last time"),
    (
        "last-without-first",
        lambda d: _entry(d).__setitem__(6, 0),
        f"{USE} has a last time but no first time",
    ),
    ("untimed-with-days", _untimed_with_days, f"{USE} has active days but no time"),
    ("time-outside-window", _late, f"{USE} has a time outside the model's window"),
    (
        "activity-day-moved",
        _activity_next_day,
        "the activity of 'alice' with 'kubectl/v1.36.3' lacks days of its uses",
    ),
    (
        "activity-day-outside-window",
        _activity_on_day_one,
        "the activity of 'alice' with 'kubectl/v1.36.3' has a day outside the model's window",
    ),
    (
        "addresses-of-nobody",
        lambda d: d["client_ips"].append(["nobody-else", "curl/8.0", ["10.0.0.9"]]),
        "its client addresses name 'nobody-else' with 'curl/8.0', who made no request",
    ),
    (
        "session-of-nobody",
        lambda d: d["sessions"][0].__setitem__(1, "nobody-else"),
        "a session names 'nobody-else' with 'kubectl/v1.36.3', who made no request",
    ),
    (
        "session-outside-window",
        lambda d: d["sessions"][0].__setitem__(0, d["end"] + 60),
        "a session of 'alice' lies outside the model's window",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_edited_model_is_refused_in_one_line(
    saved: Doc, mutate: Callable[[Doc], None], message: str, tmp_path: Path
) -> None:
    doc = copy.deepcopy(saved)
    assert contradiction(usage.loads(json.dumps(doc))) is None
    mutate(doc)
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    assert contradiction(usage.loads(p.read_text())) is not None  # the format itself is fine
    for args in (
        ["usage", "--load", str(p)],
        ["analyze", "--usage", str(p), "--rbac", str(DEMO_RBAC), "--out", str(tmp_path / "o")],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 3, (r.exception, r.stderr)
        assert r.stdout == ""
        assert r.stderr.startswith(f"error: {p}: damaged usage model: {message}"), r.stderr
        assert r.stderr.endswith(f"; {REBUILD}\n") and r.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_a_model_without_sources_is_refused(saved: Doc, tmp_path: Path) -> None:
    """Every saved model names what it was read from; one that names nothing would add up
    with another into a model whose sources no longer account for its requests."""
    doc = copy.deepcopy(saved)
    doc["sources"] = []
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    assert contradiction(usage.loads(p.read_text())) is None  # a model built without input
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps(saved))
    out = tmp_path / "merged.json"
    r = runner.invoke(app, ["usage", "--load", str(whole), "--load", str(p), "--save", str(out)])
    assert (r.exit_code, r.stderr) == (
        3,
        f"error: {p}: damaged usage model: it names no source; {REBUILD}\n",
    )
    assert not out.exists()


def test_more_refused_uses_than_requests_is_refused(tmp_path: Path) -> None:
    """A refused session upgrade is one refused use of an allowed request; two refused uses
    of one request are an edit."""
    upgrade = event(
        audit_id="x1",
        uri="/api/v1/namespaces/ns/pods/p/exec?command=sh",
        ref={"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"},
        code=403,
    )
    upgrade["responseStatus"]["message"] = (
        'pods "p" is forbidden: User "alice" cannot create resource "pods/exec" in API group '
        '"" in the namespace "ns"'
    )
    log = tmp_path / "a.log"
    log.write_bytes(line(upgrade) + b"\n" + line(event(audit_id="x2", decision="forbid", code=403)))
    u = read_logs([str(log)])
    assert sorted(k.decision.value for k in u.entries) == ["allow", "forbid", "forbid"]
    _agrees(u)
    doc = json.loads(usage.dumps(u))
    allowed = next(e for e in doc["entries"] if e[2] == "allow")
    allowed[2], allowed[3] = "forbid", -1  # the exec's own use refused as well
    saved = tmp_path / "m.json"
    saved.write_text(json.dumps(doc))
    r = runner.invoke(app, ["usage", "--load", str(saved)])
    assert r.exit_code == 3 and r.stderr.strip() == (
        f"error: {saved}: damaged usage model: 'alice' has more refused and undecided uses "
        f"with 'kubectl/v1.36.3' than requests; {REBUILD}"
    )
