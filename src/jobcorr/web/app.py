"""The embedded dashboard: one page and a read-only JSON API over any Timeline.

    app = dashboard_app(lambda: open_source("embedded:data/jobcorr.sqlite3"))
    # GET /            the page (uPlot, built into static/vendor/ from npm by `make setup`)
    # GET /?at=<unix seconds>&metric=<memory|cpu>   the page explaining that moment
    # GET /api/series  /api/runs  /api/spikes  /api/explain  /api/panels  /api/openapi.json

Every time parameter takes ISO 8601 (with an offset), unix seconds, or a time ago
(`-15m`); `to` also takes `now`. Bad input gets a 4xx with `{"error": "..."}`, never a 500.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from jobcorr.analysis import Explanation, explain, survey
from jobcorr.analysis.report import explanation_to_dict, survey_to_dict
from jobcorr.contract import METRICS
from jobcorr.sources import SourceError
from jobcorr.store import StoreError
from jobcorr.timeline import Timeline
from jobcorr.times import iso_local
from jobcorr.web import params
from jobcorr.web.answers import RecentAnswers
from jobcorr.web.auth import Credentials, RequireCredentials
from jobcorr.web.panels import build_panels, downsample, fitted_start, view_step
from jobcorr.web.params import BadRequest

STATIC = Path(__file__).parent / "static"
PAGE_FILES = {"dashboard.js", "dashboard.css"}
VENDOR_FILES = {"uPlot.iife.min.js", "uPlot.min.css"}
"""uPlot, copied from node_modules by `make setup` (npm ci); never committed."""


class Sources:
    """One source per worker thread, reused across requests, all closed by `close()`. A
    request that reads takes it with `get()`, which refreshes it once per request (after
    `expire()`), so a request that reads nothing refreshes nothing. A source whose read
    failed is closed and reopened next time."""

    def __init__(self, factory: Callable[[], Timeline]) -> None:
        self._factory = factory
        self._local = threading.local()
        self._open: list[Timeline] = []
        self._lock = threading.Lock()

    def expire(self) -> None:
        """A new request begins on this thread: its next `get()` sees the latest data."""
        self._local.stale = True

    def get(self) -> Timeline:
        source: Timeline | None = getattr(self._local, "source", None)
        if source is None:
            source = self._local.source = self._factory()
            with self._lock:
                self._open.append(source)
        elif self._local.stale:
            source.refresh()
        self._local.stale = False
        return source

    def discard(self) -> None:
        """Close this thread's source (after an error), so the next request opens a new one."""
        source: Timeline | None = getattr(self._local, "source", None)
        self._local.source = None
        if source is not None:
            with self._lock:
                self._open.remove(source)
            source.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def close(self) -> None:
        with self._lock:
            sources, self._open = self._open, []
        for source in sources:
            source.close()


Handler = Callable[[Request], Response]
"""A handler takes its thread's source (`sources.get()`) only when it reads the store: a
kept answer reads nothing, not even the refresh (~10 ms on a day's store)."""


def dashboard_app(
    timeline: Callable[[], Timeline],
    *,
    credentials: Credentials | None = None,
    answers: RecentAnswers | None = None,
) -> Starlette:
    """The page and API over `timeline()`, opened once per worker thread (`app.state.sources`
    closes them; the app's lifespan does so at shutdown). The panels and spikes of a range
    are shared by the pages that ask within a pixel's time of each other (`answers`)."""
    sources = Sources(timeline)
    recent = RecentAnswers() if answers is None else answers

    def shared(
        key: tuple[str | int, ...], start: float, end: float, answer: Callable[[], object]
    ) -> Response:
        """`answer()` as JSON, or the one kept for `key` and about the same range."""
        body = recent.get(key, start, end, lambda: bytes(JSONResponse(answer()).body))
        return Response(body, media_type="application/json")

    def endpoint(handler: Handler) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            sources.expire()
            try:
                return handler(request)
            except BadRequest as error:
                return JSONResponse(
                    {"error": str(error), "parameter": error.parameter}, status_code=error.status
                )
            except SourceError as error:
                return JSONResponse({"error": str(error)}, status_code=503)
            except (StoreError, sqlite3.Error) as error:
                sources.discard()
                return JSONResponse(
                    {"error": f"the store cannot be read: {error}"}, status_code=503
                )

        run.__doc__ = handler.__doc__
        return run

    def series(request: Request) -> Response:
        """
        summary: Memory, CPU, log volume and GC activity, downsampled to `width` points.
        parameters: [{name: from, in: query}, {name: to, in: query}, {name: width, in: query}]
        responses: {200: {description: "{series: [{metric, unit, points: [[unix ms, value]]}]}"}}
        """
        start, end = params.time_range(request.query_params)
        width = params.width_px(request.query_params)
        units = {"memory": "bytes", "cpu": "cores", "logs": "records/s", "gc": "collections/s"}
        source = sources.get()
        out = []
        for metric in METRICS:
            points = downsample(source.metric(metric, start, end, view_step(start, end)), width)
            out.append({"metric": metric, "unit": units[metric],
                        "points": [[int(t * 1000), float(v)] for t, v in
                                   zip(points.times, points.values, strict=True)]})  # fmt: skip
        return JSONResponse({"from": iso_local(start), "to": iso_local(end), "series": out})

    def runs(request: Request) -> Response:
        """
        summary: Runs overlapping the range, optionally of one job.
        parameters: [{name: from, in: query}, {name: to, in: query}, {name: job, in: query}]
        responses: {200: {description: "{runs: [...]}"}, 404: {description: unknown job}}
        """
        start, end = params.time_range(request.query_params)
        job = params.job(request.query_params)
        found = sources.get().runs(start, end)
        if job is not None:
            known = sorted({run.job for run in found})
            found = [run for run in found if run.job == job]
            if not found:
                raise BadRequest(
                    "job",
                    f"no runs of {job!r} between {iso_local(start)} and {iso_local(end)}; "
                    f"jobs with runs then: {', '.join(known) or 'none'}",
                    404,
                )
        return JSONResponse({"runs": [
            {"run_id": r.run_id, "job": r.job, "start": iso_local(r.start),
             "end": None if r.end is None else iso_local(r.end), "status": r.status,
             "volumes": r.volumes, "exact": r.exact}
            for r in found
        ]})  # fmt: skip

    def spikes(request: Request) -> Response:
        """
        summary: Spikes of a metric in the range, each with its most likely job.
        description: Shared, like the panels, for 1/1000 of the range (at least 1 s).
        parameters: [{name: from, in: query}, {name: to, in: query}, {name: metric, in: query}]
        responses: {200: {description: "{spikes: [...]}"}}
        """
        start, end = params.time_range(request.query_params)
        metric = params.metric(request.query_params)
        return shared(
            ("spikes", metric),
            start,
            end,
            lambda: {"spikes": survey_to_dict(survey(sources.get(), start, end, metric=metric))},
        )

    def explain_at(request: Request) -> Response:
        """
        summary: The explanation of a moment, as `jobcorr explain --json` prints it.
        parameters: [{name: at, in: query}, {name: window, in: query}, {name: metric, in: query}]
        responses: {200: {description: the explanation}}
        """
        return JSONResponse(explanation_to_dict(_explanation(request)))

    def panels(request: Request) -> Response:
        """
        summary: Everything the page draws, as compact columns (times in unix seconds).
        description: Without `from`, the range fits the data (from the first sample of the
          last day, at least 15 minutes). The answer is shared by the pages that ask for the
          same range within 1/1000 of its span (at least 1 s), so it may be that much older.
        parameters: [{name: from, in: query}, {name: to, in: query}, {name: width, in: query}]
        responses: {200: {description: "{from, to, series: {memory: {t, v}, ...}, volumes,
          runs: {id, job, start, end, status, processed}, limits}"}}
        """
        query = request.query_params
        start, end = params.time_range(query)
        if "from" not in query:
            start = fitted_start(sources.get(), end)
        width = params.width_px(query)
        return shared(
            ("panels", width),
            start,
            end,
            lambda: build_panels(sources.get(), start, end, width=width),
        )

    def _explanation(request: Request) -> Explanation:
        query = request.query_params
        at, window, metric = params.moment(query, "at"), params.window(query), params.metric(query)
        return explain(sources.get(), at, window=window, metric=metric)

    schemas = SchemaGenerator(
        {"openapi": "3.0.0", "info": {"title": "jobcorr dashboard API", "version": "1"}}
    )

    def openapi(request: Request) -> Response:
        return JSONResponse(schemas.get_schema(routes=app.routes))

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name in PAGE_FILES:
            path = STATIC / name
        elif name in VENDOR_FILES:
            path = STATIC / "vendor" / name
            if not path.is_file():
                return JSONResponse(
                    {"error": f"{name} is not built: run `make setup` (npm ci copies uPlot)"},
                    status_code=404,
                )
        else:
            return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
        return FileResponse(path, headers={"Cache-Control": "max-age=3600"})

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/favicon.ico", lambda request: Response(status_code=204), include_in_schema=False),
        Route("/api/series", endpoint(series)),
        Route("/api/runs", endpoint(runs)),
        Route("/api/spikes", endpoint(spikes)),
        Route("/api/explain", endpoint(explain_at)),
        Route("/api/panels", endpoint(panels)),
        Route("/api/openapi.json", openapi, include_in_schema=False),
    ]
    middleware = [Middleware(ReadOnly)]
    if credentials is not None and credentials.required:
        middleware.append(Middleware(RequireCredentials, credentials=credentials))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            sources.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.sources = sources
    return app


class ReadOnly(BaseHTTPMiddleware):
    """The dashboard changes nothing: only GET and HEAD are answered."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.method not in ("GET", "HEAD"):
            return JSONResponse({"error": "the dashboard is read-only: use GET"}, status_code=405)
        return await call_next(request)
