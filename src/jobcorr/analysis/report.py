"""Explanations and spike lists as plain data: the stable `--json` shape and the web API's.

Schema of `explanation_to_dict` (documented in the README; fields are only ever added):

    metric, at, moment (ISO 8601, local offset), value, window_seconds,
    spike: {rise_start, start, peak_at, end, peak, baseline, peak_text, baseline_text,
            reason} | null,
    conclusion, blamed (the job the conclusion names, or null),
    candidates: [{job, confidence (0..1), coverage, lift, typical_rise, volumes,
                  fit: {volume, per_unit, r2, runs} | null,
                  runs: [{run_id, start, end, status, volumes, peak_memory, exact}]}],
                  best first
    gauges: {series: value at the moment}, counters: {series: increase during the climb}
"""

from __future__ import annotations

from typing import Any

from jobcorr.analysis.explain import Candidate, Explanation, SurveyedSpike
from jobcorr.analysis.narrative import quantity
from jobcorr.analysis.spikes import Spike
from jobcorr.times import iso_local


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else value


def spike_to_dict(spike: Spike) -> dict[str, Any]:
    return {
        "rise_start": iso_local(spike.rise_start),
        "start": iso_local(spike.start),
        "peak_at": iso_local(spike.peak_at),
        "end": iso_local(spike.end),
        "peak": spike.peak,
        "baseline": spike.baseline,
        "peak_text": quantity(spike.metric, spike.peak),
        "baseline_text": quantity(spike.metric, spike.baseline),
        "reason": spike.reason,
    }


def candidate_to_dict(candidate: Candidate) -> dict[str, Any]:
    fit = candidate.fit
    return {
        "job": candidate.job,
        "confidence": candidate.confidence,
        "coverage": round(candidate.coverage, 3),
        "lift": None if candidate.lift is None else round(candidate.lift, 3),
        "typical_rise": candidate.typical_rise,
        "volumes": candidate.volumes,
        "fit": None
        if fit is None
        else {
            "volume": fit.volume,
            "per_unit": fit.per_unit,
            "r2": round(fit.r2, 3),
            "runs": fit.runs,
        },
        "past_runs": candidate.past_runs,
        "metric_in_runs": candidate.metric_in_runs,
        "metric_outside_runs": candidate.metric_outside_runs,
        "runs": [
            {
                "run_id": run.run_id,
                "start": iso_local(run.start),
                "end": None if run.end is None else iso_local(run.end),
                "status": run.status,
                "volumes": run.volumes,
                "peak_memory": run.peak_memory,
                "exact": run.exact,
            }
            for run in candidate.runs
        ],
    }


def explanation_to_dict(explanation: Explanation) -> dict[str, Any]:
    return {
        "metric": explanation.metric,
        "at": iso_local(explanation.at),
        "moment": iso_local(explanation.moment),
        "value": _finite(explanation.value),
        "window_seconds": explanation.window,
        "spike": None if explanation.spike is None else spike_to_dict(explanation.spike),
        "conclusion": explanation.conclusion,
        "blamed": None if explanation.blamed is None else explanation.blamed.job,
        "candidates": [candidate_to_dict(c) for c in explanation.candidates],
        "gauges": explanation.gauges,
        "counters": explanation.counters,
    }


def survey_to_dict(surveyed: list[SurveyedSpike]) -> list[dict[str, Any]]:
    return [
        {
            **spike_to_dict(item.spike),
            "metric": item.spike.metric,
            "top_job": None if item.top is None else item.top.job,
            "confidence": None if item.top is None else item.top.confidence,
        }
        for item in surveyed
    ]
