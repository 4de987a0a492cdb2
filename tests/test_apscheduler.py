"""jobcorr.integrations.apscheduler on a real BackgroundScheduler."""

from __future__ import annotations

import threading
import time

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from jobcorr.integrations.apscheduler import instrument
from jobcorr.metrics import job_metrics


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def scheduler():
    scheduler = BackgroundScheduler(timezone="UTC")
    yield scheduler
    if scheduler.running:
        scheduler.shutdown(wait=True)


def test_every_job_is_tracked_failures_counted_and_others_keep_running(
    scheduler, registry, records
) -> None:
    ticks = {"ok": 0}

    def healthy() -> None:
        ticks["ok"] += 1

    def broken() -> None:
        raise RuntimeError("ClickHouse is down")

    scheduler.add_job(healthy, "interval", seconds=0.1, id="stats_collection")
    instrument(scheduler, registry=registry)
    scheduler.add_job(broken, "interval", seconds=0.1, id="clickhouse_sync")  # added later
    scheduler.start()
    wait_for(lambda: ticks["ok"] >= 5 and any(r.job == "clickhouse_sync" for r in records[2:]))
    scheduler.shutdown(wait=True)

    jobs = job_metrics(registry).jobs()
    assert jobs["stats_collection"].executions >= 5
    assert jobs["stats_collection"].failures == 0
    assert jobs["clickhouse_sync"].failures == jobs["clickhouse_sync"].executions >= 2
    failed = [r for r in records if r.job == "clickhouse_sync"]
    assert {(r.status, r.error_type, r.error_message) for r in failed} == {
        ("failure", "RuntimeError", "ClickHouse is down")
    }


def test_a_tick_that_finds_the_previous_run_going_is_skipped_and_counted(
    scheduler, registry
) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow() -> None:
        started.set()
        release.wait(10)

    scheduler.add_job(slow, "interval", seconds=0.1, id="ranking_calc")
    instrument(scheduler, registry=registry)
    scheduler.start()
    started.wait(5)
    wait_for(lambda: job_metrics(registry).jobs()["ranking_calc"].skipped >= 3)
    state = job_metrics(registry).jobs()["ranking_calc"]
    assert state.in_progress == 1  # at most one instance
    release.set()
    scheduler.shutdown(wait=True)
    assert job_metrics(registry).jobs()["ranking_calc"].in_progress == 0


def test_instrumenting_twice_wraps_once(scheduler, registry, records) -> None:
    scheduler.add_job(lambda: None, "interval", seconds=0.1, id="gamification")
    instrument(scheduler, registry=registry)
    instrument(scheduler, registry=registry)
    scheduler.start()
    wait_for(lambda: len(records) >= 3)
    scheduler.shutdown(wait=True)
    assert job_metrics(registry).jobs()["gamification"].executions == len(records)


def test_job_ids_must_be_valid_names(scheduler, registry, caplog) -> None:
    scheduler.add_job(lambda: None, "interval", seconds=60, id="Nightly Report")
    with pytest.raises(ValueError, match="job name 'Nightly Report'"):
        instrument(scheduler, registry=registry)
    scheduler.remove_all_jobs()
    instrument(scheduler, registry=registry)
    scheduler.start()
    scheduler.add_job(lambda: None, "interval", seconds=60, id="also bad")
    assert "job 'also bad' is not tracked by jobcorr" in caplog.text
