"""Unit tests of the HTML report renderer on hand-made view models (no golden files)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random
import re
from html.parser import HTMLParser

import jinja2
import pytest
from markupsafe import escape
from report_samples import GENERATED_AT, hostile_view, large_view, map_strings, sample_view

from rbac_advisor.render import report
from rbac_advisor.render.report import render
from rbac_advisor.render.report_model import (
    CellState,
    DayCount,
    KubectlActivity,
    Matrix,
    MatrixRow,
    RiskClass,
    RiskItem,
    Severity,
)

PAYLOADS = (
    "<script>document.title='pwned'</script>",
    "</script><script>document.title='pwned'</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    '" onmouseover="document.title=\'pwned\'" x="',
    "' onfocus='document.title=1' autofocus '",
    "</style><style>body{background:url(https://evil.example/x)}</style>",
    "</title><svg onload=alert(1)>",
    "<!--",
    "]]></textarea><iframe src=//evil.example>",
    "javascript:alert(1)",
    "{{ 7*7 }}{% raw %}",
    "a\u2028b\u2029c&amp;",
)

ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "link",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "h3",
    "p",
    "nav",
    "a",
    "main",
    "div",
    "input",
    "span",
    "button",
    "section",
    "b",
    "i",
    "small",
    "ul",
    "li",
    "code",
    "pre",
    "del",
    "ins",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "details",
    "summary",
    "svg",
    "line",
    "text",
    "g",
    "rect",
    "dl",
    "dt",
    "dd",
    "footer",
    "script",
}


class Page(HTMLParser):
    """Collects tags, attributes, text and raw script/style bodies of a document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._raw: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._raw = tag
            (self.scripts if tag == "script" else self.styles).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._raw:
            self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw == "script":
            self.scripts[-1] += data
        elif self._raw == "style":
            self.styles[-1] += data
        else:
            self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def html() -> str:
    return render(sample_view(), GENERATED_AT)


def section(html: str, ident: str) -> str:
    start = html.index(f'<section id="{ident}"')
    return html[start : html.index("</section>", start)]


def details(html: str, name: str) -> str:
    """The ``<details>`` block of the binding or subject whose summary names ``name``."""
    for m in re.finditer(r"<details id=\w+><summary>.*?</details>", html, re.S):
        if f"<b>{name}</b>" in m.group(0):
            return m.group(0)
    raise AssertionError(f"no details for {name}")


# ---- content -------------------------------------------------------------------------------


def test_every_section_present(html: str) -> None:
    for ident in ("summary", "risk", "bindings", "subjects", "kubectl", "warnings", "appendix"):
        assert f'<section id="{ident}"' in html
        assert f'href="#{ident}"' in html
    assert html.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert html.rstrip().endswith("</html>")


def test_summary_numbers_commands_and_proof(html: str) -> None:
    s = section(html, "summary")
    assert "kubectl apply -f roles.yaml\nkubectl delete -f prune.yaml\n" in s
    assert s.index("kubectl apply -f roles.yaml") < s.index("kubectl delete -f prune.yaml")
    assert "replayed 125269 observed requests" in s and "0 changed outcome" in s
    assert "Proof passed" in s
    assert "62.5%" in s and "(30 of 48)" in s
    assert "2024-03-03 to 2024-05-31" in s and "90 days" in s
    assert "ab" * 32 in s and "184230" in s and "dump rbac-dump.yaml" in s
    # risk totals: 2 unused secrets-read, 1 used workload-create
    row = re.search(r"<tr><td>secrets-read<td><i class=hi>high</i><td class=\"num\">(\d+)<td", s)
    assert row and row.group(1) == "2"
    row = re.search(
        r"<tr><td>workload-create<td>.*?<td class=\"num\">(\d+)<td class=\"num\">(\d+)", s
    )
    assert row and row.groups() == ("0", "1")


def test_skipped_lines_are_prominent_only_when_present() -> None:
    with_skips = section(render(sample_view(skipped=7), GENERATED_AT), "summary")
    assert 'role="alert"><b>7 input lines were skipped as malformed.</b>' in with_skips
    one = section(render(sample_view(skipped=1), GENERATED_AT), "summary")
    assert 'role="alert"><b>1 input line was skipped as malformed.</b>' in one
    clean = section(render(sample_view(skipped=0), GENERATED_AT), "summary")
    assert "skipped as malformed" not in clean
    assert '<div class="v">0</div><div class="l">input lines skipped' in clean


def test_failed_proof_is_an_alert_with_the_changed_requests() -> None:
    s = section(render(sample_view(changed=2), GENERATED_AT), "summary")
    assert "Proof failed" in s and "Do not apply" in s and "Proof passed" not in s
    assert "<li><code>get pods in shop as alice (request 1)</code>" in s


def test_binding_shows_diff_matrix_members_and_denied(html: str) -> None:
    b = details(html, "ops-admin")
    assert "<i class=rs>rescope</i> ClusterRoleBinding" in b
    assert "Group ops" in b and "last used 2024-05-30 · active 41/90 days · 907 req" in b
    assert "<i class=hi>secrets-read</i> <i class=hi>wildcard</i>" in b
    assert "ClusterRoleBinding (cluster-wide) → RoleBindings in shop, payments" in b
    assert "<del>- *: * - *  # wildcard never needed</del>" in b
    assert '<ins class="added">+ core: pods, pods/log - get, list, watch</ins>' in b
    # matrix: header and the secrets row (risky unused on get, list, watch)
    assert "<tr><th><th>get<th>list<th>watch<th>create<th>delete" in b
    assert "<tr><th>secrets<td class=r><td class=r><td class=r><td><td>" in b
    assert "<tr><td>bob<td>ops<td>95<td>2024-05-02<td>get pods/log" in b
    assert "<code>delete pods in shop</code><td>delete pods<td class=num>3" in b


def test_identical_matrix_rows_are_merged() -> None:
    view = sample_view()
    m = Matrix(
        ("get", "list"),
        (
            MatrixRow("pods", (CellState.USED, CellState.UNUSED)),
            MatrixRow("secrets", (CellState.RISKY_UNUSED, CellState.NOT_GRANTED)),
            MatrixRow("services", (CellState.USED, CellState.UNUSED)),
        ),
    )
    b0 = dataclasses.replace(view.bindings[0], matrix=m)
    out = render(dataclasses.replace(view, bindings=(b0,)), GENERATED_AT)
    assert "<tr><th>pods, services<td class=u><td class=n>" in out
    assert "<tr><th>secrets<td class=r><td>" in out


def test_uniform_matrices_are_replaced_by_a_sentence(html: str) -> None:
    idle = details(html, "legacy-debug")
    assert "<table class=m>" not in idle and "never used in 90 days" in idle
    assert "<del>- core: pods/exec - get, create</del>" in idle
    busy = details(html, "system:basic-user")
    assert "<table class=m>" not in busy and "All 1 granted permissions used." in busy
    mixed = details(html, "prometheus-view")  # kept-unobservable cells are worth showing
    assert "<td class=k>" in mixed


def test_subjects_link_to_their_bindings(html: str) -> None:
    s = details(html, "alice")
    anchor = re.search(r"<details id=(b\d+)><summary><i class=rs>", html)
    assert anchor
    assert f"<a href=#{anchor.group(1)}>ClusterRoleBinding/ops-admin</a>" in s
    assert "kubectl/v1.30.1 (linux/amd64) kubernetes/7b7e9e2" in s


def test_kubectl_activity(html: str) -> None:
    k = section(html, "kubectl")
    assert k.count('<rect class="a"') == 30 and k.count('<rect class="d"') == 30
    assert "<title>2024-05-01: 42 requests, 1 denied</title>" in k
    assert ">2024-05-01</text>" in k and ">2024-05-30</text>" in k
    assert "10.0.0.12, 10.0.0.15" in k and "get pods ×500" in k
    assert "<code>sh -c &lt;redacted&gt;</code>" in k
    assert k.index("get secrets") < k.index("delete pods in shop")  # most denied first
    assert "denied\n" in k and "port-forward" in k


def test_empty_kubectl_activity_has_no_chart() -> None:
    out = render(dataclasses.replace(sample_view(), kubectl=KubectlActivity()), GENERATED_AT)
    assert "<svg" not in out and "No kubectl requests in the window." in out


def test_warnings_and_appendix(html: str) -> None:
    w = section(html, "warnings")
    assert '<span class="kd">unresolved-roleref</span>' in w
    assert "refers to missing Role &#34;ci-old&#34;" in w
    a = section(html, "appendix")
    assert "rbac-advisor analyze --audit /var/log/kubernetes/audit --rbac rbac-dump.yaml" in a
    assert "<tr><th>skip_malformed<td><code>true</code>" in a
    assert GENERATED_AT in a and "rbac-advisor 0.1.0" in a


def test_risks_ranked_unused_first_then_severity() -> None:
    view = sample_view()
    b0 = dataclasses.replace(
        view.bindings[0],
        risks=(
            RiskItem(RiskClass.ESCALATE, Severity.LOW, "escalate roles", used=True, last_used="x"),
            RiskItem(RiskClass.BIND, Severity.MEDIUM, "bind roles"),
            RiskItem(RiskClass.IMPERSONATE, Severity.HIGH, "impersonate users"),
        ),
    )
    out = section(render(dataclasses.replace(view, bindings=(b0,)), GENERATED_AT), "risk")
    order = [out.index(p) for p in ("impersonate users", "bind roles", "escalate roles")]
    assert order == sorted(order)


def test_risk_table_is_capped_and_points_to_the_filter() -> None:
    view = sample_view()
    risks = tuple(
        RiskItem(RiskClass.SECRETS_READ, Severity.HIGH, f"get secrets in ns-{i:03d}")
        for i in range(report.TOP_RISKS + 5)
    )
    b0 = dataclasses.replace(view.bindings[0], risks=risks)
    out = section(render(dataclasses.replace(view, bindings=(b0,)), GENERATED_AT), "risk")
    assert out.count("<tr><td>") == report.TOP_RISKS
    assert "5 more dangerous grants are not listed here" in out


def test_matrix_with_wrong_cell_count_is_rejected() -> None:
    view = sample_view()
    bad = Matrix(("get", "list"), (MatrixRow("pods", (CellState.USED,)),))
    b0 = dataclasses.replace(view.bindings[0], matrix=bad)
    with pytest.raises(ValueError, match="'pods' has 1 cells for 2 verbs"):
        render(dataclasses.replace(view, bindings=(b0,)), GENERATED_AT)


def test_unknown_action_fails_loudly() -> None:
    view = sample_view()
    b0 = dataclasses.replace(view.bindings[0], action="explode")  # type: ignore[arg-type]
    with pytest.raises((jinja2.UndefinedError, KeyError)):
        render(dataclasses.replace(view, bindings=(b0,)), GENERATED_AT)


# ---- form: self-contained, CSP, script -------------------------------------------------------


def test_csp_forbids_remote_loads_and_pins_the_script(html: str) -> None:
    page = parse(html)
    # html, head, meta charset, then the policy before anything that could load
    assert [t for t, _ in page.tags[:4]] == ["html", "head", "meta", "meta"]
    meta = page.tags[3][1]
    assert meta["http-equiv"] == "Content-Security-Policy"
    csp = meta["content"] or ""
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["style-src"] == "'unsafe-inline'"
    assert directives["img-src"] == "data:"
    assert "unsafe" not in directives["script-src"]
    assert len(page.scripts) == 1
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert directives["script-src"] == f"'sha256-{digest}'"


def test_no_remote_references(html: str) -> None:
    page = parse(html)
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name not in ("src", "srcset", "action", "formaction", "background"), (tag, name)
            if name == "href":
                assert value == "data:," or re.fullmatch(r"#[a-z0-9]+", value or ""), value
    css = "".join(page.styles)
    assert "url(" not in css and "@import" not in css and "http" not in css
    assert "http" not in page.scripts[0] and "fetch" not in page.scripts[0]
    assert "eval(" not in page.scripts[0] and "innerHTML" not in page.scripts[0]


def test_readable_without_javascript(html: str) -> None:
    page = parse(html)
    tools = next(a for t, a in page.tags if t == "div" and a.get("id") == "tools")
    assert "hidden" in tools  # the filter box appears only when the script runs
    assert sum(1 for t, _ in page.tags if t == "details") >= 10
    assert sum(1 for t, _ in page.tags if t == "summary") == sum(
        1 for t, _ in page.tags if t == "details"
    )


def test_print_stylesheet_and_handlers(html: str) -> None:
    css = parse(html).styles[0]
    assert "@media print" in css and "break-inside:avoid" in css and "break-before:page" in css
    assert "details::details-content{content-visibility:visible" in css
    script = parse(html).scripts[0]
    assert '"beforeprint"' in script and '"afterprint"' in script


# ---- escaping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_strings_are_escaped_everywhere(payload: str) -> None:
    out = render(hostile_view(payload), GENERATED_AT)
    page = parse(out)
    assert len(re.findall(r"<script", out, re.I)) == 1
    assert (
        len(page.scripts) == 1 and page.scripts[0] == parse(render(sample_view(), "x")).scripts[0]
    )
    assert not re.search(r"href\s*=\s*[\"']?\s*javascript:", out, re.I)
    if any(c in payload for c in "<>\"'"):
        assert payload not in out
    assert str(escape(payload)) in out
    for tag, attrs in page.tags:
        assert tag in ALLOWED_TAGS, tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "src" not in attrs, (tag, attrs)
        if "style" in attrs:
            assert tag == "div" and re.fullmatch(
                r"contain-intrinsic-size:auto \d+px", attrs["style"] or ""
            ), attrs
    text = "".join(page.text)
    assert text.count(payload) >= 50  # the payload shows as text, in every field


def test_every_field_reaches_the_page() -> None:
    """Guards the hostile test itself: every string field of the view is printed."""
    tagged: list[str] = []

    def tag(s: str) -> str:
        tagged.append(f"{s}\u00a7{len(tagged)}\u00a7")
        return tagged[-1]

    view = map_strings(sample_view(), tag)
    out = render(view, GENERATED_AT)
    # matrices where every grant was used, or none was, are summarised in one sentence
    unprinted = {
        s
        for b in view.bindings
        if b.name.startswith(("legacy-debug", "system:basic-user"))
        for s in (*b.matrix.verbs, *(r.resource for r in b.matrix.rows))
    }
    # an unused grant has no last use to show
    unprinted |= {r.last_used for b in view.bindings for r in b.risks if not r.used}
    assert len(tagged) > 150
    missing = [t for t in tagged if str(escape(t)) not in out and t not in unprinted]
    assert missing == []


def test_very_long_strings_are_clipped_and_escaped() -> None:
    long = "<b>" + "x" * 100_000
    view = sample_view()
    b0 = dataclasses.replace(view.bindings[0], name=long)
    out = render(dataclasses.replace(view, bindings=(b0,)), GENERATED_AT)
    assert "&lt;b&gt;" + "x" * (report.MAX_TEXT - 3) + "\u2026 [98003 more characters]" in out
    assert "<b>xxx" not in out
    assert len(out) < len(render(view, GENERATED_AT)) + 5 * report.MAX_TEXT


# ---- determinism and scale ---------------------------------------------------------------------


def test_render_is_deterministic(html: str) -> None:
    assert render(sample_view(), GENERATED_AT) == html
    assert render(sample_view(), "2030-01-01T00:00:00Z") != html


def test_input_order_does_not_change_the_bytes(html: str) -> None:
    view = sample_view()
    rnd = random.Random(3)

    def shuffled(t: tuple[object, ...]) -> tuple[object, ...]:
        items = list(t)
        rnd.shuffle(items)
        return tuple(items)

    k = view.kubectl
    other = dataclasses.replace(
        view,
        bindings=shuffled(
            tuple(dataclasses.replace(b, risks=shuffled(b.risks)) for b in view.bindings)
        ),
        subjects=shuffled(view.subjects),
        warnings=shuffled(view.warnings),
        kubectl=dataclasses.replace(
            k,
            users=shuffled(k.users),
            days=shuffled(k.days),
            sessions=shuffled(k.sessions),
            top_denied=shuffled(k.top_denied),
        ),
    )
    assert render(other, GENERATED_AT) == html  # type: ignore[arg-type]


def test_day_chart_scales_to_the_peak() -> None:
    chart = report._chart((DayCount("2024-01-02", 50, 10), DayCount("2024-01-01", 100, 0)))
    first, second = chart.bars
    assert "2024-01-01" in first.title and chart.peak == 100
    assert float(first.allowed_y) == 0.0 and float(first.allowed_h) == 120.0
    assert float(second.allowed_h) == pytest.approx(48.0)
    assert float(second.denied_h) == pytest.approx(12.0)
    assert report._chart(()).bars == ()


def test_large_report_is_under_10_mb() -> None:
    view = large_view()
    out = render(view, GENERATED_AT)
    size = len(out.encode("utf-8"))
    assert size < 10_000_000, size
    assert out.count("<details id=b") == 20_000 and out.count("<details id=s") == 2_000
    # the riskiest bindings come first: the first binding carries an unused high badge
    first = re.search(r"<details id=b1><summary>.*?</summary>", out)
    assert first and "<i class=hi>" in first.group(0)
