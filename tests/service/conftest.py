from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bf42stats.clickhouse import ClickHouse, open_clickhouse
from bf42stats.feed.client import FeedClient
from bf42stats.feed.simulator import SimulatedWorld, feed_app
from bf42stats.jobs import JobContext
from bf42stats.metrics import service_metrics
from jobcorr.web.server import BackgroundServer
from support import chdb_http_server

START = 1_795_000_000.0  # a fixed moment, so simulated rounds and players are reproducible


class Clock:
    """The time seen by the jobs and by the simulated world; tests move it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(clock: Clock) -> SimulatedWorld:
    return SimulatedWorld(12, seed=7, start=START, clock=clock)


@pytest.fixture
def feed_url(world: SimulatedWorld) -> Iterator[str]:
    server = BackgroundServer(feed_app(world)).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One chdb behind ClickHouse's HTTP interface for the session; tests take a database
    each."""
    with chdb_http_server(tmp_path_factory.mktemp("chdb-http")) as url:
        yield url


@pytest.fixture
def clickhouse_url(request: pytest.FixtureRequest) -> str:
    """ "" for embedded chdb (the default), or the chdb HTTP server's URL for the remote path
    (clickhouse-connect end to end)."""
    if getattr(request, "param", "embedded") == "embedded":
        return ""
    return str(request.getfixturevalue("clickhouse_server"))


@pytest.fixture
def clickhouse_database(request: pytest.FixtureRequest) -> str:
    """A database of this test's own (the remote server is shared by the session)."""
    return "bf42_" + re.sub(r"\W", "_", request.node.name)[-40:].lower()


@pytest.fixture
def clickhouse(
    tmp_path: Path, clickhouse_url: str, clickhouse_database: str
) -> Iterator[ClickHouse]:
    ch = open_clickhouse(clickhouse_url, tmp_path, clickhouse_database)
    yield ch
    ch.close()


@pytest.fixture
def ctx(
    tmp_path: Path,
    clickhouse: ClickHouse,
    feed_url: str,
    clock: Clock,
    registry: CollectorRegistry,
) -> Iterator[JobContext]:
    feed = FeedClient(feed_url)
    yield JobContext(
        db_path=tmp_path / "bf42stats.sqlite3",
        clickhouse=clickhouse,
        feed=feed,
        metrics=service_metrics(registry),
        batch_size=500,
        clock=clock,
    )
    feed.close()
