"""The bf42-stats service: four scheduled jobs, /metrics and /healthz on one port, and
the dashboard in a process of its own (every other path redirects there).

service = Service(settings)
app = create_app(service)      # starts the jobs on startup, stops them on shutdown
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

import jobcorr
from bf42stats.clickhouse import open_clickhouse
from bf42stats.config import Settings
from bf42stats.feed.client import FeedClient
from bf42stats.jobs import JobContext
from bf42stats.jobs.clickhouse_sync import sync_clickhouse
from bf42stats.jobs.gamification import award_achievements
from bf42stats.jobs.ranking_calc import calculate_rankings
from bf42stats.jobs.stats_collection import collect_stats
from bf42stats.metrics import service_metrics
from jobcorr.errors import InvalidSetting
from jobcorr.integrations.apscheduler import instrument
from jobcorr.web.auth import Credentials, RequireCredentials
from jobcorr.web.process import DashboardProcess

_log = logging.getLogger(__name__)
FIRST_RUN_STAGGER_SECONDS = 0.5
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
RETRY_INTERVALS = 5
"""A ClickHouse server that was down is tried again at most five sync intervals apart:
the sync catches up that soon after it returns, without hammering it meanwhile."""


@dataclass(frozen=True)
class JobSpec:
    name: str
    run: Callable[[JobContext], None]


JOBS: tuple[JobSpec, ...] = (
    JobSpec("stats_collection", collect_stats),
    JobSpec("clickhouse_sync", sync_clickhouse),
    JobSpec("ranking_calc", calculate_rankings),
    JobSpec("gamification", award_achievements),
)


class Service:
    """The jobs and their stores. `start()` schedules them; `stop()` lets in-flight runs
    finish (or end as cancelled at their next batch) within the shutdown timeout."""

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = REGISTRY if registry is None else registry
        self.metrics = service_metrics(self.registry)
        self.scheduler: BackgroundScheduler | None = None
        self.context: JobContext | None = None
        self.recorder: jobcorr.Recorder | None = None
        self.dashboard: DashboardProcess | None = None

    @property
    def store_path(self) -> Path:
        """Where the recorder keeps metrics and runs: `jobcorr explain --source embedded:...`."""
        return self.settings.data_dir / "jobcorr.sqlite3"

    def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        jobcorr.register_runtime_metrics(self.registry)
        if settings.record:
            self.recorder = jobcorr.start_recorder(self.store_path, registry=self.registry)
            self.dashboard = DashboardProcess(
                f"embedded:{self.store_path}", host=settings.host, port=settings.dashboard_port
            ).start()
        clickhouse = open_clickhouse(
            settings.clickhouse_url,
            settings.data_dir,
            max_wait=RETRY_INTERVALS * settings.interval("clickhouse_sync"),
        )
        if settings.incident is not None:
            clickhouse = settings.incident.apply(clickhouse, started=time.time())
        self.context = JobContext(
            db_path=settings.data_dir / "bf42stats.sqlite3",
            clickhouse=clickhouse,
            feed=FeedClient(settings.feed_url),
            metrics=self.metrics,
            batch_size=settings.sync_batch_size,
            sync_strategy=settings.sync_strategy,
            session_timeout=settings.session_timeout,
        )
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(len(JOBS))},
            job_defaults={"coalesce": True, "misfire_grace_time": None},
            timezone="UTC",
        )
        now = time.time()
        for index, spec in enumerate(JOBS):
            if spec.name == "gamification" and not settings.enable_gamification:
                continue
            scheduler.add_job(
                spec.run,
                IntervalTrigger(seconds=settings.interval(spec.name)),
                args=(self.context,),
                id=spec.name,
                name=spec.name,  # the job label; without it, the function's module path
                next_run_time=_utc(now + index * FIRST_RUN_STAGGER_SECONDS),
            )
        instrument(scheduler, registry=self.registry)
        scheduler.start()
        self.scheduler = scheduler
        _log.info("started jobs %s", [job.id for job in scheduler.get_jobs()])

    def stop(self) -> bool:
        """Stop the jobs; True if every in-flight run ended within the shutdown timeout."""
        if self.scheduler is None or self.context is None:
            return True
        context, scheduler = self.context, self.scheduler
        context.stop.set()
        waiter = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True})
        waiter.start()
        waiter.join(self.settings.shutdown_timeout)
        finished = not waiter.is_alive()
        if self.recorder is not None:
            self.recorder.stop()  # after the scheduler, so the last runs are recorded
        if self.dashboard is not None:
            self.dashboard.stop()
        if finished:
            context.clickhouse.close()
            context.feed.close()
            _log.info("stopped: every in-flight run finished")
        else:
            _log.error(
                "in-flight runs did not finish within %ss; exiting without waiting",
                self.settings.shutdown_timeout,
            )
        self.scheduler = None
        return finished

    def healthy(self) -> bool:
        return self.scheduler is not None and self.scheduler.running

    def degraded(self) -> str | None:
        """Why the service runs but does not work fully (its recorder cannot write)."""
        return None if self.recorder is None else self.recorder.degraded


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def create_app(service: Service) -> Starlette:
    """/metrics (the registry, both exposition formats) and /healthz, with the jobs'
    lifespan; any other path redirects to the same path on the dashboard's own process,
    which asks for credentials when JOBCORR_DASHBOARD_TOKEN or JOBCORR_DASHBOARD_USER (with
    JOBCORR_DASHBOARD_PASSWORD) is set; /metrics too with `protect_metrics`. /healthz stays
    open for probes. Raises InvalidSetting."""

    async def healthz(request: Request) -> JSONResponse:
        if not service.healthy():
            return JSONResponse({"status": "stopped"}, status_code=503)
        reason = service.degraded()
        if reason is not None:
            # Still 200: the jobs run and /metrics answers; restarting would not free a disk.
            return JSONResponse({"status": "degraded", "reason": reason})
        return JSONResponse({"status": "ok"})

    credentials = Credentials.from_env(os.environ)
    if service.settings.host not in LOOPBACK and not credentials.required:
        _log.warning(
            "the dashboard on %s has no credentials: set JOBCORR_DASHBOARD_TOKEN, or "
            "JOBCORR_DASHBOARD_USER and JOBCORR_DASHBOARD_PASSWORD",
            service.settings.host,
        )
    metrics: ASGIApp = jobcorr.metrics_app(service.registry)
    if service.settings.protect_metrics:
        if not credentials.required:
            raise InvalidSetting(
                "BF42_PROTECT_METRICS needs credentials to ask for: set JOBCORR_DASHBOARD_TOKEN, "
                "or JOBCORR_DASHBOARD_USER and JOBCORR_DASHBOARD_PASSWORD"
            )
        metrics = RequireCredentials(metrics, credentials)

    async def dashboard(request: Request) -> Response:
        if service.dashboard is None:
            return JSONResponse(
                {"error": "no dashboard: the service runs with --record false"}, status_code=404
            )
        target = request.url.replace(port=service.dashboard.port)
        return RedirectResponse(str(target), status_code=307)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/{path:path}", dashboard),
        ],
        lifespan=lifespan,
    )
