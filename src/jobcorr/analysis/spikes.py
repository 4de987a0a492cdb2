"""Spike detection: over a hard threshold, or far above a robust trailing baseline.

The baseline of each sample is the median of the samples in the trailing window before
it, and its spread the median absolute deviation (MAD). A sample is high when it exceeds
the threshold (memory over 2 GB, say) or the baseline by `k` MADs; a spike is a stretch
of high samples lasting at least `min_duration`. MAD ignores the spikes themselves, so a
quiet service with one burst, or a noisy one with a real jump, are both read correctly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from jobcorr.contract import Metric
from jobcorr.timeline import FloatArray, Series

THRESHOLDS: dict[Metric, float | None] = {"memory": 2e9, "cpu": 0.8, "logs": None, "gc": None}
"""The seed's alert limits: memory over 2 GB, CPU over 0.8 cores."""
FLOORS: dict[Metric, float] = {"memory": 32e6, "cpu": 0.2, "logs": 5.0, "gc": 5.0}
"""Smallest excursion worth an answer, in the metric's unit: below these a climb is noise
(an allocator arena, a GC cycle, a busy second of the event loop)."""
BASELINE_SAMPLES = 600
"""The trailing window a sample is judged against, in samples: ten minutes of normal
behaviour at the recorder's 1 Hz (a minute of a 10 Hz test process, as much time
compressed as everything else in it)."""
MIN_BASELINE_POINTS = 5
"""A sample is judged against its past only once it has this many samples of past."""
MAX_WINDOW_POINTS = 240
"""Baselines for context (the history regression) use at most this many points per window,
decimating if needed; detection uses every sample of its window up to BASELINE_SAMPLES,
so that a process a few seconds old already has a baseline."""
K_SPREADS = 3.0
"""A sample is far above its baseline beyond this many robust standard deviations (and
`min_rise`): jobs that run half the time make a baseline two-humped and its spread wide,
and a stricter limit missed spikes twice the service's usual swing in the ground truth."""
RATE_SMOOTHING = 3
"""Rates (CPU, log records) are judged on a rolling mean of this many samples: a 10 ms
CPU clock read ten times a second moves in steps of 0.1 cores."""
MAD_TO_SIGMA = 1.4826
"""MAD times this is the standard deviation, for normally distributed noise."""
NEAR_BASELINE = 0.1
"""A climb begins at the last sample within this share of the height above the baseline."""
STEP_SHARE = 0.25
"""A climb is split into steps when each of its separate rises is at least this share of
the whole climb: two jobs adding memory a few seconds apart are two spikes."""
STEP_NOISE = 0.05
"""Sample-to-sample increases below this share of the climb are flat, not climbing."""
MIN_STEPS_HIGH: dict[Metric, float] = {"memory": 0.0, "cpu": 1.5, "logs": 1.5, "gc": 1.5}
"""How long a spike is high, in sampling steps (from its first high sample to the sample
after its last). A rate's (CPU, logs, GC) for more than one step: one regular sample is
noise; one reading after a stall is not. Memory's for one reading: it is a level the
process really held, not a rate's jitter (the embedded recorder keeps a job's peak between
two ticks as a reading of its own: a catch-up that came and went in 0.4 s is one reading)."""
MIN_PLATEAU_SAMPLES = 2
"""Rises separated by less than this many sampling steps of flat time are one rise (time,
not samples: a stalled recorder takes fewer samples of the same plateau). Two: at a 30 s
scrape, two jobs' steps 100 s apart leave a minute of flat memory between them."""


@dataclass(frozen=True)
class SpikeSettings:
    threshold: float | None = None
    k: float = K_SPREADS
    baseline_window: float = 600.0
    min_duration: float = 3.0
    min_rise: float = 0.0
    """Ignore excursions smaller than this in absolute terms (bytes, cores, records/s)."""
    relative_floor: float = 0.02
    """The spread never counts as less than this fraction of the baseline (flat series)."""
    smoothing: int = 1
    """Samples of the rolling mean the judgement reads (peaks are read from the samples)."""


@dataclass(frozen=True)
class Spike:
    """One climb (or one step of a climb made of steps) and the samples above the limit."""

    metric: Metric
    start: float
    """First high sample (of this step)."""
    end: float
    """Last high sample (of this step: the next step begins after it)."""
    rise_start: float
    """When the climb began: the last sample near the baseline before `start`."""
    peak_at: float
    peak: float
    """The top of this step."""
    baseline: float
    """The level the climb (or this step) rose from."""
    reason: str
    climb_peak_at: float
    climb_peak: float
    """The real peak of the whole climb this step belongs to (the step's own when alone)."""

    @property
    def height(self) -> float:
        return self.peak - self.baseline


def default_settings(metric: Metric, resolution: float) -> SpikeSettings:
    """The one detection every answer uses (explain, spikes, the API, the dashboard)."""
    return SpikeSettings(
        threshold=THRESHOLDS[metric],
        baseline_window=BASELINE_SAMPLES * resolution,
        min_duration=MIN_STEPS_HIGH[metric] * resolution,
        min_rise=FLOORS[metric],
        smoothing=1 if metric == "memory" else RATE_SMOOTHING,
    )


def baselines(
    series: Series, window: float, max_points: int = MAX_WINDOW_POINTS
) -> tuple[FloatArray, FloatArray]:
    """(median, MAD) of the trailing `window` seconds before each sample.

    Decimation, where needed, keeps samples at fixed multiples of the stride in absolute
    time, so a sample's baseline does not depend on where the caller's range began. The
    first samples, with too few kept points before them, are judged on every sample before
    them instead: a history shorter than MIN_BASELINE_POINTS strides (50 scrapes at 15 s
    for the analysis's context) still has a baseline."""
    values = series.values
    n = len(values)
    if n < 3:
        return np.full(n, np.nan), np.full(n, np.nan)
    step = float(np.median(np.diff(series.times)))
    points = max(3, int(window / step)) if step > 0 else 3
    stride = max(1, math.ceil(points / max_points))
    offset = int(-round(series.times[0] / step)) % stride if step > 0 else 0
    kept = np.arange(offset, n, stride)
    width = max(MIN_BASELINE_POINTS, points // stride)
    coarse_median, coarse_mad = _trailing(values[kept], width)
    before = np.searchsorted(kept, np.arange(n), side="left")  # kept points before each sample
    median, mad = coarse_median[before], coarse_mad[before]
    early = int(np.searchsorted(before, MIN_BASELINE_POINTS, side="left"))
    if stride > 1 and early:
        fine_width = max(MIN_BASELINE_POINTS, min(points, early))
        fine_median, fine_mad = _trailing(values[:early], fine_width)
        median[:early], mad[:early] = fine_median[:early], fine_mad[:early]
    return median, mad


def _trailing(coarse: FloatArray, width: int) -> tuple[FloatArray, FloatArray]:
    """(median, MAD) of the up to `width` points before each index 0..len(coarse); NaN
    where fewer than MIN_BASELINE_POINTS came before. Full windows in one vectorised pass
    (no NaN padding: numpy's nanmedian is many times slower), the first ones one by one."""
    median = np.full(len(coarse) + 1, np.nan)
    mad = np.full(len(coarse) + 1, np.nan)
    for row in range(MIN_BASELINE_POINTS, min(width, len(coarse) + 1)):
        median[row] = np.median(coarse[:row])
        mad[row] = np.median(np.abs(coarse[:row] - median[row]))
    if len(coarse) >= width:
        full = sliding_window_view(coarse, width)  # row i: the points before index i + width
        median[width:] = np.median(full, axis=1)
        mad[width:] = np.median(np.abs(full - median[width:, None]), axis=1)
    return median, mad


def find_spikes(series: Series, metric: Metric, settings: SpikeSettings) -> list[Spike]:
    """Every spike in `series`, in time order; a climb made of steps gives one per step."""
    if len(series) < 3:
        return []
    judged = _smooth(series, settings.smoothing)
    median, mad = baselines(judged, settings.baseline_window, BASELINE_SAMPLES)
    values = series.values
    spread = np.maximum(
        mad * MAD_TO_SIGMA,
        np.maximum(np.abs(median) * settings.relative_floor, settings.min_rise / settings.k),
    )
    limit = median + settings.k * spread
    robust = np.where(
        np.isnan(median), False, judged.values > np.maximum(limit, median + settings.min_rise)
    )
    hard = (
        judged.values > settings.threshold
        if settings.threshold is not None
        else np.zeros_like(robust)
    )
    high = robust | hard
    spikes = []
    for first, last in _stretches(high):
        # A high sample stands until the next one: a stalled recorder's single reading of a
        # climb that lasted seconds still counts for those seconds.
        after = min(last + 1, len(series) - 1)
        if series.times[after] - series.times[first] < settings.min_duration:
            continue
        peak_index = first + int(np.argmax(values[first : last + 1]))
        base = float(median[first]) if not np.isnan(median[first]) else float(values[first])
        reason = (
            f"over the {settings.threshold:g} limit"
            if hard[first : last + 1].any()
            else f"far above its recent baseline "
            f"({(values[peak_index] - base) / spread[first]:.0f} MADs)"
        )
        rise = _rise_start(values, first, base, float(values[peak_index]))
        climb = Spike(metric, float(series.times[first]), float(series.times[last]),
                      float(series.times[rise]), float(series.times[peak_index]),
                      float(values[peak_index]), base, reason,
                      float(series.times[peak_index]), float(values[peak_index]))  # fmt: skip
        spikes.extend(_split(series, climb, rise, last, settings.min_rise))
    return spikes


def _smooth(series: Series, samples: int) -> Series:
    """The trailing rolling mean over `samples` samples (the series itself for 1)."""
    if samples <= 1 or len(series) < samples:
        return series
    sums = np.cumsum(np.concatenate([[0.0], series.values]))
    means = (sums[samples:] - sums[:-samples]) / samples
    return Series(series.times, np.concatenate([series.values[: samples - 1], means]))


def _stretches(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, last) index of every run of True, tolerating single-sample gaps."""
    indexes = np.flatnonzero(mask)
    if len(indexes) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indexes) > 2)
    firsts = np.concatenate([[indexes[0]], indexes[breaks + 1]])
    lasts = np.concatenate([indexes[breaks], [indexes[-1]]])
    return list(zip(firsts.tolist(), lasts.tolist(), strict=True))


def _rise_start(values: FloatArray, first: int, baseline: float, peak: float) -> int:
    """Walk back from the first high sample to where the value was near the baseline."""
    near = baseline + NEAR_BASELINE * (peak - baseline)
    index = first
    while index > 0 and values[index - 1] > near:
        index -= 1
    return max(0, index - 1)


def _rises(times: FloatArray, values: FloatArray, height: float) -> list[tuple[int, int]]:
    """(from, to) indexes of the separate rises in `values` (a climb and what follows)."""
    climbing = np.diff(values) > STEP_NOISE * height
    plateau = MIN_PLATEAU_SAMPLES * float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    rises: list[tuple[int, int]] = []
    for first, last in _stretches(climbing):
        if rises and times[first] - times[rises[-1][1]] < plateau:
            rises[-1] = (rises[-1][0], last + 1)
        else:
            rises.append((first, last + 1))
    return rises


def _split(series: Series, climb: Spike, rise: int, last: int, min_rise: float) -> list[Spike]:
    """The climb's steps as spikes of their own (one step: the climb, its top where the
    rise ended, so that what came later, a leak carried on, is not part of its cause)."""
    values = series.values[rise : last + 1]
    times = series.times[rise : last + 1]
    height = climb.climb_peak - climb.baseline
    steps = [
        (lo, hi)
        for lo, hi in _rises(times, values, height)
        if values[hi] - values[lo] >= max(STEP_SHARE * height, min_rise)
    ]
    if not steps:
        return [climb]
    split = []
    for number, (lo, hi) in enumerate(steps):
        until = steps[number + 1][0] if number + 1 < len(steps) else len(values) - 1
        top = lo + int(np.argmax(values[lo : hi + 1]))
        base = climb.baseline if number == 0 else float(values[lo])
        split.append(
            replace(
                climb, start=float(times[lo + 1]), end=float(times[until]),
                rise_start=float(times[lo]), peak_at=float(times[top]),
                peak=float(values[top]), baseline=base,
            )
        )  # fmt: skip
    return split
