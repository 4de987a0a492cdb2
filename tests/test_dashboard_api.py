"""The dashboard's JSON API over real HTTP: answers, and 4xx (never 500) for bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge

import jobcorr
from jobcorr.contract import Metric
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.timeline import RunSpan, Series, VolumeSeries
from jobcorr.web.app import dashboard_app
from jobcorr.web.server import BackgroundServer

HOSTILE = '<img src=x onerror="alert(1)">'


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few seconds of a real recorder: two jobs, and a gauge with a hostile label value."""
    path = tmp_path_factory.mktemp("dashboard") / "jobcorr.sqlite3"
    registry = CollectorRegistry()
    jobcorr.register_runtime_metrics(registry)
    queue = Gauge("bg_queue_depth", "", ["queue"], registry=registry)
    queue.labels(HOSTILE).set(3)
    recorder = jobcorr.start_recorder(path, interval=0.1, registry=registry)
    for _ in range(3):
        with jobcorr.track("clickhouse_sync", registry=registry) as run:
            held = b"x" * 40_000_000
            time.sleep(0.4)
            run.add("rows", 40_000)
            del held
        with jobcorr.track("ranking_calc", registry=registry):
            time.sleep(0.2)
    time.sleep(0.3)
    recorder.stop()
    return path


@pytest.fixture(scope="module")
def url(store: Path) -> Iterator[str]:
    server = BackgroundServer(dashboard_app(lambda: EmbeddedTimeline(store))).start()
    yield server.url
    server.stop()


def get(url: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, timeout=30)


def test_series_runs_spikes_explain_and_panels_answer(url: str) -> None:
    series = get(url, "/api/series", **{"from": "-10m"}).json()
    memory = next(s for s in series["series"] if s["metric"] == "memory")
    assert memory["unit"] == "bytes" and len(memory["points"]) > 10
    runs = get(url, "/api/runs", **{"from": "-10m", "job": "clickhouse_sync"}).json()["runs"]
    assert len(runs) == 3 and runs[0]["volumes"] == {"rows": 40_000}
    assert get(url, "/api/spikes", **{"from": "-10m"}).status_code == 200
    started = runs[1]["start"]
    answer = get(url, "/api/explain", at=started, window="10s").json()
    assert {"metric", "at", "value", "conclusion", "candidates"} <= set(answer)
    panels = get(url, "/api/panels", **{"from": "-10m", "width": "800"}).json()
    assert set(panels["series"]) == {"memory", "cpu", "logs", "gc"}  # no logs were written
    for metric in ("memory", "cpu", "gc"):
        columns = panels["series"][metric]
        assert len(columns["t"]) == len(columns["v"]) > 10, metric
    assert panels["series"]["memory"]["t"] == sorted(panels["series"]["memory"]["t"])
    assert panels["runs"]["job"].count("clickhouse_sync") == 3
    first_sync = panels["runs"]["job"].index("clickhouse_sync")
    assert panels["runs"]["processed"][first_sync] == "40K rows"
    assert panels["limits"] == {"memory": 2e9, "cpu": 0.8}


def test_the_default_range_fits_the_data(url: str, store: Path) -> None:
    panels = get(url, "/api/panels").json()
    first = EmbeddedTimeline(store).metric("memory", time.time() - 3600, time.time()).times[0]
    assert panels["from"] <= first  # from the first sample...
    assert panels["to"] - panels["from"] == pytest.approx(15 * 60, abs=1)  # ...at least 15 min
    assert panels["series"]["memory"]["t"][0] == pytest.approx(first, abs=0.001)


class CountedReads(EmbeddedTimeline):
    """The real store, counting the reads made of it (by every thread's source), refreshes
    (the one when it opens, too) among them."""

    reads: ClassVar[list[str]] = []

    def refresh(self) -> None:
        self.reads.append("refresh")
        super().refresh()

    def metric(self, metric: Metric, start: float, end: float, step: float | None = None) -> Series:
        self.reads.append(metric)
        return super().metric(metric, start, end, step)

    def volumes(self, start: float, end: float, step: float | None = None) -> list[VolumeSeries]:
        self.reads.append("volumes")
        return super().volumes(start, end, step)

    def runs(self, start: float, end: float) -> list[RunSpan]:
        self.reads.append("runs")
        return super().runs(start, end)


def test_eight_pages_asking_for_the_same_view_at_once_share_one_answer(store: Path) -> None:
    server = BackgroundServer(dashboard_app(lambda: CountedReads(store))).start()
    now = time.time()
    day = {"from": str(now - 86400), "to": str(now), "width": "1400"}
    try:
        for path, other in (("/api/panels", {"width": "1399"}), ("/api/spikes", {"metric": "cpu"})):
            CountedReads.reads.clear()
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda ask: get(server.url, ask, **day), [path] * 8))
            assert [answer.status_code for answer in answers] == [200] * 8
            assert len({answer.content for answer in answers}) == 1
            reads = list(CountedReads.reads)
            alone = get(server.url, path, **{**day, **other})  # another question
            assert alone.status_code == 200 and len(CountedReads.reads) == 2 * len(reads) > 0
        hour = {"from": str(now - 3600), "to": str(now)}
        first = get(server.url, "/api/panels", **hour).json()
        time.sleep(3.7)  # an hour's answer is fresh for 3.6 s
        CountedReads.reads.clear()
        again = get(server.url, "/api/panels", **hour).json()
        assert again == first and "runs" in CountedReads.reads  # asked the store again
        CountedReads.reads.clear()
        assert get(server.url, "/api/panels", width="1200").status_code == 200  # fitted view
        assert CountedReads.reads.count("refresh") == 1  # read twice, refreshed once
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        (
            "/api/runs",
            {"from": "-10m", "job": "nightly_report"},
            404,
            "job: no runs of 'nightly_report'",
        ),
        ("/api/runs", {"from": "-10m", "job": "Not A Job"}, 400, "is not a job name"),
        ("/api/series", {"from": "now", "to": "-1h"}, 400, "must be before"),
        ("/api/series", {"from": "-90d"}, 400, "at most 31 days"),
        ("/api/series", {"from": "last tuesday"}, 400, "is not a time"),
        ("/api/series", {"from": "-1h", "width": "99999"}, 400, "width: '99999' is not"),
        ("/api/spikes", {"from": "-1h", "metric": "disk"}, 400, "metric: 'disk' is not one of"),
        ("/api/explain", {}, 400, "at: missing"),
        ("/api/explain", {"at": "-1m", "window": "forever"}, 400, "window"),
        ("/api/explain", {"at": "-1m", "window": "30d"}, 400, "at most 1d"),
        ("/api/panels", {"from": "-1h", "to": "garbage"}, 400, "to:"),
        ("/api/panels", {"to": "garbage"}, 400, "to:"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_clear_message(
    url: str, path: str, params: dict[str, str], status: int, message: str
) -> None:
    response = get(url, path, **params)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert response.json()["parameter"] in {*params, "at"}  # sent, or required and missing


def test_the_dashboard_is_read_only(url: str) -> None:
    response = httpx.post(f"{url}/api/explain", params={"at": "-1m"})
    assert response.status_code == 405 and "read-only" in response.json()["error"]


def test_a_missing_store_is_a_503_with_the_reason(tmp_path: Path) -> None:
    server = BackgroundServer(
        dashboard_app(lambda: EmbeddedTimeline(tmp_path / "none.sqlite3"))
    ).start()
    try:
        response = get(server.url, "/api/series")
        assert response.status_code == 503 and "no jobcorr store" in response.json()["error"]
    finally:
        server.stop()


def test_openapi_and_local_assets(url: str) -> None:
    spec = get(url, "/api/openapi.json").json()
    assert {"/api/series", "/api/runs", "/api/spikes", "/api/explain", "/api/panels"} <= set(
        spec["paths"]
    )
    uplot = get(url, "/static/uPlot.iife.min.js")  # built from npm by `make setup`
    assert uplot.status_code == 200 and "javascript" in uplot.headers["content-type"]
    assert 20_000 < len(uplot.content) < 200_000 and b"uPlot" in uplot.content
    page = get(url, "/").text
    assert 'src="/static/uPlot.iife.min.js"' in page
    assert "http" not in page.split("<body>")[0].replace('name="viewport"', "")
    assert get(url, "/static/../../etc/passwd").status_code == 404
