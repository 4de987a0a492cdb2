"""jobcorr.integrations.celery on a real `celery worker` (prefork, 2 children, each recycled
after 3 tasks) and a real redis-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import support
from jobcorr.store import StoredRun
from support import RedisServer, T, free_port

RUNNERS = Path(__file__).parent / "runners"
MIB = 1 << 20
WORKER_START_SECONDS = 90  # a cold celery worker on a busy 2-core machine takes 5-20 s
QUIET_SECONDS = 30  # recorded before the spike: explain compares the climb with it
SETTLE_SECONDS = 60  # results, metrics and the recorder's 5 s flush, with margin


@pytest.fixture(scope="module")
def worker(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A celery worker process serving /metrics; yields the tasks module, with `.metrics_url`
    and `.store` set."""
    tmp = tmp_path_factory.mktemp("celery")
    port = free_port()
    env = {
        **os.environ,
        "JOBCORR_TEST_BROKER": redis_server.url,
        "JOBCORR_TEST_METRICS_PORT": str(port),
        "JOBCORR_TEST_STORE": str(tmp / "jobcorr.sqlite3"),
        "PYTHONPATH": os.pathsep.join([str(RUNNERS), os.environ.get("PYTHONPATH", "")]),
    }
    os.environ.update({k: env[k] for k in env if k.startswith("JOBCORR_TEST_")})
    sys.path.insert(0, str(RUNNERS))
    import celery_app

    log = (tmp / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=prefork",
         "--concurrency=2", "--max-tasks-per-child=3", "--loglevel=INFO", "-O", "fair",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=RUNNERS, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    celery_app.metrics_url = f"http://127.0.0.1:{port}/metrics"
    celery_app.store = tmp / "jobcorr.sqlite3"
    celery_app.started = time.time()
    try:
        celery_app.noop.delay().get(timeout=WORKER_START_SECONDS)
        yield celery_app
    finally:
        process.send_signal(signal.SIGTERM)  # warm shutdown: the recorder flushes
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        sys.path.remove(str(RUNNERS))
        sys.modules.pop("celery_app", None)


def wait_for(condition: Callable[[], T], what: str) -> T:
    return support.wait_for(condition, what, SETTLE_SECONDS, poll=0.1)


def count(worker: Any, name: str, job: str) -> float:
    return support.job_sample(worker.metrics_url, name, job) or 0.0


def stored_runs(worker: Any, job: str) -> list[StoredRun]:
    """The finished runs of `job` the recorder has written so far (it flushes every 5 s)."""
    return support.finished_runs(worker.store, job)


def test_counts_equal_the_tasks_run_across_recycled_children(worker) -> None:
    before = {
        job: count(worker, "bg_job_executions_total", job)
        for job in ("celery_app_noop", "celery_app_boom", "nightly_report")
    }
    failures_before = count(worker, "bg_job_failures_total", "celery_app_boom")
    noops = [worker.noop.delay() for _ in range(9)]
    booms = [worker.boom.delay() for _ in range(2)]
    renamed = worker.renamed.delay()
    pids = {result.get(timeout=SETTLE_SECONDS) for result in [*noops, renamed]}
    for result in booms:
        with pytest.raises(ValueError, match="template"):
            result.get(timeout=SETTLE_SECONDS)
    expected = {"celery_app_noop": 9, "celery_app_boom": 2, "nightly_report": 1}

    def counted() -> bool:
        return all(
            count(worker, "bg_job_executions_total", job) == before[job] + n
            for job, n in expected.items()
        )

    wait_for(counted, "the counts on /metrics")
    assert len(pids) >= 3  # 10 tasks, 2 children, 3 tasks each: children were recycled
    time.sleep(1)  # nothing arrives twice
    assert counted()
    assert count(worker, "bg_job_failures_total", "celery_app_boom") == failures_before + 2
    assert count(worker, "bg_job_failures_total", "celery_app_noop") == 0
    assert count(worker, "bg_job_in_progress", "celery_app_noop") == 0


def test_a_hungry_task_owns_its_peak_and_the_concurrent_one_does_not(worker) -> None:
    jobs = ("hungry", "innocent")
    hungry = worker.hungry.delay(200, 3.0)
    innocent = worker.innocent.delay(3.0)
    hungry_pid, hungry_start, hungry_end = hungry.get(timeout=SETTLE_SECONDS)
    innocent_pid, innocent_start, innocent_end = innocent.get(timeout=SETTLE_SECONDS)
    assert hungry_pid != innocent_pid
    assert max(hungry_start, innocent_start) < min(hungry_end, innocent_end)  # they overlapped
    peak = wait_for(
        lambda: (
            count(worker, "bg_job_peak_rss_bytes", "celery_app_innocent")
            and count(worker, "bg_job_peak_rss_bytes", "celery_app_hungry")
        ),
        "both peaks on /metrics",
    )
    assert peak >= 200 * MIB
    assert count(worker, "bg_job_peak_rss_bytes", "celery_app_innocent") < 200 * MIB
    hungry_run, innocent_run = wait_for(
        lambda: all(runs := [stored_runs(worker, f"celery_app_{job}") for job in jobs]) and runs,
        "both runs in the recorder's store",
    )
    assert hungry_run[-1].pid == hungry_pid
    assert innocent_run[-1].pid == innocent_pid


def test_a_child_killed_by_the_hard_time_limit_ends_its_run_as_a_failure(worker, tmp_path) -> None:
    executions = count(worker, "bg_job_executions_total", "celery_app_overrun")
    worker.overrun.delay(str(tmp_path / "pid"))
    wait_for(
        lambda: count(worker, "bg_job_failures_total", "celery_app_overrun") == executions + 1,
        "the killed run's failure",
    )
    run = wait_for(lambda: stored_runs(worker, "celery_app_overrun"), "the stored run")[-1]
    assert (run.status, run.error_type) == ("failure", "TimeLimitExceeded")
    assert run.pid == int((tmp_path / "pid").read_text())
    assert count(worker, "bg_job_in_progress", "celery_app_overrun") == 0


def test_a_child_killed_from_outside_ends_its_run_as_a_failure(worker, tmp_path) -> None:
    pid_file = tmp_path / "pid"
    worker.stuck.delay(str(pid_file))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), "the task to start"))
    wait_for(lambda: count(worker, "bg_job_in_progress", "celery_app_stuck") == 1, "in progress")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: count(worker, "bg_job_failures_total", "celery_app_stuck") == 1, "the failure")
    run = wait_for(lambda: stored_runs(worker, "celery_app_stuck"), "the stored run")[-1]
    assert run.status == "failure" and run.pid == pid
    assert run.error_type in {"WorkerLostError", "ProcessDied"}
    assert count(worker, "bg_job_in_progress", "celery_app_stuck") == 0


def test_a_retry_is_a_failed_attempt_and_an_expired_task_is_skipped(worker) -> None:
    with pytest.raises(ConnectionError):
        worker.flaky.delay().get(timeout=SETTLE_SECONDS)
    wait_for(
        lambda: count(worker, "bg_job_executions_total", "celery_app_flaky") == 2, "two attempts"
    )
    assert count(worker, "bg_job_failures_total", "celery_app_flaky") == 2
    runs = wait_for(
        lambda: len(found := stored_runs(worker, "celery_app_flaky")) == 2 and found, "the runs"
    )
    assert [run.error_type for run in runs] == ["Retry", "ConnectionError"]

    skipped = count(worker, "bg_job_skipped_total", "celery_app_innocent")
    executions = count(worker, "bg_job_executions_total", "celery_app_innocent")
    worker.innocent.apply_async((0,), expires=datetime.now(UTC) - timedelta(seconds=1))
    wait_for(
        lambda: count(worker, "bg_job_skipped_total", "celery_app_innocent") == skipped + 1,
        "the expired task to be counted as skipped",
    )
    assert count(worker, "bg_job_executions_total", "celery_app_innocent") == executions


def test_explain_over_the_worker_recording_names_the_hungry_task(worker) -> None:
    time.sleep(max(0.0, worker.started + QUIET_SECONDS - time.time()))  # a baseline to rise from
    hungry = worker.hungry.delay(300, 6.0)
    innocent = worker.innocent.delay(6.0)
    hungry_pid, hungry_start, hungry_end = hungry.get(timeout=SETTLE_SECONDS)
    innocent_pid, innocent_start, innocent_end = innocent.get(timeout=SETTLE_SECONDS)
    assert hungry_pid != innocent_pid
    assert max(hungry_start, innocent_start) + 2 < min(hungry_end, innocent_end)
    wait_for(
        lambda: any(
            run.started_at <= hungry_start <= (run.ended_at or 0)
            for run in stored_runs(worker, "celery_app_hungry")
        ),
        "the run in the recorder's store",
    )
    explain = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "explain", "--source", f"embedded:{worker.store}",
         "--at", str(round((hungry_start + hungry_end) / 2)), "--window", "30s", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert explain.returncode == 0, explain.stderr
    answer = json.loads(explain.stdout)
    assert answer["blamed"] == "celery_app_hungry", answer["conclusion"]


def test_a_task_revoked_while_running_is_cancelled(worker, tmp_path) -> None:
    pid_file = tmp_path / "pid"
    task = worker.stuck.delay(str(pid_file))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), "the task to start"))
    wait_for(lambda: count(worker, "bg_job_in_progress", "celery_app_stuck") == 1, "in progress")
    executions = count(worker, "bg_job_executions_total", "celery_app_stuck")
    failures = count(worker, "bg_job_failures_total", "celery_app_stuck")
    worker.app.control.revoke(task.id, terminate=True)
    wait_for(
        lambda: count(worker, "bg_job_executions_total", "celery_app_stuck") == executions + 1,
        "the revoked run to end",
    )
    assert count(worker, "bg_job_failures_total", "celery_app_stuck") == failures
    runs = wait_for(
        lambda: [run for run in stored_runs(worker, "celery_app_stuck") if run.pid == pid],
        "the stored run",
    )
    assert (runs[-1].status, runs[-1].error_type) == ("cancelled", "Revoked")
