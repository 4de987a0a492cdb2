"""jobcorr.integrations.apscheduler on real BackgroundScheduler and AsyncIOScheduler."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler

import jobcorr
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

    scheduler.add_job(healthy, "interval", seconds=0.1, name="stats_collection")
    instrument(scheduler, registry=registry)
    scheduler.add_job(broken, "interval", seconds=0.1, name="clickhouse_sync")  # added later
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


def test_a_cancelled_run_is_recorded_and_not_logged_as_a_crash(
    scheduler, registry, records, caplog
) -> None:
    def stopping() -> None:
        raise jobcorr.Cancelled("the service is shutting down")

    scheduler.add_job(stopping, "interval", seconds=0.1, name="clickhouse_sync")
    instrument(scheduler, registry=registry)
    scheduler.start()
    wait_for(lambda: len(records) >= 2)
    scheduler.shutdown(wait=True)

    assert {r.status for r in records} == {"cancelled"}
    assert job_metrics(registry).jobs()["clickhouse_sync"].failures == 0
    assert not [r for r in caplog.records if r.exc_info], "APScheduler logged a crash"


def test_a_tick_that_finds_the_previous_run_going_is_skipped_and_counted(
    scheduler, registry
) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow() -> None:
        started.set()
        release.wait(10)

    scheduler.add_job(slow, "interval", seconds=0.1, name="ranking_calc")
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
    scheduler.add_job(lambda: None, "interval", seconds=0.1, name="gamification")
    instrument(scheduler, registry=registry)
    instrument(scheduler, registry=registry)
    scheduler.start()
    wait_for(lambda: len(records) >= 3)
    scheduler.shutdown(wait=True)
    assert job_metrics(registry).jobs()["gamification"].executions == len(records)


def send_reminder() -> None: ...


def test_jobs_are_named_after_their_function_never_their_id(scheduler, registry, records) -> None:
    for user in range(3):  # one-shot jobs with generated ids: one name, not one per user
        scheduler.add_job(send_reminder, "date", id=f"reminder_user_{user}")
    scheduler.add_job(send_reminder, "interval", seconds=60, id="x", name="Nightly Report")
    instrument(scheduler, registry=registry)
    scheduler.start()
    wait_for(lambda: len(records) >= 3)
    nightly = scheduler.get_job("x")
    scheduler.shutdown(wait=True)
    assert {r.job for r in records} == {"test_apscheduler_send_reminder"}
    assert job_metrics(registry).jobs()["test_apscheduler_send_reminder"].executions == 3
    nightly.func()  # the given name, through the same rule
    assert records[-1].job == "nightly_report"


def test_async_jobs_run_and_are_measured_under_asyncio_scheduler(registry, records) -> None:
    awaited: list[float] = []

    async def poll() -> None:
        await asyncio.sleep(0.05)
        awaited.append(time.time())

    async def fail() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("feed unreachable")

    async def main() -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(poll, "interval", seconds=0.1, name="poll")
        scheduler.add_job(fail, "interval", seconds=0.1, name="fail")
        instrument(scheduler, registry=registry)
        scheduler.start()
        deadline = time.monotonic() + 20
        while len(awaited) < 3 or not any(r.job == "fail" for r in records):
            assert time.monotonic() < deadline, "async jobs did not run"
            await asyncio.sleep(0.02)
        scheduler.shutdown(wait=False)

    asyncio.run(main())
    polls = [r for r in records if r.job == "poll"]
    assert len(polls) >= 3 and len(awaited) >= len(polls)  # every recorded run really ran
    assert all(r.status == "success" and r.duration >= 0.05 for r in polls)
    failed = {(r.status, r.error_type, r.error_message) for r in records if r.job == "fail"}
    assert failed == {("failure", "RuntimeError", "feed unreachable")}
    assert job_metrics(registry).jobs()["poll"].executions == len(polls)
