"""Instrument a Celery 5 app in one call: every task run is a jobcorr run.

    from celery import Celery
    from jobcorr.integrations.celery import instrument

    app = Celery("reports", broker="redis://127.0.0.1:6379/0")
    instrument(app, metrics_port=9808)   # the worker serves http://127.0.0.1:9808/metrics

    @app.task                             # job "reports_build_pdf" (module.function)
    def build_pdf(order_id: int) -> None: ...

    @app.task(jobcorr_name="mailer")      # job "mailer"
    def send_mail(to: str) -> None: ...

A task's job name is its Celery name through the one naming rule (`jobcorr.names.job_name`),
or its `jobcorr_name` option through the same rule.

With the prefork pool each task runs in a child process, where `track()` measures its CPU
time and peak RSS exactly (the task owns the process). The children report every run to the
worker's main process (`jobcorr.children`), which serves one /metrics with every child's
runs, and hands them to the recorder when `record_to` is given: the recorder also samples
each child's RSS and CPU, and each run carries the pid that ran it.

How Celery's outcomes map onto the contract's statuses:

| Celery | jobcorr |
|---|---|
| task returned | `success` |
| task raised (soft time limit included) | `failure`, with the exception |
| `self.retry()` | `failure`, error type `Retry` (the next attempt is a new run) |
| task raised `Reject` or `Ignore` | `cancelled` |
| hard time limit: the child is killed | `failure`, `TimeLimitExceeded` |
| the child died (OOM killer, `kill -9`) | `failure`, `WorkerLostError` |
| revoked while running (`terminate=True`) | `cancelled`, `Revoked` |
| revoked or expired before it started | not a run: counted in `bg_job_skipped_total` |
"""

from __future__ import annotations

from jobcorr.extras import require

require("celery", "celery")

import sys
from pathlib import Path
from typing import Any

from celery import Celery, Task, signals, states
from celery.exceptions import Retry
from prometheus_client import CollectorRegistry

from jobcorr.children import ChildRuns
from jobcorr.exposition import MetricsServer, serve_metrics
from jobcorr.names import job_name
from jobcorr.recorder import Recorder, start_recorder
from jobcorr.tracking import Cancelled, Run, record_skipped, track

DEFAULT_METRICS_PORT = 9808
"""The port celery-exporter does not use; pick any free one per worker on a shared host."""
_NOT_FAILURES = {states.REJECTED, states.IGNORED}


def instrument(
    app: Celery,
    *,
    metrics_port: int = DEFAULT_METRICS_PORT,
    host: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
    record_to: str | Path | None = None,
) -> None:
    """Track every task of `app`; a worker serves /metrics on host:metrics_port.

    `record_to`: a store path; the worker's main process runs the recorder into it.
    """
    _Instrumented(app, metrics_port, host, registry, record_to).connect()


def task_job_name(task: Task) -> str:
    """The job name of `task`'s runs: its `jobcorr_name` option, else its Celery name."""
    given = getattr(task, "jobcorr_name", None)
    return job_name(given if isinstance(given, str) else task.name)


class _Instrumented:
    """The signal handlers of one instrumented app (main process and children alike)."""

    def __init__(
        self,
        app: Celery,
        port: int,
        host: str,
        registry: CollectorRegistry | None,
        record_to: str | Path | None,
    ) -> None:
        self.app = app
        self.port, self.host, self.registry, self.record_to = port, host, registry, record_to
        self.children: ChildRuns | None = None
        self.server: MetricsServer | None = None
        self.recorder: Recorder | None = None
        self.runs: dict[str, Run] = {}  # task id -> run, in the process running the task
        self.errors: dict[str, BaseException] = {}
        self.names: dict[str, str] = {}

    def connect(self) -> None:
        for signal, handler in (
            (signals.worker_init, self.worker_init),
            (signals.worker_process_init, self.process_init),
            (signals.worker_shutdown, self.worker_shutdown),
            (signals.task_prerun, self.prerun),
            (signals.task_postrun, self.postrun),
            (signals.task_failure, self.failure),
            (signals.task_retry, self.retry),
            (signals.task_revoked, self.revoked),
        ):
            signal.connect(handler, weak=False)

    def _ours(self, task: Any) -> bool:
        return isinstance(task, Task) and task.app is self.app

    def _name(self, task: Task) -> str:
        name = self.names.get(task.name)
        if name is None:
            name = self.names[task.name] = task_job_name(task)
        return name

    # --- the worker's main process ----------------------------------------------

    def worker_init(self, sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not self.app:
            return
        self.children = ChildRuns(self.registry)  # before the pool forks its children
        self.server = serve_metrics(self.host, self.port, registry=self.registry)
        if self.record_to is not None:
            self.recorder = start_recorder(self.record_to, registry=self.registry)

    def worker_shutdown(self, sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not self.app:
            return
        if self.recorder is not None:
            self.recorder.stop()
        if self.server is not None:
            self.server.stop()
        if self.children is not None:
            self.children.close()

    def process_init(self, **_: Any) -> None:
        if self.children is not None:
            self.children.attach()

    # --- wherever a task runs ---------------------------------------------------

    def prerun(self, sender: Any = None, task_id: str = "", **_: Any) -> None:
        if not self._ours(sender):
            return
        if self.children is not None:
            self.children.key = task_id
        run = track(self._name(sender), registry=self.registry)
        self.runs[task_id] = run.__enter__()

    def postrun(
        self, sender: Any = None, task_id: str = "", state: str | None = None, **_: Any
    ) -> None:
        run = self.runs.pop(task_id, None)
        if run is None:
            return
        error = self.errors.pop(task_id, None)
        if state is None:  # the process is being ended (revoked, terminated) mid-task
            if self.children is not None and self.children.attached:
                return  # the main process ends the run, with Celery's reason
            error = sys.exc_info()[1] or Cancelled("the task was interrupted")
        elif state == states.SUCCESS:
            error = None
        elif state in _NOT_FAILURES:
            error = Cancelled(f"the task ended {state}")
        elif error is None:
            error = RuntimeError(f"the task ended {state}")
        run.__exit__(None if error is None else type(error), error, None)

    def failure(
        self,
        sender: Any = None,
        task_id: str = "",
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        if not self._ours(sender) or exception is None:
            return
        if task_id in self.runs:
            self.errors[task_id] = exception  # postrun ends the run with it
        elif self.children is not None:  # a child that died: the main process says why
            error_type = type(exception).__qualname__
            self.children.end(task_id, "failure", error_type, str(exception))

    def retry(self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
        task_id = getattr(request, "id", None)
        if not self._ours(sender) or task_id is None:
            return
        error = reason if isinstance(reason, BaseException) else Retry(str(reason))
        if task_id in self.runs:
            self.errors[task_id] = error
        elif self.children is not None:  # retried after its child died
            self.children.end(task_id, "failure", type(error).__qualname__, str(error))

    def revoked(
        self,
        sender: Any = None,
        request: Any = None,
        terminated: bool = False,
        signum: Any = None,
        **_: Any,
    ) -> None:
        task_id = getattr(request, "id", None)
        if not self._ours(sender) or task_id is None:
            return
        ended = 0
        if terminated and self.children is not None:
            why = f"revoked; terminated by signal {signum}"
            ended = self.children.end(task_id, "cancelled", "Revoked", why)
        if not ended:
            record_skipped(self._name(sender), registry=self.registry)
