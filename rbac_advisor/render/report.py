"""Render a ``ReportView`` into one self-contained, printable HTML file (jinja2).

Ordering, anchors and chart geometry are prepared here so the templates hold loops and
conditionals only. Every value from the view is escaped by autoescape. Pure: no I/O.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import jinja2
from markupsafe import Markup

from rbac_advisor.render.report_model import (
    BindingAction,
    BindingView,
    CellState,
    DayCount,
    Matrix,
    ReportView,
    RiskClass,
    RiskItem,
    Severity,
    SubjectView,
)

CHUNK = 500
"""List items per ``content-visibility: auto`` block, so off-screen blocks cost no layout."""

ITEM_HEIGHT = 36
"""Estimated height in pixels of one collapsed list item, until the browser measures it."""

TOP_RISKS = 200
"""Rows of the risk table; the ranked bindings list (with badges) carries the rest."""

MAX_TEXT = 2000
"""Longer strings are clipped on output so one hostile field cannot bloat the file."""

_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}
_CLASS_RANK = {c: i for i, c in enumerate(RiskClass)}
_ACTION_RANK = {a: i for i, a in enumerate(BindingAction)}


# CSS class of each matrix cell; the stylesheet draws the symbol, so cells stay a few bytes.
_CELLS = {
    CellState.USED: "u",
    CellState.UNUSED: "n",
    CellState.RISKY_UNUSED: "r",
    CellState.KEPT_UNOBSERVABLE: "k",
    CellState.NOT_GRANTED: "",
}


# Short CSS classes for badges; a value outside the enums fails the render (StrictUndefined).
_CSS = {
    BindingAction.REMOVE: "rm",
    BindingAction.NARROW: "nw",
    BindingAction.RESCOPE: "rs",
    BindingAction.KEEP: "kp",
    BindingAction.BUILTIN: "bi",
    Severity.HIGH: "hi",
    Severity.MEDIUM: "me",
    Severity.LOW: "lo",
}


@dataclass(frozen=True, slots=True)
class _Row:
    label: str
    cells: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _RankedRisk:
    anchor: str
    binding: str
    subjects: int
    item: RiskItem


@dataclass(frozen=True, slots=True)
class _RiskTotal:
    risk_class: RiskClass
    severity: Severity
    unused: int
    used: int


@dataclass(frozen=True, slots=True)
class _Badge:
    css: str
    label: str


@dataclass(frozen=True, slots=True)
class _Binding:
    anchor: str
    view: BindingView
    badges: tuple[_Badge, ...]
    rows: tuple[_Row, ...]
    show_members: bool
    uniform: str


@dataclass(frozen=True, slots=True)
class _Link:
    text: str
    anchor: str


@dataclass(frozen=True, slots=True)
class _Subject:
    anchor: str
    view: SubjectView
    bindings: tuple[_Link, ...]
    rows: tuple[_Row, ...]


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A run of list items the browser may skip rendering while it is off screen."""

    items: tuple[object, ...]
    height: int


@dataclass(frozen=True, slots=True)
class _Bar:
    x: str
    width: str
    allowed_y: str
    allowed_h: str
    denied_y: str
    denied_h: str
    title: str


@dataclass(frozen=True, slots=True)
class _Tick:
    x: str
    label: str


@dataclass(frozen=True, slots=True)
class _Chart:
    bars: tuple[_Bar, ...]
    ticks: tuple[_Tick, ...]
    peak: int


def _clip(value: object) -> object:
    """Jinja ``finalize`` hook: clip very long data strings (never our own markup)."""
    if isinstance(value, str) and not isinstance(value, Markup) and len(value) > MAX_TEXT:
        return f"{value[:MAX_TEXT]}\u2026 [{len(value) - MAX_TEXT} more characters]"
    return value


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rbac_advisor.render", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_clip,
    )


@functools.cache
def script_hash() -> str:
    """CSP source expression (``'sha256-...'``) of the report's inline script."""
    text = _env().get_template("report.js").render()
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy() -> str:
    """The report's CSP: nothing remote, only our own inline script and inline styles."""
    return (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src {script_hash()}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )


def _rows(matrix: Matrix) -> tuple[_Row, ...]:
    """Matrix rows with identical cells merged into one row, so large roles stay compact."""
    merged: dict[tuple[CellState, ...], list[str]] = {}
    for row in matrix.rows:
        if len(row.cells) != len(matrix.verbs):
            raise ValueError(
                f"matrix row {row.resource!r} has {len(row.cells)} cells for "
                f"{len(matrix.verbs)} verbs"
            )
        merged.setdefault(row.cells, []).append(row.resource)
    return tuple(
        _Row(", ".join(labels), tuple(_CELLS[c] for c in cells)) for cells, labels in merged.items()
    )


def _risk_key(item: RiskItem) -> tuple[bool, int, int, str]:
    return (item.used, _SEVERITY_RANK[item.severity], _CLASS_RANK[item.risk_class], item.permission)


def _worst(items: Iterable[RiskItem]) -> int:
    return min((_SEVERITY_RANK[i.severity] for i in items if not i.used), default=len(Severity))


def _badges(items: Iterable[RiskItem]) -> tuple[_Badge, ...]:
    """One badge per risk class: unused grants (coloured by severity) first, then used ones."""
    seen: set[RiskClass] = set()
    out = []
    for item in sorted(items, key=_risk_key):
        if item.risk_class not in seen:
            seen.add(item.risk_class)
            out.append(_Badge("us" if item.used else _CSS[item.severity], item.risk_class))
    return tuple(out)


def _uniform(b: BindingView) -> str:
    """``"used"`` or ``"unused"`` when every grant of ``b`` is, else ``""``.

    A uniform matrix says nothing the rule diff does not, so it is left out to keep large
    reports small; the matrix is shown whenever used and unused grants are mixed.
    """
    if not b.rules:
        return ""
    used = b.matrix.used
    granted = b.matrix.granted
    if granted and used == granted:
        return "used"
    if granted and b.matrix.count(CellState.UNUSED, CellState.RISKY_UNUSED) == granted:
        return "unused"
    return ""


def _bindings(views: tuple[BindingView, ...]) -> tuple[_Binding, ...]:
    ordered = sorted(
        views, key=lambda b: (_worst(b.risks), _ACTION_RANK[b.action], b.display, b.role_display)
    )
    return tuple(
        _Binding(
            f"b{i}",
            b,
            _badges(b.risks),
            _rows(b.matrix),
            # A lone member acting as the lone subject adds nothing to the summary line.
            len(b.members) > 1 or any(u.via for u in b.members),
            _uniform(b),
        )
        for i, b in enumerate(ordered, 1)
    )


def _subjects(views: tuple[SubjectView, ...], anchors: dict[str, str]) -> tuple[_Subject, ...]:
    ordered = sorted(views, key=lambda s: (s.kind, s.namespace, s.name))
    return tuple(
        _Subject(
            f"s{i}",
            s,
            tuple(_Link(b, anchors.get(b, "")) for b in sorted(s.bindings)),
            _rows(s.matrix),
        )
        for i, s in enumerate(ordered, 1)
    )


def _risks(
    bindings: tuple[_Binding, ...],
) -> tuple[tuple[_RankedRisk, ...], tuple[_RiskTotal, ...]]:
    ranked = sorted(
        (
            _RankedRisk(b.anchor, b.view.display, len(b.view.subjects), r)
            for b in bindings
            for r in b.view.risks
        ),
        key=lambda x: (_risk_key(x.item), x.binding),
    )
    totals = []
    for cls in RiskClass:
        items = [r.item for r in ranked if r.item.risk_class == cls]
        if items:
            severity = min((i.severity for i in items), key=_SEVERITY_RANK.__getitem__)
            unused = sum(1 for i in items if not i.used)
            totals.append(_RiskTotal(cls, severity, unused, len(items) - unused))
    totals.sort(key=lambda t: (_SEVERITY_RANK[t.severity], -t.unused, _CLASS_RANK[t.risk_class]))
    return tuple(ranked), tuple(totals)


def _chunks(items: tuple[object, ...]) -> tuple[_Chunk, ...]:
    return tuple(
        _Chunk(items[i : i + CHUNK], len(items[i : i + CHUNK]) * ITEM_HEIGHT)
        for i in range(0, len(items), CHUNK)
    )


def _chart(days: tuple[DayCount, ...], width: float = 760.0, height: float = 120.0) -> _Chart:
    """Bar geometry for the per-day chart (plot area ``width`` x ``height``, origin top-left)."""
    ordered = sorted(days, key=lambda d: d.day)
    peak = max((d.requests for d in ordered), default=0)
    if not ordered:
        return _Chart((), (), 0)
    step = width / len(ordered)
    bar = max(step * 0.8, 0.5)
    scale = height / max(peak, 1)
    bars = []
    for i, d in enumerate(ordered):
        denied = min(d.denied, d.requests)
        total_h = d.requests * scale
        denied_h = denied * scale
        bars.append(
            _Bar(
                x=f"{i * step:.2f}",
                width=f"{bar:.2f}",
                allowed_y=f"{height - total_h:.2f}",
                allowed_h=f"{total_h - denied_h:.2f}",
                denied_y=f"{height - denied_h:.2f}",
                denied_h=f"{denied_h:.2f}",
                title=f"{d.day}: {d.requests} requests, {denied} denied",
            )
        )
    count = min(len(ordered), 8)
    picks = sorted({round(k * (len(ordered) - 1) / max(count - 1, 1)) for k in range(count)})
    ticks = tuple(_Tick(f"{i * step + bar / 2:.2f}", ordered[i].day) for i in picks)
    return _Chart(tuple(bars), ticks, peak)


def render(view: ReportView, generated_at: str) -> str:
    """Render the report.

    Args:
        view: everything the report shows, as plain values.
        generated_at: timestamp printed in the header (passed in so output is reproducible).

    Returns:
        The complete HTML document; identical inputs give identical text.

    Raises:
        ValueError: a matrix row does not have one cell per verb.
    """
    bindings = _bindings(view.bindings)
    anchors = {b.view.display: b.anchor for b in bindings}
    risks, totals = _risks(bindings)
    kubectl = view.kubectl
    template = _env().get_template("report.html.j2")
    return template.render(
        view=view,
        generated_at=generated_at,
        csp=content_security_policy(),
        bindings=_chunks(bindings),
        binding_count=len(bindings),
        subjects=_chunks(_subjects(view.subjects, anchors)),
        subject_count=len(view.subjects),
        risks=risks,
        risk_totals=totals,
        top_risks=TOP_RISKS,
        css=_CSS,
        unused_risks=sum(1 for r in risks if not r.item.used),
        chart=_chart(kubectl.days),
        kubectl_users=sorted(kubectl.users, key=lambda u: (-u.requests, u.user)),
        top_denied=sorted(kubectl.top_denied, key=lambda d: (-d.count, d.operation, d.who)),
        sessions=sorted(kubectl.sessions, key=lambda s: (s.time, s.user, s.pod, s.command)),
        warnings=sorted(view.warnings, key=lambda n: (n.kind, n.message)),
    )
