"""The dashboard on 24 hours of 1 s data: the uPlot page against the Plotly page it replaced,
and what eight dashboard clients cost the service being watched.

1. API latency (p50, p99) of /api/panels and /api/explain over real HTTP.
2. Time to first chart and to interactive in headless Chromium (Debian's), the page of this
   checkout against the Plotly page as of the commit before it was replaced (rebuilt from
   git history at bench time: its index.html, dashboard.js and figure.py, plotly.min.js from
   the plotly package), each opening on its default view (the Plotly page: the last hour
   of 1 s samples; the uPlot page: all the data, the day), in the same run; prints the
   ratio.
   First chart: the animation frame after the page marks its chart drawn; interactive: the
   first idle moment of the main thread (requestIdleCallback) once the spike markers are
   drawn too (the uPlot page asks for them after its first chart).
3. `bf42-stats serve` on a store pre-filled with that day: stats_collection run time and the
   service's RSS while idle and while eight clients load the 24 h panels (each opened
   through the service, which redirects it to the dashboard's own process, as a browser
   is), in phases idle, loaded, loaded, idle so that the service's slow drift cancels;
   prints the latency ratio and the RSS growth. `--control` runs the same phases with no
   client at all: what the service's own drift and the machine's load alone give.

    python benchmarks/bench_dashboard.py [--requests 20] [--loads 5] [--seconds 60] [--control]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from bench_explain import build
from jobcorr.analysis import survey
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.store import Store
from jobcorr.web.app import dashboard_app
from jobcorr.web.server import BackgroundServer

ROOT = Path(__file__).parent.parent
CLIENTS = 8
SETTLE_SECONDS = 180
"""Start-up, the first runs and the dashboard's process, before anything is measured. The
service's RSS climbs ~20 MB over its first two to three minutes on its own, not in a line,
so the symmetric phases do not cancel it: with no client at all, 30 s phases after a 60 s
settle had RSS medians of 330, 346, 348 and 348 MB (benchmarks/RESULTS.md)."""
WEB = "src/jobcorr/web/"
OLD_FILES = tuple(
    WEB + name
    for name in ("figure.py", "static/index.html", "static/dashboard.js", "static/dashboard.css")
)
MARK_TIMES = """
window.__bench = {};
new MutationObserver(() => {
  const chart = document.getElementById("chart");
  const marks = window.__bench;
  if (!chart) return;
  if (!("firstChart" in marks) && (chart.dataset.traces || chart.dataset.drawn)) {
    marks.firstChart = null;
    requestAnimationFrame(() => { marks.firstChart = performance.now(); });
  }
  // Interactive: spike markers drawn too (the Plotly page draws them with its chart).
  if (!("interactive" in marks) && (chart.dataset.traces || chart.dataset.spikes)) {
    marks.interactive = null;
    requestAnimationFrame(() => requestIdleCallback(() => {
      marks.interactive = performance.now();
    }));
  }
}).observe(document, { subtree: true, childList: true, attributes: true });
"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def git_show(revision: str, path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def plotly_page(store: Path) -> Starlette:
    """Today's API plus the page it replaced, rebuilt from git (the commit before figure.py
    was deleted)."""
    deleted = subprocess.run(
        ["git", "log", "-1", "--format=%H", "--diff-filter=D", "--", OLD_FILES[0]],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    old = {Path(path).name: git_show(f"{deleted}^", path) for path in OLD_FILES}
    figure = types.ModuleType("old_figure")
    exec(compile(old["figure.py"], "old_figure.py", "exec"), figure.__dict__)
    plotly = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))

    def figure_json(request: Request) -> Response:
        end = float(request.query_params["to"])
        start = float(request.query_params["from"])
        timeline = EmbeddedTimeline(store)
        try:
            found = [s for m in ("memory", "cpu") for s in survey(timeline, start, end, metric=m)]
            width = int(request.query_params.get("width", "1200"))
            return JSONResponse(
                figure.build_figure(timeline, start, end, width=width, spikes=found)
            )
        finally:
            timeline.close()

    static: dict[str, Callable[[Request], Response]] = {
        "plotly.min.js": lambda request: FileResponse(plotly),
        "dashboard.js": lambda request: Response(old["dashboard.js"], media_type="text/javascript"),
        "dashboard.css": lambda request: Response(old["dashboard.css"], media_type="text/css"),
    }
    return Starlette(routes=[
        Route("/", lambda request: HTMLResponse(old["index.html"])),
        *[Route(f"/static/{name}", handler) for name, handler in static.items()],
        Route("/api/figure", figure_json),
        Mount("/", dashboard_app(lambda: EmbeddedTimeline(store))),
    ])  # fmt: skip


def page_times(url: str, loads: int) -> tuple[list[float], list[float]]:
    """Seconds to first chart and to interactive, per fresh page load."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium for the page timing")
    first, interactive = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(loads):
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.add_init_script(MARK_TIMES)
            page.goto(url)
            page.wait_for_function(
                "() => window.__bench.interactive && window.__bench.firstChart", timeout=120_000
            )
            marks = page.evaluate("() => window.__bench")
            first.append(marks["firstChart"] / 1000)
            interactive.append(marks["interactive"] / 1000)
            page.close()
        browser.close()
    return first, interactive


def api_latency(url: str, end: float, spike_at: float, requests: int) -> None:
    calls = {
        "/api/panels (24 h, 1400 px)": ("/api/panels", {"to": str(end), "width": "1400"}),
        "/api/explain (at the spike)": ("/api/explain", {"at": str(spike_at + 30)}),
    }
    with httpx.Client(base_url=url, timeout=120) as client:
        for label, (route, params) in calls.items():
            client.get(route, params=params).raise_for_status()  # warm
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                client.get(route, params=params).raise_for_status()
                samples.append(time.perf_counter() - started)
            p50, p99 = percentiles(samples)
            print(f"{label:30s} p50 {p50 * 1000:7.0f} ms   p99 {p99 * 1000:7.0f} ms")


def compare_pages(store: Path, loads: int) -> None:
    new = BackgroundServer(dashboard_app(lambda: EmbeddedTimeline(store))).start()
    old = BackgroundServer(plotly_page(store)).start()
    results: dict[str, tuple[float, float]] = {}
    try:
        for label, server in (("uPlot page (this checkout)", new), ("Plotly page (before)", old)):
            first, ready = page_times(f"{server.url}/", loads)
            results[label] = (statistics.median(first), statistics.median(ready))
            print(f"{label:28s} first chart {fmt(first)}   interactive {fmt(ready)}")
    finally:
        new.stop()
        old.stop()
    (new_first, new_ready), (old_first, old_ready) = results.values()
    print(f"ratio (Plotly / uPlot, medians): first chart {old_first / new_first:.1f}x, "
          f"interactive {old_ready / new_ready:.1f}x")  # fmt: skip


def fmt(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples):.2f} s (range {min(samples):.2f}-{max(samples):.2f})"
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def watch(pid: int, store: Path, seconds: float) -> tuple[list[float], list[float]]:
    """The service's RSS each second, and stats_collection runs that ended, over `seconds`."""
    started = time.time()
    rss = []
    while time.time() < started + seconds:
        rss.append(rss_mb(pid))
        time.sleep(1)
    recorded = Store(store, readonly=True)
    try:
        runs = recorded.runs(started, time.time(), job="stats_collection")
    finally:
        recorded.close()
    durations = [r.ended_at - r.started_at for r in runs if r.ended_at and r.started_at >= started]
    return rss, durations


def load(url: str, stop: threading.Event, served: list[int]) -> None:
    """One client: open the page through the service, then ask the dashboard's process for
    the 24 h panels again and again, as the page's refreshes do."""
    with httpx.Client(timeout=120, follow_redirects=True) as client:
        dashboard = client.get(f"{url}/").url.copy_with(path="/api/panels")
        while not stop.is_set():
            client.get(dashboard, params={"from": "-24h", "width": "1400"})
            served.append(1)


def loaded(
    url: str, pid: int, store: Path, seconds: float, clients: int
) -> tuple[list[float], list[float], int]:
    """`watch` while `clients` clients load the panels; also how many answers they got."""
    stop, served = threading.Event(), []
    threads = [threading.Thread(target=load, args=(url, stop, served)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        return (*watch(pid, store, seconds), len(served))
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def observer_cost(store_template: Path, seconds: float, clients: int) -> None:
    with tempfile.TemporaryDirectory() as data:
        store = Path(data) / "jobcorr.sqlite3"
        shutil.copy(store_template, store)
        port = free_port()
        service = subprocess.Popen(
            [sys.executable, "-m", "bf42stats.cli", "serve", "--demo", "--speed", "10",
             "--incident", "", "--sync-strategy", "batched", "--port", str(port),
             "--data-dir", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        idle_rss, idle_runs, busy_rss, busy_runs, served = [], [], [], [], 0
        try:
            time.sleep(SETTLE_SECONDS)
            for phase in ("idle", "loaded", "loaded", "idle"):
                if phase == "idle":
                    rss, runs = watch(service.pid, store, seconds)
                    idle_rss, idle_runs = idle_rss + rss, idle_runs + runs
                else:
                    rss, runs, answered = loaded(url, service.pid, store, seconds, clients)
                    busy_rss, busy_runs = busy_rss + rss, busy_runs + runs
                    served += answered
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(120)
    idle, busy = statistics.median(idle_runs), statistics.median(busy_runs)
    print(
        f"stats_collection run, idle: median {idle * 1000:.0f} ms ({len(idle_runs)} runs); "
        f"{clients} clients on the 24 h panels ({served} answered): median "
        f"{busy * 1000:.0f} ms ({len(busy_runs)} runs); ratio {busy / idle:.2f}"
    )
    print(
        f"service RSS, idle: median {statistics.median(idle_rss):.1f} MB; with {clients} "
        f"clients: median {statistics.median(busy_rss):.1f} MB, max {max(busy_rss):.1f} MB; "
        f"growth {statistics.median(busy_rss) - statistics.median(idle_rss):+.1f} MB"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--loads", type=int, default=5, help="page loads per page")
    parser.add_argument("--seconds", type=float, default=30, help="per phase (four phases)")
    parser.add_argument(
        "--control", action="store_true", help="the service phases with no client (drift alone)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "day.sqlite3"
        end, spike_at = build(store, 1)
        server = BackgroundServer(dashboard_app(lambda: EmbeddedTimeline(store))).start()
        try:
            api_latency(server.url, end, spike_at, args.requests)
        finally:
            server.stop()
        compare_pages(store, args.loads)
        observer_cost(store, args.seconds, 0 if args.control else CLIENTS)


if __name__ == "__main__":
    main()
