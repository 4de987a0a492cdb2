"""The recorder's SQLite store as a Timeline.

Full-resolution samples are read while they are kept (48 h by default); older parts of a
range, and whole ranges when the caller asks for minutes (`step=60`), come from the
one-minute rollups.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jobcorr.contract import Metric
from jobcorr.recorder import CGROUP_SERIES
from jobcorr.sources import SourceError
from jobcorr.store import SeriesInfo, Store, StoreError
from jobcorr.timeline import RunSpan, Series, VolumeSeries

MEMORY = "process_resident_memory_bytes"
CPU = "process_cpu_seconds_total"
LOGS = "bg_log_records_total"
GC = "python_gc_collections_total"
_NOT_VOLUMES = {MEMORY, CPU, LOGS, CGROUP_SERIES, "bg_job_in_progress"}


class EmbeddedTimeline:
    def __init__(self, path: Path) -> None:
        try:
            self._store = Store(path, readonly=True)
        except StoreError as error:
            raise SourceError(f"{error} (start the recorder, or pass --source)") from error
        self._series = self._store.series()
        memory = self._find(MEMORY)
        self._bounds = self._store.bounds(memory[0].id) if memory else None
        self._raw_since: dict[int, float | None] = {}
        self._resolution = self._measure_resolution()

    @property
    def resolution(self) -> float:
        return self._resolution

    def bounds(self) -> tuple[float, float] | None:
        """(first, last) time the store has memory samples for, or None when empty."""
        return self._bounds

    def _measure_resolution(self) -> float:
        memory = self._find(MEMORY)
        if not memory or self._bounds is None:
            return 1.0
        last = self._bounds[1]
        points = self._store.samples(memory[0].id, last - 120, last)
        if len(points) < 2:
            return 1.0
        return float(np.median(np.diff([ts for ts, _ in points]))) / 1000

    def _find(self, name: str) -> list[SeriesInfo]:
        return [info for info in self._series if info.name == name]

    def _read(
        self, info: SeriesInfo, start: float, end: float, step: float | None = None
    ) -> Series:
        """Raw samples where they are kept, one-minute rollups before that (or throughout,
        when `step` asks for minutes)."""
        if info.id not in self._raw_since:
            self._raw_since[info.id] = self._store.raw_since(info.id)
        raw_since = self._raw_since[info.id]
        column = "max" if info.kind == "gauge" else "last"
        if (step is not None and step >= 60) or raw_since is None:
            points = self._store.rollups(info.id, start, end, column)
        elif start < raw_since:
            points = self._store.rollups(info.id, start, raw_since - 60, column)
            points += self._store.samples(info.id, raw_since, end)
        else:
            points = self._store.samples(info.id, start, end)
        series = Series.of(points)
        return Series(series.times / 1000, series.values)

    def metric(self, metric: Metric, start: float, end: float, step: float | None = None) -> Series:
        if metric == "memory":
            found = self._find(MEMORY)
            return self._read(found[0], start, end, step) if found else Series.empty()
        if metric == "cpu":
            found = self._find(CPU)
            return self._read(found[0], start, end, step).rate() if found else Series.empty()
        name = LOGS if metric == "logs" else GC
        parts = [self._read(info, start, end, step) for info in self._find(name)]
        return _sum_counters(parts).rate()

    def volumes(self, start: float, end: float, step: float | None = None) -> list[VolumeSeries]:
        return [
            VolumeSeries(info.name, info.labels, "gauge" if info.kind == "gauge" else "counter",
                         self._read(info, start, end, step))
            for info in self._series
            if info.name not in _NOT_VOLUMES and not info.name.startswith("python_")
        ]  # fmt: skip

    def runs(self, start: float, end: float) -> list[RunSpan]:
        return [
            RunSpan(
                run.run_id,
                run.job,
                run.started_at,
                run.ended_at,
                run.status,
                run.volumes,
                None if run.peak_rss_bytes is None else float(run.peak_rss_bytes),
                None if run.rss_at_start is None else float(run.rss_at_start),
            )
            for run in self._store.runs(start, end)
        ]


def _sum_counters(parts: list[Series]) -> Series:
    """The sum of counters sampled on possibly different ticks (each carried forward)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Series.empty()
    times = np.unique(np.concatenate([p.times for p in parts]))
    total = np.zeros(len(times))
    for part in parts:
        index = np.searchsorted(part.times, times, side="right") - 1
        total += np.where(index >= 0, part.values[np.clip(index, 0, None)], 0.0)
    return Series(times, total)
