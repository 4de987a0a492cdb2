"""An RQ 2 worker under which every job is a jobcorr run, measured in its work-horse.

    from redis import Redis
    from rq import Queue
    from jobcorr.integrations.rq import JobcorrWorker

    redis = Redis()
    worker = JobcorrWorker([Queue("reports", connection=redis)], connection=redis,
                           metrics_port=9809)    # http://127.0.0.1:9809/metrics
    worker.work()

or from the command line, `rq worker -w jobcorr.integrations.rq.JobcorrWorker reports`
(the metrics port then comes from a subclass's `metrics_port`, or JOBCORR_METRICS_PORT).

RQ forks a work-horse for each job, so `track()` in the horse measures the job's CPU time
and peak RSS exactly. The horse reports its run to the worker (`jobcorr.children`), which
serves one /metrics for all its jobs. A job is named after its function (`func_name`,
`reports.build_pdf` -> `reports_build_pdf`) by the one naming rule, or after
`meta={"jobcorr_name": ...}` given at enqueue time, through the same rule. Outcomes:

| RQ | jobcorr run |
|---|---|
| finished | `success` |
| failed (raised) | `failure`, with the exception |
| timed out (`job_timeout`) | `failure`, `JobTimeoutException` |
| stopped (`send_stop_job_command`) | `cancelled`, `Stopped` |
| work-horse killed (OOM killer, `kill -9`) | `failure`, `WorkHorseKilled` |
"""

from __future__ import annotations

from jobcorr.extras import require

require("rq", "rq")

import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from rq import Queue, Worker
from rq.job import Job

from jobcorr.children import ChildRuns
from jobcorr.exposition import MetricsServer, serve_metrics
from jobcorr.names import job_name
from jobcorr.recorder import Recorder, start_recorder
from jobcorr.tracking import track

DEFAULT_METRICS_PORT = 9809
"""One port per worker: run several workers on one host with a port each."""


def rq_job_name(job: Job) -> str:
    """The job name of an RQ job's runs: its `jobcorr_name` meta, else its function's name."""
    given = job.meta.get("jobcorr_name")
    return job_name(given if isinstance(given, str) else job.func_name or "")


class JobcorrWorker(Worker):
    """`rq.Worker` whose jobs are tracked runs; see the module docstring."""

    metrics_port: int = int(os.environ.get("JOBCORR_METRICS_PORT", DEFAULT_METRICS_PORT))
    metrics_host = "127.0.0.1"
    record_to: str | Path | None = None
    registry: CollectorRegistry | None = None

    def __init__(
        self,
        *args: Any,
        metrics_port: int | None = None,
        metrics_host: str | None = None,
        record_to: str | Path | None = None,
        registry: CollectorRegistry | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.metrics_port = self.metrics_port if metrics_port is None else metrics_port
        self.metrics_host = metrics_host or self.metrics_host
        self.record_to = record_to or self.record_to
        self.registry = registry or self.registry
        self._children: ChildRuns | None = None
        self._error: BaseException | None = None
        self._stopped: str | None = None  # RQ forgets which job it stopped before we look

    def work(self, *args: Any, **kwargs: Any) -> bool:
        """Serve /metrics (and record, with `record_to`) while the worker works."""
        self._children = ChildRuns(self.registry)
        server: MetricsServer = serve_metrics(
            self.metrics_host, self.metrics_port, registry=self.registry
        )
        recorder: Recorder | None = None
        if self.record_to is not None:
            recorder = start_recorder(self.record_to, registry=self.registry)
        try:
            return bool(super().work(*args, **kwargs))
        finally:
            if recorder is not None:
                recorder.stop()
            server.stop()
            self._children.close()

    # --- in the work-horse -------------------------------------------------------

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        if self._children is not None:
            self._children.attach()
            self._children.key = job.id
        super().main_work_horse(job, queue)

    def perform_job(self, job: Job, queue: Queue) -> bool:
        run = track(rq_job_name(job), registry=self.registry).__enter__()
        self._error = None
        done = False
        try:
            done = bool(super().perform_job(job, queue))
        finally:
            failure = None if done else self._error or _Unexplained(job)
            run.__exit__(None if failure is None else type(failure), failure, None)
        return done

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        self._error = exc_info[1]
        super().handle_exception(job, *exc_info)

    # --- in the worker -----------------------------------------------------------

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        if self._stopped_job_id == job.id:
            self._stopped = job.id
        super().handle_job_failure(job, queue, *args, **kwargs)

    def monitor_work_horse(self, job: Job, queue: Queue) -> None:
        self._stopped = None
        super().monitor_work_horse(job, queue)
        if self._children is None:
            return
        if self._stopped == job.id:
            self._children.end(job.id, "cancelled", "Stopped", "stopped by send_stop_job_command")
        else:  # a horse that ended without reporting its run's end was killed
            self._children.end(job.id, "failure", "WorkHorseKilled", "the work-horse died")


class _Unexplained(Exception):
    """A job that RQ reported as not done, with no exception to say why."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"the job ended {job.get_status(refresh=False)}")
