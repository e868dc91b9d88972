"""Usage model -> the distinct observations the diff engine works on. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from rbac_advisor.diff import Observation
from rbac_advisor.events import Decision, ReasonRef
from rbac_advisor.rbac import Access, Identity
from rbac_advisor.usage import Usage, earliest, via_order


def observations(usage: Usage) -> list[Observation]:
    """Merge usage entries that differ only by client tool into one observation each."""
    merged: dict[tuple[Identity, Access, Decision, ReasonRef | None], Observation] = {}
    for key, st in usage.entries.items():
        via = key.via.binding if key.via is not None else None
        cited = key.via.subject if key.via is not None else None
        k = (key.identity, key.access, key.decision, key.via)
        prev = merged.get(k)
        tools = frozenset({key.tool}) if key.tool else frozenset()
        if prev is None:
            merged[k] = Observation(
                key.identity,
                key.access,
                key.decision,
                st.count,
                st.first,
                st.last,
                frozenset(st.days),
                via,
                tools,
                cited,
            )
        else:
            merged[k] = Observation(
                key.identity,
                key.access,
                key.decision,
                prev.count + st.count,
                earliest(prev.first, st.first),
                max(prev.last, st.last),
                prev.days | frozenset(st.days),
                via,
                prev.tools | tools,
                cited,
            )
    return [merged[k] for k in sorted(merged, key=_sort_key)]


def _sort_key(k: tuple[Identity, Access, Decision, ReasonRef | None]) -> tuple[object, ...]:
    return (k[0], k[1], k[2], k[3] is not None, via_order(k[3]))


def window_label(usage: Usage, fmt: Callable[[float], str] | None = None) -> str:
    """``START/END`` of the observed window in UTC, or empty when nothing was observed."""
    if usage.start is None or usage.end is None:
        return ""
    f = fmt or (lambda t: datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return f"{f(usage.start)}/{f(usage.end)}"
