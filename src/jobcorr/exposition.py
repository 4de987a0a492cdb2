"""Serving /metrics: a background HTTP server, or an ASGI app to mount in your own.

Both use prometheus_client's exposition, which negotiates the format: the Prometheus text
format by default, OpenMetrics when the scraper asks for it (`Accept:
application/openmetrics-text`), and only OpenMetrics carries the `run_id` exemplars on
`bg_job_duration_seconds`.

    >>> import jobcorr
    >>> server = jobcorr.serve_metrics(port=0)   # 0: any free port
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.stop()
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, start_http_server

from jobcorr.metrics import job_metrics
from jobcorr.runtime import register_runtime_metrics

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


@dataclass
class MetricsServer:
    """A running /metrics server; `stop()` shuts it down and frees the port."""

    host: str
    port: int
    _httpd: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def _prepare(registry: CollectorRegistry | None) -> CollectorRegistry:
    target = REGISTRY if registry is None else registry
    job_metrics(target)
    register_runtime_metrics(target)
    return target


def serve_metrics(
    host: str = "127.0.0.1", port: int = 8080, *, registry: CollectorRegistry | None = None
) -> MetricsServer:
    """Serve `registry` (default: prometheus_client's) on http://host:port/metrics in a thread.

    Binds to loopback unless told otherwise. Registers the job and runtime metric families
    first, so that /metrics lists them before any job has run.
    """
    target = _prepare(registry)
    httpd, thread = start_http_server(port, addr=host, registry=target)
    return MetricsServer(host, httpd.server_port, httpd, thread)


class MetricsApp:
    """An ASGI app serving one registry. It is a callable object, not a function, so that
    Starlette routes it as an ASGI app: `Route("/metrics", jobcorr.metrics_app())` serves
    exactly /metrics, with no redirect to /metrics/."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._app: ASGIApp = make_asgi_app(registry)

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        await self._app(scope, receive, send)


def metrics_app(registry: CollectorRegistry | None = None) -> MetricsApp:
    """An ASGI app serving `registry` (default: prometheus_client's) in either format."""
    return MetricsApp(_prepare(registry))
