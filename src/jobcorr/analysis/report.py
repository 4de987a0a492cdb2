"""Explanations and spike lists as plain data: the one schema of `explain --json`,
`spikes --json`, `/api/explain` and `/api/spikes` (documented in the README; fields are
only ever added). The TypedDicts below are that schema; a test checks emitted keys
against them.
"""

from __future__ import annotations

from typing import TypedDict

from jobcorr.analysis.evidence import VolumeFit
from jobcorr.analysis.explain import Candidate, Explanation, SurveyedSpike
from jobcorr.analysis.narrative import quantity
from jobcorr.analysis.spikes import Spike
from jobcorr.timeline import RunSpan
from jobcorr.times import iso_local


class SpikeDict(TypedDict):
    metric: str
    rise_start: str
    start: str
    peak_at: str
    end: str
    peak: float
    baseline: float
    peak_text: str
    baseline_text: str
    climb_peak: float
    climb_peak_at: str
    reason: str


class FitDict(TypedDict):
    volume: str
    per_unit: float
    r2: float
    runs: int


class RunDict(TypedDict):
    run_id: str
    start: str
    end: str | None
    status: str
    volumes: dict[str, float]
    peak_memory: float | None
    exact: bool


class CandidateDict(TypedDict):
    job: str
    confidence: float
    coverage: float
    onset: float | None
    lift: float | None
    agreement: float | None
    owned: float | None
    typical_rise: float | None
    volumes: dict[str, float]
    fit: FitDict | None
    past_runs: int
    metric_in_runs: float | None
    metric_outside_runs: float | None
    runs: list[RunDict]


class ExplanationDict(TypedDict):
    metric: str
    at: str
    moment: str
    value: float | None
    window_seconds: float
    spike: SpikeDict | None
    verdict: str
    conclusion: str
    blamed: str | None
    owned_by_jobs: float | None
    candidates: list[CandidateDict]
    gauges: dict[str, float]
    counters: dict[str, float]


class SurveyedDict(SpikeDict):
    verdict: str
    top_job: str | None
    confidence: float | None


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else value


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def spike_to_dict(spike: Spike) -> SpikeDict:
    return {
        "metric": spike.metric,
        "rise_start": iso_local(spike.rise_start),
        "start": iso_local(spike.start),
        "peak_at": iso_local(spike.peak_at),
        "end": iso_local(spike.end),
        "peak": spike.peak,
        "baseline": spike.baseline,
        "peak_text": quantity(spike.metric, spike.peak),
        "baseline_text": quantity(spike.metric, spike.baseline),
        "climb_peak": spike.climb_peak,
        "climb_peak_at": iso_local(spike.climb_peak_at),
        "reason": spike.reason,
    }


def run_to_dict(run: RunSpan) -> RunDict:
    return {
        "run_id": run.run_id,
        "start": iso_local(run.start),
        "end": None if run.end is None else iso_local(run.end),
        "status": run.status,
        "volumes": run.volumes,
        "peak_memory": run.peak_memory,
        "exact": run.exact,
    }


def _fit_to_dict(fit: VolumeFit) -> FitDict:
    return {
        "volume": fit.volume,
        "per_unit": fit.per_unit,
        "r2": round(fit.r2, 3),
        "runs": fit.runs,
    }


def candidate_to_dict(candidate: Candidate) -> CandidateDict:
    fit = candidate.fit
    return {
        "job": candidate.job,
        "confidence": candidate.confidence,
        "coverage": round(candidate.coverage, 3),
        "onset": _rounded(candidate.onset),
        "lift": _rounded(candidate.lift),
        "agreement": _rounded(candidate.agreement),
        "owned": _rounded(candidate.owned),
        "typical_rise": candidate.typical_rise,
        "volumes": candidate.volumes,
        "fit": None if fit is None else _fit_to_dict(fit),
        "past_runs": candidate.past_runs,
        "metric_in_runs": candidate.metric_in_runs,
        "metric_outside_runs": candidate.metric_outside_runs,
        "runs": [run_to_dict(run) for run in candidate.runs],
    }


def explanation_to_dict(explanation: Explanation) -> ExplanationDict:
    return {
        "metric": explanation.metric,
        "at": iso_local(explanation.at),
        "moment": iso_local(explanation.moment),
        "value": _finite(explanation.value),
        "window_seconds": explanation.window,
        "spike": None if explanation.spike is None else spike_to_dict(explanation.spike),
        "verdict": explanation.verdict,
        "conclusion": explanation.conclusion,
        "blamed": None if explanation.blamed is None else explanation.blamed.job,
        "owned_by_jobs": _rounded(explanation.owned_by_jobs),
        "candidates": [candidate_to_dict(c) for c in explanation.candidates],
        "gauges": explanation.gauges,
        "counters": explanation.counters,
    }


def survey_to_dict(surveyed: list[SurveyedSpike]) -> list[SurveyedDict]:
    return [
        {
            **spike_to_dict(item.spike),
            "verdict": item.verdict,
            "top_job": None if item.top is None else item.top.job,
            "confidence": None if item.top is None else item.top.confidence,
        }
        for item in surveyed
    ]
