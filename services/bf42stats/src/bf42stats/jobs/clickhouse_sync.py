"""clickhouse_sync: copy new rows from SQLite into ClickHouse, in bounded batches.

Each operation keeps a high-water mark in SQLite (`sync_watermarks`) that advances only
after ClickHouse acknowledged the batch. A crash or an outage between the insert and the
mark resends that batch: at-least-once delivery, with duplicates collapsed by the
ReplacingMergeTree keys and removed by readers with FINAL.

Two strategies: `batched` (the default) bounds memory by the batch size, never by the
backlog; `whole-backlog` is what the original service did, reading the whole backlog and
sending it as one in-memory TSV insert, so memory grows with the backlog (after an outage,
a catch-up of tens of thousands of rows: the demo's incident).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import jobcorr
from bf42stats import db
from bf42stats.jobs import JobContext

ROUND_PARTICIPANTS_ESTIMATE = 64
SYNC_STRATEGIES = ("batched", "whole-backlog")
WHOLE_BACKLOG = 2**63 - 1
"""The batch limit of `whole-backlog`: SQLite's largest LIMIT, i.e. no limit."""
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operation:
    """One sync operation: where its rows come from and where they go.

    `select` takes (watermark, limit) and returns rows whose first column is the mark.
    """

    name: str
    table: str
    columns: tuple[str, ...]
    select: str

    def fetch(self, conn: sqlite3.Connection, mark: int, limit: int) -> tuple[list[Any], int]:
        """The next batch after `mark`, and the mark to store once it is acknowledged."""
        rows = conn.execute(self.select, (mark, limit)).fetchall()
        return rows, int(rows[-1][0]) if rows else mark


@dataclass(frozen=True)
class RoundsOperation(Operation):
    """Closed rounds, each synced whole with all its participants.

    The limit counts rounds, sized so that a batch holds about `limit` participant rows;
    a round nobody played still advances the mark.
    """

    def fetch(self, conn: sqlite3.Connection, mark: int, limit: int) -> tuple[list[Any], int]:
        rounds = max(1, limit // ROUND_PARTICIPANTS_ESTIMATE)
        seqs = conn.execute(
            "SELECT closed_seq FROM rounds WHERE closed_seq > ? ORDER BY closed_seq LIMIT ?",
            (mark, rounds),
        ).fetchall()
        if not seqs:
            return [], mark
        last = int(seqs[-1][0])
        return conn.execute(self.select, (mark, last)).fetchall(), last


PLAYER_METRICS = Operation(
    "player_metrics",
    "player_metrics",
    ("observation_id", "observed_at", "server_guid", "game", "player_name", "score", "kills",
     "deaths", "ping", "team"),
    "SELECT o.id, o.observed_at, o.server_guid, s.game, p.name, o.score, o.kills, o.deaths,"
    " o.ping, o.team FROM observations o JOIN players p ON p.id = o.player_id"
    " JOIN servers s ON s.guid = o.server_guid WHERE o.id > ? ORDER BY o.id LIMIT ?",
)  # fmt: skip
SERVER_COUNTS = Operation(
    "server_counts",
    "server_online_counts",
    ("snapshot_id", "observed_at", "server_guid", "game", "num_players", "map_name"),
    "SELECT id, observed_at, server_guid, game, num_players, map_name FROM server_snapshots"
    " WHERE id > ? ORDER BY id LIMIT ?",
)
ROUNDS = RoundsOperation(
    "rounds",
    "player_rounds",
    ("closed_seq", "round_id", "server_guid", "map_name", "started_at", "ended_at",
     "player_name", "team", "score", "kills", "deaths"),
    "SELECT r.closed_seq, r.id, r.server_guid, r.map_name, r.started_at, r.ended_at, p.name,"
    " rp.team, rp.score, rp.kills, rp.deaths FROM rounds r"
    " JOIN round_participants rp ON rp.round_id = r.id JOIN players p ON p.id = rp.player_id"
    " WHERE r.closed_seq > ? AND r.closed_seq <= ? ORDER BY r.closed_seq, p.name",
)  # fmt: skip
OPERATIONS: tuple[Operation, ...] = (PLAYER_METRICS, SERVER_COUNTS, ROUNDS)


def sync_clickhouse(ctx: JobContext) -> None:
    ctx.clickhouse.query("SELECT 1")  # unreachable: fail now, before reading any backlog
    with closing(db.connect(ctx.db_path)) as conn:
        for operation in OPERATIONS:
            started = time.perf_counter()
            try:
                synced = sync_operation(ctx, conn, operation)
                _log.info("synced %d %s rows to ClickHouse", synced, operation.name)
            finally:
                ctx.metrics.sync_duration.labels(operation.name).observe(
                    time.perf_counter() - started
                )


def sync_operation(ctx: JobContext, conn: sqlite3.Connection, operation: Operation) -> int:
    """Sync every new row of one operation, batch by batch; return the rows synced."""
    limit = ctx.batch_size if ctx.sync_strategy == "batched" else WHOLE_BACKLOG
    synced = 0
    while True:
        ctx.check_stop()
        mark = db.get_watermark(conn, operation.name)
        rows, new_mark = operation.fetch(conn, mark, limit)
        if new_mark == mark:
            return synced
        ctx.clickhouse.insert(operation.table, operation.columns, rows)
        with db.transaction(conn):
            db.set_watermark(conn, operation.name, new_mark, ctx.clock())
        synced += len(rows)
        ctx.metrics.records_synced.labels(operation.name).inc(len(rows))
        jobcorr.add_volume(operation.name, len(rows))
