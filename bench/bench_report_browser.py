"""Benchmark: a large review report in headless Chromium (first paint, and the filter).

    python bench/bench_report_browser.py [--repeat 3]

Renders the 20,000-binding, 2,000-subject report of the browser tests (about 9.7 MB),
loads it from disk with the network off and reports the time to the first full paint
(best of ``--repeat`` loads) and the time the filter box takes to narrow 22,000 items to
those matching two words. Targets: both under 3 s on this machine. Needs Chromium
(``scripts/install-chromium.sh``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's Chromium driver and samples

from browser import Chromium, find_chromium  # noqa: E402
from report_samples import GENERATED_AT, large_view  # noqa: E402

from rbac_advisor.render.report import render  # noqa: E402

PAINTED = (
    "new Promise(r => requestAnimationFrame(() => requestAnimationFrame("
    "() => r(performance.now()))))"
)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=3, help="loads to time (the best is kept)")
    a = ap.parse_args()
    binary = find_chromium()
    if binary is None:
        sys.exit("bench_report_browser: Chromium not found (run scripts/install-chromium.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.html"
        path.write_text(render(large_view(), GENERATED_AT), encoding="utf-8")
        browser = Chromium(Path(tmp) / "profile", binary)
        browser.start()
        try:
            paints = []
            for _ in range(a.repeat):
                browser.navigate(path.as_uri())
                paints.append(browser.evaluate(PAINTED) / 1000.0)
            start = time.monotonic()
            browser.type_text("#q", "secrets-read team-007")
            shown = ""
            while not shown and time.monotonic() - start < 30:
                shown = browser.evaluate("document.getElementById('qn').textContent")
                time.sleep(0.02)
            filtered = time.monotonic() - start
        finally:
            browser.stop()
        size = path.stat().st_size
    loads = ", ".join(f"{t:.2f}" for t in paints)
    print(f"report: {size:,} bytes; first paint {min(paints):.2f} s (loads: {loads} s)")
    print(f"filter over 22,000 items: {filtered:.2f} s ({shown})")


if __name__ == "__main__":
    main()
