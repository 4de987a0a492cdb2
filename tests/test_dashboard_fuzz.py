"""Hostile input to every dashboard route over real HTTP: never a 5xx, and every 4xx names
the parameter that was sent (or the required one that was missing)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.schemas import SchemaGenerator

import jobcorr
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.web.app import dashboard_app
from jobcorr.web.server import BackgroundServer


def _documented_routes() -> dict[str, tuple[str, ...]]:
    """Every route of the API the OpenAPI document lists, with the parameters it takes:
    a route added later is fuzzed without editing this file."""
    app = dashboard_app(lambda: EmbeddedTimeline(Path("unused")))
    spec = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "", "version": ""}})
    paths = spec.get_schema(routes=app.routes)["paths"]
    return {
        path: tuple(parameter["name"] for parameter in operation["get"].get("parameters", []))
        for path, operation in paths.items()
    }


ROUTES = _documented_routes()
REQUIRED = {"at": "-1m"}  # a route that takes `at` needs it; the others are optional
HOSTILE = (
    "", " ", "0", "-0", "-1", "1.5", "now", "-5m", "  -15m  ", "-0s", "1e9", "nan", "inf",
    "300000000000", "18446744073709551616", "-99999999999999d", "99999999999999999999d",
    "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1970-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z", "99:99", "²²²", "٣٣٣", "\uff11\uff12\uff10\uff10", "x" * 5000,
    "\x00", "%", "\u202e",
    "../../etc/passwd", "<script>alert(1)</script>", "'; DROP TABLE runs;--", "[/x]", "\x1b[31m",
    "memory\n", "Memory", "clickhouse_sync", "Not A Job",
)  # fmt: skip


def required(route: str) -> dict[str, str]:
    return {name: value for name, value in REQUIRED.items() if name in ROUTES[route]}


TABLE = [
    (route, {**required(route), name: value})
    for route, names in ROUTES.items()
    for name, value in itertools.product(names, HOSTILE)
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    path = tmp_path_factory.mktemp("fuzz") / "jobcorr.sqlite3"
    registry = CollectorRegistry()
    jobcorr.register_runtime_metrics(registry)
    recorder = jobcorr.start_recorder(path, interval=0.1, registry=registry)
    for _ in range(3):
        with jobcorr.track("clickhouse_sync", registry=registry) as run:
            time.sleep(0.2)
            run.add("rows", 10)
    recorder.stop()
    server = BackgroundServer(dashboard_app(lambda: EmbeddedTimeline(path))).start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
    server.stop()


def check(client: httpx.Client, route: str, params: dict[str, str]) -> None:
    response = client.get(route, params=params)
    assert response.status_code < 500, (route, params, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert body["parameter"] in params, (route, params, body)
        assert body["error"].startswith(f"{body['parameter']}: ")


def test_the_table_covers_every_api_route_with_at_least_200_hostile_requests() -> None:
    assert {"/api/series", "/api/runs", "/api/spikes", "/api/explain"} <= set(ROUTES)
    assert all(ROUTES.values()), ROUTES  # every route documents its parameters
    assert len(TABLE) >= 200


@pytest.mark.parametrize(("route", "params"), TABLE)
def test_hostile_parameters_get_a_4xx_naming_them_never_a_5xx(
    client: httpx.Client, route: str, params: dict[str, str]
) -> None:
    check(client, route, params)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from(sorted(ROUTES)),
    values=st.dictionaries(
        st.sampled_from(("from", "to", "at", "window", "width", "metric", "job")),
        st.text(max_size=40),
    ),
)
def test_random_parameters_never_get_a_5xx(
    client: httpx.Client, route: str, values: dict[str, str]
) -> None:
    check(client, route, {**required(route), **values})


@pytest.mark.parametrize("name", ["../app.py", "%2e%2e%2fapp.py", "index.html", "x" * 3000, "%00"])
def test_static_files_outside_the_list_are_404(client: httpx.Client, name: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 404
