"""The recorder's SQLite store as a Timeline.

Full-resolution samples are read while they are kept (48 h by default); older parts of a
range, and whole ranges when the caller asks for minutes (`step=60`), come from the
one-minute rollups.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jobcorr import contract
from jobcorr.contract import Metric
from jobcorr.processes import CHILD_CPU, CHILD_MEMORY
from jobcorr.recorder import CGROUP_SERIES, USABLE_CORES_SERIES
from jobcorr.sources import Source, SourceError
from jobcorr.store import SeriesInfo, Store, StoreError
from jobcorr.timeline import FloatArray, Ownership, RunSpan, Series, VolumeSeries

MEMORY = contract.PROCESS_RESIDENT_MEMORY
CPU = contract.PROCESS_CPU_SECONDS
JOB_CPU = contract.CPU.exposed_name
LOGS = contract.LOG_RECORDS.exposed_name
GC = contract.PYTHON_GC_COLLECTIONS
_NOT_VOLUMES = {
    CHILD_MEMORY,
    CHILD_CPU,
    CGROUP_SERIES,
    USABLE_CORES_SERIES,
    *(family.exposed_name for family in contract.CONTRACT),
}


class EmbeddedTimeline(Source):
    """The store at `path`, read-only; `refresh()` sees what was written since."""

    def __init__(self, path: Path) -> None:
        try:
            self._store = Store(path, readonly=True)
        except StoreError as error:
            raise SourceError(f"{error} (start the recorder, or pass --source)") from error
        self.refresh()

    def refresh(self) -> None:
        self._series = self._store.series()
        memory = self._find(MEMORY)
        self._bounds = self._store.bounds(memory[0].id) if memory else None
        self._raw_since: dict[int, float | None] = {}
        self._resolution = self._measure_resolution()

    def close(self) -> None:
        self._store.close()

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
            return self._memory(start, end, step)
        ticks = self._ticks(start, end, step)
        if metric == "cpu":
            cpu = self._counter((CPU, CHILD_CPU), ticks, start, end, step)
            return self._capped(cpu.rate(), start, end)
        return self._counter(LOGS if metric == "logs" else GC, ticks, start, end, step).rate()

    def owned(
        self, metric: Metric, start: float, end: float, step: float | None = None
    ) -> Ownership | None:
        """CPU from `bg_job_cpu_seconds_total` per job against the process's CPU, logs from
        `bg_log_records_total` (whose `job=""` no job owned); all read on the same ticks."""
        if metric not in ("cpu", "logs"):
            return None
        ticks = self._ticks(start, end, step)
        name = JOB_CPU if metric == "cpu" else LOGS
        by_job = {
            job: self._capped(series.rate(), start, end) if metric == "cpu" else series.rate()
            for job, series in self._by_job(name, ticks, start, end, step).items()
        }
        if metric == "logs":
            outside = by_job.pop("", None)
            return Ownership(
                by_job, Series(ticks, np.zeros(len(ticks))).rate() if outside is None else outside
            )
        process = self.metric("cpu", start, end, step)
        owned = sum((rate.values for rate in by_job.values()), np.zeros(len(process)))
        return Ownership(by_job, Series(process.times, np.maximum(process.values - owned, 0.0)))

    def _memory(self, start: float, end: float, step: float | None) -> Series:
        """The process's resident memory plus its children's (a pool's processes) at each
        tick; a child counts only on the ticks it was sampled, so one that ended drops out."""
        found = self._find(MEMORY)
        if not found:
            return Series.empty()
        memory = self._read(found[0], start, end, step)
        total = memory.values.copy()
        for info in self._find(CHILD_MEMORY):
            child = self._read(info, start, end, step)
            index = np.searchsorted(memory.times, child.times)
            on_tick = index < len(memory)
            on_tick[on_tick] = memory.times[index[on_tick]] == child.times[on_tick]
            np.add.at(total, index[on_tick], child.values[on_tick])
        return Series(memory.times, total)

    def _ticks(self, start: float, end: float, step: float | None) -> FloatArray:
        """The recorder's ticks in [start, end] (minutes when `step` asks): every series is
        sampled on them, so counters read on them line up, and a counter's first sample
        counts from zero when it appeared after the first tick."""
        found = self._find(MEMORY)
        return self._read(found[0], start, end, step).times if found else np.empty(0)

    def _capped(self, cores: Series, start: float, end: float) -> Series:
        """CPU in cores, never above what the process could use at the time (stores
        without that reading are left as they are)."""
        found = self._find(USABLE_CORES_SERIES)
        if not found or not len(cores):
            return cores
        usable = _sum_carried([self._read(found[0], start, end)], cores.times).values
        limited = np.where(usable > 0, np.minimum(cores.values, usable), cores.values)
        return Series(cores.times, limited)

    def _counter(
        self,
        names: str | tuple[str, ...],
        ticks: FloatArray,
        start: float,
        end: float,
        step: float | None,
    ) -> Series:
        """The sum of every series of counter `names`, on `ticks`."""
        wanted = (names,) if isinstance(names, str) else names
        parts = [self._read(info, start, end, step) for name in wanted for info in self._find(name)]
        return _sum_carried(parts, ticks)

    def _by_job(
        self, name: str, ticks: FloatArray, start: float, end: float, step: float | None
    ) -> dict[str, Series]:
        """Counter `name` summed per `job` label, on `ticks`."""
        parts: dict[str, list[Series]] = {}
        for info in self._find(name):
            parts.setdefault(info.labels.get("job", ""), []).append(
                self._read(info, start, end, step)
            )
        return {job: _sum_carried(series, ticks) for job, series in parts.items()}

    def volumes(self, start: float, end: float, step: float | None = None) -> list[VolumeSeries]:
        return [
            VolumeSeries(info.name, info.labels, "gauge" if info.kind == "gauge" else "counter",
                         self._read(info, start, end, step))
            for info in self._series
            if info.name not in _NOT_VOLUMES and not info.name.startswith(contract.RUNTIME_PREFIXES)
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
                pid=run.pid,
            )
            for run in self._store.runs(start, end)
        ]


def _sum_carried(parts: list[Series], ticks: FloatArray) -> Series:
    """The sum of series read on `ticks`, each carried forward from its last sample and 0
    before its first (a labelled counter appears at its first increment)."""
    total = np.zeros(len(ticks))
    for part in parts:
        if len(part):
            index = np.searchsorted(part.times, ticks, side="right") - 1
            total += np.where(index >= 0, part.values[np.clip(index, 0, None)], 0.0)
    return Series(ticks, total)
