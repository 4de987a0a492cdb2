"""Dashboard latency on 24 hours of 1 s data, and the page's time to first chart.

Builds a store with one day at 1 s for 30 series (bench_explain's generator), serves the
dashboard on loopback, and measures over real HTTP the p50 and p99 latency of the API
calls the page makes for a 24 h view (/api/figure, width 1400), of /api/series, and of
/api/explain. Then loads the page in headless Chromium (Debian's) and times navigation
to the first drawn chart, against the same page with an empty figure.

    python benchmarks/bench_dashboard.py [--requests 40]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from bench_explain import build
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.web.app import dashboard_app
from jobcorr.web.server import BackgroundServer


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def first_chart_seconds(url: str, repeat: int = 5) -> float:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium for the page timing")
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(repeat):
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            started = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("#chart[data-traces]", timeout=60_000)
            times.append(time.perf_counter() - started)
            page.close()
        browser.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "day.sqlite3"
        end, spike_at = build(path, 1)
        empty = Path(tmp) / "empty.sqlite3"
        build(empty, 1 / 24 / 60)  # one minute: the page's fixed cost
        server = BackgroundServer(dashboard_app(lambda: EmbeddedTimeline(path))).start()
        baseline = BackgroundServer(dashboard_app(lambda: EmbeddedTimeline(empty))).start()
        try:
            calls = {
                "/api/figure (24 h, 1400 px)": ("/api/figure", {"from": str(end - 86400),
                                                                "to": str(end), "width": "1400"}),
                "/api/series (24 h, 1400 px)": ("/api/series", {"from": str(end - 86400),
                                                                "to": str(end), "width": "1400"}),
                "/api/explain (at the spike)": ("/api/explain", {"at": str(spike_at + 30)}),
            }  # fmt: skip
            with httpx.Client(base_url=server.url, timeout=120) as client:
                for label, (route, params) in calls.items():
                    client.get(route, params=params).raise_for_status()  # warm
                    samples = []
                    for _ in range(args.requests):
                        started = time.perf_counter()
                        client.get(route, params=params).raise_for_status()
                        samples.append(time.perf_counter() - started)
                    p50, p99 = percentiles(samples)
                    print(f"{label:30s} p50 {p50 * 1000:7.0f} ms   p99 {p99 * 1000:7.0f} ms")
            page = first_chart_seconds(f"{server.url}/")
            empty_page = first_chart_seconds(f"{baseline.url}/")
            print(
                f"page, time to first chart (24 h of data): {page:.2f} s   (one minute of "
                f"data: {empty_page:.2f} s, ratio {page / empty_page:.1f})"
            )
        finally:
            server.stop()
            baseline.stop()


if __name__ == "__main__":
    main()
