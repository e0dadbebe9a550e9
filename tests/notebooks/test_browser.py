"""Real browser tests: JupyterLab in headless Chromium runs every notebook; the dashboard is live.

A person opening a notebook and choosing "Run All" must see it run to the end with no error and
nothing on stderr (a red box in Lab). This starts JupyterLab on loopback, opens each notebook in
Debian's Chromium through Playwright and runs all cells. For the quickstart it also checks that the
dashboard left at its end is live: two screenshots of it, around a scale (from the kernel) and a
node kill (its own "kill" button), differ, and so do its words. Screenshots are saved under
`artifacts/` (the CI keeps them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from nbk_browser import (
    CHROMIUM_FLAGS,
    chromium_path,
    jupyterlab,
    output_problems,
    run_all_cells,
    run_in_kernel,
    wait_until_all_ran,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = "notebooks/01-quickstart.ipynb"
NOTEBOOKS = sorted(p.name for p in (Path(REPO) / "notebooks").glob("*.ipynb"))
RUN_ALL_MS = 600_000  # the failover notebook runs two experiments of up to 90 s each

# Run All of the failover notebook alone takes minutes on a shared machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("NBKUBE_REQUIRE_BROWSER") == "1":
        pytest.fail(why)
    pytest.skip(why)


def _prerequisites() -> object:
    playwright_api = pytest.importorskip("playwright.sync_api")
    _require(chromium_path() is not None, "no chromium on this machine (apt-get install chromium)")
    pytest.importorskip("jupyterlab")
    os.makedirs(os.path.join(REPO, "artifacts"), exist_ok=True)
    return playwright_api


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_shows_no_error_and_nothing_on_stderr(name: str, tmp_path: Path) -> None:
    playwright_api = _prerequisites()
    # Lab serves a copy, so its autosave and checkpoints never touch the repository's notebooks.
    shutil.copytree(os.path.join(REPO, "notebooks"), tmp_path / "notebooks")
    shot = os.path.join(REPO, "artifacts", name.replace(".ipynb", ".png"))
    with jupyterlab(str(tmp_path)) as lab, playwright_api.sync_playwright() as pw:  # type: ignore[attr-defined]
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            run_all_cells(page, lab, f"notebooks/{name}", timeout_ms=90_000)
            try:
                wait_until_all_ran(page, RUN_ALL_MS)
            finally:
                page.screenshot(path=shot, full_page=True)
            assert output_problems(page) == []
            if name == "01-quickstart.ipynb":
                chips = page.locator(".jp-OutputArea-output .widget-html .nbk-chip")
                assert chips.count() >= 5  # the live dashboard at the end of Run All
                assert page.locator(".jp-OutputArea-output table.nbk-table").count() >= 1  # coloured pods
                assert page.locator(".jp-OutputArea-output img").count() >= 1  # the round-robin plot
        finally:
            browser.close()


def test_the_quickstarts_dashboard_changes_with_a_scale_and_a_node_kill(tmp_path: Path) -> None:
    playwright_api = _prerequisites()
    shutil.copytree(os.path.join(REPO, "notebooks"), tmp_path / "notebooks")
    before_png = os.path.join(REPO, "artifacts", "dashboard-before.png")
    after_png = os.path.join(REPO, "artifacts", "dashboard-after.png")
    with jupyterlab(str(tmp_path)) as lab, playwright_api.sync_playwright() as pw:  # type: ignore[attr-defined]
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            run_all_cells(page, lab, QUICKSTART, timeout_ms=90_000)
            wait_until_all_ran(page, RUN_ALL_MS)
            # the dashboard: the widget box whose chips are pods
            dashboard = page.locator(".jp-OutputArea-output .nbk-dashboard").last
            dashboard.scroll_into_view_if_needed()
            header = dashboard.locator(".nbk-dashboard-title")
            before_text = header.inner_text()
            assert "3 nodes" in before_text and "NotReady" not in before_text
            before = dashboard.screenshot(path=before_png)

            run_in_kernel(
                page,
                'cluster.api.patch("ReplicationController", "web-test-controller", "default", '
                '{"spec": {"replicas": 8}})',
            )
            dashboard.locator("button", has_text="kill").first.click()  # the node dropdown's first: node-1
            page.wait_for_function(
                "(el) => el.innerText.includes('NotReady')", arg=header.element_handle(), timeout=60_000
            )
            page.wait_for_function(
                "(el) => el.querySelectorAll('.nbk-chip').length >= 8",
                arg=dashboard.element_handle(),
                timeout=60_000,
            )
            after_text = header.inner_text()
            after = dashboard.screenshot(path=after_png)
            assert after != before and after_text != before_text
            assert "1 NotReady" in after_text
        finally:
            browser.close()
