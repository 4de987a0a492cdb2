"""Attribution: which job was running when a metric spiked, and what it was doing.

For the spike nearest the asked moment, every job with a run during the climb (from the
last sample near the baseline to the peak) is a candidate. Three pieces of evidence rank
them, each from 0 to 1:

- coverage: how much of the climb the job's runs covered (0: not running; not blamed).
  For memory, runs that carry their own readings (run records) must also have seen
  memory rise while they ran: a run whose peak stayed within a tenth of the spike's
  height of its starting memory did not cause the climb, whatever the sampling suggests;
- lift: across the history, the metric's excess over its trailing baseline is regressed
  on which jobs were running (least squares, one indicator per job). A job's coefficient
  is what its runs typically add; its share among the candidates' positive coefficients
  is its lift. Overlapping innocent jobs get little: the excess follows the guilty job's
  runs, not theirs. This is "memory while a job runs against memory while it does not",
  with the other jobs held apart;
- volume fit: R² of per-run rise against what each run processed (bytes per record),
  where runs carry volumes.

The confidence is their weighted mean (coverage 0.3, lift 0.5, fit 0.2). Where no
candidate's runs carry volumes the fit is left out; where some do, a candidate without
one scores 0 on it. When no job was running during the climb, the answer says so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from jobcorr.analysis import narrative
from jobcorr.analysis.spikes import (
    Spike,
    SpikeSettings,
    baselines,
    default_settings,
    find_spikes,
)
from jobcorr.contract import Metric
from jobcorr.timeline import RunSpan, Series, Timeline, VolumeSeries
from jobcorr.times import format_local

HISTORY_SECONDS = 24 * 3600
WEIGHTS = {"coverage": 0.3, "lift": 0.5, "fit": 0.2}
SURE = 0.5
MIN_COVERAGE = 0.25
MIN_OWN_RISE = 0.1
"""Share of the spike's height a run must have seen memory rise by, where runs record it."""
"""A job is blamed only if its runs covered at least this much of the climb."""


@dataclass(frozen=True)
class VolumeFit:
    volume: str
    per_unit: float
    """Metric rise per unit of volume (bytes per record for memory)."""
    r2: float
    runs: int


@dataclass
class Candidate:
    job: str
    confidence: float
    coverage: float
    lift: float | None
    typical_rise: float | None
    """What one run of the job adds to the metric, from the history regression."""
    fit: VolumeFit | None
    runs: list[RunSpan]
    volumes: dict[str, float]
    """What the job's runs in the spike processed (from run records)."""
    metric_in_runs: float | None = None
    """Median of the metric while the job ran, over the history."""
    metric_outside_runs: float | None = None
    past_runs: int = 0
    """Finished runs of the job before the climb: what the volume fit learned from."""


@dataclass
class Explanation:
    metric: Metric
    at: float
    window: float
    value: float
    moment: float
    spike: Spike | None
    candidates: list[Candidate]
    conclusion: str
    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    """Increase of each volume counter during the climb and peak."""

    @property
    def blamed(self) -> Candidate | None:
        """The job the conclusion names, or None when no job was running during the climb."""
        return _blame(self.candidates)


def _blame(candidates: list[Candidate]) -> Candidate | None:
    """The best candidate, if its runs covered enough of the climb to be named."""
    top = candidates[0] if candidates else None
    return top if top is not None and top.coverage >= MIN_COVERAGE and top.confidence > 0 else None


def explain(
    timeline: Timeline,
    at: float,
    *,
    window: float = 300.0,
    metric: Metric = "memory",
    settings: SpikeSettings | None = None,
    history: float = HISTORY_SECONDS,
) -> Explanation:
    """Explain `metric` around `at` (within ± `window`), with `history` seconds of context."""
    baseline_window = 6 * window
    lookback = max(history, baseline_window + window)
    series = timeline.metric(metric, at - lookback, at + window)
    chosen = settings or default_settings(metric, timeline.resolution)
    chosen = SpikeSettings(**{**chosen.__dict__, "baseline_window": baseline_window})
    recent = series.between(at - window - baseline_window, at + window)
    spike = _nearest(find_spikes(recent, metric, chosen), at, window)
    if spike is not None:
        climb = (spike.rise_start, spike.peak_at)
        value, moment = spike.peak, spike.peak_at
    else:
        local = series.between(at - window, at + window)
        if len(local) == 0:
            return _empty(metric, at, window)
        index = int(np.argmax(local.values))
        value, moment = float(local.values[index]), float(local.times[index])
        climb = (moment - timeline.resolution, moment)

    runs = _by_job(timeline.runs(at - lookback, at + window))
    height = value - (spike.baseline if spike else float(np.median(recent.values)))
    own_rise = height if metric == "memory" else None
    candidates = _candidates(
        runs, climb, series, baseline_window, timeline.resolution, at + window, own_rise
    )

    tolerance = timeline.resolution
    volumes = timeline.volumes(climb[0] - tolerance, max(climb[1], moment) + tolerance)
    gauges = {
        v.title: g for v in volumes if v.kind == "gauge" and (g := v.series.at(moment)) is not None
    }
    counters = _increases(volumes, climb[0] - tolerance, moment)
    top = _blame(candidates)
    shown = top.volumes if top and top.volumes else (counters if top else {})
    text = narrative.conclusion(
        top.job if top else None,
        shown,
        metric,
        value,
        format_local(moment),
        gauges,
        spiked=spike is not None,
        sure=top is None or top.confidence >= SURE,
    )
    return Explanation(metric, at, window, value, moment, spike, candidates, text, gauges, counters)


def _empty(metric: Metric, at: float, window: float) -> Explanation:
    text = (
        f"No {narrative.METRIC_WORDS[metric]} data between {format_local(at - window)} and "
        f"{format_local(at + window)}: is the recorder running, or is the source the right one?"
    )
    return Explanation(metric, at, window, float("nan"), at, None, [], text)


def _nearest(spikes: list[Spike], at: float, window: float) -> Spike | None:
    near = [s for s in spikes if s.end >= at - window and s.rise_start <= at + window]
    if not near:
        return None
    containing = [s for s in near if s.rise_start <= at <= s.end]
    pool = containing or near
    return min(pool, key=lambda s: (abs(s.peak_at - at), -s.height))


def _by_job(runs: list[RunSpan]) -> dict[str, list[RunSpan]]:
    grouped: dict[str, list[RunSpan]] = defaultdict(list)
    for run in runs:
        grouped[run.job].append(run)
    return grouped


def _candidates(
    runs: dict[str, list[RunSpan]],
    climb: tuple[float, float],
    series: Series,
    baseline_window: float,
    tolerance: float,
    now: float,
    memory_height: float | None = None,
) -> list[Candidate]:
    """Jobs with a run during the climb, best first. With `memory_height`, runs that
    recorded their own memory must have seen it rise (see the module docstring)."""
    during = {
        job: [
            r
            for r in job_runs
            if r.overlap(climb[0] - tolerance, climb[1] + tolerance, now) > 0
            and _saw_the_rise(r, memory_height)
        ]
        for job, job_runs in runs.items()
    }
    during = {job: job_runs for job, job_runs in during.items() if job_runs}
    effects = job_effects(series, runs, baseline_window, now)
    positive = {job: max(0.0, effects.get(job, 0.0)) for job in during}
    total = sum(positive.values())
    fits = {}
    for job in during:
        past = [r for r in runs[job] if r.end is not None and r.end < climb[0]]
        rises = [(rise, run) for run in past if (rise := _rise_during(run, series)) is not None]
        fits[job] = (_volume_fit(rises), past)
    any_fit = any(fit is not None for fit, _ in fits.values())
    candidates = []
    for job, job_runs in during.items():
        span = climb[1] - climb[0]
        # A run that began within one sample of the climb's start is taken to cover it.
        covered = sum(
            max(0.0, min(climb[1], r.end if r.end is not None else now)
                - max(climb[0], r.start - tolerance))
            for r in job_runs
        )  # fmt: skip
        coverage = min(1.0, covered / span) if span > 0 else 1.0
        lift = positive[job] / total if total > 0 else (0.0 if effects else None)
        fit, past = fits[job]
        evidence = {
            "coverage": coverage,
            "lift": lift,
            "fit": (fit.r2 if fit else 0.0) if any_fit else None,
        }
        available = {name: value for name, value in evidence.items() if value is not None}
        confidence = sum(WEIGHTS[n] * v for n, v in available.items()) / sum(
            WEIGHTS[n] for n in available
        )
        inside, outside = _inside_outside(series, past)
        volumes: dict[str, float] = defaultdict(float)
        for run in job_runs:
            for name, amount in run.volumes.items():
                volumes[name] += amount
        candidates.append(
            Candidate(
                job, round(confidence if coverage > 0 else 0.0, 3), coverage, lift,
                effects.get(job), fit, job_runs, dict(volumes), inside, outside, len(past),
            )
        )  # fmt: skip
    return sorted(candidates, key=lambda c: -c.confidence)


def _saw_the_rise(run: RunSpan, memory_height: float | None) -> bool:
    if memory_height is None or run.peak_memory is None or run.memory_at_start is None:
        return True
    return run.peak_memory - run.memory_at_start >= MIN_OWN_RISE * memory_height


def job_effects(
    series: Series, runs: dict[str, list[RunSpan]], baseline_window: float, now: float
) -> dict[str, float]:
    """Least-squares effect of each job's runs on the metric's excess over its baseline."""
    if len(series) < 10 or not runs:
        return {}
    median, _ = baselines(series, baseline_window)
    usable = ~np.isnan(median)
    if usable.sum() < 10:
        return {}
    excess = (series.values - median)[usable]
    times = series.times[usable]
    jobs = sorted(runs)
    columns = np.zeros((len(times), len(jobs) + 1))
    columns[:, -1] = 1.0
    for column, job in enumerate(jobs):
        for run in runs[job]:
            end = run.end if run.end is not None else now
            lo, hi = np.searchsorted(times, [run.start, end])
            columns[lo:hi, column] = 1.0
    active = [bool(columns[:, i].any()) for i in range(len(jobs))]
    if not any(active):
        return {}
    solution, *_ = np.linalg.lstsq(columns, excess, rcond=None)
    return {job: float(solution[i]) for i, job in enumerate(jobs) if active[i]}


def _rise_during(run: RunSpan, series: Series) -> float | None:
    """How far the metric climbed during a finished run, from its value at the start."""
    if run.end is None:
        return None
    start_value = series.at(run.start)
    inside = series.between(run.start, run.end)
    if start_value is None or len(inside) == 0:
        return None
    return float(np.max(inside.values)) - start_value


def _volume_fit(measured: list[tuple[float, RunSpan]]) -> VolumeFit | None:
    """The volume whose per-run amount best explains the per-run rise (least squares)."""
    best: VolumeFit | None = None
    names = {name for _, run in measured for name in run.volumes}
    for name in sorted(names):
        pairs = [(run.volumes[name], rise) for rise, run in measured if name in run.volumes]
        if len(pairs) < 4:
            continue
        x, y = np.array(pairs, dtype=np.float64).T
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        slope, intercept = np.polyfit(x, y, 1)
        residual = y - (slope * x + intercept)
        r2 = max(0.0, 1 - float(np.sum(residual**2)) / float(np.sum((y - y.mean()) ** 2)))
        if slope > 0 and (best is None or r2 > best.r2):
            best = VolumeFit(name, float(slope), r2, len(pairs))
    return best


def _inside_outside(series: Series, runs: list[RunSpan]) -> tuple[float | None, float | None]:
    if len(series) == 0 or not runs:
        return None, None
    inside = np.zeros(len(series), dtype=bool)
    for run in runs:
        assert run.end is not None
        lo, hi = np.searchsorted(series.times, [run.start, run.end])
        inside[lo:hi] = True
    values = series.values
    return (
        float(np.median(values[inside])) if inside.any() else None,
        float(np.median(values[~inside])) if (~inside).any() else None,
    )


def _increases(volumes: list[VolumeSeries], start: float, end: float) -> dict[str, float]:
    result = {}
    for volume in volumes:
        if volume.kind != "counter":
            continue
        before, after = volume.series.at(start), volume.series.at(end)
        if before is not None and after is not None and after > before:
            result[volume.title] = after - before
    return result


@dataclass(frozen=True)
class SurveyedSpike:
    spike: Spike
    top: Candidate | None


def survey(
    timeline: Timeline, start: float, end: float, *, metric: Metric = "memory"
) -> list[SurveyedSpike]:
    """Every spike of `metric` in [start, end], each with its most likely job."""
    span = end - start
    settings = default_settings(metric, timeline.resolution)
    baseline_window = (
        max(1800.0, 20 * timeline.resolution)
        if span > 3600
        else max(span / 4, 20 * timeline.resolution)
    )
    settings = SpikeSettings(**{**settings.__dict__, "baseline_window": baseline_window})
    step = 60.0 if span > 6 * 3600 else None
    if step is not None:  # one minute's maximum is already an aggregate: one point is enough
        settings = SpikeSettings(**{**settings.__dict__, "min_duration": 0.0})
    series = timeline.metric(metric, start - baseline_window, end, step)
    spikes = [s for s in find_spikes(series, metric, settings) if s.end >= start]
    if not spikes:
        return []
    runs = _by_job(timeline.runs(start - baseline_window, end))
    step = float(np.median(np.diff(series.times))) if len(series) > 1 else timeline.resolution
    surveyed = []
    for spike in spikes:
        climb = (spike.rise_start, spike.peak_at)
        height = spike.height if metric == "memory" else None
        candidates = _candidates(runs, climb, series, baseline_window, step, end, height)
        surveyed.append(SurveyedSpike(spike, _blame(candidates)))
    return surveyed
