"""A small in-memory `Timeline` for driving the analysis without recording anything."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jobcorr.contract import Metric
from jobcorr.timeline import Ownership, RunSpan, Series, VolumeSeries


@dataclass
class MemoryTimeline:
    """Series sampled every `resolution` seconds from t=0; `owners` split CPU or logs."""

    resolution: float = 1.0
    series: dict[str, Series] = field(default_factory=dict)
    owners: dict[str, dict[str, Series]] = field(default_factory=dict)
    """metric -> {job or "" (outside every job) -> series}; the metric is their sum."""
    spans: list[RunSpan] = field(default_factory=list)
    volume_series: list[VolumeSeries] = field(default_factory=list)

    def set(self, metric: Metric, values: np.ndarray) -> None:
        times = np.arange(len(values)) * self.resolution
        self.series[metric] = Series(times, np.asarray(values, dtype=np.float64))

    def own(self, metric: Metric, parts: dict[str, np.ndarray]) -> None:
        """`metric` as the sum of what each job ("" for outside) owned."""
        length = len(next(iter(parts.values())))
        times = np.arange(length) * self.resolution
        self.owners[metric] = {job: Series(times, np.asarray(v, float)) for job, v in parts.items()}
        self.set(metric, np.sum(list(parts.values()), axis=0))

    def run(self, job: str, start: float, end: float, **volumes: float) -> None:
        run_id = f"{job}-{len(self.spans)}"
        self.spans.append(RunSpan(run_id, job, start, end, "success", dict(volumes)))
        self.spans.sort(key=lambda r: r.start)

    def metric(self, metric: Metric, start: float, end: float, step: float | None = None) -> Series:
        return self.series.get(metric, Series.empty()).between(start, end)

    def owned(
        self, metric: Metric, start: float, end: float, step: float | None = None
    ) -> Ownership | None:
        parts = self.owners.get(metric)
        if parts is None:
            return None
        by_job = {job: s.between(start, end) for job, s in parts.items() if job}
        return Ownership(by_job, parts[""].between(start, end))

    def volumes(self, start: float, end: float, step: float | None = None) -> list[VolumeSeries]:
        return self.volume_series

    def runs(self, start: float, end: float) -> list[RunSpan]:
        return [r for r in self.spans if r.start <= end and (r.end is None or r.end >= start)]
