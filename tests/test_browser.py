"""The search page in headless Chromium (Debian's ``chromium``, driven by playwright): type a query,
see results with scores and highlighted titles.

Skips where Chromium or playwright is missing, unless ``DSSM_REQUIRE_BROWSER=1`` (set by .ci/run after
``apt-get install chromium``), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support import ServerProcess, start_uvicorn

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def _missing(why: str) -> None:
    if os.environ.get("DSSM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DSSM_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


def chromium_path() -> str:
    for name in (os.environ.get("DSSM_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    _missing("no Chromium installed (apt-get install chromium)")
    raise AssertionError("unreachable")


def test_search_page_shows_results(tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path,
                                   server_factory: list[ServerProcess]) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    exe = chromium_path()
    srv = start_uvicorn(tmp_path, model_dir=str(tiny_model_dir), index_dir=str(tiny_index_dir))
    server_factory.append(srv)
    srv.wait("/ready", 200)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.url + "/", wait_until="load")
            assert page.title() == "LSTM-DSSM search"
            page.fill("#q", "What are the symptoms of kalo disease?")
            page.press("#q", "Enter")
            page.wait_for_selector("#results li.result", timeout=20_000)
            items = page.locator("#results li.result")
            assert items.count() == 10
            first = items.nth(0)
            assert "score" in first.locator(".scores").inner_text()
            assert first.locator(".text").inner_text().strip()
            # query words in titles are highlighted (titles are entity names: "Kalo Disease" …)
            assert page.locator("#results .title mark").count() >= 1
            assert page.locator("#results .title mark").first.inner_text().lower() in {"kalo", "disease"}
            assert "results in" in page.inner_text("#status")
            assert "q=" in page.url  # the search is in the address, so it can be shared

            # the URL form runs its search on load; hybrid mode from the select
            page.goto(srv.url + "/?q=treatment&mode=hybrid&top_k=5")
            page.wait_for_selector("#results li.result")
            assert page.locator("#results li.result").count() == 5
            assert "cosine" in page.locator("#results .scores").first.inner_text()

            # an error (query over the length limit) is shown, not swallowed
            page.fill("#q", "x" * 1500)
            page.press("#q", "Enter")
            page.wait_for_selector("#status.error")
            assert "1000" in page.inner_text("#status")
            assert not errors, errors
        finally:
            browser.close()
