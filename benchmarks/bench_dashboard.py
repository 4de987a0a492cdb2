"""The dashboard on 24 hours of 1 s data: the uPlot page against the Plotly page it replaced,
and what eight dashboard clients cost the service being watched.

1. API latency (p50, p99) of /api/panels and /api/explain over real HTTP, each answer
   computed afresh (parts 1 and 2 do not share answers between requests; part 3 does, as
   shipped).
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
   service's RSS while eight clients ask for the 24 h panels, each once a second (or with
   `--pace 0` without pause), against no client. Rounds of three 12 s phases, in a new
   random order each round: clients, idle, and control (no client either: its ratio to
   idle is the method's noise band). Each round's clients and control phases are compared
   with that round's idle phase, so the service's own drift (its world's players, its
   store's growth) cancels; prints the median over rounds of the latency ratio and the RSS
   growth, with the middle half and the range.

    python benchmarks/bench_dashboard.py [--requests 20] [--loads 5] [--seconds 12]
        [--rounds 25] [--settle 150] [--pace 1] [--service-only]
"""

from __future__ import annotations

import argparse
import math
import os
import random
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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from bench_explain import build
from jobcorr import processes
from jobcorr.analysis import survey
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.store import Store
from jobcorr.web.answers import RecentAnswers
from jobcorr.web.app import dashboard_app
from jobcorr.web.server import BackgroundServer

ROOT = Path(__file__).parent.parent
CLIENTS = 8
SETTLE_SECONDS = 150
"""Start-up, the first runs and the dashboard's process, before anything is measured: the
service's RSS climbs ~30 MB in steps over its first two minutes on its own (30 s medians
308, 320, 322, 340, 341 MB in a run with no client, benchmarks/RESULTS.md)."""
SERVICE_FLAGS = ("--speed", "10", "--incident", "", "--sync-strategy", "batched",
                 "--surge", "+1s=600/1d")  # fmt: skip
"""The demo's world and jobs at `make run`'s speed, with no incident and its surge of 600
players all along: the demo's own surge ends 320 s in, where stats_collection's run time
halves, which made the control arm of the older idle, loaded, loaded, idle phases read a
slowdown (benchmarks/RESULTS.md)."""
STATS_INTERVAL = 3.0
"""stats_collection's interval at --speed 10 (30 s / 10)."""
PHASE_SECONDS = 12.0
"""Four stats_collection runs at --speed 10 (every 3 s): short phases, so that a round of
the three arms spans 36 s and a run's rounds follow the service's slow changes closely;
the runs of clickhouse_sync (every 6 s) and gamification (every 30 s) fall on the arms
alike in random order."""
ARMS = ("clients", "idle", "control")
ROUNDS = 25
"""25 rounds of three 12 s phases: 15 minutes, 100 stats_collection runs per arm."""
CLIENT_POLL_SECONDS = 0.2
"""How often an idle client checks whether its phase has begun."""
CLIENT_PACE_SECONDS = 1.0
"""Each client asks once a second, 15 times as often as an open page refreshes: the same
load whatever an answer costs. Without pause (`--pace 0`) a cheaper answer is asked for
again at once, so the load grows as the dashboard gets faster (benchmarks/RESULTS.md)."""
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


def unshared_app(store: Path) -> Starlette:
    """The dashboard over `store`, computing every answer afresh (as for the first page that
    asks), so that repeated loads and requests measure the work and not the shared copy."""
    return dashboard_app(lambda: EmbeddedTimeline(store), answers=RecentAnswers(capacity=0))


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
        Mount("/", unshared_app(store)),
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
    new = BackgroundServer(unshared_app(store)).start()
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
    return _usage(pid).rss_bytes / 2**20


@dataclass
class Phase:
    """One phase of the service part, of one arm: clients (the clients ask for the panels),
    idle (no client) or control (no client either: an idle arm under another name, so its
    ratio to idle is the method's noise band); its RSS readings and stats_collection runs."""

    round: int
    arm: str
    start: float
    end: float
    load: float = 0.0
    """The load average as the phase began."""
    rss: list[float] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds over the phase: the service, its dashboard, this process (the clients)."""

    def latency(self) -> float:
        return statistics.median(self.runs)

    def memory(self) -> float:
        return statistics.median(self.rss)


def cpu_now(service: int) -> dict[str, float]:
    """CPU seconds so far: the service, its dashboard (its children), this process."""
    return {
        "service": _usage(service).cpu_seconds,
        "dashboard": sum(child.cpu_seconds for child in processes.children(service)),
        "clients": time.process_time(),
    }


def _usage(pid: int) -> processes.Usage:
    found = processes.usage(pid)
    if found is None:
        raise SystemExit(f"process {pid} ended during the benchmark")
    return found


class Clients:
    """`count` clients, each opened once through the service (which redirects it to its
    dashboard's process, as a browser is), asking for the 24 h panels every `pace` seconds
    (their first asks spread over one pace) while `asking` is set. A request in flight when
    a phase ends finishes in the next."""

    def __init__(self, url: str, count: int, pace: float) -> None:
        self.asking, self._stop = threading.Event(), threading.Event()
        self._pace = pace
        self._answered: list[float] = []  # appended from every client's thread: atomic
        self._threads = [
            threading.Thread(target=self._ask, args=(url, pace * index / count))
            for index in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _ask(self, url: str, offset: float) -> None:
        with httpx.Client(timeout=120, follow_redirects=True) as client:
            panels = client.get(f"{url}/").url.copy_with(path="/api/panels")
            self._stop.wait(offset)
            while not self._stop.is_set():
                if self.asking.wait(CLIENT_POLL_SECONDS):
                    asked = time.monotonic()
                    client.get(panels, params={"from": "-24h", "width": "1400"})
                    self._answered.append(time.time())
                    self._stop.wait(self._pace - (time.monotonic() - asked))

    @property
    def answers(self) -> int:
        return len(self._answered)

    def close(self) -> None:
        """Stop asking; a request in flight finishes first."""
        self.asking.clear()
        self._stop.set()
        for thread in self._threads:
            thread.join()


def plan(rounds: int, start: float, seconds: float, rng: random.Random) -> list[Phase]:
    """`rounds` rounds of one phase per arm, in a new random order each round: a drift of
    the service, of its world or of the machine falls on every arm alike."""
    phases = []
    for number in range(rounds):
        for arm in rng.sample(ARMS, len(ARMS)):
            begin = start + len(phases) * seconds
            phases.append(Phase(number, arm, begin, begin + seconds))
    return phases


def run_phase(phase: Phase, clients: Clients, pid: int) -> None:
    """Wait for the phase's start, then read the service's RSS each second until its end,
    the clients asking meanwhile if it is theirs."""
    time.sleep(max(0.0, phase.start - time.time()))
    phase.load = os.getloadavg()[0]
    before = cpu_now(pid)
    if phase.arm == "clients":
        clients.asking.set()
    else:
        clients.asking.clear()
    reading = phase.start
    while reading < phase.end:
        phase.rss.append(rss_mb(pid))
        reading += 1
        time.sleep(max(0.0, reading - time.time()))
    phase.cpu = {name: value - before[name] for name, value in cpu_now(pid).items()}


def first_boundary(store: Path, interval: float) -> float:
    """A phase start half an interval from stats_collection's schedule (its last start plus
    whole intervals): every run starts well inside one phase."""
    recorded = Store(store, readonly=True)
    try:
        last = recorded.runs(time.time() - 3 * interval, time.time(), job="stats_collection")
    finally:
        recorded.close()
    if not last:
        raise SystemExit("the service ran no stats_collection in its settle time")
    anchor = last[-1].started_at + interval / 2
    return anchor + interval * math.ceil((time.time() + 1 - anchor) / interval)


def attach_runs(phases: list[Phase], store: Path) -> None:
    recorded = Store(store, readonly=True)
    try:
        runs = recorded.runs(phases[0].start, phases[-1].end, job="stats_collection")
    finally:
        recorded.close()
    for phase in phases:
        phase.runs = [
            r.ended_at - r.started_at
            for r in runs
            if r.ended_at is not None and phase.start <= r.started_at < phase.end
        ]


def against_idle(phases: list[Phase], arm: str) -> tuple[list[float], list[float]]:
    """Per round: the arm's stats_collection median over the idle phase's (a ratio), and its
    RSS median minus the idle phase's (MB)."""
    by_round: dict[int, dict[str, Phase]] = {}
    for phase in phases:
        by_round.setdefault(phase.round, {})[phase.arm] = phase
    ratios, growths = [], []
    for arms in by_round.values():
        mine, idle = arms[arm], arms["idle"]
        if mine.runs and idle.runs:
            ratios.append(mine.latency() / idle.latency())
        growths.append(mine.memory() - idle.memory())
    return ratios, growths


def observer_cost(
    store_template: Path, seconds: float, rounds: int, settle: float, pace: float
) -> None:
    with tempfile.TemporaryDirectory() as data:
        store = Path(data) / "jobcorr.sqlite3"
        shutil.copy(store_template, store)
        port = free_port()
        service = subprocess.Popen(
            [sys.executable, "-m", "bf42stats.cli", "serve", "--demo", *SERVICE_FLAGS,
             "--port", str(port), "--data-dir", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(settle)
            clients = Clients(f"http://127.0.0.1:{port}", CLIENTS, pace)
            try:
                start = first_boundary(store, STATS_INTERVAL)
                phases = plan(rounds, start, seconds, random.Random())
                for phase in phases:
                    run_phase(phase, clients, service.pid)
            finally:
                clients.close()
            time.sleep(2 * STATS_INTERVAL)  # the last phase's last run is recorded
            attach_runs(phases, store)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(120)
    report(phases, clients.answers)


def report(phases: list[Phase], answers: int) -> None:
    loads = [phase.load for phase in phases]
    seconds = phases[0].end - phases[0].start
    print(
        f"{len(phases)} phases of {seconds:.0f} s, load average {min(loads):.1f}-"
        f"{max(loads):.1f}, {answers} answers to the clients"
    )
    print("arm       runs  median ms   RSS median MB   CPU s per phase: service dashboard clients")
    for arm in ARMS:
        mine = [phase for phase in phases if phase.arm == arm]
        runs = [run for phase in mine for run in phase.runs]
        rss = [reading for phase in mine for reading in phase.rss]
        cpu = "".join(
            f"{statistics.mean(phase.cpu[name] for phase in mine):10.2f}"
            for name in ("service", "dashboard", "clients")
        )
        print(f"{arm:8s} {len(runs):5d} {statistics.median(runs) * 1000:10.1f}"
              f" {statistics.median(rss):15.1f}   {cpu}")  # fmt: skip
    for arm, label in (("clients", f"{CLIENTS} clients"), ("control", "control (none)")):
        ratios, growths = against_idle(phases, arm)
        print(
            f"{label:15s} against idle, per round: stats_collection ratio "
            f"{spread(ratios, '.3f')}; RSS growth {spread(growths, '+.1f')} MB"
        )


def spread(values: list[float], form: str) -> str:
    """Median over the rounds, the middle half, and the range."""
    low, _, high = statistics.quantiles(values, n=4)
    return (
        f"median {statistics.median(values):{form}} (middle half {low:{form}} to {high:{form}}, "
        f"range {min(values):{form}} to {max(values):{form}}, {len(values)} rounds)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--loads", type=int, default=5, help="page loads per page")
    parser.add_argument(
        "--seconds", type=float, default=PHASE_SECONDS, help="per phase (a multiple of 3)"
    )
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="rounds of clients, idle and control phases"
    )
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS, help="seconds")
    parser.add_argument(
        "--pace",
        type=float,
        default=CLIENT_PACE_SECONDS,
        help="seconds between one client's asks (0: without pause)",
    )
    parser.add_argument(
        "--service-only", action="store_true", help="only part 3, the cost to the service"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "day.sqlite3"
        end, spike_at = build(store, 1)
        if not args.service_only:
            server = BackgroundServer(unshared_app(store)).start()
            try:
                api_latency(server.url, end, spike_at, args.requests)
            finally:
                server.stop()
            compare_pages(store, args.loads)
        observer_cost(store, args.seconds, args.rounds, args.settle, args.pace)


if __name__ == "__main__":
    main()
