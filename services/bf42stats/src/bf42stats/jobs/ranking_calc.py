"""ranking_calc: this month's per-server player rankings, recomputed and replaced at once.

Score, kills and deaths are summed over the month's rounds; play time over the month's
sessions. The old month's rows are deleted and the new ones inserted in one transaction,
so a reader sees either the previous ranking or the new one.
"""

from __future__ import annotations

import logging
from contextlib import closing
from datetime import UTC, datetime

import jobcorr
from bf42stats import db
from bf42stats.jobs import JobContext

_log = logging.getLogger(__name__)

_RANK = """
INSERT INTO rankings(month, server_guid, player_id, rank, score, kills, deaths, play_seconds)
WITH played AS (
    SELECT r.server_guid, rp.player_id,
           SUM(rp.score) AS score, SUM(rp.kills) AS kills, SUM(rp.deaths) AS deaths
    FROM rounds r JOIN round_participants rp ON rp.round_id = r.id
    WHERE r.started_at >= :start AND r.started_at < :end
    GROUP BY r.server_guid, rp.player_id
), attended AS (
    SELECT server_guid, player_id,
           SUM(MIN(COALESCE(ended_at, last_seen), :end) - MAX(started_at, :start)) AS seconds
    FROM sessions
    WHERE started_at < :end AND COALESCE(ended_at, last_seen) >= :start
    GROUP BY server_guid, player_id
)
SELECT :month, p.server_guid, p.player_id,
       ROW_NUMBER() OVER (
           PARTITION BY p.server_guid ORDER BY p.score DESC, p.kills DESC, p.player_id
       ),
       p.score, p.kills, p.deaths, COALESCE(a.seconds, 0)
FROM played p LEFT JOIN attended a
  ON a.server_guid = p.server_guid AND a.player_id = p.player_id
"""


def month_bounds(now: float) -> tuple[str, float, float]:
    """('2026-11', start, end) of the UTC month holding `now`."""
    moment = datetime.fromtimestamp(now, UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start.strftime("%Y-%m"), start.timestamp(), end.timestamp()


def calculate_rankings(ctx: JobContext) -> None:
    month, start, end = month_bounds(ctx.clock())
    with closing(db.connect(ctx.db_path)) as conn, db.transaction(conn):
        conn.execute("DELETE FROM rankings WHERE month = ?", (month,))
        inserted = conn.execute(_RANK, {"month": month, "start": start, "end": end}).rowcount
    ctx.metrics.rankings_inserted.inc(inserted)
    jobcorr.add_volume("rankings", inserted)
    _log.info("ranked %d players for %s", inserted, month)
