"""The usage table: one row per subject, whatever the names in the log hold."""

from __future__ import annotations

from audit_samples import event

from rbac_advisor import usage
from rbac_advisor.audit import parse_record
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
