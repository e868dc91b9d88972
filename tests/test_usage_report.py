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
    )
    rows = text.splitlines()[2:]  # the summary line, a blank line, then the table
    assert len(rows) == 4  # the header and one row per subject
    assert "\x1b" not in text and "\t" not in text
    assert any(r.startswith("User") and "mallory\\nUser" in r for r in rows)
    assert any("\\x1b[31mred\\x1b[0m" in r for r in rows)
    # not a valid namespace, so no service account (SplitUsername): a user of that name
    assert any(r.startswith("User") and "system:serviceaccount:n\\ts:sa" in r for r in rows)


def test_printable_names_are_left_alone() -> None:
    for name in ("alice", "système:ünïcode", "名前", 'a"b'):
        assert printable(name) == name
    assert printable("a\u200bb") == "a\\u200bb"  # zero-width space: invisible, so shown
