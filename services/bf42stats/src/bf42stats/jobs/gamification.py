"""gamification: award achievements for rounds synced to ClickHouse since the last run.

The feed reports round totals, not kill events, so streaks are read from totals:
`streak_N` is awarded for a round with at least N kills and N kills per life
(kills >= N * (deaths + 1)). `kills_N` marks career kills across synced rounds.
Each achievement is awarded once per player: written to ClickHouse first (a repeat
collapses in `player_achievements`), then recorded in SQLite with the watermark, so
a failure at any point is retried without awarding twice.
"""

from __future__ import annotations

import json
import logging
from contextlib import closing

import jobcorr
from bf42stats import db
from bf42stats.jobs import JobContext

STREAKS = (5, 10, 20)
MILESTONES = (100, 500, 1000)
MAX_ROUNDS_PER_RUN = 5_000
WATERMARK = "gamification"
_log = logging.getLogger(__name__)


def earned(kills: int, deaths: int) -> list[str]:
    """Round achievements for a player's round totals."""
    return [f"streak_{n}" for n in STREAKS if kills >= n and kills >= n * (deaths + 1)]


def award_achievements(ctx: JobContext) -> None:
    ch = ctx.clickhouse
    with closing(db.connect(ctx.db_path)) as conn:
        mark = db.get_watermark(conn, WATERMARK)
        table = f"{ch.database}.player_rounds"
        rounds = ch.query(
            f"SELECT round_id, closed_seq, player_name, kills, deaths FROM {table} FINAL"
            f" WHERE closed_seq > {mark} AND closed_seq <= (SELECT max(closed_seq) FROM"
            f" (SELECT DISTINCT closed_seq FROM {table} WHERE closed_seq > {mark}"
            f" ORDER BY closed_seq LIMIT {MAX_ROUNDS_PER_RUN})) ORDER BY closed_seq, player_name"
        )
        if not rounds:
            _log.info("no newly synced rounds")
            return
        new_mark = max(int(row[1]) for row in rounds)
        candidates: dict[tuple[str, str], int] = {}
        for round_id, _, player, kills, deaths in rounds:
            for achievement in earned(int(kills), int(deaths)):
                candidates.setdefault((player, achievement), int(round_id))
        last_round = {row[2]: int(row[0]) for row in rounds}
        for player, career_kills in ch.query(
            f"SELECT player_name, sum(kills) FROM {table} FINAL"
            f" WHERE closed_seq <= {new_mark} AND player_name IN (SELECT player_name FROM"
            f" {table} WHERE closed_seq > {mark} AND closed_seq <= {new_mark})"
            " GROUP BY player_name"
        ):
            for milestone in MILESTONES:
                if int(career_kills) >= milestone:
                    candidates.setdefault((player, f"kills_{milestone}"), last_round[player])

        already = set(
            conn.execute(
                "SELECT p.name, a.achievement FROM achievements a JOIN players p"
                " ON p.id = a.player_id WHERE p.name IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(last_round)),),
            )
        )
        now = ctx.clock()
        new = [(p, a, r, now) for (p, a), r in sorted(candidates.items()) if (p, a) not in already]
        ch.insert(
            "player_achievements", ("player_name", "achievement", "round_id", "awarded_at"), new
        )
        with db.transaction(conn):
            conn.executemany(
                "INSERT OR IGNORE INTO achievements(player_id, achievement, round_id, awarded_at)"
                " SELECT id, ?, ?, ? FROM players WHERE name = ?",
                [(a, r, t, p) for p, a, r, t in new],
            )
            db.set_watermark(conn, WATERMARK, new_mark, now)
    jobcorr.add_volume("rounds_scanned", len({row[0] for row in rounds}))
    jobcorr.add_volume("achievements_awarded", len(new))
    _log.info("awarded %d achievements over %d rounds", len(new), len({r[0] for r in rounds}))
