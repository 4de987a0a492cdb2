"""Reading back what the jobs wrote, from SQLite, ClickHouse and the metrics."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bf42stats.clickhouse import ClickHouse
from bf42stats.feed import GAMES
from bf42stats.feed.simulator import SimulatedWorld


def sql(path: Path, query: str, *args: object) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(query, args).fetchall()


def count(path: Path, table: str) -> int:
    return int(sql(path, f"SELECT COUNT(*) FROM {table}")[0][0])


def ch_count(clickhouse: ClickHouse, table: str, *, final: bool = True) -> int:
    suffix = " FINAL" if final else ""
    return int(clickhouse.query(f"SELECT count() FROM {clickhouse.database}.{table}{suffix}")[0][0])


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    assert found is not None, f"no sample {name}{labels}"
    return found


def served_players(world: SimulatedWorld, now: float) -> dict[str, int]:
    """Players the simulated feed serves per game at `now`."""
    return {game: sum(len(s["players"]) for s in world.servers(game, now)) for game in GAMES}


both_clickhouse_paths = pytest.mark.parametrize(
    "clickhouse_url", ["embedded", "remote"], indirect=True
)
"""Run the test on embedded chdb and on clickhouse-connect against chdb's HTTP interface."""
