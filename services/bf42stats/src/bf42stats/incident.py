"""Scheduled incidents for demos: a ClickHouse outage at a set time after start.

    incident = Incident.parse("clickhouse-outage@+1m/90s")   # from start+60 s, for 90 s
    clickhouse = incident.apply(clickhouse, started)         # unreachable during the outage

While ClickHouse is down, stats_collection keeps recording, so clickhouse_sync's backlog
grows; when it returns, the sync catches up with whatever strategy it is set to. Nothing
is faked in the jobs: only ClickHouse's availability is scheduled.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bf42stats.clickhouse import ClickHouse, ClickHouseUnreachable
from jobcorr.times import TimeParseError, format_local, parse_duration

KINDS = ("clickhouse-outage",)


@dataclass(frozen=True)
class Incident:
    """`kind` from `offset` seconds after start, for `duration` seconds."""

    kind: str
    offset: float
    duration: float

    @classmethod
    def parse(cls, text: str) -> Incident:
        """`clickhouse-outage@+1m/90s`; raises ValueError saying the expected form."""
        match = re.fullmatch(r"([a-z-]+)@\+([^/]+)/(.+)", text.strip())
        if not match or match.group(1) not in KINDS:
            raise ValueError(f"must be like clickhouse-outage@+1m/90s (kinds: {', '.join(KINDS)})")
        try:
            return cls(
                match.group(1), parse_duration(match.group(2)), parse_duration(match.group(3))
            )
        except TimeParseError as error:
            raise ValueError(f"must be like clickhouse-outage@+1m/90s: {error}") from None

    def apply(
        self, clickhouse: ClickHouse, started: float, clock: Callable[[], float] = time.time
    ) -> ClickHouse:
        """`clickhouse`, unreachable during this incident (times from `started`)."""
        begin = started + self.offset
        return OutageClickHouse(clickhouse, begin, begin + self.duration, clock)


class OutageClickHouse:
    """A ClickHouse that refuses every statement between `begin` and `end`, as an
    unreachable server does, and is the wrapped one otherwise."""

    def __init__(
        self, inner: ClickHouse, begin: float, end: float, clock: Callable[[], float]
    ) -> None:
        self.database = inner.database
        self._inner, self._begin, self._end, self._clock = inner, begin, end, clock

    def _check(self) -> None:
        if self._begin <= self._clock() < self._end:
            raise ClickHouseUnreachable(
                f"ClickHouse is unreachable (scheduled outage until {format_local(self._end)})"
            )

    def command(self, sql: str) -> None:
        self._check()
        self._inner.command(sql)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self._check()
        self._inner.insert(table, columns, rows)

    def query(self, sql: str) -> list[list[Any]]:
        self._check()
        return self._inner.query(sql)

    def close(self) -> None:
        self._inner.close()
