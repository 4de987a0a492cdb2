"""The dashboard in real headless Chromium (Debian's), driven by Playwright.

The page loads with no console errors, every panel draws data from a running bf42-stats,
clicking a ground-truth spike names the right job, and the range picker changes the data.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.web.app import dashboard_app
from jobcorr.web.server import BackgroundServer
from scenarios.harness import Ran
from support import bf42_stats, free_port, require_tool

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=require_tool("chromium", "chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"],
        )  # fmt: skip
        yield launched
        launched.close()


def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("#chart[data-traces]", timeout=30_000)
    return page, errors


def panel_points(page: Page) -> dict[str, int]:
    """Points drawn per panel (y axis), read from the figure Plotly drew."""
    return page.evaluate("""() => {
        const counts = {};
        for (const trace of document.getElementById("chart").data) {
            const axis = trace.yaxis || "y";
            counts[axis] = (counts[axis] || 0) + (trace.x ? trace.x.length : 0);
        }
        return counts;
    }""")


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
                runs = httpx.get(f"{url}/api/runs", params={"from": "-5m"}, timeout=5).json()
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
    points = panel_points(page)
    for axis in ("y", "y2", "y3", "y4", "y5", "y6"):
        assert points.get(axis, 0) > 0, (axis, points)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-bf42-stats.png"), full_page=True)
    assert errors == []

    before = page.evaluate("() => document.getElementById('chart').layout.xaxis.range")
    page.click("button[data-range='900']")
    page.wait_for_function(
        """(before) => {
            const range = document.getElementById("chart").layout.xaxis.range;
            return range[1] - range[0] < 1000 * 1000 && range[0] !== before[0];
        }""",
        arg=before,
        timeout=15_000,
    )
    after = page.evaluate("() => document.getElementById('chart').layout.xaxis.range")
    assert after[1] - after[0] == pytest.approx(900_000, rel=0.01)
    assert before[1] - before[0] == pytest.approx(3_600_000, rel=0.01)
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
        page.wait_for_function(
            """() => { const r = document.getElementById("chart").layout.xaxis.range;
                       return r[1] - r[0] < 60 * 1000; }""",
            timeout=15_000,
        )
        spike = page.evaluate("""() => {
            // Where Plotly drew the highest memory spike marker, in page pixels.
            const chart = document.getElementById("chart");
            const layout = chart._fullLayout;
            const trace = chart.data.find(t => t.meta && t.meta.spike && t.yaxis === "y");
            const best = trace.y.indexOf(Math.max(...trace.y));
            const box = chart.getBoundingClientRect();
            return {
                x: box.left + layout.xaxis._offset + layout.xaxis.l2p(trace.x[best]),
                y: box.top + layout.yaxis._offset + layout.yaxis.l2p(trace.y[best]),
            };
        }""")
        page.mouse.move(spike["x"], spike["y"])
        page.wait_for_timeout(300)
        page.mouse.click(spike["x"], spike["y"])
        page.wait_for_selector("#explanation:not([hidden])", timeout=15_000)
        conclusion = page.text_content("#conclusion")
        assert conclusion is not None and conclusion.startswith(scenario.spec["guilty"])
        assert scenario.spec["guilty"] in page.text_content("#evidence tbody")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-explained-spike.png"), full_page=True)
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
