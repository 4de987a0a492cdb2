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

import logging
import threading
import time
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
from jobcorr.names import check_name

_BUCKET_LABELS = (*(repr(float(b)) for b in DURATION_BUCKETS), "+Inf")
_log = logging.getLogger(__name__)

MAX_JOBS = 100
"""Distinct job names per process: a service has a handful to dozens of jobs; names beyond
this come from data, and every one costs ~30 series on /metrics and in the recorder."""
MAX_VOLUMES = 100
"""Distinct volume names per job, for the same reason (each is a key of every run record)."""
FORGET_AFTER_SECONDS = 24 * 3600
"""A job unseen this long (renamed, removed) leaves /metrics: daily jobs stay listed."""
OVER_LIMIT = "over_limit"
"""The job (or volume) name that runs beyond a cap are counted under."""


class _JobState:
    __slots__ = (
        "bucket_counts",
        "cpu_exposed",
        "cpu_seconds",
        "duration_sum",
        "executions",
        "exemplars",
        "failures",
        "in_progress",
        "last_duration",
        "last_seen",
        "last_start",
        "last_success",
        "peak_rss",
        "skipped",
        "start_rss",
        "volumes",
    )

    def __init__(self) -> None:
        self.executions = 0
        self.failures = 0
        self.skipped = 0
        self.in_progress = 0
        self.last_start = 0.0
        self.last_success = 0.0
        self.last_duration = 0.0
        self.cpu_seconds = 0.0  # finished runs
        self.cpu_exposed = 0.0  # finished runs plus runs in progress, as last exposed
        self.peak_rss = 0
        self.start_rss = 0
        self.last_seen = time.time()
        self.volumes: set[str] = set()  # volume names admitted for this job
        self.duration_sum = 0.0
        self.bucket_counts = [0] * len(_BUCKET_LABELS)
        # (run, duration, ended_at) of the latest run per bucket; Exemplars, and the run's id,
        # are built at scrape (a run formats its id when first asked, off the run's path).
        self.exemplars: list[tuple[ActiveRun, float, float] | None] = [None] * len(_BUCKET_LABELS)

    def copy(self) -> _JobState:
        other = _JobState()
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(other, name, value.copy() if isinstance(value, list | set) else value)
        return other


class ActiveRun(Protocol):
    """What JobMetrics needs of a run (`jobcorr.tracking.Run` is one, and so is the
    `RunStart` a pool's child reports)."""

    @property
    def job(self) -> str: ...

    @property
    def run_id(self) -> str: ...

    @property
    def started_at(self) -> float: ...

    def cpu_so_far(self) -> float:
        """CPU seconds the run has used since it started (0 when it cannot be read)."""
        ...


class JobMetrics(Collector):
    """Per-job state for the contract's job families; a prometheus_client collector.

    A starting run is only added to a set (atomic, no lock); `bg_job_in_progress` and the
    last start are read from that set at scrape time. A finishing run updates its job's
    record and leaves the set under one lock, so a scrape sees it either active or counted.
    `bg_job_cpu_seconds_total` includes the CPU of runs still going (read from each active
    run under that lock), so a scrape sees CPU per job live, not only when runs end; it
    never goes down (a run's final reading can trail its last live one by a few µs).
    Callers are `jobcorr.tracking` (runs) and scheduler integrations (skipped ticks); job
    names enter through `admit`, which validates them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, _JobState] = {}
        self._active: set[ActiveRun] = set()
        self.max_jobs = MAX_JOBS
        self.max_volumes = MAX_VOLUMES
        self.forget_after: float = FORGET_AFTER_SECONDS
        self.over_limit = 0  # runs and skipped ticks counted under OVER_LIMIT
        self._warned: set[str] = set()  # "job", "volume": each cap is reported once

    def admit(self, job: str) -> str:
        """`job`, or OVER_LIMIT once `max_jobs` other names are known; ValueError for a name
        that `jobcorr.names.check_name` rejects (a known name was checked when admitted)."""
        if job in self._jobs:
            return job
        check_name("job", job)
        with self._lock:
            if job in self._jobs or len(self._jobs) < self.max_jobs:
                self._state(job)
                return job
            self.over_limit += 1
            self._state(OVER_LIMIT)
        self._warn_once("job", f"job {job!r}", self.max_jobs)
        return OVER_LIMIT

    def admit_volume(self, job: str, volume: str) -> str:
        """`volume`, or OVER_LIMIT once `max_volumes` other names are known for `job`."""
        state = self._jobs.get(job)
        if state is None or volume in state.volumes:
            return volume
        with self._lock:
            if len(state.volumes) < self.max_volumes:
                state.volumes.add(volume)
                return volume
        self._warn_once("volume", f"volume {volume!r} of job {job!r}", self.max_volumes)
        return OVER_LIMIT

    def _warn_once(self, kind: str, what: str, limit: int) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        _log.warning(
            "more than %d distinct %s names: %s and later new ones are counted as %r; "
            "raise the cap with jobcorr.set_limits(max_%ss=...) if these names are meant",
            limit, kind, what, OVER_LIMIT, kind,
        )  # fmt: skip

    def _state(self, job: str) -> _JobState:
        state = self._jobs.get(job)
        if state is None:
            state = self._jobs[job] = _JobState()
        return state

    def run_started(self, run: ActiveRun) -> None:
        self._active.add(run)

    def run_finished(
        self,
        run: ActiveRun,
        duration: float,
        cpu_seconds: float,
        rss_at_start: int,
        peak_rss: int,
        status: str,
    ) -> None:
        """Count a finished run. Its resident memory at start and its peak while it ran
        (bytes; 0 where unread) together say whether memory rose during the run, at any
        scrape interval, for the last run of a job before each scrape. (Two ints, not a
        named tuple: building one costs more than this method's whole body on a run's
        cold path.)"""
        ended_at = run.started_at + duration
        bucket = bisect_left(DURATION_BUCKETS, duration)
        exemplar = (run, duration, ended_at)
        lock = self._lock
        lock.acquire()  # not `with`, nor max() below: on the cold path of a run 50 ms after
        try:  # the previous one, their lookups cost more than the updates they guard
            try:  # a subscript, not a call of _state: cheaper on a cold path
                state = self._jobs[run.job]
            except KeyError:  # a run another process reported, or a job forgotten meanwhile
                state = self._state(run.job)
            self._active.discard(run)
            state.executions += 1
            state.last_seen = ended_at
            if run.started_at > state.last_start:
                state.last_start = run.started_at
            state.last_duration = duration
            state.cpu_seconds += cpu_seconds
            if state.cpu_seconds > state.cpu_exposed:
                state.cpu_exposed = state.cpu_seconds
            state.start_rss, state.peak_rss = rss_at_start, peak_rss
            state.duration_sum += duration
            state.bucket_counts[bucket] += 1
            state.exemplars[bucket] = exemplar
            if status == "success":
                state.last_success = ended_at
            elif status == "failure":
                state.failures += 1
        finally:
            lock.release()

    def run_skipped(self, job: str) -> None:
        with self._lock:
            state = self._state(job)
            state.skipped += 1
            state.last_seen = time.time()

    def jobs(self) -> dict[str, _JobState]:
        """A consistent copy of every job's state, active runs included."""
        with self._lock:
            active = list(self._active)
            self._forget({run.job for run in active})
            self._expose_live_cpu(active)
            jobs = {job: state.copy() for job, state in self._jobs.items()}
        for run in active:
            state = jobs.get(run.job) or jobs.setdefault(run.job, _JobState())
            state.in_progress += 1
            state.last_start = max(state.last_start, run.started_at)
        return jobs

    def _forget(self, running: set[str]) -> None:
        """Drop jobs unseen for `forget_after` seconds, none of their runs going (locked)."""
        cutoff = time.time() - self.forget_after
        for job in [j for j, s in self._jobs.items() if s.last_seen < cutoff and j not in running]:
            del self._jobs[job]

    def _expose_live_cpu(self, active: list[ActiveRun]) -> None:
        """Under the lock: each job's CPU counter = finished runs + active runs so far."""
        live: dict[str, float] = {}
        for run in active:
            live[run.job] = live.get(run.job, 0.0) + run.cpu_so_far()
        for job, seconds in live.items():
            state = self._state(job)
            state.cpu_exposed = max(state.cpu_exposed, state.cpu_seconds + seconds)

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
                contract.START_RSS,
            )
        }
        for job, state in jobs:
            labels = [job]
            executions.add_metric(labels, state.executions)
            failures.add_metric(labels, state.failures)
            skipped.add_metric(labels, state.skipped)
            cpu.add_metric(labels, state.cpu_exposed)
            duration.add_metric(labels, _cumulative_buckets(state), state.duration_sum)
            gauges[contract.IN_PROGRESS].add_metric(labels, state.in_progress)
            gauges[contract.LAST_START].add_metric(labels, state.last_start)
            gauges[contract.LAST_SUCCESS].add_metric(labels, state.last_success)
            gauges[contract.LAST_DURATION].add_metric(labels, state.last_duration)
            gauges[contract.PEAK_RSS].add_metric(labels, state.peak_rss)
            gauges[contract.START_RSS].add_metric(labels, state.start_rss)
        yield executions
        yield duration
        yield failures
        yield skipped
        yield cpu
        yield from gauges.values()
        over = contract.JOBS_OVER_LIMIT
        yield CounterMetricFamily(over.name, over.help, value=self.over_limit)


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
            run, value, timestamp = exemplar
            buckets.append((label, total, Exemplar({"run_id": run.run_id}, value, timestamp)))
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


def set_limits(
    *,
    max_jobs: int = MAX_JOBS,
    max_volumes: int = MAX_VOLUMES,
    forget_after: float = FORGET_AFTER_SECONDS,
    registry: CollectorRegistry | None = None,
) -> None:
    """Cardinality caps of `registry`'s job metrics (default: prometheus_client's registry):
    distinct job names, distinct volume names per job, and how long an unseen job stays."""
    if max_jobs < 1 or max_volumes < 1 or forget_after <= 0:
        raise ValueError(
            f"limits must be positive: max_jobs={max_jobs}, max_volumes={max_volumes}, "
            f"forget_after={forget_after}"
        )
    metrics = job_metrics(registry)
    metrics.max_jobs, metrics.max_volumes = max_jobs, max_volumes
    metrics.forget_after = forget_after
