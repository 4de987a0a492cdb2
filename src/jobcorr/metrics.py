"""The job metric families, kept as plain per-job state and rendered at scrape time.

A run touches ten families. Updating ten prometheus_client metrics would take ten locks
per run, so `JobMetrics` keeps one small record per job, updates it under a single lock
when a run ends, and builds the metric families only when /metrics is scraped.

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> metrics = job_metrics(registry)
    >>> import jobcorr
    >>> with jobcorr.track("ranking_calc", registry=registry):
    ...     pass
    >>> b'bg_job_executions_total{job="ranking_calc"} 1.0' in generate_latest(registry)
    True
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from jobcorr import contract
from jobcorr.contract import DURATION_BUCKETS

_BUCKET_LABELS = (*(repr(float(b)) for b in DURATION_BUCKETS), "+Inf")


class _JobState:
    __slots__ = (
        "bucket_counts",
        "cpu_seconds",
        "duration_sum",
        "executions",
        "exemplars",
        "failures",
        "in_progress",
        "last_duration",
        "last_start",
        "last_success",
        "peak_rss",
        "skipped",
    )

    def __init__(self) -> None:
        self.executions = 0
        self.failures = 0
        self.skipped = 0
        self.in_progress = 0
        self.last_start = 0.0
        self.last_success = 0.0
        self.last_duration = 0.0
        self.cpu_seconds = 0.0
        self.peak_rss = 0
        self.duration_sum = 0.0
        self.bucket_counts = [0] * len(_BUCKET_LABELS)
        # (run_id, duration, ended_at) of the latest run per bucket; Exemplars are built at scrape.
        self.exemplars: list[tuple[str, float, float] | None] = [None] * len(_BUCKET_LABELS)

    def copy(self) -> _JobState:
        other = _JobState()
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(other, name, list(value) if isinstance(value, list) else value)
        return other


class ActiveRun(Protocol):
    """What JobMetrics needs of a run (`jobcorr.tracking.Run` is one)."""

    job: str
    run_id: str
    started_at: float


class JobMetrics(Collector):
    """Per-job state for the contract's job families; a prometheus_client collector.

    A starting run is only added to a set (atomic, no lock); `bg_job_in_progress` and the
    last start are read from that set at scrape time. A finishing run updates its job's
    record and leaves the set under one lock, so a scrape sees it either active or counted.
    Callers are `jobcorr.tracking` (runs) and scheduler integrations (skipped ticks); job
    names must already be validated.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, _JobState] = {}
        self._active: set[ActiveRun] = set()

    def _state(self, job: str) -> _JobState:
        state = self._jobs.get(job)
        if state is None:
            state = self._jobs[job] = _JobState()
        return state

    def run_started(self, run: ActiveRun) -> None:
        self._active.add(run)

    def run_finished(
        self, run: ActiveRun, duration: float, cpu_seconds: float, peak_rss: int, status: str
    ) -> None:
        ended_at = run.started_at + duration
        bucket = bisect_left(DURATION_BUCKETS, duration)
        exemplar = (run.run_id, duration, ended_at)
        with self._lock:
            state = self._state(run.job)
            self._active.discard(run)
            state.executions += 1
            if run.started_at > state.last_start:
                state.last_start = run.started_at
            state.last_duration = duration
            state.cpu_seconds += cpu_seconds
            state.peak_rss = peak_rss
            state.duration_sum += duration
            state.bucket_counts[bucket] += 1
            state.exemplars[bucket] = exemplar
            if status == "success":
                state.last_success = ended_at
            elif status == "failure":
                state.failures += 1

    def run_skipped(self, job: str) -> None:
        with self._lock:
            self._state(job).skipped += 1

    def jobs(self) -> dict[str, _JobState]:
        """A consistent copy of every job's state, active runs included."""
        with self._lock:
            jobs = {job: state.copy() for job, state in self._jobs.items()}
            active = list(self._active)
        for run in active:
            state = jobs.get(run.job) or jobs.setdefault(run.job, _JobState())
            state.in_progress += 1
            state.last_start = max(state.last_start, run.started_at)
        return jobs

    def collect(self) -> Iterator[Metric]:
        jobs = sorted(self.jobs().items())
        executions = CounterMetricFamily(
            contract.EXECUTIONS.name, contract.EXECUTIONS.help, labels=contract.JOB
        )
        duration = HistogramMetricFamily(
            contract.DURATION.name, contract.DURATION.help, labels=contract.JOB
        )
        failures = CounterMetricFamily(
            contract.FAILURES.name, contract.FAILURES.help, labels=contract.JOB
        )
        skipped = CounterMetricFamily(
            contract.SKIPPED.name, contract.SKIPPED.help, labels=contract.JOB
        )
        cpu = CounterMetricFamily(contract.CPU.name, contract.CPU.help, labels=contract.JOB)
        gauges = {
            spec: GaugeMetricFamily(spec.name, spec.help, labels=contract.JOB)
            for spec in (
                contract.IN_PROGRESS,
                contract.LAST_START,
                contract.LAST_SUCCESS,
                contract.LAST_DURATION,
                contract.PEAK_RSS,
            )
        }
        for job, state in jobs:
            labels = [job]
            executions.add_metric(labels, state.executions)
            failures.add_metric(labels, state.failures)
            skipped.add_metric(labels, state.skipped)
            cpu.add_metric(labels, state.cpu_seconds)
            duration.add_metric(labels, _cumulative_buckets(state), state.duration_sum)
            gauges[contract.IN_PROGRESS].add_metric(labels, state.in_progress)
            gauges[contract.LAST_START].add_metric(labels, state.last_start)
            gauges[contract.LAST_SUCCESS].add_metric(labels, state.last_success)
            gauges[contract.LAST_DURATION].add_metric(labels, state.last_duration)
            gauges[contract.PEAK_RSS].add_metric(labels, state.peak_rss)
        yield executions
        yield duration
        yield failures
        yield skipped
        yield cpu
        yield from gauges.values()


def _cumulative_buckets(state: _JobState) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
    buckets: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
    total = 0
    for label, count, exemplar in zip(
        _BUCKET_LABELS, state.bucket_counts, state.exemplars, strict=True
    ):
        total += count
        if exemplar is None:
            buckets.append((label, total))
        else:
            run_id, value, timestamp = exemplar
            buckets.append((label, total, Exemplar({"run_id": run_id}, value, timestamp)))
    return buckets


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, JobMetrics] = weakref.WeakKeyDictionary()
_by_registry_lock = threading.Lock()
_last: tuple[CollectorRegistry | None, JobMetrics | None] = (None, None)


def job_metrics(registry: CollectorRegistry | None = None) -> JobMetrics:
    """The `JobMetrics` registered on `registry` (default: prometheus_client's), created once."""
    global _last
    target = REGISTRY if registry is None else registry
    last_registry, last_metrics = _last
    if last_registry is target and last_metrics is not None:
        return last_metrics  # the common case, a service with one registry: no weakref lookup
    metrics = _by_registry.get(target)
    if metrics is None:
        with _by_registry_lock:
            metrics = _by_registry.get(target)
            if metrics is None:
                metrics = JobMetrics()
                target.register(metrics)
                _by_registry[target] = metrics
    _last = (target, metrics)
    return metrics
