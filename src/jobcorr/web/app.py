"""The embedded dashboard: one page and a read-only JSON API over any Timeline.

    app = dashboard_app(lambda: open_source("embedded:data/jobcorr.sqlite3"))
    # GET /            the page (Plotly, served from the installed plotly package)
    # GET /api/series  /api/runs  /api/spikes  /api/explain  /api/figure  /api/openapi.json
    # GET /report      the stacked panels and the explanation, for a PNG

Every time parameter takes ISO 8601 (with an offset), unix seconds, or a time ago
(`-15m`); `to` also takes `now`. Bad input gets a 4xx with `{"error": "..."}`, never a 500.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import re
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from jobcorr.analysis import Explanation, explain, survey
from jobcorr.analysis.report import explanation_to_dict, survey_to_dict
from jobcorr.contract import METRICS, Metric
from jobcorr.names import NAME_RULE
from jobcorr.sources import SourceError
from jobcorr.timeline import Timeline
from jobcorr.times import TimeParseError, format_local, iso_local, parse_at, parse_duration
from jobcorr.web.figure import build_figure, downsample, view_step

STATIC = Path(__file__).parent / "static"
MAX_RANGE = 31 * 86400


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _time(request: Request, name: str, default: str | None = None) -> float:
    text = request.query_params.get(name, default)
    if text is None:
        raise BadRequest(f"missing parameter {name!r}")
    if text == "now":
        return time.time()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        return parse_at(text, now=time.time())
    except TimeParseError as error:
        raise BadRequest(f"{name}: {error}; unix seconds and 'now' work too") from None


def _range(request: Request) -> tuple[float, float]:
    end = _time(request, "to", "now")
    start = _time(request, "from", str(end - 3600))
    if start >= end:
        raise BadRequest(f"'from' ({iso_local(start)}) must be before 'to' ({iso_local(end)})")
    if end - start > MAX_RANGE:
        raise BadRequest(f"the range is {(end - start) / 86400:.0f} days; at most 31 days")
    return start, end


def _metric(request: Request) -> Metric:
    metric = request.query_params.get("metric", "memory")
    if metric not in METRICS:
        raise BadRequest(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    return metric


def _width(request: Request) -> int:
    text = request.query_params.get("width", "1200")
    if not text.isdigit() or not 100 <= int(text) <= 4000:
        raise BadRequest("width must be a whole number of pixels from 100 to 4000")
    return int(text)


Handler = Callable[[Request, Timeline], Response]


def dashboard_app(
    timeline: Callable[[], Timeline],
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    title: str = "jobcorr",
) -> Starlette:
    """The page and API over `timeline()` (called per request: sources are per-thread)."""

    def endpoint(handler: Handler) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            try:
                return handler(request, timeline())
            except BadRequest as error:
                return JSONResponse({"error": str(error)}, status_code=error.status)
            except SourceError as error:
                return JSONResponse({"error": str(error)}, status_code=503)

        run.__doc__ = handler.__doc__
        return run

    def series(request: Request, source: Timeline) -> Response:
        """
        summary: Memory, CPU, log volume and GC activity, downsampled to `width` points.
        parameters: [{name: from, in: query}, {name: to, in: query}, {name: width, in: query}]
        responses: {200: {description: "{series: [{metric, unit, points: [[unix ms, value]]}]}"}}
        """
        start, end = _range(request)
        width = _width(request)
        units = {"memory": "bytes", "cpu": "cores", "logs": "records/s", "gc": "collections/s"}
        out = []
        for metric in METRICS:
            points = downsample(source.metric(metric, start, end, view_step(start, end)), width)
            out.append({"metric": metric, "unit": units[metric],
                        "points": [[int(t * 1000), float(v)] for t, v in
                                   zip(points.times, points.values, strict=True)]})  # fmt: skip
        return JSONResponse({"from": iso_local(start), "to": iso_local(end), "series": out})

    def runs(request: Request, source: Timeline) -> Response:
        """
        summary: Runs overlapping the range, optionally of one job.
        parameters: [{name: from, in: query}, {name: to, in: query}, {name: job, in: query}]
        responses: {200: {description: "{runs: [...]}"}, 404: {description: unknown job}}
        """
        start, end = _range(request)
        found = source.runs(start, end)
        job = request.query_params.get("job")
        if job is not None:
            if not re.fullmatch(NAME_RULE.strip("^$"), job):
                raise BadRequest(f"job {job!r} is not a job name (they match {NAME_RULE})")
            known = sorted({run.job for run in found})
            found = [run for run in found if run.job == job]
            if not found:
                raise BadRequest(
                    f"no runs of job {job!r} between {iso_local(start)} and {iso_local(end)}; "
                    f"jobs with runs then: {', '.join(known) or 'none'}",
                    404,
                )
        return JSONResponse({"runs": [
            {"run_id": r.run_id, "job": r.job, "start": iso_local(r.start),
             "end": None if r.end is None else iso_local(r.end), "status": r.status,
             "volumes": r.volumes, "exact": r.exact}
            for r in found
        ]})  # fmt: skip

    def spikes(request: Request, source: Timeline) -> Response:
        """
        summary: Spikes of a metric in the range, each with its most likely job.
        parameters: [{name: from, in: query}, {name: to, in: query}, {name: metric, in: query}]
        responses: {200: {description: "{spikes: [...]}"}}
        """
        start, end = _range(request)
        return JSONResponse(
            {"spikes": survey_to_dict(survey(source, start, end, metric=_metric(request)))}
        )

    def explain_at(request: Request, source: Timeline) -> Response:
        """
        summary: The explanation of a moment, as `jobcorr explain --json` prints it.
        parameters: [{name: at, in: query}, {name: window, in: query}, {name: metric, in: query}]
        responses: {200: {description: the explanation}}
        """
        return JSONResponse(explanation_to_dict(_explanation(request, source)))

    def figure(request: Request, source: Timeline) -> Response:
        """
        summary: The dashboard's panels as a Plotly figure (data and layout).
        parameters: [{name: from, in: query}, {name: to, in: query}, {name: width, in: query}]
        responses: {200: {description: "{data: [...], layout: {...}}"}}
        """
        start, end = _range(request)
        found = [
            item
            for metric in ("memory", "cpu")
            for item in survey(source, start, end, metric=metric)
        ]
        return JSONResponse(build_figure(source, start, end, width=_width(request), spikes=found))

    def report(request: Request, source: Timeline) -> Response:
        """The stacked panels around a moment with its explanation, as a page to screenshot."""
        explanation = _explanation(request, source)
        span = max(explanation.window * 4, 600.0)
        start, end = explanation.moment - span / 2, explanation.moment + span / 2
        found = survey(source, start, end, metric=explanation.metric)
        built = build_figure(source, start, end, width=1300, spikes=found)
        page = (STATIC / "report.html").read_text()
        page = page.replace("{{title}}", html.escape(f"{title}: {explanation.conclusion}"))
        page = page.replace("{{conclusion}}", html.escape(explanation.conclusion))
        page = page.replace("{{when}}", html.escape(format_local(explanation.moment)))
        page = page.replace("{{figure}}", json.dumps(built).replace("</", "<\\/"))
        return HTMLResponse(page)

    def _explanation(request: Request, source: Timeline) -> Explanation:
        at = _time(request, "at")
        try:
            window = parse_duration(request.query_params.get("window", "5m"))
        except TimeParseError as error:
            raise BadRequest(f"window: {error}") from None
        if window > 86400:
            raise BadRequest("window is at most 1d")
        return explain(source, at, window=window, metric=_metric(request))

    schemas = SchemaGenerator(
        {"openapi": "3.0.0", "info": {"title": "jobcorr dashboard API", "version": "1"}}
    )

    def openapi(request: Request) -> Response:
        return JSONResponse(schemas.get_schema(routes=app.routes))

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "plotly.min.js":
            path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
        elif name in {"dashboard.js", "dashboard.css"}:
            path = STATIC / name
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
        Route("/api/figure", endpoint(figure)),
        Route("/api/openapi.json", openapi, include_in_schema=False),
        Route("/report", endpoint(report), include_in_schema=False),
    ]
    middleware = [Middleware(ReadOnly)]
    if token or username:
        middleware.append(
            Middleware(RequireCredentials, username=username, password=password, token=token)
        )
    app = Starlette(routes=routes, middleware=middleware)
    return app


class ReadOnly(BaseHTTPMiddleware):
    """The dashboard changes nothing: only GET and HEAD are answered."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.method not in ("GET", "HEAD"):
            return JSONResponse({"error": "the dashboard is read-only: use GET"}, status_code=405)
        return await call_next(request)


class RequireCredentials(BaseHTTPMiddleware):
    """HTTP basic auth or a bearer token, compared in constant time."""

    def __init__(
        self, app: Any, *, username: str | None, password: str | None, token: str | None
    ) -> None:
        super().__init__(app)
        self._basic = (
            "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            if username
            else None
        )
        self._bearer = f"Bearer {token}" if token else None

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = request.headers.get("authorization", "")
        if any(
            expected and hmac.compare_digest(given, expected)
            for expected in (self._basic, self._bearer)
        ):
            return await call_next(request)
        headers = {"WWW-Authenticate": 'Basic realm="jobcorr"'} if self._basic else {}
        return JSONResponse({"error": "credentials required"}, status_code=401, headers=headers)
