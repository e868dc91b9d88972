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
