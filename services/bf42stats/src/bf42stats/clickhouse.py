"""ClickHouse for the analytics copy: embedded chdb by default, a server through
clickhouse-connect when a URL is set. Both run the same DDL and queries.

Tables are ReplacingMergeTree keyed so that a row delivered twice (at-least-once sync)
collapses; readers deduplicate with FINAL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol
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


class ClickHouseError(Exception):
    """ClickHouse refused or could not run a statement; the batch was not acknowledged."""


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


class RemoteClickHouse:
    """A ClickHouse server over HTTP(S), e.g. `http://user:password@clickhouse:8123/`."""

    def __init__(self, url: str, database: str = DATABASE) -> None:
        import clickhouse_connect

        parts = urlparse(url)
        self.database = database
        try:
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=parts.username or "default",
                password=parts.password or "",
                secure=parts.scheme == "https",
            )
        except Exception as error:
            raise ClickHouseError(
                f"cannot connect to ClickHouse at {parts.hostname}: {error}"
            ) from error

    def command(self, sql: str) -> None:
        try:
            self._client.command(sql)
        except Exception as error:
            raise ClickHouseError(str(error)) from error

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            try:
                self._client.insert(f"{self.database}.{table}", rows, column_names=list(columns))
            except Exception as error:
                raise ClickHouseError(str(error)) from error

    def query(self, sql: str) -> list[list[Any]]:
        try:
            return [list(row) for row in self._client.query(sql).result_rows]
        except Exception as error:
            raise ClickHouseError(str(error)) from error

    def close(self) -> None:
        self._client.close()


def open_clickhouse(url: str, data_dir: Path, database: str = DATABASE) -> ClickHouse:
    """The server at `url`, or embedded chdb under `data_dir/clickhouse` when `url` is empty;
    the database and tables are created when missing."""
    clickhouse: ClickHouse = (
        RemoteClickHouse(url, database)
        if url
        else EmbeddedClickHouse(data_dir / "clickhouse", database)
    )
    clickhouse.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    for table, columns in TABLES.items():
        clickhouse.command(f"CREATE TABLE IF NOT EXISTS {database}.{table} ({columns}")
    return clickhouse
