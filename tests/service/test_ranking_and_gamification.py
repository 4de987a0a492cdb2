"""ranking_calc and gamification over a simulated hour of play."""

from __future__ import annotations

import pytest

import jobcorr
from bf42stats.jobs.clickhouse_sync import sync_clickhouse
from bf42stats.jobs.gamification import award_achievements, earned
from bf42stats.jobs.ranking_calc import calculate_rankings, month_bounds
from bf42stats.jobs.stats_collection import collect_stats

from .helpers import both_clickhouse_paths, ch_count, count, sample, sql


@pytest.fixture
def played(ctx, clock):
    """60 polls, 30 s apart: half an hour of play, every server through two rounds."""
    for _ in range(60):
        collect_stats(ctx)
        clock.advance(30)
    return ctx


def test_rankings_rank_each_servers_players_by_score_and_are_replaced(played, registry, records):
    ctx = played
    with jobcorr.track("ranking_calc", registry=registry):
        calculate_rankings(ctx)
    month, _, _ = month_bounds(ctx.clock())
    rows = sql(
        ctx.db_path,
        "SELECT server_guid, player_id, rank, score, kills, play_seconds FROM rankings "
        "WHERE month = ?",
        month,
    )
    participants = sql(
        ctx.db_path,
        "SELECT COUNT(*) FROM (SELECT DISTINCT r.server_guid, rp.player_id FROM rounds r "
        "JOIN round_participants rp ON rp.round_id = r.id)",
    )[0][0]
    assert len(rows) == participants
    assert sample(registry, "bg_rankings_inserted_total") == participants
    assert records[-1].volumes == {"rankings": participants}
    by_server: dict[str, list[tuple]] = {}
    for row in rows:
        by_server.setdefault(row[0], []).append(row)
    for server_rows in by_server.values():
        ordered = sorted(server_rows, key=lambda r: r[2])
        assert [r[2] for r in ordered] == list(range(1, len(ordered) + 1))
        scores = [r[3] for r in ordered]
        assert scores == sorted(scores, reverse=True)
    # Play time: a player seen in one poll only has none; the longest-seen has most of it.
    assert all(r[5] >= 0 for r in rows)
    assert max(r[5] for r in rows) >= 25 * 60
    expected = sql(
        ctx.db_path,
        "SELECT SUM(rp.score) FROM rounds r JOIN round_participants rp ON rp.round_id = r.id "
        "WHERE r.server_guid = ? AND rp.player_id = ?",
        rows[0][0],
        rows[0][1],
    )[0][0]
    assert rows[0][3] == expected

    calculate_rankings(ctx)  # replaced, not appended
    assert count(ctx.db_path, "rankings") == participants


def test_month_bounds_roll_over_the_year() -> None:
    from datetime import UTC, datetime

    month, start, end = month_bounds(datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp())
    assert month == "2026-12"
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 12, 1, tzinfo=UTC)
    assert datetime.fromtimestamp(end, UTC) == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kills", "deaths", "achievements"),
    [
        (4, 0, []),
        (5, 0, ["streak_5"]),
        (10, 1, ["streak_5"]),
        (10, 0, ["streak_5", "streak_10"]),
        (40, 1, ["streak_5", "streak_10", "streak_20"]),
        (30, 10, []),
    ],
)
def test_streaks_are_read_from_round_totals(kills, deaths, achievements) -> None:
    assert earned(kills, deaths) == achievements


@both_clickhouse_paths
def test_gamification_awards_once_per_player_in_both_stores(played, registry, records):
    ctx = played
    sync_clickhouse(ctx)
    with jobcorr.track("gamification", registry=registry):
        award_achievements(ctx)
    awarded = count(ctx.db_path, "achievements")
    assert awarded > 0
    assert ch_count(ctx.clickhouse, "player_achievements") == awarded
    assert records[-1].volumes["achievements_awarded"] == awarded
    synced_rounds = sql(ctx.db_path, "SELECT COUNT(*) FROM rounds WHERE closed_seq IS NOT NULL")
    assert records[-1].volumes["rounds_scanned"] == synced_rounds[0][0]
    # Every awarded streak is justified by one of the player's closed rounds.
    for name, achievement in sql(
        ctx.db_path,
        "SELECT p.name, a.achievement FROM achievements a JOIN players p ON p.id = a.player_id "
        "WHERE a.achievement LIKE 'streak_%'",
    ):
        rounds = sql(
            ctx.db_path,
            "SELECT rp.kills, rp.deaths FROM round_participants rp JOIN players p "
            "ON p.id = rp.player_id JOIN rounds r ON r.id = rp.round_id "
            "WHERE p.name = ? AND r.closed_seq IS NOT NULL",
            name,
        )
        assert any(achievement in earned(k, d) for k, d in rounds), (name, achievement)

    award_achievements(ctx)  # nothing new synced: nothing awarded twice
    assert count(ctx.db_path, "achievements") == awarded
    assert ch_count(ctx.clickhouse, "player_achievements", final=False) == awarded

    for _ in range(40):  # more rounds close; a player may earn more, never the same twice
        collect_stats(ctx)
        ctx.clock.advance(30)
    sync_clickhouse(ctx)
    award_achievements(ctx)
    pairs = sql(ctx.db_path, "SELECT player_id, achievement FROM achievements")
    assert len(pairs) == len(set(pairs)) >= awarded
    assert ch_count(ctx.clickhouse, "player_achievements") == len(pairs)
