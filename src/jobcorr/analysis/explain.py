"""Attribution: which job caused a spike, how sure that is, or that no job did.

For the spike (or the step of a stacked climb) nearest the asked moment, every job with
a run during the climb (from the last sample near the baseline to the top) was running.

Own before you infer. CPU and log volume are owned per job by the source
(`Timeline.owned`): a job's share of the spike's excess is measured, not guessed, and
when most of the excess is owned by no job the answer is that no background job caused
it. Memory cannot be owned inside one process, so it is inferred (`evidence.py`):

    P(job caused it) = prior x likelihood(job) / (sum over jobs + "outside every job")

with the likelihood the product of what each piece of evidence says (onset alignment,
the job's history), and runs that recorded their own memory excluded when it did not
rise while they ran. The confidence is that probability: a lone candidate with weak
evidence gets a low number. Below `BLAME_THRESHOLD` the answer abstains and names who
was running; two jobs that together are likely but apart are not are named together.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from jobcorr.analysis import evidence, narrative
from jobcorr.analysis.evidence import VolumeFit
from jobcorr.analysis.spikes import Spike, SpikeSettings, default_settings, find_spikes
from jobcorr.contract import Metric
from jobcorr.timeline import Ownership, RunSpan, Series, Timeline, VolumeSeries
from jobcorr.times import format_local

HISTORY_SECONDS = 24 * 3600
"""How much past the evidence (lift, volume fit) learns from by default."""
BLAME_THRESHOLD = 0.6
"""A job is named only at this confidence or more; calibrated on the ground-truth suite
(tests/scenarios), where answers at or above it were right (benchmarks/RESULTS.md)."""
PRIOR_OUTSIDE = 0.5
"""Before any evidence, a spike is as likely to come from outside every job (a request,
the main thread, a library's cache) as from one of the jobs running then."""
OWNED_BY_JOBS = 0.5
"""When the running jobs owned less than this share of the excess, no job caused it."""
MIN_OWNED_SHARE = 0.1
"""A job that owned less than this share of the excess is never the answer."""
INSEPARABLE_SECOND = 0.5
"""Two jobs are inseparable when neither is likely alone, both together are, and the
second is at least this fraction as likely as the first."""

Verdict = Literal["blamed", "inseparable", "abstained", "not_a_job", "no_job_running", "calm"]


@dataclass(frozen=True)
class Candidate:
    job: str
    confidence: float
    """Probability that this job caused the spike (0..1)."""
    coverage: float
    lift: float | None
    """History: what the job's earlier runs added, against this spike's height (0..1)."""
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
    """Finished runs of the job before the climb: what the history learned from."""
    onset: float | None = None
    """How far into the run the climb began (0: as it began, 1: at its end; None: the
    climb began before every run of the job)."""
    agreement: float | None = None
    """How well the volume fit predicts this spike's height from what the run processed."""
    owned: float | None = None
    """The job's measured share of the spike's excess (CPU and logs)."""


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
    verdict: Verdict = "calm"
    owned_by_jobs: float | None = None
    """The share of the excess the running jobs owned, where the source measures it."""

    @property
    def blamed(self) -> Candidate | None:
        """The job the conclusion names alone, or None."""
        return _blame(self.candidates)


@dataclass(frozen=True)
class SurveyedSpike:
    spike: Spike
    top: Candidate | None
    """The job blamed for it, or None."""
    verdict: Verdict = "calm"


@dataclass(frozen=True)
class _Context:
    """What every piece of evidence about one spike reads."""

    metric: Metric
    spike: Spike
    series: Series
    runs: dict[str, list[RunSpan]]
    tolerance: float
    now: float
    baseline_window: float

    @property
    def climb(self) -> tuple[float, float]:
        return self.spike.rise_start, self.spike.peak_at


def _blame(candidates: list[Candidate]) -> Candidate | None:
    top = candidates[0] if candidates else None
    return top if top is not None and top.confidence >= BLAME_THRESHOLD else None


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
    chosen = settings or default_settings(metric, timeline.resolution)
    lookback = max(history, chosen.baseline_window + window)
    # A climb asked about is read past the window, to its real peak and end.
    series = timeline.metric(metric, at - lookback, at + window + chosen.baseline_window)
    recent = series.between(at - window - chosen.baseline_window, np.inf)
    spike = _nearest(find_spikes(recent, metric, chosen), at, window)
    runs = _by_job(timeline.runs(at - lookback, at + window))
    if spike is None:
        return _calm(timeline, series, runs, metric, at, window)
    context = _Context(metric, spike, series, runs, timeline.resolution, at + window,
                       chosen.baseline_window)  # fmt: skip
    candidates, verdict, owned = _answer(timeline, context)
    return _explanation(timeline, context, at, window, candidates, verdict, owned)


def survey(
    timeline: Timeline, start: float, end: float, *, metric: Metric = "memory"
) -> list[SurveyedSpike]:
    """Every spike of `metric` in [start, end], each with its answer: the same detection
    and the same answer as `explain` at the spike's peak."""
    settings = default_settings(metric, timeline.resolution)
    step = 60.0 if end - start > 6 * 3600 else None
    if step is not None:  # one minute's maximum is already an aggregate: one point is enough
        settings = replace(settings, min_duration=0.0, baseline_window=max(
            settings.baseline_window, 20 * step))  # fmt: skip
    reach = settings.baseline_window
    series = timeline.metric(metric, start - reach, end, step)
    spikes = [s for s in find_spikes(series, metric, settings) if s.end >= start]
    if not spikes:
        return []
    runs = _by_job(timeline.runs(start - reach, end))
    tolerance = float(np.median(np.diff(series.times))) if step else timeline.resolution
    surveyed = []
    for spike in spikes:
        context = _Context(metric, spike, series, runs, tolerance, end, settings.baseline_window)
        candidates, verdict, _ = _answer(timeline, context)
        surveyed.append(SurveyedSpike(spike, _blame(candidates), verdict))
    return surveyed


def _answer(timeline: Timeline, context: _Context) -> tuple[list[Candidate], Verdict, float | None]:
    """Candidates best first, the verdict, and the share the running jobs owned."""
    running = evidence.running(context.runs, context.climb, context.tolerance, context.now)
    if not running:
        return [], "no_job_running", None
    ownership = _ownership(timeline, context)
    if ownership is not None:
        shares = evidence.owned_shares(ownership, context.spike, context.baseline_window)
        candidates = _owned_candidates(context, running, shares)
        jobs_share = sum(shares.get(job, 0.0) for job in running)
        if jobs_share < OWNED_BY_JOBS:
            return candidates, "not_a_job", jobs_share
        return candidates, _verdict(candidates), jobs_share
    candidates = _inferred_candidates(context, running)
    if not candidates:
        return [], "not_a_job", None
    return candidates, _verdict(candidates), None


def _ownership(timeline: Timeline, context: _Context) -> Ownership | None:
    if context.metric not in ("cpu", "logs"):
        return None
    start = context.spike.rise_start - context.baseline_window
    return timeline.owned(context.metric, start, context.spike.end + context.tolerance)


def _verdict(candidates: list[Candidate]) -> Verdict:
    if _blame(candidates) is not None:
        return "blamed"
    if _inseparable(candidates):
        return "inseparable"
    return "abstained"


def _inseparable(candidates: list[Candidate]) -> bool:
    if len(candidates) < 2:
        return False
    first, second = candidates[0].confidence, candidates[1].confidence
    return first + second >= BLAME_THRESHOLD and second >= INSEPARABLE_SECOND * first


def _owned_candidates(
    context: _Context, running: dict[str, list[RunSpan]], shares: dict[str, float]
) -> list[Candidate]:
    """Measured: a job's confidence is its share of the excess (nothing if negligible)."""
    candidates = []
    for job, job_runs in running.items():
        share = shares.get(job, 0.0)
        confidence = share if share >= MIN_OWNED_SHARE else 0.0
        candidates.append(_candidate(context, job, job_runs, round(confidence, 3), owned=share))
    return sorted(candidates, key=lambda c: -c.confidence)


def _inferred_candidates(context: _Context, running: dict[str, list[RunSpan]]) -> list[Candidate]:
    """Inferred: the probability of each job against "outside every job"."""
    height = context.spike.height
    suspects = {
        job: kept
        for job, job_runs in running.items()
        if (kept := [r for r in job_runs if context.metric != "memory"
                     or evidence.saw_the_rise(r, height)])
        and (evidence.coverage(kept, context.climb, context.tolerance, context.now)
             >= evidence.MIN_COVERAGE or any(evidence.saw_it_all(r, height) for r in kept))
    }  # fmt: skip
    if not suspects:
        return []
    past = context.series.between(-np.inf, context.spike.rise_start - context.tolerance)
    past_excess = evidence.excess(past, context.baseline_window)
    effects = evidence.job_effects(past_excess, context.runs, context.now)
    if context.metric == "memory":
        effects.update(evidence.rise_effects(context.runs, context.climb[0]))
    drafts = []
    for job, job_runs in suspects.items():
        earlier = [r for r in context.runs[job] if r.end is not None and r.end < context.climb[0]]
        fit = evidence.volume_fit(earlier, context.series, context.metric == "memory")
        steepest = evidence.at_the_steepest(job_runs, context.spike, context.series,
                                            context.tolerance, context.now)  # fmt: skip
        scale = evidence.volume_ratio(fit, earlier, steepest)
        draft = _candidate(
            context, job, job_runs, 0.0,
            onset=evidence.onset(job_runs, context.spike, context.series, context.tolerance,
                                 context.now),
            lift=evidence.lift(effects[job] * scale, height)
            if job in effects and len(earlier) >= evidence.MIN_HISTORY_RUNS else None,
            typical_rise=effects.get(job), fit=fit,
            agreement=evidence.agreement(fit, steepest, height)
            if context.metric == "memory" else None,
        )  # fmt: skip
        drafts.append(draft)
    outside = evidence.outside_likelihood(past_excess, context.runs, height, context.now)
    weights = {c.job: evidence.likelihood(c.onset, c.fit, c.agreement, c.lift) for c in drafts}
    prior = (1 - PRIOR_OUTSIDE) / len(drafts)
    total = PRIOR_OUTSIDE * outside + sum(prior * w for w in weights.values())
    candidates = [replace(c, confidence=round(prior * weights[c.job] / total, 3)) for c in drafts]
    return sorted(candidates, key=lambda c: -c.confidence)


def _candidate(
    context: _Context, job: str, job_runs: list[RunSpan], confidence: float, **found: object
) -> Candidate:
    earlier = [r for r in context.runs[job] if r.end is not None and r.end < context.climb[0]]
    inside, outside = evidence.inside_outside(context.series, earlier)
    job_runs = evidence.at_the_steepest(job_runs, context.spike, context.series,
                                        context.tolerance, context.now)  # fmt: skip
    volumes: dict[str, float] = defaultdict(float)
    for run in job_runs:
        for name, amount in run.volumes.items():
            volumes[name] += amount
    base = Candidate(
        job, confidence,
        evidence.coverage(job_runs, context.climb, context.tolerance, context.now),
        None, None, None, job_runs, dict(volumes), inside, outside, len(earlier),
    )  # fmt: skip
    return replace(base, **found)  # type: ignore[arg-type]


def _explanation(
    timeline: Timeline,
    context: _Context,
    at: float,
    window: float,
    candidates: list[Candidate],
    verdict: Verdict,
    owned: float | None,
) -> Explanation:
    spike = context.spike
    tolerance = timeline.resolution
    volumes = timeline.volumes(spike.rise_start - tolerance, spike.climb_peak_at + tolerance)
    gauges = _gauges(volumes, spike.peak_at)
    counters = _increases(volumes, spike.rise_start - tolerance, spike.peak_at)
    top = candidates[0] if candidates else None
    text = narrative.conclusion(
        narrative.Moment(context.metric, spike.climb_peak, format_local(spike.climb_peak_at),
                         spiked=True),
        verdict,
        [c.job for c in candidates[:2]] if verdict in ("blamed", "inseparable") else
        evidence.running_jobs(context.runs, context.climb, context.tolerance, context.now),
        (top.volumes or counters) if top is not None and verdict == "blamed" else {},
        gauges,
        owned,
    )  # fmt: skip
    return Explanation(context.metric, at, window, spike.climb_peak, spike.climb_peak_at, spike,
                       candidates, text, gauges, counters, verdict, owned)  # fmt: skip


def _calm(
    timeline: Timeline,
    series: Series,
    runs: dict[str, list[RunSpan]],
    metric: Metric,
    at: float,
    window: float,
) -> Explanation:
    """No spike near `at`: the highest value in the window, and who was running."""
    local = series.between(at - window, at + window)
    if len(local) == 0:
        text = (
            f"No {narrative.METRIC_WORDS[metric]} data between {format_local(at - window)} and "
            f"{format_local(at + window)}: is the recorder running, or is the source the right one?"
        )
        return Explanation(metric, at, window, float("nan"), at, None, [], text)
    index = int(np.argmax(local.values))
    value, moment = float(local.values[index]), float(local.times[index])
    running = evidence.running_jobs(runs, (at - window, at + window), timeline.resolution, at)
    gauges = _gauges(timeline.volumes(moment - timeline.resolution, moment), moment)
    text = narrative.conclusion(
        narrative.Moment(metric, value, format_local(moment), spiked=False),
        "calm", running, {}, gauges, None,
    )  # fmt: skip
    return Explanation(metric, at, window, value, moment, None, [], text, gauges)


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


def _gauges(volumes: list[VolumeSeries], moment: float) -> dict[str, float]:
    return {
        v.title: g for v in volumes if v.kind == "gauge" and (g := v.series.at(moment)) is not None
    }


def _increases(volumes: list[VolumeSeries], start: float, end: float) -> dict[str, float]:
    result = {}
    for volume in volumes:
        if volume.kind != "counter":
            continue
        before, after = volume.series.at(start), volume.series.at(end)
        if before is not None and after is not None and after > before:
            result[volume.title] = after - before
    return result
