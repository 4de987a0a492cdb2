"""Run one scenario for real: `python -m scenarios.run SPEC.json STORE.sqlite3`.

Jobs run in threads, each run inside `jobcorr.track()` (async jobs: `@jobcorr.job` on a
coroutine, in an event loop of their own); the recorder samples this process into the
store. Work outside every job runs in a plain thread, on the main thread, or in the
handler of a real HTTP request on loopback. The start time is written to STORE.start,
and every sample of the registry, tick by tick, to STORE.om in OpenMetrics (for
backfilling Prometheus).

A spec with `"serve": true` also serves /metrics on a free loopback port (written to
STORE.port) for live scraping; one with `"start_at"` (unix time) begins its schedule then,
so that many scenarios run side by side on one clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

import jobcorr

BYTES_PER_UNIT = 1024
LOGS_PER_UNIT = 0.012  # log records per unit of volume, per run
LOG_BURST = 1.5
"""Seconds a run spends logging, however long it holds: its rate, not its length, makes
the spike (the spike run's 3000 records come at 2000/s, a regular run's at ~400/s)."""
log = logging.getLogger("scenario")
LEAKED: list[bytes] = []
"""Memory a leaking run never gives back."""


class Failed(RuntimeError):
    """A run that fails mid-spike (the scenario asked for it)."""


FAILS_AFTER = 2 / 3
"""A failing run fails this far into its length, still holding what it allocated."""


def work(kind: str, units: int, length: float, *, fails: bool = False, leaks: bool = False) -> None:
    deadline = time.monotonic() + length
    if fails:
        deadline -= length * (1 - FAILS_AFTER)
    if kind == "memory":
        held = b"\x01" * (units * BYTES_PER_UNIT)  # touches every page: resident
        time.sleep(max(0.0, deadline - time.monotonic()))
        if leaks:
            LEAKED.append(held)
        del held
    elif kind == "cpu":
        share = min(1.0, units / 250_000)  # the spike run burns a whole core
        while time.monotonic() < deadline:
            busy_until = time.monotonic() + 0.01 * share
            while time.monotonic() < busy_until:
                pass
            time.sleep(0.01 * (1 - share))
    elif kind == "logs":
        records = int(units * LOGS_PER_UNIT)
        burst = min(length, LOG_BURST)
        for i in range(records):
            log.info("processed item %d", i)
            time.sleep(burst / max(records, 1))
        time.sleep(max(0.0, deadline - time.monotonic()))
    else:  # light: a little memory and some waiting
        held = b"\x02" * (512 * 1024)
        time.sleep(max(0.0, deadline - time.monotonic()))
        del held
    if fails:
        raise Failed("the scenario's run fails half-way")


async def work_async(kind: str, units: int, length: float, *, fails: bool = False) -> None:
    """The same work as an async job: the event loop's thread does it between awaits."""
    deadline = time.monotonic() + (length * FAILS_AFTER if fails else length)
    if kind == "memory":
        held = b"\x01" * (units * BYTES_PER_UNIT)
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        del held
    elif kind == "cpu":
        share = min(1.0, units / 250_000)
        while time.monotonic() < deadline:
            busy_until = time.monotonic() + 0.01 * share
            while time.monotonic() < busy_until:
                pass
            await asyncio.sleep(0.01 * (1 - share))
    else:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    if fails:
        raise Failed("the scenario's run fails half-way")


def run_job(
    job: dict[str, Any],
    run: dict[str, Any],
    t0: float,
    registry: CollectorRegistry,
    processed: Counter,
) -> None:
    time.sleep(max(0.0, t0 + run["start"] - time.time()))
    options = {"fails": run.get("fails", False)}
    try:
        if job.get("mode") == "async":

            @jobcorr.job(job["name"], registry=registry)
            async def tracked_async() -> None:
                jobcorr.add_volume(job["volume"], run["units"])
                processed.labels(job["volume"]).inc(run["units"])
                await work_async(job["kind"], run["units"], run["length"], **options)

            asyncio.run(tracked_async())
            return
        with jobcorr.track(job["name"], registry=registry) as tracked:
            tracked.add(job["volume"], run["units"])  # before the work: a failing run has it
            processed.labels(job["volume"]).inc(run["units"])
            work(job["kind"], run["units"], run["length"], leaks=run.get("leaks", False), **options)
    except Failed:
        pass  # recorded as a failed run by jobcorr


class Exposition:
    """Samples every counter and gauge of a registry each tick; writes OpenMetrics."""

    def __init__(self, registry: CollectorRegistry, interval: float) -> None:
        self.registry = registry
        self.interval = interval
        self.families: dict[str, tuple[str, list[str]]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop)

    def loop(self) -> None:
        while not self.stop.wait(self.interval):
            now = time.time()
            for family in self.registry.collect():
                if family.type not in ("counter", "gauge"):
                    continue
                _, lines = self.families.setdefault(family.name, (family.type, []))
                for sample in family.samples:
                    if sample.name.endswith("_created"):
                        continue
                    labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                    series = f"{sample.name}{{{labels}}}" if labels else sample.name
                    lines.append(f"{series} {sample.value} {now:.3f}")

    def write(self, path: Path) -> None:
        text = []
        for name, (kind, lines) in sorted(self.families.items()):
            text.append(f"# TYPE {name} {kind}")
            text.extend(sorted(lines, key=lambda line: line.rsplit(" ", 2)[0]))  # series by series
        path.write_text("\n".join([*text, "# EOF", ""]))


def outside_work(spec: dict[str, Any]) -> None:
    """Work outside every job: memory (`bytes`), a busy core, or a burst of log records."""
    kind = spec.get("kind", "memory")
    if kind == "memory":
        held = b"\x03" * spec["bytes"]
        time.sleep(spec["length"])
        del held
    else:
        work(kind, 250_000, spec["length"])


def noise(spec: dict[str, Any], t0: float, handler_url: str) -> None:
    time.sleep(max(0.0, t0 + spec["start"] - time.time()))
    if spec.get("thread") == "handler":
        urllib.request.urlopen(f"{handler_url}/{NOISE.index(spec)}", timeout=60).read()
    else:
        outside_work(spec)


NOISE: list[dict[str, Any]] = []
"""The scenario's outside work, for the request handler to find by index."""


class Handler(BaseHTTPRequestHandler):
    """A request handler thread of a web service: GET /N does outside work number N."""

    def do_GET(self) -> None:
        outside_work(NOISE[int(self.path.strip("/"))])
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines are not the scenario's log records


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    store = Path(sys.argv[2])
    registry = CollectorRegistry()
    jobcorr.register_runtime_metrics(registry)
    logging.getLogger().setLevel(logging.INFO)
    processed = Counter(
        "scenario_processed", "Units processed by jobs.", ["volume"], registry=registry
    )
    for job in spec["jobs"]:  # exposed at 0 from the start, as a service should: a scraper
        processed.labels(job["volume"])  # sees no increase to a series' first value
    recorder = jobcorr.start_recorder(store, interval=spec["interval"], registry=registry)
    exposition = Exposition(registry, spec["interval"])
    exposition.thread.start()
    if spec.get("serve"):
        server = jobcorr.serve_metrics(port=0, registry=registry)
        store.with_suffix(".port").write_text(str(server.port))
    t0 = spec.get("start_at", time.time() + 0.5)
    store.with_suffix(".start").write_text(repr(t0))
    threads = [
        threading.Thread(target=run_job, args=(job, run, t0, registry, processed))
        for job in spec["jobs"]
        for run in job["runs"]
    ]
    NOISE.extend(spec["noise"])
    handlers = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=handlers.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{handlers.server_address[1]}"
    on_main = [n for n in spec["noise"] if n.get("thread") == "main"]
    threads += [
        threading.Thread(target=noise, args=(n, t0, url))
        for n in spec["noise"]
        if n.get("thread") != "main"
    ]
    for thread in threads:
        thread.start()
    for spec_noise in sorted(on_main, key=lambda n: n["start"]):
        noise(spec_noise, t0, url)
    for thread in threads:
        thread.join()
    handlers.shutdown()
    time.sleep(max(0.0, t0 + spec["duration"] - time.time()))
    recorder.stop()
    exposition.stop.set()
    exposition.thread.join()
    exposition.write(store.with_suffix(".om"))


if __name__ == "__main__":
    main()
