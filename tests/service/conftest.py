from __future__ import annotations

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


@pytest.fixture
def clickhouse(tmp_path: Path) -> Iterator[ClickHouse]:
    ch = open_clickhouse("", tmp_path)
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
