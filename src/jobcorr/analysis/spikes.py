"""Spike detection: over a hard threshold, or far above a robust trailing baseline.

The baseline of each sample is the median of the samples in the trailing window before
it, and its spread the median absolute deviation (MAD). A sample is high when it exceeds
the threshold (memory over 2 GB, say) or the baseline by `k` MADs; a spike is a stretch
of high samples lasting at least `min_duration`. MAD ignores the spikes themselves, so a
quiet service with one burst, or a noisy one with a real jump, are both read correctly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from jobcorr.contract import Metric
from jobcorr.timeline import FloatArray, Series

THRESHOLDS: dict[Metric, float | None] = {"memory": 2e9, "cpu": 0.8, "logs": None, "gc": None}
"""The seed's alert limits: memory over 2 GB, CPU over 0.8 cores."""
MAX_WINDOW_POINTS = 240
"""Baselines are computed on at most this many points per window (decimating if needed)."""


@dataclass(frozen=True)
class SpikeSettings:
    threshold: float | None = None
    k: float = 6.0
    baseline_window: float = 1800.0
    min_duration: float = 3.0
    min_rise: float = 0.0
    """Ignore excursions smaller than this in absolute terms (bytes, cores, records/s)."""
    relative_floor: float = 0.02
    """The spread never counts as less than this fraction of the baseline (flat series)."""


@dataclass(frozen=True)
class Spike:
    metric: Metric
    start: float
    """First high sample."""
    end: float
    """Last high sample."""
    rise_start: float
    """When the climb began: the last sample near the baseline before `start`."""
    peak_at: float
    peak: float
    baseline: float
    reason: str

    @property
    def height(self) -> float:
        return self.peak - self.baseline


def default_settings(metric: Metric, resolution: float) -> SpikeSettings:
    floors: dict[Metric, float] = {"memory": 32e6, "cpu": 0.2, "logs": 5.0, "gc": 5.0}
    return SpikeSettings(
        threshold=THRESHOLDS[metric],
        min_duration=2 * resolution,
        min_rise=floors[metric],
    )


def baselines(series: Series, window: float) -> tuple[FloatArray, FloatArray]:
    """(median, MAD) of the trailing `window` seconds before each sample."""
    values = series.values
    n = len(values)
    if n < 3:
        return np.full(n, np.nan), np.full(n, np.nan)
    step = float(np.median(np.diff(series.times)))
    points = max(3, int(window / step)) if step > 0 else 3
    stride = max(1, math.ceil(points / MAX_WINDOW_POINTS))
    coarse = values[::stride]
    width = max(3, points // stride)
    padded = np.concatenate([np.full(width, np.nan), coarse])
    # Row i holds the `width` coarse points before point i; row 0 holds none (no baseline).
    windows = sliding_window_view(padded, width)[1 : len(coarse)]
    median = np.concatenate([[np.nan], np.nanmedian(windows, axis=1)])
    mad = np.concatenate([[np.nan], np.nanmedian(np.abs(windows - median[1:, None]), axis=1)])
    # Coarse point i summarises samples before stride*i; spread it back over its samples.
    index = np.minimum(np.arange(n) // stride, len(coarse) - 1)
    return median[index], mad[index]


def find_spikes(series: Series, metric: Metric, settings: SpikeSettings) -> list[Spike]:
    """Every spike in `series`, in time order."""
    if len(series) < 3:
        return []
    median, mad = baselines(series, settings.baseline_window)
    values = series.values
    spread = np.maximum(
        mad * 1.4826,
        np.maximum(np.abs(median) * settings.relative_floor, settings.min_rise / settings.k),
    )
    limit = median + settings.k * spread
    robust = np.where(
        np.isnan(median), False, values > np.maximum(limit, median + settings.min_rise)
    )
    hard = values > settings.threshold if settings.threshold is not None else np.zeros_like(robust)
    high = robust | hard
    spikes = []
    for first, last in _stretches(high):
        start, end = float(series.times[first]), float(series.times[last])
        if end - start < settings.min_duration:
            continue
        peak_index = first + int(np.argmax(values[first : last + 1]))
        base = float(median[first]) if not np.isnan(median[first]) else float(values[first])
        rise = _rise_start(series, first, base, float(values[peak_index]))
        spreads = (values[peak_index] - base) / spread[first]
        reason = (
            f"over the {settings.threshold:g} limit"
            if hard[first : last + 1].any()
            else f"far above its recent baseline ({spreads:.0f} MADs)"
        )
        spikes.append(
            Spike(metric, start, end, rise, float(series.times[peak_index]),
                  float(values[peak_index]), base, reason)
        )  # fmt: skip
    return spikes


def _stretches(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, last) index of every run of True, tolerating single-sample gaps."""
    indexes = np.flatnonzero(mask)
    if len(indexes) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indexes) > 2)
    firsts = np.concatenate([[indexes[0]], indexes[breaks + 1]])
    lasts = np.concatenate([indexes[breaks], [indexes[-1]]])
    return list(zip(firsts.tolist(), lasts.tolist(), strict=True))


def _rise_start(series: Series, first: int, baseline: float, peak: float) -> float:
    """Walk back from the first high sample to where the value was near the baseline."""
    near = baseline + 0.1 * (peak - baseline)
    index = first
    while index > 0 and series.values[index - 1] > near:
        index -= 1
    return float(series.times[max(0, index - 1)])
