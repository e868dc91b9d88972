"""The HTML report in a real headless Chromium, driven over the DevTools protocol.

Chromium comes from ``scripts/install-chromium.sh``; without it these tests fail in CI and
are skipped elsewhere.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import Chromium, find_chromium
from corpus import missing
from report_samples import GENERATED_AT, hostile_view, large_view, sample_view

from rbac_advisor.render.report import render

pytestmark = pytest.mark.browser

PAINTED = (
    "new Promise(r => requestAnimationFrame(() => requestAnimationFrame("
    "() => r(performance.now()))))"
)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        missing("chromium not installed: run scripts/install-chromium.sh")
    browser = Chromium(tmp_path_factory.mktemp("chromium-profile"), binary)
    browser.start()
    try:
        yield browser
    finally:
        browser.stop()


@pytest.fixture(scope="module")
def sample_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render(sample_view(), GENERATED_AT), encoding="utf-8")
    return path.as_uri()


@pytest.fixture
def page(chromium: Chromium, sample_url: str) -> Chromium:
    chromium.send("Emulation.setScriptExecutionDisabled", value=False)
    chromium.navigate(sample_url)
    return chromium


def visible(browser: Chromium, selector: str) -> list[str]:
    """Summary texts of the elements matching ``selector`` that are laid out."""
    return browser.evaluate(  # type: ignore[no-any-return]
        f"[...document.querySelectorAll({json.dumps(selector)})]"
        ".filter(e => e.checkVisibility()).map(e => (e.querySelector('summary') || e).textContent)"
    )


def wait_for(browser: Chromium, expression: str, timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {expression}")


def test_loads_offline_without_errors(page: Chromium, sample_url: str) -> None:
    assert page.errors() == []
    assert page.requests() == [sample_url]
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0
    assert page.evaluate("document.title").startswith("RBAC access review")
    # the script ran: the filter box is shown
    assert page.evaluate("document.getElementById('tools').checkVisibility()") is True


def test_filter_hides_non_matching_items(page: Chromium) -> None:
    total = page.evaluate("document.querySelectorAll('.ch > details').length")
    page.type_text("#q", "carol")
    wait_for(page, "document.getElementById('qn').textContent")
    shown = visible(page, ".ch > details")
    assert len(shown) == 2 and all("carol" in s for s in shown)
    assert any("legacy-debug" in s for s in shown)  # the binding whose subject is carol
    assert page.evaluate("document.getElementById('qn').textContent").startswith("2 of ")
    # kubectl users and risk rows filter too: carol made no kubectl requests
    assert visible(page, "#kubectl tbody.list > tr") == []
    page.send("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape")
    wait_for(page, "!document.getElementById('qn').textContent")
    assert len(visible(page, ".ch > details")) == total


def test_filter_with_no_match_says_so(page: Chromium) -> None:
    page.type_text("#q", "no-such-thing-anywhere")
    wait_for(page, "document.getElementById('qn').textContent")
    assert visible(page, ".ch > details") == []
    message = page.evaluate(
        "getComputedStyle(document.querySelector('#bindings .list'), '::after').content"
    )
    assert "No items match" in message


def test_details_collapse_and_expand(page: Chromium) -> None:
    body = "document.querySelector('#b1 > pre')"
    assert page.wait_for("document.getElementById('b1').open === false")
    assert page.evaluate(f"{body}.checkVisibility()") is False
    page.click("#b1 > summary")
    assert page.wait_for("document.getElementById('b1').open")
    assert page.evaluate(f"{body}.checkVisibility()") is True
    assert page.evaluate(f"{body}.getBoundingClientRect().height") > 10
    page.click("#b1 > summary")
    assert page.wait_for("document.getElementById('b1').open === false")
    page.click("#ex")
    assert page.evaluate("[...document.querySelectorAll('.ch > details')].every(d => d.open)")
    page.click("#co")
    assert (
        page.evaluate("[...document.querySelectorAll('.ch > details')].some(d => d.open)") is False
    )


def test_print_opens_every_section(page: Chromium, tmp_path: Path) -> None:
    closed = "document.querySelectorAll('details:not([open])').length"
    assert page.evaluate(closed) > 5
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    assert page.evaluate(closed) == 0
    page.evaluate("window.dispatchEvent(new Event('afterprint'))")
    assert page.evaluate(closed) > 5
    pdf = base64.b64decode(page.send("Page.printToPDF", printBackground=True)["data"])
    (tmp_path / "report.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
    assert page.errors() == []


def test_readable_without_javascript(chromium: Chromium, sample_url: str) -> None:
    chromium.send("Emulation.setScriptExecutionDisabled", value=True)
    try:
        chromium.navigate(sample_url)
        assert chromium.evaluate("document.getElementById('tools').checkVisibility()") is False
        text = chromium.evaluate("document.body.innerText")
        assert "kubectl apply -f roles.yaml" in text and "legacy-debug" in text
        body = "document.querySelector('#b2 > pre').checkVisibility()"
        assert chromium.evaluate(body) is False
        chromium.send("Emulation.setEmulatedMedia", media="print")
        assert chromium.evaluate(body) is True  # print CSS shows closed sections
        chromium.send("Emulation.setEmulatedMedia", media="")
        assert chromium.wait_for(f"{body} === false")  # screen layout is back before clicking
        chromium.click("#b1 > summary")  # native details still toggle
        assert chromium.wait_for("document.getElementById('b1').open")
    finally:
        chromium.send("Emulation.setScriptExecutionDisabled", value=False)


def test_screenshot(page: Chromium, tmp_path: Path) -> None:
    top = page.screenshot(tmp_path / "report-top.png")
    page.evaluate("document.getElementById('b3').open = true; 0")
    page.evaluate("document.getElementById('b3').scrollIntoView(); 0")
    binding = page.screenshot(tmp_path / "report-binding.png")
    for shot in (top, binding):
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 30_000
    print(f"screenshots: {top} {binding}")


@pytest.mark.parametrize(
    "payload",
    [
        "<img src=x onerror=\"document.title='pwned'\">",
        "</script><script>document.title='pwned'</script>",
        '"><svg onload="document.title=\'pwned\'">',
    ],
)
def test_hostile_names_do_not_execute(chromium: Chromium, tmp_path: Path, payload: str) -> None:
    path = tmp_path / "hostile.html"
    view = hostile_view(payload)
    path.write_text(render(view, GENERATED_AT), encoding="utf-8")
    chromium.navigate(path.as_uri())
    chromium.evaluate(PAINTED)
    title = chromium.evaluate("document.title")
    assert title == f"{view.title} \u2013 {view.cluster}"
    assert title != "pwned"
    assert chromium.requests() == [path.as_uri()]
    assert chromium.errors() == []
    assert chromium.evaluate("document.querySelectorAll('script, img, svg[onload]').length") == 1
    assert payload in chromium.evaluate("document.body.innerText")


def test_large_report_loads_and_filters(chromium: Chromium, tmp_path: Path) -> None:
    """A 20,000-binding report loads offline and filters; its speed is measured by
    ``bench/bench_report_browser.py``, not here."""
    path = tmp_path / "large.html"
    html = render(large_view(), GENERATED_AT)
    path.write_text(html, encoding="utf-8")
    assert path.stat().st_size < 10_000_000
    chromium.navigate(path.as_uri())
    assert chromium.evaluate(PAINTED) > 0
    assert chromium.errors() == []
    assert chromium.requests() == [path.as_uri()]
    chromium.type_text("#q", "secrets-read team-007")
    wait_for(chromium, "document.getElementById('qn').textContent")
    hits = visible(chromium, ".ch > details")
    assert hits and all("team-007" in h and "secrets-read" in h for h in hits)
