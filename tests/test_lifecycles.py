"""Lifecycles: sources close (and are context managers), the dashboard keeps one source per
worker thread rather than one per request, and closes them all."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

import jobcorr
from jobcorr.errors import JobcorrError
from jobcorr.sources import SourceError
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.store import StoreError
from jobcorr.times import TimeParseError
from jobcorr.web.app import dashboard_app
from jobcorr.web.server import BackgroundServer

CLIENTS, REQUESTS = 16, 160
WORKER_THREADS = 40  # anyio's default thread pool: the most sources the dashboard can hold


def open_files(path: Path) -> int:
    """Descriptors of this process open on the store (the database file itself)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue  # closed meanwhile
    return count


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lifecycle") / "jobcorr.sqlite3"
    registry = CollectorRegistry()
    recorder = jobcorr.start_recorder(path, interval=0.05, registry=registry)
    with jobcorr.track("clickhouse_sync", registry=registry):
        time.sleep(0.3)
    recorder.stop()
    return path


def test_a_source_closes_its_store_and_is_a_context_manager(store: Path) -> None:
    with EmbeddedTimeline(store) as timeline:
        assert open_files(store) == 1
        assert timeline.runs(0, 2e9)
    assert open_files(store) == 0


def test_the_dashboard_keeps_one_source_per_worker_thread_and_closes_them(store: Path) -> None:
    app = dashboard_app(lambda: EmbeddedTimeline(store))
    server = BackgroundServer(app).start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool, httpx.Client(timeout=60) as client:
            statuses = list(
                pool.map(
                    lambda _: client.get(f"{server.url}/api/runs?from=-1h").status_code,
                    range(REQUESTS),
                )
            )
        assert statuses == [200] * REQUESTS
        opened = len(app.state.sources)
        assert 1 <= opened <= min(CLIENTS, WORKER_THREADS)
        assert open_files(store) == opened
    finally:
        server.stop()
    app.state.sources.close()
    assert open_files(store) == 0


def test_a_new_series_written_after_the_dashboard_opened_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    registry = CollectorRegistry()
    jobcorr.start_recorder(path, interval=0.05, registry=registry).stop()
    app = dashboard_app(lambda: EmbeddedTimeline(path))
    server = BackgroundServer(app).start()
    try:
        assert httpx.get(f"{server.url}/api/runs?from=-1h", timeout=30).json() == {"runs": []}
        recorder = jobcorr.start_recorder(path, interval=0.05, registry=registry)
        with jobcorr.track("ranking_calc", registry=registry):
            pass
        recorder.stop()
        runs = httpx.get(f"{server.url}/api/runs?from=-1h", timeout=30).json()["runs"]
        assert [run["job"] for run in runs] == ["ranking_calc"]
    finally:
        server.stop()
        app.state.sources.close()


def test_one_root_for_the_library_errors() -> None:
    for error in (SourceError, StoreError, TimeParseError, jobcorr.JobcorrError):
        assert issubclass(error, JobcorrError)
    assert issubclass(TimeParseError, ValueError)
