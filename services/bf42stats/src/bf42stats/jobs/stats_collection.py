"""stats_collection: poll the feed for every game and record what it shows.

Per poll and server: upsert the server, snapshot its player count, follow its round
(a map change or a round-time reset closes the round), and for each player upsert them,
open or extend their session and record one observation. Sessions idle for longer than
the timeout are closed at the end of the run.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing

import jobcorr
from bf42stats import db
from bf42stats.feed import GAMES
from bf42stats.feed.client import GameSnapshot
from bf42stats.feed.models import Server
from bf42stats.jobs import JobContext

_log = logging.getLogger(__name__)


def collect_stats(ctx: JobContext) -> None:
    now = ctx.clock()
    online = 0
    with closing(db.connect(ctx.db_path)) as conn:
        for game in GAMES:
            ctx.check_stop()
            snapshot = ctx.feed.fetch_game(game)
            for reason, count in snapshot.rejected.items():
                ctx.metrics.feed_rejected.labels(game, reason).inc(count)
            with db.transaction(conn):
                players = record_snapshot(conn, snapshot, now, now - ctx.session_timeout)
            ctx.metrics.servers_processed.labels(game).inc(len(snapshot.servers))
            jobcorr.add_volume("servers", len(snapshot.servers))
            jobcorr.add_volume("players", players)
            online += players
        with db.transaction(conn):
            close_idle(conn, now - ctx.session_timeout)
    ctx.metrics.active_players.set(online)
    _log.info("polled %d games: %d players online", len(GAMES), online)


def record_snapshot(
    conn: sqlite3.Connection, snapshot: GameSnapshot, now: float, idle_cutoff: float
) -> int:
    """Write one game's poll; return the number of players seen.

    A player's open session seen last before `idle_cutoff` is closed and a new one opened.
    """
    players = 0
    for server in snapshot.servers:
        _upsert_server(conn, snapshot.game, server, now)
        conn.execute(
            "INSERT INTO server_snapshots(observed_at, server_guid, game, num_players, map_name)"
            " VALUES (?, ?, ?, ?, ?)",
            (now, server.guid, snapshot.game, len(server.players), server.mapName),
        )
        round_id = _follow_round(conn, server, now)
        for player in server.players:
            player_id = conn.execute(
                "INSERT INTO players(name, first_seen, last_seen) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET last_seen = excluded.last_seen RETURNING id",
                (player.name, now, now),
            ).fetchone()[0]
            _touch_session(conn, player_id, server.guid, now, idle_cutoff)
            conn.execute(
                "INSERT INTO observations(observed_at, server_guid, player_id, score, kills,"
                " deaths, ping, team) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (now, server.guid, player_id, player.score, player.kills, player.deaths,
                 player.ping, player.team),
            )  # fmt: skip
            conn.execute(
                "INSERT INTO round_participants(round_id, player_id, team, score, kills, deaths)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(round_id, player_id) DO UPDATE SET"
                " team = excluded.team, score = excluded.score, kills = excluded.kills,"
                " deaths = excluded.deaths",
                (round_id, player_id, player.team, player.score, player.kills, player.deaths),
            )
            players += 1
    return players


def _upsert_server(conn: sqlite3.Connection, game: str, server: Server, now: float) -> None:
    conn.execute(
        "INSERT INTO servers(guid, game, address, name, max_players, num_players, map_name,"
        " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(guid) DO UPDATE"
        " SET address = excluded.address, name = excluded.name, max_players ="
        " excluded.max_players, num_players = excluded.num_players, map_name ="
        " excluded.map_name, last_seen = excluded.last_seen",
        (server.guid, game, server.address, server.name, server.maxPlayers,
         len(server.players), server.mapName, now, now),
    )  # fmt: skip


def _follow_round(conn: sqlite3.Connection, server: Server, now: float) -> int:
    """The id of the server's current round, closing the previous one when it ended."""
    row = conn.execute(
        "SELECT id, map_name, last_remain FROM rounds WHERE server_guid = ? AND ended_at IS NULL",
        (server.guid,),
    ).fetchone()
    if row is not None:
        round_id, map_name, last_remain = row
        if map_name == server.mapName and server.roundTimeRemain <= last_remain:
            conn.execute(
                "UPDATE rounds SET last_seen = ?, last_remain = ? WHERE id = ?",
                (now, server.roundTimeRemain, round_id),
            )
            return int(round_id)
        _close_round(conn, round_id)
    return int(
        conn.execute(
            "INSERT INTO rounds(server_guid, map_name, started_at, last_seen, last_remain)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (server.guid, server.mapName, now, now, server.roundTimeRemain),
        ).fetchone()[0]
    )


def _close_round(conn: sqlite3.Connection, round_id: int) -> None:
    # closed_seq orders rounds by closing, so clickhouse_sync can keep a high-water mark.
    conn.execute(
        "UPDATE rounds SET ended_at = last_seen,"
        " closed_seq = (SELECT COALESCE(MAX(closed_seq), 0) + 1 FROM rounds) WHERE id = ?",
        (round_id,),
    )


def _touch_session(
    conn: sqlite3.Connection, player_id: int, guid: str, now: float, idle_cutoff: float
) -> None:
    row = conn.execute(
        "SELECT id, server_guid, last_seen FROM sessions WHERE player_id = ? AND ended_at IS NULL",
        (player_id,),
    ).fetchone()
    if row is not None and row[1] == guid and row[2] >= idle_cutoff:
        conn.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", (now, row[0]))
        return
    if row is not None:  # moved to another server, or back after too long away
        conn.execute("UPDATE sessions SET ended_at = last_seen WHERE id = ?", (row[0],))
    conn.execute(
        "INSERT INTO sessions(player_id, server_guid, started_at, last_seen) VALUES (?, ?, ?, ?)",
        (player_id, guid, now, now),
    )


def close_idle(conn: sqlite3.Connection, cutoff: float) -> None:
    """Close sessions unseen since `cutoff`, and rounds of servers gone from the feed."""
    conn.execute(
        "UPDATE sessions SET ended_at = last_seen WHERE ended_at IS NULL AND last_seen < ?",
        (cutoff,),
    )
    stale = conn.execute(
        "SELECT id FROM rounds WHERE ended_at IS NULL AND last_seen < ? ORDER BY id", (cutoff,)
    ).fetchall()
    for (round_id,) in stale:
        _close_round(conn, round_id)
