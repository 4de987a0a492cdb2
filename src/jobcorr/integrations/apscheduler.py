"""Instrument a whole APScheduler 3.x scheduler in one call.

    from apscheduler.schedulers.background import BackgroundScheduler
    from jobcorr.integrations.apscheduler import instrument

    scheduler = BackgroundScheduler()
    scheduler.add_job(sync, "interval", seconds=60, id="clickhouse_sync")
    instrument(scheduler)      # jobs added later are instrumented too
    scheduler.start()

Every job becomes a tracked run named after its id, at most one instance runs at a time,
and a tick that finds the previous run still going is counted in `bg_job_skipped_total`.
A job that raises is recorded as a failure; APScheduler logs it and keeps the other jobs
(and this one's next tick) going.
"""

from __future__ import annotations

from jobcorr.extras import require

require("apscheduler", "apscheduler")

import functools
import logging
from collections.abc import Callable
from typing import Any

from apscheduler.events import EVENT_JOB_ADDED, EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from prometheus_client import CollectorRegistry

from jobcorr.names import check_name
from jobcorr.tracking import record_skipped, track

_log = logging.getLogger(__name__)
_TRACKED = "__jobcorr_job__"


def instrument(scheduler: BaseScheduler, *, registry: CollectorRegistry | None = None) -> None:
    """Track every job of `scheduler`, present and future; see the module docstring.

    Job ids must be valid jobcorr job names (`^[a-z][a-z0-9_]{0,62}$`): an existing job
    with another id raises ValueError here; one added later is logged as an error and
    left untracked, since APScheduler swallows errors raised in its listeners.
    """
    for job in scheduler.get_jobs():
        _instrument_job(job, registry)

    def on_added(event: JobEvent) -> None:
        job = scheduler.get_job(event.job_id, event.jobstore)
        if job is None:
            return
        try:
            _instrument_job(job, registry)
        except ValueError as error:
            _log.error("job %r is not tracked by jobcorr: %s", event.job_id, error)

    def on_skipped(event: JobEvent) -> None:
        job = scheduler.get_job(event.job_id, event.jobstore)
        if job is not None and getattr(job.func, _TRACKED, None) == event.job_id:
            record_skipped(event.job_id, registry=registry)

    scheduler.add_listener(on_added, EVENT_JOB_ADDED)
    scheduler.add_listener(on_skipped, EVENT_JOB_MAX_INSTANCES)


def _instrument_job(job: Job, registry: CollectorRegistry | None) -> None:
    if getattr(job.func, _TRACKED, None) == job.id:
        return
    name = check_name("job", job.id)
    job.modify(func=_tracked(name, job.func, registry), max_instances=1)


def _tracked(
    name: str, func: Callable[..., Any], registry: CollectorRegistry | None
) -> Callable[..., Any]:
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with track(name, registry=registry):
            return func(*args, **kwargs)

    setattr(run, _TRACKED, name)
    return run
