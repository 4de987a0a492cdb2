"""ClickHouse for the analytics copy: embedded chdb by default, a server through
clickhouse-connect when a URL is set. Both run the same DDL and queries.

Tables are ReplacingMergeTree keyed so that a row delivered twice (at-least-once sync)
collapses; readers deduplicate with FINAL.

A server may be down when the service starts, or go away later: the service connects on
first use, and after a failure waits before it tries again (doubling the wait up to a
cap), failing the statements meanwhile without touching the network. The jobs that need
ClickHouse fail their runs (counted, alerting); the others never notice.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

DATABASE = "bf42"

TABLES: dict[str, str] = {
    "player_metrics": """
        observation_id UInt64, observed_at DateTime64(3, 'UTC'), server_guid String,
        game LowCardinality(String), player_name String, score Int32, kills UInt32,
        deaths UInt32, ping UInt32, team Int8
    ) ENGINE = ReplacingMergeTree ORDER BY (server_guid, player_name, observed_at)""",
    "server_online_counts": """
        snapshot_id UInt64, observed_at DateTime64(3, 'UTC'), server_guid String,
        game LowCardinality(String), num_players UInt16, map_name String
    ) ENGINE = ReplacingMergeTree ORDER BY (server_guid, observed_at)""",
    "player_rounds": """
        round_id UInt64, closed_seq UInt64, server_guid String, map_name String,
        started_at DateTime64(3, 'UTC'), ended_at DateTime64(3, 'UTC'), player_name String,
        team Int8, score Int32, kills UInt32, deaths UInt32
    ) ENGINE = ReplacingMergeTree ORDER BY (round_id, player_name)""",
    "player_achievements": """
        player_name String, achievement LowCardinality(String), round_id UInt64,
        awarded_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree ORDER BY (player_name, achievement)""",
}


TIME_COLUMNS: dict[str, frozenset[str]] = {
    table: frozenset(re.findall(r"(\w+) DateTime64", columns)) for table, columns in TABLES.items()
}
"""Each table's DateTime64 columns, read from its DDL: SQLite hands these over as unix
seconds, and clickhouse-connect takes only datetimes for them."""

FIRST_RETRY_SECONDS = 1.0
"""After the first failure the next statement may try again a second later: a blip costs
one run at most."""

MAX_WAIT_SECONDS = 300.0
"""Unless told otherwise, a server that was down is tried again at least every five minutes."""

_log = logging.getLogger(__name__)


class ClickHouseError(Exception):
    """ClickHouse refused or could not run a statement; the batch was not acknowledged."""


class ClickHouseUnreachable(ClickHouseError):
    """No answer from the server (refused, timed out, or waiting before the next try)."""


class ClickHouse(Protocol):
    database: str

    def command(self, sql: str) -> None: ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows; returns only once ClickHouse acknowledged them all."""

    def query(self, sql: str) -> list[list[Any]]: ...

    def close(self) -> None: ...


def _tsv_field(value: Any) -> str:
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return str(value)


def to_tsv(rows: Iterable[Sequence[Any]]) -> str:
    """Rows in ClickHouse's TabSeparated format (floats as unix times for DateTime64)."""
    return "\n".join("\t".join(map(_tsv_field, row)) for row in rows)


class EmbeddedClickHouse:
    """chdb: the ClickHouse engine in this process, its data under `path`.

    chdb allows one data path per process at a time; `close()` frees it.
    """

    def __init__(self, path: Path, database: str = DATABASE) -> None:
        import chdb

        self.database = database
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = chdb.connect(str(path))  # type: ignore[no-untyped-call]
        except RuntimeError as error:
            raise ClickHouseError(f"cannot open embedded ClickHouse at {path}: {error}") from error

    def _run(self, sql: str, fmt: str = "CSV") -> Any:
        try:
            return self._conn.query(sql, fmt)
        except RuntimeError as error:  # chdb's ChdbError is a RuntimeError
            raise ClickHouseError(str(error).strip()) from error

    def command(self, sql: str) -> None:
        self._run(sql)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            target = f"{self.database}.{table} ({', '.join(columns)})"
            self._run(f"INSERT INTO {target} FORMAT TabSeparated\n{to_tsv(rows)}")

    def query(self, sql: str) -> list[list[Any]]:
        result = self._run(sql, "JSONCompact")
        raw = result.bytes()
        return list(json.loads(raw)["data"]) if raw else []

    def close(self) -> None:
        self._conn.close()


def _as_datetimes(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Rows with their DateTime64 values as UTC datetimes (unix seconds as SQLite has them)."""
    times = [i for i, column in enumerate(columns) if column in TIME_COLUMNS[table]]
    if not times:
        return list(rows)

    def convert(row: Sequence[Any]) -> list[Any]:
        values = list(row)
        for i in times:
            if isinstance(values[i], int | float):
                values[i] = datetime.fromtimestamp(values[i], UTC)
        return values

    return [convert(row) for row in rows]


T = TypeVar("T")


class RemoteClickHouse:
    """A ClickHouse server over HTTP(S), e.g. `http://user:password@clickhouse:8123/`."""

    def __init__(self, url: str, database: str = DATABASE) -> None:
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import OperationalError

        parts = urlparse(url)
        self.database = database
        self._where = f"{parts.hostname}:{parts.port or ''}".rstrip(":")
        self._unreachable: type[Exception] = OperationalError
        try:
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=parts.username or "default",
                password=parts.password or "",
                secure=parts.scheme == "https",
                # the jobs share this client from several threads; a server refuses a second
                # statement in a session still in use, and the jobs need no session state
                autogenerate_session_id=False,
            )
        except Exception as error:
            raise ClickHouseUnreachable(
                f"cannot connect to ClickHouse at {self._where}: {error}"
            ) from error

    def _run(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except self._unreachable as error:
            raise ClickHouseUnreachable(f"ClickHouse at {self._where}: {error}") from error
        except Exception as error:
            raise ClickHouseError(str(error)) from error

    def command(self, sql: str) -> None:
        self._run(lambda: self._client.command(sql))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            data = _as_datetimes(table, columns, rows)
            self._run(lambda: self._client.insert(
                f"{self.database}.{table}", data, column_names=list(columns)))  # fmt: skip

    def query(self, sql: str) -> list[list[Any]]:
        return self._run(lambda: [list(row) for row in self._client.query(sql).result_rows])

    def close(self) -> None:
        self._client.close()


class Reconnecting:
    """A ClickHouse that may be down: opened on first use, and after an unreachable error
    not tried again until a wait has passed (1 s, doubling up to `max_wait`). Meanwhile
    every statement fails at once with `ClickHouseUnreachable`, saying when the next try is."""

    def __init__(
        self,
        connect: Callable[[], ClickHouse],
        database: str,
        max_wait: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self._connect, self._max_wait, self._clock = connect, max_wait, clock
        self._client: ClickHouse | None = None
        self._lock = threading.Lock()
        self._wait = 0.0
        self._retry_at = 0.0
        self._last_error = ""

    def _use(self, call: Callable[[ClickHouse], T]) -> T:
        with self._lock:
            now = self._clock()
            if now < self._retry_at:
                raise ClickHouseUnreachable(
                    f"{self._last_error}; next try in {self._retry_at - now:.0f} s"
                )
        try:
            client = self._open()
            result = call(client)
        except ClickHouseUnreachable as error:
            self._failed(str(error))
            raise
        with self._lock:
            if self._wait:
                _log.warning("ClickHouse is reachable again")
            self._wait = 0.0
        return result

    def _open(self) -> ClickHouse:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _failed(self, message: str) -> None:
        with self._lock:
            self._wait = min(self._max_wait, max(FIRST_RETRY_SECONDS, 2 * self._wait))
            self._retry_at = self._clock() + self._wait
            self._last_error = message
        _log.warning("%s; next try in %.0f s", message, self._wait)

    def command(self, sql: str) -> None:
        self._use(lambda client: client.command(sql))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self._use(lambda client: client.insert(table, columns, rows))

    def query(self, sql: str) -> list[list[Any]]:
        return self._use(lambda client: client.query(sql))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()


def create_schema(clickhouse: ClickHouse) -> ClickHouse:
    """Create the database and tables when missing; return `clickhouse`."""
    database = clickhouse.database
    clickhouse.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    for table, columns in TABLES.items():
        clickhouse.command(f"CREATE TABLE IF NOT EXISTS {database}.{table} ({columns}")
    return clickhouse


def open_clickhouse(
    url: str, data_dir: Path, database: str = DATABASE, *, max_wait: float = MAX_WAIT_SECONDS
) -> ClickHouse:
    """Embedded chdb under `data_dir/clickhouse` when `url` is empty (opened now: a bad data
    directory stops the service at start), else the server at `url`, connected on first use
    and retried after failures (waits up to `max_wait`): the service starts without it. The
    database and tables are created when missing."""
    if not url:
        return create_schema(EmbeddedClickHouse(data_dir / "clickhouse", database))
    return Reconnecting(lambda: create_schema(RemoteClickHouse(url, database)), database, max_wait)
