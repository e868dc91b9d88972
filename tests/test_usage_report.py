"""The usage table: one row per subject, whatever the names in the log hold."""

from __future__ import annotations

from audit_samples import event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbac_advisor import usage
from rbac_advisor.audit import parse_record
from rbac_advisor.events import Decision
from rbac_advisor.usage_report import printable, to_table


def _table(*dicts: dict) -> str:  # type: ignore[type-arg]
    return to_table(usage.build(e for d in dicts for e in parse_record(d).events))


def test_control_characters_in_names_cannot_forge_rows_or_colour_the_terminal() -> None:
    forged = "mallory\nUser  admin  -  9999  9999  0  1  kubectl  2026-11-20T10:00:00Z"
    text = _table(
        event(audit_id="1", user=forged),
        event(audit_id="2", user="\x1b[31mred\x1b[0m"),
        event(audit_id="3", user="system:serviceaccount:n\ts:sa"),
        event(audit_id="4", user="unit\x1fseparator"),  # rows wait for the widths so joined
    )
    rows = text.splitlines()[2:]  # the summary line, a blank line, then the table
    assert len(rows) == 5  # the header and one row per subject
    assert "\x1b" not in text and "\t" not in text
    assert any(r.startswith("User") and "mallory\\nUser" in r for r in rows)
    assert any("\\x1b[31mred\\x1b[0m" in r for r in rows)
    assert any(r.split()[:2] == ["User", "unit\\x1fseparator"] for r in rows)
    # not a valid namespace, so no service account (SplitUsername): a user of that name
    assert any(r.startswith("User") and "system:serviceaccount:n\\ts:sa" in r for r in rows)


def test_printable_names_are_left_alone() -> None:
    for name in ("alice", "système:ünïcode", "名前", 'a"b'):
        assert printable(name) == name
    assert printable("a\u200bb") == "a\\u200bb"  # zero-width space: invisible, so shown


def test_columns_are_as_wide_as_their_widest_cell() -> None:
    text = _table(
        event(audit_id="1", user="a"),
        event(audit_id="2", user="a-much-longer-user-name"),
        event(audit_id="3", user="a-much-longer-user-name"),
    )
    header, *rows = text.splitlines()[2:]
    assert header.index("NAMESPACE") == len("KIND") + 2 + len("a-much-longer-user-name") + 2
    requests = [r.split()[3] for r in rows]
    assert requests == ["2", "1"]  # most active first
    right = header.index("REQUESTS") + len("REQUESTS") - 1  # numbers end under the header
    assert all(r[right].isdigit() and r[right + 1] == " " for r in rows)


# ---- the summaries against a plain reference: every user's parts, in the table's order ----

_NAMESPACES = ["a", "a-b", "a0", "ab", "b", "bad_ns"]
_NAMES = ["x", "x-y", "x.y", "xy", "x0"]
_USERS = ["alice", "al", "alice\x00b", "z:y", "system:serviceaccount:", "\x01sa"]
_TOOLS = ["kubectl/v1.36.3 (linux/amd64) kubernetes/abc1234", "k9s/v0.32.5", "curl/8.5.0", ""]


def _reference(u: usage.Usage) -> list[tuple[object, ...]]:
    """The summaries' order and parts, from the model's mappings directly."""
    from collections import Counter, defaultdict

    from rbac_advisor.rbac import Identity

    requests: Counter[str] = Counter()
    tools: defaultdict[str, Counter[str]] = defaultdict(Counter)
    ips: defaultdict[str, set[str]] = defaultdict(set)
    uses: defaultdict[str, set[object]] = defaultdict(set)
    for (user, tool, _day), n in u.activity.items():
        requests[user] += n
        tools[user][tool or "unknown"] += n
    for (user, _tool), seen in u.client_ips.items():
        ips[user].update(seen)
    for k in u.entries:
        uses[k.identity.user].add((k.access, k.decision))
    users = set(requests) | set(ips) | set(uses)

    def parts(user: str) -> tuple[str, str, str]:
        sa = Identity(user).service_account
        return ("ServiceAccount", *sa) if sa else ("User", "", user)

    order = sorted(users, key=lambda user: (-requests[user], *parts(user), user))
    return [
        (*parts(user), user, requests[user], dict(tools[user]), ips[user], uses[user])
        for user in order
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.tuples(st.sampled_from(_NAMESPACES), st.sampled_from(_NAMES)).map(
                    lambda p: f"system:serviceaccount:{p[0]}:{p[1]}"
                ),
                st.sampled_from(_USERS),
            ),
            st.sampled_from(["get", "list", "delete"]),
            st.sampled_from(_TOOLS),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_summaries_match_a_plain_reading_of_the_model(
    requests: list[tuple[str, str, str, int]],
) -> None:
    from rbac_advisor.usage_report import summarize

    u = usage.build(
        e
        for n, (user, verb, ua, ip) in enumerate(requests)
        for e in parse_record(
            event(audit_id=f"r{n}", user=user, verb=verb, ua=ua, ip=f"10.0.0.{ip}")
        ).events
    )
    got = [
        (s.kind, s.namespace, s.name, s.user, s.requests, dict(s.tools), s.ips)
        + ({(a, Decision(d)) for a, d, _via in s.accesses},)
        for s in summarize(u)
    ]
    assert got == _reference(u)


def test_the_share_summarised_counts_each_subjects_uses(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The most active subjects come first: a share of subjects alone would promise the rest
    at their pace."""
    from rbac_advisor import usage_report

    heavy = [
        event(audit_id=f"h{n}", user="heavy", uri=f"/api/v1/namespaces/n{n}/pods")
        for n in range(100)
    ]
    light = [event(audit_id=f"l{n}", user=f"light-{n:03d}") for n in range(100)]
    u = usage.build(e for d in heavy + light for e in parse_record(d).events)
    assert len(u.entries) == 200
    shares: list[float] = []
    monkeypatch.setattr(usage_report, "PROGRESS_STEP", 0.001)
    names = [s.user for s in usage_report.iter_summaries(u, shares.append)]
    assert names[0] == "heavy" and len(names) == 101
    # Work: 101 subjects and 200 uses. Before each subject, what the ones before it did.
    assert shares[:3] == [0, 101 / 301, 103 / 301]
    assert len(shares) == 101 and shares == sorted(shares)


_DECIDED = [
    ("allow", "", 200),
    ("allow", 'RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "r" to Group "g"', 200),
    ("forbid", "", 403),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alice", "bob", "system:serviceaccount:a:x"]),
            st.sampled_from(["get", "list", "delete"]),
            st.sampled_from(["pods", "secrets", "configmaps"]),
            st.sampled_from(_NAMESPACES[:3]),
            st.sampled_from(_DECIDED),
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([0, 1, 50_000]),
)
def test_json_lists_each_subjects_uses_most_frequent_first_then_by_text(
    requests: list[tuple[str, str, str, str, tuple[str, str, int]]], kept: int
) -> None:
    """Ties in count go by the text of (access, decision, via), whatever texts are kept."""
    import json

    from rbac_advisor import usage_report

    u = usage.build(
        e
        for n, (user, verb, res, ns, (decision, reason, code)) in enumerate(requests)
        for e in parse_record(
            event(
                audit_id=f"r{n}",
                user=user,
                verb=verb,
                uri=f"/api/v1/namespaces/{ns}/{res}",
                decision=decision,
                reason=reason,
                code=code,
            )
        ).events
    )
    was, usage_report._TEXTS_MAX = usage_report._TEXTS_MAX, kept
    try:
        doc = json.loads(usage_report.to_json(u))
    finally:
        usage_report._TEXTS_MAX = was
    for s, summary in zip(doc["subjects"], usage_report.summarize(u), strict=True):
        assert s["user"] == summary.user
        want = sorted(
            summary.accesses.items(),
            key=lambda kv: (-(kv[1].stats.count if kv[1].stats else 0), str(kv[0])),
        )
        got = [
            (a["verb"], a["resource"], a["namespace"], a["decision"], a["via"] or "", a["count"])
            for a in s["accesses"]
        ]
        assert got == [
            (a.verb, a.resource, a.namespace, d, v, acc.stats.count)  # type: ignore[union-attr]
            for (a, d, v), acc in want
        ]


_TIMES = ["1969-12-31T10:00:00.5Z", "2026-11-20T10:00:00.000001Z", "2026-11-22T23:59:59Z", None]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alice", "bob"]),
            st.sampled_from(["get", "list"]),
            st.sampled_from(["allow", "forbid", None]),
            st.sampled_from(_TIMES),
            st.sampled_from([None, "carol"]),  # impersonating carol
            st.sampled_from([["dev"], ["ops", "dev"]]),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_subject_totals_match_a_plain_reading_of_the_model(
    requests: list[tuple[str, str, str | None, str | None, str | None, list[str]]],
) -> None:
    """Times (0 where no record gave one), days, groups and decisions of each subject."""
    from rbac_advisor.usage import earliest
    from rbac_advisor.usage_report import is_impersonation_check, summarize

    docs = []
    for n, (user, verb, decision, when, imp, groups) in enumerate(requests):
        d = event(
            audit_id=f"r{n}",
            user=user,
            verb=verb,
            decision=decision,
            code=403 if decision == "forbid" else 200,
            groups=groups,
            imp=None if imp is None else {"username": imp, "groups": ["system:authenticated"]},
        )
        if when is None:
            del d["requestReceivedTimestamp"], d["stageTimestamp"]
        else:
            d["requestReceivedTimestamp"] = d["stageTimestamp"] = when
        docs.append(d)
    u = usage.build(e for d in docs for e in parse_record(d).events)
    summaries = summarize(u)
    assert summaries
    for s in summaries:
        rows = [(k, st) for k, st in u.entries.items() if k.identity.user == s.user]
        firsts = [st.first for _, st in rows]
        want_first = None if not rows else firsts[0]
        for f in firsts[1:]:
            want_first = earliest(want_first, f)  # type: ignore[arg-type]
        assert s.first == want_first
        assert s.last == (max(st.last for _, st in rows) if rows else None)
        assert s.days == {day for _, st in rows for day in st.days}
        assert s.groups == {g for k, _ in rows for g in k.identity.groups}
        assert s.denied == sum(st.count for k, st in rows if k.decision is Decision.FORBID)
        assert s.unknown == sum(
            st.count
            for k, st in rows
            if k.decision is Decision.UNKNOWN and not is_impersonation_check(k)
        )
        assert s.allowed == max(0, s.requests - s.denied - s.unknown)
