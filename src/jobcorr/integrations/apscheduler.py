"""Instrument a whole APScheduler 3.x scheduler in one call.

    from apscheduler.schedulers.background import BackgroundScheduler
    from jobcorr.integrations.apscheduler import instrument

    scheduler = BackgroundScheduler()
    scheduler.add_job(sync, "interval", seconds=60)   # job "myapp_sync" (module_function)
    scheduler.add_job(send, "interval", seconds=5, name="mailer")   # job "mailer"
    instrument(scheduler)      # jobs added later are instrumented too
    scheduler.start()

Every job becomes a tracked run, through `jobcorr.job`, so `async def` jobs under
`AsyncIOScheduler` run and are measured like the others. A job is named after its function
(`module_function`) unless it was given a `name=`; both go through the one naming rule
(`jobcorr.names.job_name`). Job ids never become names: generated ids (`reminder_user_42`)
would make one label value per job. At most one instance of a job runs at a time, and a
tick that finds the previous run still going is counted in `bg_job_skipped_total`. A job
that raises is recorded as a failure; APScheduler logs it and keeps the other jobs (and
this one's next tick) going.
"""

from __future__ import annotations

from jobcorr.extras import require

require("apscheduler", "apscheduler")

import functools
import inspect
from collections.abc import Callable
from typing import Any

from apscheduler.events import EVENT_JOB_ADDED, EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.util import get_callable_name
from prometheus_client import CollectorRegistry

from jobcorr.names import function_job_name, job_name
from jobcorr.tracking import Cancelled, job, record_skipped

_TRACKED = "__jobcorr_job__"


def instrument(scheduler: BaseScheduler, *, registry: CollectorRegistry | None = None) -> None:
    """Track every job of `scheduler`, present and future; see the module docstring."""
    for existing in scheduler.get_jobs():
        _instrument_job(existing, registry)

    def on_added(event: JobEvent) -> None:
        added = scheduler.get_job(event.job_id, event.jobstore)
        if added is not None:
            _instrument_job(added, registry)

    def on_skipped(event: JobEvent) -> None:
        skipped = scheduler.get_job(event.job_id, event.jobstore)
        name = None if skipped is None else getattr(skipped.func, _TRACKED, None)
        if name is not None:
            record_skipped(name, registry=registry)

    scheduler.add_listener(on_added, EVENT_JOB_ADDED)
    scheduler.add_listener(on_skipped, EVENT_JOB_MAX_INSTANCES)


def tracked_name(scheduled: Job) -> str:
    """The job name runs of `scheduled` get: its `name=` if one was given, else its function's."""
    func = scheduled.func
    if scheduled.name != get_callable_name(func):
        return job_name(scheduled.name)
    return function_job_name(func)


def _instrument_job(scheduled: Job, registry: CollectorRegistry | None) -> None:
    if getattr(scheduled.func, _TRACKED, None) is not None:
        return
    name = tracked_name(scheduled)
    wrapped = _cancelled_quietly(job(name, registry=registry)(scheduled.func))
    setattr(wrapped, _TRACKED, name)
    scheduled.modify(func=wrapped, max_instances=1)


def _cancelled_quietly(func: Callable[..., Any]) -> Callable[..., Any]:
    """A run that ends with `jobcorr.Cancelled` (the service is stopping) is recorded as
    cancelled by `job`; APScheduler would log it as a job that crashed, with a traceback."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except Cancelled:
                return None

        return run_async

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Cancelled:
            return None

    return run
