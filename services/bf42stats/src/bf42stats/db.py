"""The SQLite app store: schema migrations in code, WAL, one connection per job run.

with connect(path) as db:         # migrates on first use
    with transaction(db):
        db.execute(...)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE servers (
        guid TEXT PRIMARY KEY,
        game TEXT NOT NULL,
        address TEXT NOT NULL,
        name TEXT NOT NULL,
        max_players INTEGER NOT NULL,
        num_players INTEGER NOT NULL,
        map_name TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE players (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        player_id INTEGER NOT NULL REFERENCES players(id),
        server_guid TEXT NOT NULL REFERENCES servers(guid),
        started_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        ended_at REAL
    );
    CREATE UNIQUE INDEX sessions_open ON sessions(player_id) WHERE ended_at IS NULL;
    CREATE INDEX sessions_by_server ON sessions(server_guid, started_at);
    CREATE TABLE observations (
        id INTEGER PRIMARY KEY,
        observed_at REAL NOT NULL,
        server_guid TEXT NOT NULL,
        player_id INTEGER NOT NULL,
        score INTEGER NOT NULL,
        kills INTEGER NOT NULL,
        deaths INTEGER NOT NULL,
        ping INTEGER NOT NULL,
        team INTEGER NOT NULL
    );
    CREATE TABLE server_snapshots (
        id INTEGER PRIMARY KEY,
        observed_at REAL NOT NULL,
        server_guid TEXT NOT NULL,
        game TEXT NOT NULL,
        num_players INTEGER NOT NULL,
        map_name TEXT NOT NULL
    );
    CREATE TABLE rounds (
        id INTEGER PRIMARY KEY,
        server_guid TEXT NOT NULL REFERENCES servers(guid),
        map_name TEXT NOT NULL,
        started_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        last_remain INTEGER NOT NULL,
        ended_at REAL,
        closed_seq INTEGER UNIQUE
    );
    CREATE UNIQUE INDEX rounds_open ON rounds(server_guid) WHERE ended_at IS NULL;
    CREATE INDEX rounds_by_start ON rounds(started_at);
    CREATE TABLE round_participants (
        round_id INTEGER NOT NULL REFERENCES rounds(id),
        player_id INTEGER NOT NULL REFERENCES players(id),
        team INTEGER NOT NULL,
        score INTEGER NOT NULL,
        kills INTEGER NOT NULL,
        deaths INTEGER NOT NULL,
        PRIMARY KEY (round_id, player_id)
    );
    CREATE TABLE rankings (
        month TEXT NOT NULL,
        server_guid TEXT NOT NULL,
        player_id INTEGER NOT NULL,
        rank INTEGER NOT NULL,
        score INTEGER NOT NULL,
        kills INTEGER NOT NULL,
        deaths INTEGER NOT NULL,
        play_seconds REAL NOT NULL,
        PRIMARY KEY (month, server_guid, player_id)
    );
    CREATE TABLE achievements (
        player_id INTEGER NOT NULL REFERENCES players(id),
        achievement TEXT NOT NULL,
        round_id INTEGER,
        awarded_at REAL NOT NULL,
        PRIMARY KEY (player_id, achievement)
    );
    CREATE TABLE sync_watermarks (
        operation TEXT PRIMARY KEY,
        value INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
)


def connect(path: Path) -> sqlite3.Connection:
    """Open the store (creating and migrating it), in autocommit mode with WAL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    _migrate(db)
    return db


def _migrate(db: sqlite3.Connection) -> None:
    with transaction(db):
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={number}")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (nothing half-written)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def get_watermark(db: sqlite3.Connection, operation: str) -> int:
    row = db.execute(
        "SELECT value FROM sync_watermarks WHERE operation = ?", (operation,)
    ).fetchone()
    return int(row[0]) if row else 0


def set_watermark(db: sqlite3.Connection, operation: str, value: int, now: float) -> None:
    db.execute(
        "INSERT INTO sync_watermarks(operation, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(operation) DO UPDATE SET value = excluded.value,"
        " updated_at = excluded.updated_at",
        (operation, value, now),
    )
