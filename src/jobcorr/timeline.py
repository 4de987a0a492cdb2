"""The one interface analysis reads: a `Timeline` of metric series, volume series and runs.

Sources (`jobcorr.sources.embedded`, `jobcorr.sources.prometheus`) implement it; analysis
never knows which one fed it. Times are unix seconds, memory is bytes, CPU is cores and
log volume is records per second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, Self

from jobcorr.contract import Metric
from jobcorr.extras import require

require("explain", "numpy")

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Series:
    """Samples in time order."""

    times: FloatArray
    values: FloatArray

    @classmethod
    def empty(cls) -> Series:
        return cls(np.empty(0), np.empty(0))

    @classmethod
    def of(cls, points: Sequence[tuple[float, float]]) -> Series:
        if not points:
            return cls.empty()
        array = np.asarray(points, dtype=np.float64)
        return cls(array[:, 0], array[:, 1])

    def __len__(self) -> int:
        return len(self.times)

    def at(self, t: float) -> float | None:
        """The last value at or before `t` (None before the first sample)."""
        index = int(np.searchsorted(self.times, t, side="right")) - 1
        return None if index < 0 else float(self.values[index])

    def between(self, start: float, end: float) -> Series:
        """The samples with start <= t <= end."""
        lo = int(np.searchsorted(self.times, start, side="left"))
        hi = int(np.searchsorted(self.times, end, side="right"))
        return Series(self.times[lo:hi], self.values[lo:hi])

    def rate(self, interval: float | None = None) -> Series:
        """Per-second increase of a counter; a reset (restart) counts from zero.

        No rate spans less than half the sampling interval (`interval`, default the median
        step): a sample that close to the previous one (ticks fired back to back after a
        stall) is no end point, and its increase counts in the next rate. So a counter that
        never grows faster than N per second never reads above N, however the samples fall.
        """
        if len(self) < 2:
            return Series.empty()
        dt = np.diff(self.times)
        shortest = (float(np.median(dt)) if interval is None else interval) / 2
        dv = np.diff(self.values)
        increase = np.concatenate(([0.0], np.cumsum(np.where(dv < 0, self.values[1:], dv))))
        keep = np.concatenate(([True], (dt > 0) & (dt >= shortest)))
        times, increase = self.times[keep], increase[keep]
        return Series(times[1:], np.diff(increase) / np.diff(times))


@dataclass(frozen=True)
class VolumeSeries:
    """A service metric that says what jobs processed (a counter or a gauge)."""

    name: str
    labels: dict[str, str]
    kind: Literal["counter", "gauge"]
    series: Series

    @property
    def title(self) -> str:
        """For people: `player_metrics (bg_clickhouse_records_synced_total)`, or the name.
        Sources keep only the labels that name a volume (`operation`, `game`), not target
        labels such as `instance`, `pod` or `namespace`."""
        values = ",".join(value for _, value in sorted(self.labels.items()))
        return f"{values} ({self.name})" if values else self.name


@dataclass(frozen=True)
class Ownership:
    """Who owned a metric over a window: per-job series and what no job owned."""

    by_job: dict[str, Series]
    """job -> cores (cpu) or records/s (logs), on the same times as `outside`."""
    outside: Series
    """The same unit, owned by no job."""


@dataclass(frozen=True)
class RunSpan:
    """One run of a job. `exact` runs come from run records; rebuilt ones from gauges."""

    run_id: str
    job: str
    start: float
    end: float | None
    status: str
    volumes: dict[str, float] = field(default_factory=dict)
    peak_memory: float | None = None
    memory_at_start: float | None = None
    """Resident memory at the run's start and its peak during the run: from run records, or
    from the scraped gauges for the last run of a job before each scrape."""
    exact: bool = True
    pid: int | None = None
    """The process that ran it (run records only): a pool's child owns its whole memory."""
    placed: bool = False
    """Rebuilt from scrapes with only its count and duration known: its start and end were
    placed between two scrapes, not read."""

    def overlap(self, start: float, end: float, now: float) -> float:
        """Seconds of [start, end] during which this run was going."""
        run_end = self.end if self.end is not None else now
        return max(0.0, min(end, run_end) - max(start, self.start))


class Timeline(Protocol):
    """What analysis needs from a source."""

    @property
    def resolution(self) -> float:
        """Seconds between samples at full resolution."""

    def metric(self, metric: Metric, start: float, end: float, step: float | None = None) -> Series:
        """Memory (bytes), CPU (cores), log volume (records/s) or GC collections (per
        second) over [start, end], at full resolution, or coarser when `step` allows."""

    def owned(
        self, metric: Metric, start: float, end: float, step: float | None = None
    ) -> Ownership | None:
        """CPU (cores) or log volume (records/s) over [start, end], split by the job that
        owned it, and what no job owned; None for metrics that cannot be owned (memory, gc)."""

    def volumes(self, start: float, end: float, step: float | None = None) -> list[VolumeSeries]:
        """The service's volume series over [start, end] (coarser when `step` allows)."""

    def runs(self, start: float, end: float) -> list[RunSpan]:
        """Runs overlapping [start, end], by start time."""

    def refresh(self) -> None:
        """Catch up with what the source learnt since it was opened (new series, a later
        end): a long-lived reader (a dashboard worker) calls it before each answer."""

    def close(self) -> None:
        """Release the connection; sources are also context managers that close on exit."""

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...
