"""The Prometheus source against a real Prometheus scraping a real, young process live.

The process (tests/fixtures/ticking_service.py) runs job `ticker` several times per scrape
interval and records the truth with the embedded recorder. Prometheus also scrapes itself
(another target with the same series names), fires an alert on the service's series and
evaluates a recording rule on them: none of that may leak into the service's timeline.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.sources.prometheus import PrometheusTimeline
from support import RESTORE_JOB, free_port, require_tool, wait_ready

SERVICE = Path(__file__).parent / "fixtures" / "ticking_service.py"
STARTUP = 60.0
"""Seconds a process may take to start on a loaded 2-core machine."""


@dataclass(frozen=True)
class Live:
    url: str
    instance: str
    store: Path
    interval: float


@dataclass(frozen=True)
class Cadence:
    """A job every `period` s for `length` s, scraped every `interval` s."""

    period: float
    length: float
    interval: float
    runs: int


def _wait_for(process: subprocess.Popen[str], word: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.strip() == word:
            return
        if not line and process.poll() is not None:
            pytest.fail(f"the service exited with {process.returncode} before {word!r}")
    pytest.fail(f"the service did not say {word!r} in {timeout:.0f} s")


@pytest.fixture(scope="module", params=[
    Cadence(period=1.0, length=0.2, interval=3.0, runs=24),
    pytest.param(Cadence(period=5.0, length=1.0, interval=15.0, runs=16), marks=pytest.mark.slow),
], ids=["every-1s-scraped-3s", "every-5s-scraped-15s"])  # fmt: skip
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    cadence: Cadence = request.param
    tmp = tmp_path_factory.mktemp("live")
    (tmp / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "demo", "rules": [
        {"alert": "DemoRecordsSeen", "expr": "demo_records_total >= 0"},
        {"record": "instance:demo_records:increase", "expr":
            f"sum by (instance) (increase(demo_records_total[{4 * cadence.interval:g}s]))"},
    ]}]}))  # fmt: skip
    scrape = {"job_name": "ticking", "honor_labels": True}
    with _scraping(tmp, cadence, scrape, rules=tmp / "rules.yml") as running:
        yield running


@pytest.fixture(scope="module")
def relabelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Scraped as the README says where `overrideHonorLabels` cannot be turned off: without
    honor_labels, `exported_job` copied back to `job`."""
    cadence = Cadence(period=1.0, length=0.2, interval=1.0, runs=8)
    scrape = {"job_name": "ticking", "honor_labels": False, "metric_relabel_configs": RESTORE_JOB}
    with _scraping(tmp_path_factory.mktemp("relabelled"), cadence, scrape) as running:
        yield running


@contextmanager
def _scraping(
    tmp: Path, cadence: Cadence, scrape: dict[str, Any], rules: Path | None = None
) -> Iterator[Live]:
    """The ticking service at `cadence`, scraped by a Prometheus with the `scrape` job (and
    scraping itself), once its runs are done and scraped."""
    prometheus = require_tool("prometheus", "prometheus")
    app, port = free_port(), free_port()
    instance = f"127.0.0.1:{app}"
    every = f"{cadence.interval:g}s"
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "rule_files": [str(rules)] if rules else [],
        "scrape_configs": [
            {**scrape, "static_configs": [{"targets": [instance], "labels": {"team": "demo"}}]},
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
        ],
    }))  # fmt: skip
    server = subprocess.Popen(
        [prometheus, f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    store = tmp / "store.sqlite3"
    service = subprocess.Popen(
        [sys.executable, str(SERVICE), str(app), str(store),
         f"{cadence.period}", f"{cadence.length}", str(cadence.runs)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/-/ready", STARTUP)
        _wait_for(service, "ready", STARTUP)
        _wait_for(service, "done", STARTUP + cadence.runs * cadence.period * 4)
        time.sleep(2.5 * cadence.interval)  # scrapes after the last run
        yield Live(url, instance, store, cadence.interval)
    finally:
        service.terminate()
        service.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)


def _scraped(live: Live, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The raw samples (times, values) of the service's one series `name`, as scraped."""
    query = f'{name}{{instance="{live.instance}"}}[1h]'
    body = httpx.get(f"{live.url}/api/v1/query", params={"query": query}, timeout=10).json()
    [result] = body["data"]["result"]
    points = np.array(result["values"], dtype=np.float64)
    return points[:, 0], points[:, 1]


def _scrapes(live: Live) -> np.ndarray:
    """When Prometheus scraped the service (the raw samples' timestamps)."""
    return _scraped(live, "bg_job_executions_total")[0]


def test_the_scrape_interval_is_read_from_a_young_process(live: Live) -> None:
    timeline = PrometheusTimeline(live.url)
    assert timeline.resolution == pytest.approx(live.interval, rel=0.1)
    # Asked first about a time before the process existed, the source has no samples to
    # measure: the targets' configured interval stands in, and the data decide later.
    first = float(_scrapes(live)[0])
    early = PrometheusTimeline(live.url)
    assert len(early.metric("memory", first - 7200, first - 3600)) == 0
    assert early.resolution == pytest.approx(live.interval, rel=0.1)


def test_every_run_between_two_scrapes_is_found(live: Live) -> None:
    scrapes, counted = _scraped(live, "bg_job_executions_total")
    first, last = float(scrapes[0]), float(scrapes[-1])
    # The truth is the runs the scrapes counted in between: the first scrape's count says
    # how many ended before it. (A scrape is stamped when it starts and rendered a moment
    # later, so a run that ended in between is after the stamp and in its count.)
    ended = sorted((r for r in EmbeddedTimeline(live.store).runs(first - 3600, last)
                    if r.end is not None), key=lambda r: r.end or 0)  # fmt: skip
    truth = ended[int(counted[0]) : int(counted[-1])]
    rebuilt = [r for r in PrometheusTimeline(live.url).runs(first, last) if r.end is not None]
    assert len(truth) >= 2 * (len(scrapes) - 1)  # several runs per scrape interval
    assert len(rebuilt) == len(truth)
    assert {r.job for r in rebuilt} == {"ticker"}
    durations = sum((r.end or 0) - r.start for r in rebuilt)
    assert durations == pytest.approx(sum((r.end or 0) - r.start for r in truth), abs=0.01)
    read = [r for r in rebuilt if not r.placed]
    assert read, "the last run before each scrape is read, not placed"
    starts = {round(r.start, 3): r for r in truth}
    for run in read:
        match = starts[round(run.start, 3)]
        assert abs((run.end or 0) - (match.end or 0)) < 0.001
    shares = [r.volumes.get("player_metrics (demo_records_total)", 0.0) for r in rebuilt]
    _, records = _scraped(live, "demo_records_total")
    # every record the scrapes counted after the first is some run's, and none is invented
    assert sum(shares) == pytest.approx(records[-1] - records[0], rel=1e-6)
    # a run processed 100: a run's share of its interval is its share of the runs' time
    assert float(np.median(shares)) == pytest.approx(100, rel=0.05)
    # A scrape reads the service's collectors one after another (the records before the job
    # metrics): a run ending while the first scrape renders may have its records on one side
    # of it and its end on the other.
    assert sum(shares) == pytest.approx(100 * len(truth), abs=100)


def test_only_the_services_own_series_are_read(live: Live) -> None:
    alerts = httpx.get(f"{live.url}/api/v1/query", params={"query": "ALERTS"}, timeout=10)
    assert alerts.json()["data"]["result"], "the alert fires, so ALERTS exists to be left out"
    scrapes = _scrapes(live)
    first, last = float(scrapes[0]), float(scrapes[-1])
    timeline = PrometheusTimeline(live.url)
    volumes = timeline.volumes(first, last)
    assert [v.title for v in volumes] == ["player_metrics (demo_records_total)"]
    service = PrometheusTimeline(live.url, match=f'instance="{live.instance}"')
    memory, own = timeline.metric("memory", first, last), service.metric("memory", first, last)
    assert len(memory) >= 3 and np.array_equal(memory.values, own.values)


def test_cpu_and_logs_are_owned_per_job_live(live: Live) -> None:
    scrapes = _scrapes(live)
    first, last = float(scrapes[0]), float(scrapes[-1])
    timeline = PrometheusTimeline(live.url)
    cpu = timeline.owned("cpu", first, last)
    assert cpu is not None and set(cpu.by_job) == {"ticker"}
    ticker = cpu.by_job["ticker"]  # a run every period: CPU in every scrape interval it ran
    assert len(ticker) >= 3 and (ticker.values > 0).sum() >= len(ticker) / 2
    assert (cpu.outside.values >= 0).all()
    # with honor_labels the records of `job=""` have no `job` label at all
    assert _log_series_jobs(live) == {"ticker", None}
    _assert_logs_owned(timeline, first, last)
    assert timeline.owned("memory", first, last) is None


def test_records_outside_every_job_are_outside_when_the_scrape_job_fills_the_label(
    relabelled: Live,
) -> None:
    # without honor_labels the empty `job` takes the scrape job's name, which the copy of
    # `exported_job` back to `job` does not undo (an empty label is no label)
    assert _log_series_jobs(relabelled) == {"ticker", "ticking"}
    scrapes = _scrapes(relabelled)
    _assert_logs_owned(PrometheusTimeline(relabelled.url), float(scrapes[0]), float(scrapes[-1]))


def _log_series_jobs(live: Live) -> set[str | None]:
    query = f'bg_log_records_total{{instance="{live.instance}"}}'
    body = httpx.get(f"{live.url}/api/v1/query", params={"query": query}, timeout=10).json()
    return {result["metric"].get("job") for result in body["data"]["result"]}


def _assert_logs_owned(timeline: PrometheusTimeline, first: float, last: float) -> None:
    """The service logs one record outside every job before each run and one in it: the
    job owns half of the records, and no job the other half."""
    logs = timeline.owned("logs", first, last)
    assert logs is not None and set(logs.by_job) == {"ticker"}
    inside, outside = logs.by_job["ticker"].values, logs.outside.values
    assert inside.max() > 0 and outside.max() > 0
    assert outside.sum() == pytest.approx(inside.sum(), rel=0.2)
