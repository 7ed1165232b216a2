"""The HTML report in a real browser (headless Chromium driven by Playwright): no console error, every
image decoded, every link of the table of contents lands on an element, and a screenshot is saved.

CI installs Debian's chromium and Playwright for Python (``.ci/run``) and sets BILEVELBENCH_REQUIRE_BROWSER=1,
so there the test cannot skip; elsewhere it skips when either is missing.
"""

from __future__ import annotations

import os
import shutil

import pytest

from bilevelbench.cli import main as cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _browser():
    required = os.environ.get("BILEVELBENCH_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        if required:
            raise FileNotFoundError(CHROMIUM)
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright


def test_report_in_headless_chromium(tmp_path):
    sync_playwright = _browser()
    out = tmp_path / "report"
    assert cli(["verify", "--claims", "icml21.prop2,icml21.thm1.rates,icml21.thm1.bound", "--out", str(out)]) == 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        missing = page.evaluate("""Array.from(document.querySelectorAll('nav#toc a')).map(a => a.getAttribute('href'))
            .filter(h => !document.getElementById(decodeURIComponent(h.slice(1))))""")
        toc = page.evaluate("document.querySelectorAll('nav#toc a').length")
        anchor = page.evaluate("!!document.getElementById('icml21.thm1.rates')")
        page.screenshot(path=str(out / "screenshot.png"), full_page=False)
        browser.close()
    assert not errors, errors
    assert images and all(ok and w > 0 for _, ok, w in images), [a for a, ok, w in images if not (ok and w > 0)]
    assert toc >= 3 + 2 and not missing, missing  # every claim, the headline, reference and environment
    assert anchor
    assert (out / "screenshot.png").stat().st_size > 10_000
