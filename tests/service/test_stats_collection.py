"""stats_collection against the simulated feed: what the feed served is what SQLite holds."""

from __future__ import annotations

import pytest
from starlette.responses import JSONResponse, Response

import jobcorr
from bf42stats.feed import GAMES
from bf42stats.feed.client import FeedClient, FeedError
from bf42stats.jobs.stats_collection import collect_stats
from jobcorr.web.server import BackgroundServer

from .helpers import count, sample, served_players, sql


def run(ctx, registry, records=None):
    with jobcorr.track("stats_collection", registry=registry) as tracked:
        collect_stats(ctx)
    return tracked


def test_one_poll_records_every_server_player_and_observation(ctx, world, clock, registry, records):
    expected = served_players(world, clock.now)
    total = sum(expected.values())
    assert total > 50
    run(ctx, registry)

    assert count(ctx.db_path, "servers") == 12
    assert count(ctx.db_path, "server_snapshots") == 12
    assert count(ctx.db_path, "players") == total
    assert count(ctx.db_path, "observations") == total
    assert sql(ctx.db_path, "SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL") == [(total,)]
    assert count(ctx.db_path, "rounds") == 12
    assert count(ctx.db_path, "round_participants") == total
    for game in GAMES:
        assert sample(registry, "bg_servers_processed_total", game=game) == 4
    assert sample(registry, "bg_active_players") == total
    assert records[-1].volumes == {"servers": 12, "players": total}


def test_repeated_polls_extend_sessions_and_rounds_change_with_maps(ctx, world, clock, registry):
    run(ctx, registry)
    first_players = count(ctx.db_path, "players")
    observations = count(ctx.db_path, "observations")
    clock.advance(30)
    expected_second = sum(served_players(world, clock.now).values())
    run(ctx, registry)
    assert count(ctx.db_path, "observations") == observations + expected_second
    # Same players on the same servers: sessions extended, not reopened.
    assert count(ctx.db_path, "sessions") == max(first_players, count(ctx.db_path, "players"))
    assert sql(ctx.db_path, "SELECT MAX(last_seen) FROM sessions") == [(clock.now,)]

    for _ in range(40):  # 20 minutes: every server's round (12-18 min) changes at least once
        clock.advance(30)
        run(ctx, registry)
    closed = sql(
        ctx.db_path,
        "SELECT COUNT(*), COUNT(DISTINCT closed_seq), MAX(closed_seq) FROM rounds "
        "WHERE ended_at IS NOT NULL",
    )[0]
    assert closed[0] >= 12 and closed[0] == closed[1] == closed[2]
    maps = sql(ctx.db_path, "SELECT server_guid, COUNT(DISTINCT map_name) FROM rounds GROUP BY 1")
    assert all(distinct >= 2 for _, distinct in maps)
    # Participants of a closed round carry their final figures.
    assert (
        sql(
            ctx.db_path,
            "SELECT COUNT(*) FROM round_participants rp JOIN rounds r "
            "ON r.id = rp.round_id WHERE r.ended_at IS NOT NULL AND rp.kills > 0",
        )[0][0]
        > 0
    )


def test_sessions_close_after_the_timeout(ctx, clock, registry, tmp_path):
    run(ctx, registry)
    open_sessions = sql(ctx.db_path, "SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL")[0][0]
    clock.advance(ctx.session_timeout + 60)
    dead = FeedClient("http://127.0.0.1:9")  # nothing listens: the poll fails ...
    ctx.feed, live = dead, ctx.feed
    with pytest.raises(FeedError):
        run(ctx, registry)
    ctx.feed = live
    assert (
        sql(ctx.db_path, "SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL")[0][0]
        == open_sessions
    )
    run(ctx, registry)  # ... and the next poll closes what went unseen, then reopens
    rows = sql(ctx.db_path, "SELECT COUNT(*) FROM sessions WHERE ended_at IS NOT NULL")[0][0]
    assert rows == open_sessions


def test_malformed_entries_are_skipped_and_counted(tmp_path, clickhouse, clock, registry, records):
    from bf42stats.feed.simulator import SimulatedWorld, feed_app
    from bf42stats.jobs import JobContext
    from bf42stats.metrics import service_metrics

    world = SimulatedWorld(12, seed=7, start=clock.now, clock=clock, malformed_every=3)
    server = BackgroundServer(feed_app(world)).start()
    try:
        ctx = JobContext(
            tmp_path / "db.sqlite3",
            clickhouse,
            FeedClient(server.url),
            service_metrics(registry),
            clock=clock,
        )
        run(ctx, registry)
    finally:
        server.stop()
    entries = [e for game in GAMES for e in world.servers(game, clock.now)]
    bad_servers = [e for e in entries if e["numPlayers"] == "lots"]
    good = [e for e in entries if e["numPlayers"] != "lots"]
    bad_players = sum(1 for e in entries for p in e["players"] if p["name"] == "")
    assert len(bad_servers) == 4
    assert count(tmp_path / "db.sqlite3", "servers") == 8
    assert count(tmp_path / "db.sqlite3", "observations") == sum(
        1 for e in good for p in e["players"] if p["name"]
    )
    rejected = {
        (game, reason): sample(registry, "bg_feed_records_rejected_total", game=game, reason=reason)
        for game in GAMES
        for reason in ("invalid_server", "invalid_player")
    }
    assert sum(v for (_, r), v in rejected.items() if r == "invalid_server") == 4
    assert sum(v for (_, r), v in rejected.items() if r == "invalid_player") == bad_players
    assert records[-1].status == "success"


@pytest.mark.parametrize(
    "bad_response",
    [
        Response("<html>502 Bad Gateway</html>", status_code=502),
        Response("{not json", media_type="application/json"),
        JSONResponse({"data": []}),  # no `servers`
        JSONResponse({"servers": "none"}),
    ],
    ids=["http-502", "not-json", "no-servers-key", "servers-not-a-list"],
)
def test_a_bad_page_fails_the_run_cleanly_and_the_next_tick_recovers(
    ctx, world, registry, records, bad_response
):
    from bf42stats.feed.simulator import feed_app

    good = feed_app(world)
    broken = {"on": True}

    async def flaky(scope, receive, send):
        if broken["on"] and scope["type"] == "http" and "fh2" in scope["path"]:
            await bad_response(scope, receive, send)
        else:
            await good(scope, receive, send)

    server = BackgroundServer(flaky).start()
    try:
        ctx.feed = FeedClient(server.url)
        with pytest.raises(FeedError, match="fh2"):
            run(ctx, registry)
        assert records[-1].status == "failure"
        assert records[-1].error_type == "FeedError"
        bf1942_only = count(ctx.db_path, "servers")
        assert bf1942_only == 4  # the game polled before the bad page was kept, whole
        broken["on"] = False
        run(ctx, registry)
        assert records[-1].status == "success"
        assert count(ctx.db_path, "servers") == 12
    finally:
        ctx.feed.close()
        server.stop()
