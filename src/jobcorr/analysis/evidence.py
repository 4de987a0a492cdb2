"""The evidence about one spike, one function per piece.

Each function reads the metric's series and the runs; none knows where they came from.
Likelihood ratios compare "this job caused the climb" with "this job merely ran then":
above 1 the evidence speaks for the job, below 1 against it, 1 says nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from jobcorr.analysis.spikes import Spike, baselines
from jobcorr.timeline import FloatArray, Ownership, RunSpan, Series

MIN_COVERAGE = 0.25
"""A job whose runs covered less of the climb than this did not make it."""
MIN_OWN_RISE = 0.1
"""A run that recorded its own memory must have seen it rise by this share of the height."""
ONSET_RATIO = 4.0
"""The most onset alignment can say, either way (a busy machine delays when a climb is
seen). A climb that began before the run, or whose steepest part fell outside it, gets
the inverse."""
ONSET_SCALE = 0.1
"""A run that merely covers a climb has it begin at a uniformly random point of the run
(density 1); a run that causes it has the climb begin early, within about this fraction
of the run (density exp(-f / scale) / scale). Their ratio is the onset's likelihood ratio."""
HISTORY_RATIO = 8.0
"""Likelihood ratio of a job whose earlier runs predict this spike (its inverse when they
show the job adds nothing). Above ONSET_RATIO: a job that never moved the metric before
is not named on timing alone."""
LIFT_SCALE = 0.1
"""Earlier runs that typically added a tenth of this spike's height already mark the job
as one that moves the metric (the spike run usually processed more than they did)."""
ADDS_NOTHING = 0.25
"""A lift at or below this (earlier runs typically added under 2.5% of this spike's height)
says the job adds next to nothing, whatever its volume fit: the fit of a job whose runs
always overlapped the guilty job's is borrowed from them."""
OUTSIDE_RATIO = 2.0
"""Likelihood ratio for "outside every job" when the history's big climbs all happened
while no job ran."""
BIG_EXCESS = 0.25
"""Past excess counts as a big climb above this share of the spike's height."""
MIN_FIT_RUNS = 3
"""The volume fit needs this many earlier runs with volumes and readings."""
MIN_FIT_R2 = 0.5
"""Below this R² the volume fit predicts nothing and the lift speaks for the history."""
MIN_HISTORY_RUNS = 2
"""One earlier run is an anecdote (it may have met the service's start-up): the lift
needs at least this many."""
MIN_REGRESSION_SAMPLES = 10
"""The history regression needs this many samples with a baseline."""
CONTEXT_POINTS = 60
"""The history's baseline is judged on at most this many points per window: a rough
baseline is enough to regress on, and a day of 1 Hz history stays fast."""


@dataclass(frozen=True)
class VolumeFit:
    volume: str
    per_unit: float
    """Metric rise per unit of volume (bytes per record for memory)."""
    r2: float
    runs: int


def _end(run: RunSpan, now: float) -> float:
    return run.end if run.end is not None else now


def running(
    runs: dict[str, list[RunSpan]], climb: tuple[float, float], tolerance: float, now: float
) -> dict[str, list[RunSpan]]:
    """Each job's runs that were going during the climb (± one sample)."""
    found = {
        job: [r for r in job_runs if r.overlap(climb[0] - tolerance, climb[1] + tolerance, now) > 0]
        for job, job_runs in runs.items()
    }
    return {job: job_runs for job, job_runs in found.items() if job_runs}


def running_jobs(
    runs: dict[str, list[RunSpan]], span: tuple[float, float], tolerance: float, now: float
) -> list[str]:
    return sorted(running(runs, span, tolerance, now))


def coverage(
    runs: list[RunSpan], climb: tuple[float, float], tolerance: float, now: float
) -> float:
    """Share of the climb the runs covered; a run that began within one sample of the
    climb's start is taken to cover it, and the top sample stands until the next one."""
    span = climb[1] - climb[0]
    if span <= 0:
        return 1.0
    covered = sum(
        max(0.0, min(climb[1] + tolerance, _end(r, now)) - max(climb[0], r.start - tolerance))
        for r in runs
    )
    return min(1.0, covered / span)


def own_rise(run: RunSpan) -> float | None:
    """How far memory rose while the run went, by its own readings (None without them)."""
    if run.peak_memory is None or run.memory_at_start is None:
        return None
    return run.peak_memory - run.memory_at_start


def saw_the_rise(run: RunSpan, height: float) -> bool:
    """Where a run recorded its own memory, it must have seen it climb while it ran."""
    rise = own_rise(run)
    return rise is None or rise >= MIN_OWN_RISE * height


def saw_it_all(run: RunSpan, height: float) -> bool:
    """A run whose own readings rose by the spike's whole height saw the climb, however
    short it was against a climb that lingered (memory the allocator kept, a later bump)."""
    rise = own_rise(run)
    return rise is not None and rise >= height


def onset(
    runs: list[RunSpan], spike: Spike, series: Series, tolerance: float, now: float
) -> float | None:
    """How far into the run the climb began (0: as it began, 1: at its end), for the run
    that began nearest before the climb and held its steepest part; None when no run did
    (the climb began before the run, or its steepest part fell outside)."""
    steepest = _steepest(series, spike)
    climb = series.between(spike.rise_start, spike.peak_at)
    first_seen = float(climb.times[1]) if len(climb) > 1 else spike.peak_at
    best: float | None = None
    for run in runs:
        start, end = run.start - tolerance, _end(run, now) + tolerance
        # The climb began somewhere after rise_start, by its first reading above it: it
        # began before the run only when that reading came before the run (a stalled
        # recorder's gap leaves it open).
        if not (start <= steepest <= end) or first_seen < start:
            continue
        lag = max(0.0, spike.rise_start - run.start - tolerance)
        fraction = min(1.0, lag / max(end - run.start, tolerance))
        best = fraction if best is None else min(best, fraction)
    return best


def at_the_steepest(
    runs: list[RunSpan], spike: Spike, series: Series, tolerance: float, now: float
) -> list[RunSpan]:
    """The runs going (± one sample) when the climb was steepest: what they processed is
    what the climb is made of (an earlier run of the same job that the climb's walk back
    to the baseline reached is not); all of them when none was."""
    steepest = _steepest(series, spike)
    found = [r for r in runs if r.start - tolerance <= steepest <= _end(r, now) + tolerance]
    return found or runs


def _steepest(series: Series, spike: Spike) -> float:
    climb = series.between(spike.rise_start, spike.peak_at)
    if len(climb) < 2:
        return spike.peak_at
    return float(climb.times[1 + int(np.argmax(np.diff(climb.values)))])


def excess(series: Series, baseline_window: float) -> Series:
    """The metric over its trailing baseline, where it has one: what the history's
    evidence (lift, climbs outside jobs) reads."""
    median, _ = baselines(series, baseline_window, CONTEXT_POINTS)
    usable = ~np.isnan(median)
    return Series(series.times[usable], (series.values - median)[usable])


def job_effects(excess: Series, runs: dict[str, list[RunSpan]], now: float) -> dict[str, float]:
    """Least-squares effect of each job's runs on the metric's excess over its baseline."""
    if len(excess) < MIN_REGRESSION_SAMPLES or not runs:
        return {}
    jobs = sorted(runs)
    columns = np.zeros((len(excess), len(jobs) + 1))
    columns[:, -1] = 1.0
    for column, job in enumerate(jobs):
        columns[:, column] = _during(excess.times, runs[job], now)
    active = [bool(columns[:, i].any()) for i in range(len(jobs))]
    if not any(active):
        return {}
    solution, *_ = np.linalg.lstsq(columns, excess.values, rcond=None)
    return {job: float(solution[i]) for i, job in enumerate(jobs) if active[i]}


def rise_effects(runs: dict[str, list[RunSpan]], before: float) -> dict[str, float]:
    """Least-squares memory one run of each job adds, from the own readings of the runs
    that finished before `before`: a run's own rise is what the runs that began while it
    went (itself included, and only in its own process) added. Exact at any sampling of
    the series, where the regression on the series' excess blurs jobs that overlap
    between two scrapes. Only jobs with MIN_HISTORY_RUNS runs that recorded their own
    memory are measured."""
    processing = {job: _processing(job_runs) for job, job_runs in runs.items()}
    rows = [
        run for job_runs in processing.values() for run in job_runs
        if run.end is not None and run.end < before and own_rise(run) is not None
    ]  # fmt: skip
    per_job = Counter(run.job for run in rows)
    measured = sorted(job for job, count in per_job.items() if count >= MIN_HISTORY_RUNS)
    if not measured:
        return {}
    design = np.column_stack([_began_within(rows, processing[job]) for job in measured])
    rises = np.array([own_rise(run) for run in rows], dtype=np.float64)
    solution, *_ = np.linalg.lstsq(design, rises, rcond=None)
    return dict(zip(measured, solution.tolist(), strict=True))


def _processing(runs: list[RunSpan]) -> list[RunSpan]:
    """A job's runs that processed something, where any did: a run that failed before
    it read its first item says nothing about what one adds (the runs of an outage)."""
    return [run for run in runs if run.volumes] or runs


def _began_within(rows: list[RunSpan], others: list[RunSpan]) -> FloatArray:
    """For each finished run of `rows`, how many of `others` began while it went, in its
    own process where both say which (a run of unknown process counts everywhere)."""
    lo = np.array([run.start for run in rows])
    hi = np.array([run.end for run in rows], dtype=np.float64)
    pids = np.array([-1 if run.pid is None else run.pid for run in rows])
    other_pids = np.array([-1 if run.pid is None else run.pid for run in others])
    other_starts = np.array([run.start for run in others], dtype=np.float64)
    counts = np.zeros(len(rows))
    for pid in np.unique(pids):
        mine = pids == pid
        pool = np.sort(other_starts if pid == -1 else
                       other_starts[(other_pids == pid) | (other_pids == -1)])  # fmt: skip
        counts[mine] = np.searchsorted(pool, hi[mine], "right") - np.searchsorted(
            pool, lo[mine], "left"
        )
    return counts


def _during(times: FloatArray, runs: list[RunSpan], now: float) -> npt.NDArray[np.bool_]:
    """Which samples fell while one of `runs` went. A sample stands for the time until the
    next one (a one-minute rollup is stamped with its minute's start), so a run marks the
    sample at or before its start and every sample up to its end."""
    inside = np.zeros(len(times), dtype=bool)
    for run in runs:
        lo = max(0, int(np.searchsorted(times, run.start, side="right")) - 1)
        hi = int(np.searchsorted(times, _end(run, now), side="right"))
        inside[lo:hi] = True
    return inside


def volume_ratio(fit: VolumeFit | None, earlier: list[RunSpan], runs: list[RunSpan]) -> float:
    """How many times the earlier runs' median amount of the fit's volume `runs` processed,
    at least 1 (1 without a fit): a catch-up of thirty times the usual rows may add thirty
    times what the usual run added. Never below 1, so a smaller run is judged as before."""
    if fit is None:
        return 1.0
    usual = [r.volumes[fit.volume] for r in earlier if r.volumes.get(fit.volume, 0.0) > 0]
    if not usual:
        return 1.0
    processed = sum(r.volumes.get(fit.volume, 0.0) for r in runs)
    return max(1.0, processed / float(np.median(usual)))


def lift(effect: float, height: float) -> float:
    """0..1: what the job's earlier runs added, against this spike's height."""
    if height <= 0:
        return 0.0
    return float(np.clip(effect / (LIFT_SCALE * height), 0.0, 1.0))


def volume_fit(earlier: list[RunSpan], series: Series, memory: bool = False) -> VolumeFit | None:
    """The volume whose per-run amount best explains the earlier runs' rise: the median
    rise per unit (robust to a run that met someone else's allocation), and the R² of
    rise = per_unit x amount. For memory, a run's own readings (peak against start) are
    its rise where it recorded them: exact at any sampling of the series."""
    measured = [
        (rise, run) for run in earlier if (rise := _rise_during(run, series, memory)) is not None
    ]
    best: VolumeFit | None = None
    names = {name for _, run in measured for name in run.volumes}
    for name in sorted(names):
        pairs = [(run.volumes[name], rise) for rise, run in measured if name in run.volumes]
        if len(pairs) < MIN_FIT_RUNS:
            continue
        x, y = np.array(pairs, dtype=np.float64).T
        if np.ptp(x) == 0 or np.ptp(y) == 0 or (x <= 0).any():
            continue
        slope = float(np.median(y / x))
        residual = y - slope * x
        r2 = max(0.0, 1 - float(np.sum(residual**2)) / float(np.sum((y - y.mean()) ** 2)))
        if slope > 0 and (best is None or r2 > best.r2):
            best = VolumeFit(name, float(slope), r2, len(pairs))
    return best


def _rise_during(run: RunSpan, series: Series, memory: bool) -> float | None:
    """How far the metric climbed during a finished run, from its value at the start."""
    if run.end is None:
        return None
    if memory and (rise := own_rise(run)) is not None:
        return rise
    start_value = series.at(run.start)
    inside = series.between(run.start, run.end)
    if start_value is None or len(inside) == 0:
        return None
    return float(np.max(inside.values)) - start_value


def agreement(fit: VolumeFit | None, runs: list[RunSpan], height: float) -> float | None:
    """0..1: how well the fit's bytes per item, times what these runs processed, predicts
    the height (weighted by the fit's R²); None without a fit."""
    if fit is None:
        return None
    predicted = fit.per_unit * sum(r.volumes.get(fit.volume, 0.0) for r in runs)
    if predicted <= 0 or height <= 0:
        return 0.0
    return fit.r2 * min(predicted, height) / max(predicted, height)


def likelihood(
    onset: float | None, fit: VolumeFit | None, agreement: float | None, lift: float | None
) -> float:
    """The job's likelihood ratio: onset alignment times its history (the volume fit's
    prediction where the fit holds, its lift otherwise; nothing without earlier runs). A
    lift that says the job adds nothing overrules the fit: a job whose runs always
    overlapped another's fits that job's volume and rise as well as it does."""
    if onset is None:
        ratio = 1 / ONSET_RATIO
    else:
        caused = np.exp(-onset / ONSET_SCALE) / ONSET_SCALE
        ratio = float(np.clip(caused, 1 / ONSET_RATIO, ONSET_RATIO))
    trusted = fit is not None and fit.r2 >= MIN_FIT_R2 and agreement is not None
    adds_nothing = lift is not None and lift <= ADDS_NOTHING
    history = agreement if trusted and not adds_nothing else lift
    if history is not None:
        ratio *= HISTORY_RATIO ** (2 * history - 1)
    return float(ratio)


def outside_likelihood(
    excess: Series, runs: dict[str, list[RunSpan]], height: float, now: float
) -> float:
    """The likelihood ratio of "outside every job": up to OUTSIDE_RATIO as the history's
    big climbs happened while no job ran; 1 when they did not, or there were none."""
    big = excess.values > BIG_EXCESS * height
    if len(excess) < MIN_REGRESSION_SAMPLES or not big.any():
        return 1.0
    inside = _during(excess.times, [r for job_runs in runs.values() for r in job_runs], now)
    outside_share = float((big & ~inside).sum() / big.sum())
    return float(OUTSIDE_RATIO**outside_share)


def owned_shares(ownership: Ownership, spike: Spike, baseline_window: float) -> dict[str, float]:
    """Each owner's share of the spike's excess ("" is outside every job): its mean over
    the spike against its mean over the baseline window before the climb."""
    excess = {
        job: _excess(series, spike, baseline_window) for job, series in ownership.by_job.items()
    }
    excess[""] = _excess(ownership.outside, spike, baseline_window)
    total = sum(max(0.0, e) for e in excess.values())
    if total <= 0:
        return {}
    return {job: max(0.0, e) / total for job, e in excess.items()}


def _excess(series: Series, spike: Spike, baseline_window: float) -> float:
    during = series.between(spike.rise_start, spike.end)
    before = series.between(spike.rise_start - baseline_window, spike.rise_start)
    if len(during) == 0:
        return 0.0
    base = float(np.median(before.values)) if len(before) else 0.0
    return float(np.mean(during.values)) - base


def inside_outside(series: Series, runs: list[RunSpan]) -> tuple[float | None, float | None]:
    """Median of the metric while the runs went, and while they did not."""
    if len(series) == 0 or not runs:
        return None, None
    inside = _during(series.times, runs, now=0.0)
    values = series.values
    return (
        float(np.median(values[inside])) if inside.any() else None,
        float(np.median(values[~inside])) if (~inside).any() else None,
    )
