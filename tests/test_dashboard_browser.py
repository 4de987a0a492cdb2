"""The dashboard in real headless Chromium (Debian's), driven by Playwright.

The page loads with no console errors, every panel draws data from a running bf42-stats
(whose dashboard is a process of its own), clicking a ground-truth spike names the right
job, `/?at=...&metric=...` opens a moment's explanation, and the range picker changes the
data. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import Browser, Page

from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.web.app import dashboard_app
from jobcorr.web.server import BackgroundServer
from scenarios.harness import Ran
from support import bf42_stats, free_port, open_page

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
PANELS = ("memory", "jobs", "volume", "gc", "cpu", "logs")


def panel_points(page: Page) -> list[int]:
    """Points (runs, for the jobs panel) each stacked panel drew, top to bottom."""
    counts = page.eval_on_selector_all("#chart section.panel", "s => s.map(p => p.dataset.points)")
    return [int(count) for count in counts]


def wait_for_span(page: Page, low: float, high: float) -> None:
    """Until the panels show a range lasting between `low` and `high` seconds."""
    page.wait_for_function(
        """([low, high]) => { const c = document.getElementById("chart").dataset;
                              return low < c.to - c.from && c.to - c.from < high; }""",
        arg=[low, high],
        timeout=15_000,
    )


def shown_range(page: Page) -> tuple[float, float]:
    values = page.eval_on_selector("#chart", "c => [c.dataset.from, c.dataset.to]")
    return float(values[0]), float(values[1])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = bf42_stats("serve", "--demo", "--speed", "60", "--port", str(port),
                         "--data-dir", str(tmp_path_factory.mktemp("served")))  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                runs = httpx.get(
                    f"{url}/api/runs", params={"from": "-5m"}, timeout=5, follow_redirects=True
                ).json()
                if len({run["job"] for run in runs.get("runs", [])}) == 4:
                    time.sleep(3)
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


def test_every_panel_draws_data_from_a_running_service(browser: Browser, service: str) -> None:
    page, errors = open_page(browser, f"{service}/")
    # bf42-stats redirected the page to the dashboard's own process.
    assert urlparse(page.url).port != urlparse(service).port
    points = panel_points(page)
    assert len(points) == len(PANELS) and all(count > 0 for count in points), points
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-bf42-stats.png"), full_page=True)
    start, end = shown_range(page)
    assert end - start == pytest.approx(15 * 60, abs=2)  # fits the young data: 15 minutes
    page.click("button[data-range='3600']")
    wait_for_span(page, 3000, 4000)
    start, end = shown_range(page)
    assert end - start == pytest.approx(3600, abs=2)
    assert errors == []


def test_clicking_a_spike_explains_it_naming_the_right_job(
    browser: Browser, ran: list[Ran]
) -> None:
    scenario = next(r for r in ran if r.spec["guilty"] and r.spec["metric"] == "memory")
    server = BackgroundServer(dashboard_app(lambda: EmbeddedTimeline(scenario.store))).start()
    try:
        page, errors = open_page(browser, f"{server.url}/")
        page.uncheck("#refresh")  # hold the time axis still while aiming at the marker
        local = "%Y-%m-%dT%H:%M:%S"
        page.fill("#from", datetime.fromtimestamp(scenario.started - 5).strftime(local))
        page.fill("#to", datetime.fromtimestamp(scenario.started + 25).strftime(local))
        page.click("#apply")
        wait_for_span(page, 0, 60)
        page.wait_for_selector("button.spike[data-metric='memory']", timeout=30_000)
        markers = page.eval_on_selector_all(
            "button.spike[data-metric='memory']", "bs => bs.map(b => Number(b.dataset.at))"
        )
        nearest = min(markers, key=lambda at: abs(at - scenario.spike_at))
        page.click(f"button.spike[data-metric='memory'][data-at='{nearest}']")
        page.wait_for_selector("#explanation:not([hidden])", timeout=15_000)
        conclusion = page.text_content("#conclusion")
        assert conclusion is not None and conclusion.startswith(scenario.spec["guilty"])
        assert scenario.spec["guilty"] in page.text_content("#evidence tbody")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-explained-spike.png"), full_page=True)
        assert errors == []
    finally:
        server.stop()


def test_a_url_with_a_moment_opens_its_explanation(browser: Browser, ran: list[Ran]) -> None:
    """The form Grafana's "Explain this moment" links use: /?at=<unix seconds>&metric=..."""
    scenario = next(r for r in ran if r.spec["guilty"] and r.spec["metric"] == "memory")
    server = BackgroundServer(dashboard_app(lambda: EmbeddedTimeline(scenario.store))).start()
    try:
        page, errors = open_page(
            browser, f"{server.url}/?at={scenario.spike_at + 0.3}&metric=memory&window=3s"
        )
        conclusion = page.text_content("#conclusion")
        assert conclusion is not None and conclusion.startswith(scenario.spec["guilty"])
        assert page.text_content("#headline") == conclusion
        start, end = shown_range(page)
        assert start < scenario.spike_at < end
        assert errors == []
    finally:
        server.stop()


def test_explain_png_renders_the_report(ran: list[Ran], tmp_path: Path) -> None:
    import subprocess
    import sys

    from jobcorr.times import iso_local

    scenario = next(r for r in ran if r.spec["guilty"] and r.spec["metric"] == "memory")
    png = ARTIFACTS / "explain-report.png"
    ARTIFACTS.mkdir(exist_ok=True)
    png.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "explain", "--source", f"embedded:{scenario.store}",
         "--at", iso_local(scenario.spike_at + 0.3), "--window", "3s", "--history", "60s",
         "--png", str(png)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 30_000
