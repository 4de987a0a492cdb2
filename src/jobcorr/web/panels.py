"""The dashboard's data for a range, as compact columns for the page (uPlot draws them):
memory, CPU, log volume and GC activity, the service's volumes, the job runs and the alert
limits (the page asks /api/spikes for its markers once the first chart is drawn). Times
are unix seconds; every series is at most ~2 points per pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jobcorr.analysis import narrative
from jobcorr.analysis.spikes import THRESHOLDS
from jobcorr.contract import METRICS
from jobcorr.timeline import RunSpan, Series, Timeline

ROLLUP_VIEW_SECONDS = 6 * 3600
"""Views longer than this read one-minute rollups: 1 s samples would be ~20k points a
series, ten times what a chart can show."""
MIN_VIEW_SECONDS = 15 * 60
"""The default view spans at least this much, however young the data."""
MAX_VIEW_SECONDS = 24 * 3600
"""The default view starts at the first sample, or this long ago if the data is older."""
SIGNIFICANT_DIGITS = 6
"""Values are sent rounded to this many significant digits: finer than any chart's pixel."""


def view_step(start: float, end: float) -> float | None:
    """Long views read one-minute rollups; shorter ones, every sample."""
    return 60.0 if end - start > ROLLUP_VIEW_SECONDS else None


def fitted_start(timeline: Timeline, end: float) -> float:
    """Where the default view starts: the first sample of the last day, but at least 15
    minutes before `end`."""
    probe = timeline.metric("memory", end - MAX_VIEW_SECONDS, end, 60.0)
    if len(probe) == 0:
        probe = timeline.metric("memory", end - MIN_VIEW_SECONDS, end)
    first = float(probe.times[0]) if len(probe) else end
    return min(max(first, end - MAX_VIEW_SECONDS), end - MIN_VIEW_SECONDS)


def downsample(series: Series, width: int) -> Series:
    """At most ~2 points per pixel column: each bucket's minimum and maximum, in time order,
    so spikes survive the reduction."""
    n = len(series)
    if n <= 2 * width:
        return series
    size = -(-n // width)  # samples per bucket, rounded up
    padded = np.full(size * width, np.nan)
    padded[:n] = series.values
    buckets = padded.reshape(width, size)
    filled = ~np.isnan(buckets).all(axis=1)
    starts = np.arange(width)[filled] * size
    lows = starts + np.nanargmin(buckets[filled], axis=1)
    highs = starts + np.nanargmax(buckets[filled], axis=1)
    picks = np.unique(np.concatenate([lows, highs]))  # sorted: time order
    return Series(series.times[picks], series.values[picks])


def _columns(series: Series) -> dict[str, list[float]]:
    digits = f".{SIGNIFICANT_DIGITS}g"
    return {
        "t": np.round(series.times, 3).tolist(),
        "v": [float(format(value, digits)) for value in series.values.tolist()],
    }


def _runs(runs: list[RunSpan]) -> dict[str, list[Any]]:
    return {
        "id": [run.run_id for run in runs],
        "job": [run.job for run in runs],
        "start": [round(run.start, 3) for run in runs],
        "end": [None if run.end is None else round(run.end, 3) for run in runs],
        "status": [run.status for run in runs],
        "processed": [narrative.volumes_text(run.volumes) for run in runs],
    }


def build_panels(timeline: Timeline, start: float, end: float, *, width: int) -> dict[str, Any]:
    """Everything the page draws for [start, end] at `width` pixels."""
    step = view_step(start, end)
    volumes = []
    for volume in timeline.volumes(start, end, step):
        series = volume.series.rate() if volume.kind == "counter" else volume.series
        if len(series) and np.any(series.values):
            name = f"{volume.title}/s" if volume.kind == "counter" else volume.title
            per_second = volume.kind == "counter"
            volumes.append(
                {"name": name, "per_second": per_second, **_columns(downsample(series, width))}
            )
    return {
        "from": start,
        "to": end,
        "series": {
            metric: _columns(downsample(timeline.metric(metric, start, end, step), width))
            for metric in METRICS
        },
        "volumes": volumes,
        "runs": _runs(timeline.runs(start, end)),
        "limits": {metric: limit for metric, limit in THRESHOLDS.items() if limit is not None},
    }
