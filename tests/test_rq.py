"""jobcorr.integrations.rq: a real `rq worker -w ...JobcorrWorker` process, real redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.command import send_stop_job_command

import support
from jobcorr.store import StoredRun
from support import RedisServer, T, free_port

RUNNERS = Path(__file__).parent / "runners"
MIB = 1 << 20
SETTLE_SECONDS = 60  # a fork per job and the recorder's 5 s flush on a busy 2-core machine


class RqWorker:
    def __init__(self, url: str, tmp: Path) -> None:
        self.port = free_port()
        self.store = tmp / "jobcorr.sqlite3"
        self.redis = Redis.from_url(url)
        self.queue = Queue("jobs", connection=self.redis)
        settings = {
            "JOBCORR_TEST_METRICS_PORT": str(self.port),
            "JOBCORR_TEST_STORE": str(self.store),
        }
        os.environ.update(settings)  # this process imports rq_app too, to enqueue its jobs
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(RUNNERS), os.environ.get("PYTHONPATH", "")]),
        }
        self.log = (tmp / "worker.log").open("w")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "rq"), "worker", "-w", "rq_app.Worker", "-u", url,
             "jobs"],
            cwd=RUNNERS, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def metric(self, name: str, job: str) -> float:
        """-1 while the worker does not serve /metrics yet."""
        value = support.job_sample(f"http://127.0.0.1:{self.port}/metrics", name, job)
        return -1.0 if value is None else value

    def runs(self, job: str) -> list[StoredRun]:
        """Finished runs of `job` in the recorder's store (written every 5 s)."""
        return support.finished_runs(self.store, job)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # warm shutdown: the recorder flushes
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.redis.close()


@pytest.fixture(scope="module")
def worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RqWorker]:
    sys.path.insert(0, str(RUNNERS))
    started = RqWorker(redis_server.url, tmp_path_factory.mktemp("rq"))
    try:
        yield started
    finally:
        started.stop()
        sys.path.remove(str(RUNNERS))
        sys.modules.pop("rq_app", None)


def wait_for(condition: Callable[[], T], what: str) -> T:
    return support.wait_for(condition, what, SETTLE_SECONDS, poll=0.1)


def test_every_job_is_counted_once_with_its_outcome(worker) -> None:
    import rq_app

    for _ in range(4):
        worker.queue.enqueue(rq_app.noop)
    worker.queue.enqueue(rq_app.boom)
    worker.queue.enqueue(rq_app.noop, meta={"jobcorr_name": "Nightly.Report"})
    wait_for(lambda: worker.metric("bg_job_executions_total", "rq_app_noop") == 4, "4 noops")
    wait_for(lambda: worker.metric("bg_job_executions_total", "nightly_report") == 1, "renamed")
    wait_for(lambda: worker.metric("bg_job_failures_total", "rq_app_boom") == 1, "the failure")
    time.sleep(1)  # nothing arrives twice
    assert worker.metric("bg_job_executions_total", "rq_app_noop") == 4
    assert worker.metric("bg_job_executions_total", "rq_app_boom") == 1
    assert worker.metric("bg_job_failures_total", "rq_app_noop") == 0
    [failed] = wait_for(lambda: worker.runs("rq_app_boom"), "the stored failure")
    assert (failed.status, failed.error_type) == ("failure", "ValueError")


def test_the_work_horse_measures_the_jobs_own_peak(worker) -> None:
    import rq_app

    hungry = worker.queue.enqueue(rq_app.hungry, 200, 1.0)
    wait_for(lambda: worker.metric("bg_job_peak_rss_bytes", "rq_app_hungry") > 0, "the peak")
    assert worker.metric("bg_job_peak_rss_bytes", "rq_app_hungry") >= 200 * MIB
    worker.queue.enqueue(rq_app.noop)  # in a fresh horse: its own, small peak
    wait_for(lambda: worker.metric("bg_job_executions_total", "rq_app_noop") >= 5, "a noop")
    assert worker.metric("bg_job_peak_rss_bytes", "rq_app_noop") < 200 * MIB
    [run] = wait_for(lambda: worker.runs("rq_app_hungry"), "the stored run")
    assert run.pid == hungry.latest_result().return_value
    assert run.peak_rss_bytes - run.rss_at_start >= 190 * MIB


def test_a_timed_out_job_fails_with_the_timeout(worker, tmp_path) -> None:
    import rq_app

    worker.queue.enqueue(rq_app.stuck, str(tmp_path / "pid"), 60, job_timeout=2)
    wait_for(lambda: worker.metric("bg_job_failures_total", "rq_app_stuck") == 1, "the timeout")
    [run] = wait_for(lambda: worker.runs("rq_app_stuck"), "the stored run")
    assert (run.status, run.error_type) == ("failure", "JobTimeoutException")


def test_a_stopped_job_is_cancelled_and_a_killed_horse_fails(worker, tmp_path) -> None:
    import rq_app

    stopped = worker.queue.enqueue(rq_app.stuck, str(tmp_path / "stopped"), 60)
    wait_for(lambda: (tmp_path / "stopped").exists(), "the job to start")
    wait_for(lambda: worker.metric("bg_job_in_progress", "rq_app_stuck") == 1, "in progress")
    send_stop_job_command(worker.redis, stopped.id)
    wait_for(lambda: worker.metric("bg_job_executions_total", "rq_app_stuck") == 2, "the stop")
    assert worker.metric("bg_job_failures_total", "rq_app_stuck") == 1  # the timeout's

    worker.queue.enqueue(rq_app.stuck, str(tmp_path / "killed"), 60)
    pid = int(
        wait_for(
            lambda: (tmp_path / "killed").exists() and (tmp_path / "killed").read_text(), "start"
        )
    )
    wait_for(lambda: worker.metric("bg_job_in_progress", "rq_app_stuck") == 1, "in progress")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: worker.metric("bg_job_failures_total", "rq_app_stuck") == 2, "the kill")
    runs = wait_for(lambda: len(found := worker.runs("rq_app_stuck")) == 3 and found, "the runs")
    assert [(run.status, run.error_type) for run in runs[1:]] == [
        ("cancelled", "Stopped"),
        ("failure", "WorkHorseKilled"),
    ]
    assert runs[2].pid == pid
    assert worker.metric("bg_job_in_progress", "rq_app_stuck") == 0
