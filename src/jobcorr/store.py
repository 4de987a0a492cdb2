"""The embedded store: SQLite in WAL mode, so `jobcorr explain` reads while a service writes.

Tables: `series` (name, labels, kind), `samples` (raw, one row per series per tick),
`rollups` (one row per series per minute: min, max, avg, last) and `runs` (every run,
open ones included). Raw samples are kept 48 h and rollups 30 days by default.

    store = Store(path)                     # creates or opens
    store.write(samples, starts, records)   # one transaction per batch
    store.compact(now)                      # rollups for finished minutes, then retention
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jobcorr.errors import JobcorrError
from jobcorr.tracking import RunRecord, RunStart

RAW_RETENTION_SECONDS = 48 * 3600
ROLLUP_RETENTION_SECONDS = 30 * 86400

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    kind TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups (
    series_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    avg REAL NOT NULL,
    last REAL NOT NULL,
    PRIMARY KEY (series_id, minute)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    cpu_seconds REAL,
    peak_rss_bytes INTEGER,
    rss_at_start INTEGER,
    rss_at_end INTEGER,
    volumes TEXT NOT NULL DEFAULT '{}',
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, started_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """An open connection to a checked store, or StoreError saying which file and why."""
    if readonly and not path.is_file():
        raise StoreError(f"no jobcorr store at {path}")
    try:
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"cannot create the store's directory {path.parent}: {error}") from error
    try:
        if readonly:
            # A reader may be closed by another thread than its own (a dashboard's pool
            # at shutdown); it is never used by two threads at once.
            db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False
            )
        else:
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open the store {path}: {error}") from error
    try:
        if not readonly:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _add_missing_columns(db)
        db.execute("SELECT COUNT(*) FROM series").fetchone()
    except sqlite3.Error as error:
        db.close()
        raise StoreError(f"{path} is not a readable jobcorr store: {error}") from error
    return db


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Stores written before runs carried their pid gain the column (NULL for old runs)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if "pid" not in columns:
        db.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")


@dataclass(frozen=True)
class SeriesInfo:
    id: int
    name: str
    labels: dict[str, str]
    kind: str  # "counter" or "gauge"


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    job: str
    started_at: float
    ended_at: float | None
    status: str  # success, failure, cancelled, running or interrupted
    error_type: str | None
    cpu_seconds: float | None
    peak_rss_bytes: int | None
    rss_at_start: int | None
    rss_at_end: int | None
    volumes: dict[str, float]
    pid: int | None = None


class StoreError(JobcorrError):
    """The store cannot be opened or read; the message says which file and why."""


class Store:
    """One SQLite store. Use one Store per thread (sqlite3 connections are not shared)."""

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        raw_retention: float = RAW_RETENTION_SECONDS,
        rollup_retention: float = ROLLUP_RETENTION_SECONDS,
    ) -> None:
        self.path = path
        self.raw_retention = raw_retention
        self.rollup_retention = rollup_retention
        self._db = _connect(path, readonly)
        self._series_ids: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The one way this store writes: BEGIN ... COMMIT, rolled back on any error (a full
        disk included), so a failed write never leaves the connection inside a transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may already have rolled back (SQLITE_FULL)
                db.rollback()
            raise

    # --- writing ---------------------------------------------------------------

    def series_id(self, name: str, labels: dict[str, str], kind: str) -> int:
        key = (name, json.dumps(labels, sort_keys=True))
        found = self._series_ids.get(key)
        if found is None:
            with self._transaction() as db:
                db.execute(
                    "INSERT OR IGNORE INTO series (name, labels, kind) VALUES (?, ?, ?)",
                    (*key, kind),
                )
                found = db.execute(
                    "SELECT id FROM series WHERE name = ? AND labels = ?", key
                ).fetchone()[0]
            self._series_ids[key] = found  # only once committed
        return found

    def write(
        self,
        samples: Iterable[tuple[int, int, float]],
        starts: Sequence[RunStart] = (),
        records: Sequence[RunRecord] = (),
    ) -> None:
        """One transaction: samples as (series_id, unix ms, value), run starts and ends."""
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?)", samples)
            db.executemany(
                "INSERT OR IGNORE INTO runs (run_id, job, started_at, pid, status) "
                "VALUES (?, ?, ?, ?, 'running')",
                [(s.run_id, s.job, s.started_at, s.pid or None) for s in starts],
            )
            db.executemany(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.run_id, r.job, r.started_at, r.ended_at, r.status, r.error_type,
                     r.error_message, r.cpu_seconds, r.peak_rss_bytes, r.rss_at_start,
                     r.rss_at_end, json.dumps(r.volumes), r.pid or None)
                    for r in records
                ],
            )  # fmt: skip

    def mark_interrupted(self) -> int:
        """Runs still 'running' from a previous process: it died. Their end is unknown; the
        last sample written before the crash bounds it."""
        with self._transaction() as db:
            last = db.execute("SELECT MAX(ts) FROM samples").fetchone()[0]
            ended = None if last is None else last / 1000
            cursor = db.execute(
                "UPDATE runs SET status = 'interrupted', "
                "ended_at = MAX(started_at, COALESCE(?, started_at)) WHERE status = 'running'",
                (ended,),
            )
        return cursor.rowcount

    def compact(self, now: float) -> None:
        """Roll up every finished minute not yet rolled up, then apply retention."""
        with self._transaction() as db:
            done = db.execute("SELECT value FROM meta WHERE key = 'rolled_up_to'").fetchone()
            start_minute = int(done[0]) if done else None
            end_minute = int(now // 60)  # the current minute is not finished
            if start_minute is None:
                first = db.execute("SELECT MIN(ts) FROM samples").fetchone()[0]
                start_minute = end_minute if first is None else int(first // 60000)
            if end_minute > start_minute:
                db.execute(
                    "INSERT OR REPLACE INTO rollups SELECT series_id, ts / 60000 AS minute, "
                    "MIN(value), MAX(value), AVG(value), value FROM (SELECT series_id, ts, value "
                    "FROM samples WHERE ts >= ? AND ts < ? ORDER BY series_id, ts) "
                    "GROUP BY series_id, minute",
                    (start_minute * 60000, end_minute * 60000),
                )
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('rolled_up_to', ?)", (float(end_minute),)
                )
            raw_cut = int((now - self.raw_retention) * 1000)
            db.execute("DELETE FROM samples WHERE ts < ?", (raw_cut,))
            db.execute(
                "DELETE FROM rollups WHERE minute < ?", (int((now - self.rollup_retention) // 60),)
            )
            db.execute("DELETE FROM runs WHERE started_at < ?", (now - self.rollup_retention,))

    # --- reading ---------------------------------------------------------------

    def series(self) -> list[SeriesInfo]:
        return [
            SeriesInfo(id_, name, json.loads(labels), kind)
            for id_, name, labels, kind in self._db.execute(
                "SELECT id, name, labels, kind FROM series ORDER BY id"
            )
        ]

    def samples(self, series_id: int, start: float, end: float) -> list[tuple[int, float]]:
        """(unix ms, value) of one series with start <= t <= end, in time order."""
        return self._db.execute(
            "SELECT ts, value FROM samples WHERE series_id = ? AND ts >= ? AND ts <= ? ORDER BY ts",
            (series_id, int(start * 1000), int(end * 1000)),
        ).fetchall()

    def rollups(
        self, series_id: int, start: float, end: float, column: str
    ) -> list[tuple[int, float]]:
        """(minute start in unix ms, min|max|avg|last) of one series, in time order."""
        if column not in {"min", "max", "avg", "last"}:
            raise ValueError(f"no rollup column {column!r}")
        return self._db.execute(
            f"SELECT minute * 60000, {column} FROM rollups WHERE series_id = ? "
            "AND minute >= ? AND minute <= ? ORDER BY minute",
            (series_id, int(start // 60), int(end // 60)),
        ).fetchall()

    def raw_since(self, series_id: int) -> float | None:
        """The series' oldest raw sample (older data exists only as rollups)."""
        first = self._db.execute(
            "SELECT MIN(ts) FROM samples WHERE series_id = ?", (series_id,)
        ).fetchone()[0]
        return None if first is None else first / 1000

    def bounds(self, series_id: int) -> tuple[float, float] | None:
        """(first, last) time the store has data for one series (raw or rolled up)."""
        raw = self._db.execute(
            "SELECT MIN(ts), MAX(ts) FROM samples WHERE series_id = ?", (series_id,)
        ).fetchone()
        rolled = self._db.execute(
            "SELECT MIN(minute), MAX(minute) FROM rollups WHERE series_id = ?", (series_id,)
        ).fetchone()
        firsts = [v for v in (raw[0] and raw[0] / 1000, rolled[0] and rolled[0] * 60) if v]
        lasts = [v for v in (raw[1] and raw[1] / 1000, rolled[1] and rolled[1] * 60 + 59) if v]
        return (min(firsts), max(lasts)) if firsts else None

    def runs(self, start: float, end: float, job: str | None = None) -> list[StoredRun]:
        """Runs that overlap [start, end] (open ones included), by start time."""
        query = (
            "SELECT run_id, job, started_at, ended_at, status, error_type, cpu_seconds, "
            "peak_rss_bytes, rss_at_start, rss_at_end, volumes, pid FROM runs "
            "WHERE started_at <= ? AND COALESCE(ended_at, ?) >= ?"
        )
        args: list[object] = [end, end, start]
        if job is not None:
            query += " AND job = ?"
            args.append(job)
        rows = self._db.execute(query + " ORDER BY started_at", args).fetchall()
        return [
            StoredRun(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                      row[9], json.loads(row[10]), row[11])
            for row in rows
        ]  # fmt: skip
