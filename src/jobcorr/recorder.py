"""The embedded recorder: samples the registry into a `Store` at 1 Hz, with every run.

    recorder = jobcorr.start_recorder("data/jobcorr.sqlite3")
    ...
    recorder.stop()

What it records each tick: resident memory (and, when a job's memory rose and fell
between two ticks, the run sampler's peak reading as a sample of its own, at the moment it
was read), the cgroup working set where there is one, CPU seconds of the process and of each job
(`bg_job_cpu_seconds_total`, which includes the runs still going, read from their threads),
GC collections and pauses, `bg_job_in_progress`, `bg_log_records_total` (by job and level),
and every other counter and gauge of the registry (the service's volume metrics). Ticks
missed while the process stalls are dropped, not fired back to back, so samples stay at
least half an interval apart.
Run starts and finished runs arrive through jobcorr's run listeners. Writes are batched
(one transaction per `flush_every` ticks); once a minute, finished minutes are rolled up
and retention applied. Runs left 'running' by a crash are marked 'interrupted' at start.

The recorder never stops on a write error (a full disk, a locked database, an I/O error):
it keeps sampling into bounded backlogs (oldest dropped first, counted in
`jobcorr_recorder_dropped_total{kind}`), retries with backoff, forever, and writes
everything still queued once the store takes writes again. `jobcorr_recorder_up` and
`Recorder.degraded` say whether it writes now, and why not.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobcorr import contract
from jobcorr.backlog import Backlog
from jobcorr.processes import child_samples
from jobcorr.runtime import cgroup_working_set_bytes, usable_cores
from jobcorr.store import RAW_RETENTION_SECONDS, ROLLUP_RETENTION_SECONDS, Store
from jobcorr.tracking import (
    RunRecord,
    RunStart,
    add_run_listener,
    add_run_start_listener,
    take_memory_peak,
)

_log = logging.getLogger(__name__)

SAMPLE_BACKLOG_ROWS = 50_000
"""Samples kept while the store cannot write: about 15 minutes of a service with 50 series
at 1 Hz, some tens of MB at most."""
RUN_BACKLOG = 10_000
"""Run starts, and finished runs, kept while the store cannot write (each a few hundred bytes)."""
RETRY_FIRST_SECONDS = 1.0
"""First retry after a failed write; doubled after each failure up to RETRY_MAX_SECONDS."""
RETRY_MAX_SECONDS = 30.0
"""A recovered disk is noticed within half a minute, without a retry storm meanwhile."""
BRIEF_PEAK_BYTES = 16_000_000
"""A job's peak this far above the tick's reading (memory that came and went between two
ticks) is kept as a memory sample of its own, at the moment the sampler read it. Half the
analysis's smallest memory excursion worth an answer (32 MB), so none is lost; allocator
churn below it adds no samples, which would crowd the series' regular spacing."""
COMPACT_EVERY_SECONDS = 60.0
"""Rollups are per minute: compacting more often finds nothing new to roll up."""

Row = tuple[str, dict[str, str], str, float]
"""(sample name, labels, kind, value): one sample of one tick, not yet bound to the store."""

CGROUP_SERIES = "cgroup_memory_working_set_bytes"
USABLE_CORES_SERIES = "jobcorr_usable_cores"
"""Cores the process could use at each tick (affinity and cgroup quota): CPU reads cap."""
_ALWAYS = {
    contract.PROCESS_RESIDENT_MEMORY,
    contract.PROCESS_CPU_SECONDS,
    contract.PYTHON_GC_COLLECTIONS,
    f"{contract.GC_PAUSE.name}_sum",
    f"{contract.GC_PAUSE.name}_count",
    contract.IN_PROGRESS.exposed_name,
    contract.CPU.exposed_name,
    contract.LOG_RECORDS.exposed_name,
}
_NEVER_PREFIXES = (
    *contract.RUNTIME_PREFIXES,
    *(f.name for f in contract.JOB_FAMILIES),
    *(f.name for f in contract.SELF_FAMILIES),
)


def recorded_samples(registry: CollectorRegistry) -> Iterator[Row]:
    """(sample name, labels, kind, value) of everything the recorder keeps from `registry`."""
    for family in registry.collect():
        for sample in family.samples:
            name = sample.name
            if name in _ALWAYS:
                kind = "gauge" if family.type == "gauge" else "counter"
            elif name.endswith("_created") or name.startswith(_NEVER_PREFIXES):
                continue
            elif family.type == "gauge":
                kind = "gauge"
            elif family.type == "counter":
                kind = "counter"
            else:
                continue  # the service's histograms and summaries: not volumes
            yield name, sample.labels, kind, sample.value


def brief_peak(rows: list[Row], peak: int) -> Row | None:
    """The resident-memory row at `peak`'s height (the highest reading the run sampler took
    since the previous tick), when it stands BRIEF_PEAK_BYTES above this tick's reading."""
    for name, labels, kind, value in rows:
        if name == contract.PROCESS_RESIDENT_MEMORY:
            return (name, labels, kind, float(peak)) if peak - value >= BRIEF_PEAK_BYTES else None
    return None


def host_samples() -> Iterator[tuple[str, float]]:
    """(series name, gauge value) of what the registry does not carry: the cgroup working
    set (where there is one) and the cores the process can use."""
    working_set = cgroup_working_set_bytes()
    if working_set is not None:
        yield CGROUP_SERIES, float(working_set)
    yield USABLE_CORES_SERIES, usable_cores()


def next_tick(scheduled: float, now: float, interval: float) -> float:
    """The tick after `scheduled`, on the same grid but not before `now`: ticks missed in a
    stall are dropped, never fired back to back (their samples would be ms apart)."""
    following = scheduled + interval
    if following < now:
        following += math.ceil((now - following) / interval) * interval
    return following


class Recorder:
    """A thread that samples a registry into a store; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        registry: CollectorRegistry | None = None,
        interval: float = 1.0,
        flush_every: int = 5,
        raw_retention: float = RAW_RETENTION_SECONDS,
        rollup_retention: float = ROLLUP_RETENTION_SECONDS,
        sample_backlog: int = SAMPLE_BACKLOG_ROWS,
        run_backlog: int = RUN_BACKLOG,
        retry_max: float = RETRY_MAX_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.registry = REGISTRY if registry is None else registry
        self.interval = interval
        self.flush_every = flush_every
        self._retention = (raw_retention, rollup_retention)
        self._retry_max = retry_max
        self.samples: Backlog[tuple[int, list[Row]]] = Backlog(sample_backlog)
        self.starts: Backlog[RunStart] = Backlog(run_backlog)
        self.records: Backlog[RunRecord] = Backlog(run_backlog)
        self.degraded: str | None = None
        """Why the recorder cannot write right now; None while it writes."""
        self.last_write: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobcorr-recorder", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._metrics = _RecorderMetrics(self)
        self._removers = [
            add_run_start_listener(self.starts.put),
            add_run_listener(self.records.put),
        ]

    def start(self) -> Recorder:
        self.registry.register(self._metrics)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def stop(self) -> None:
        """Write what is queued (one last try) and stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        self._detach()

    def _detach(self) -> None:
        for remove in self._removers:
            remove()
        with contextlib.suppress(KeyError):  # already unregistered by the thread's own cleanup
            self.registry.unregister(self._metrics)

    def _run(self) -> None:
        try:
            store = Store(
                self.path, raw_retention=self._retention[0], rollup_retention=self._retention[1]
            )
        except BaseException as error:
            self._error = error
            self._ready.set()
            self._detach()
            return
        try:
            self._ready.set()
            self._loop(store)
        finally:
            store.close()
            self._detach()

    def _loop(self, store: Store) -> None:
        ticks = 0
        scheduled = time.monotonic()
        retry_at = scheduled
        backoff = min(RETRY_FIRST_SECONDS, self._retry_max)
        last_compact = 0.0
        last_sampled = -math.inf
        interrupted_marked = False
        while True:
            now = time.time()
            if now - last_sampled >= self.interval / 2:  # not when stop() cuts a wait short
                self._tick(now)
                last_sampled = now
            ticks += 1
            stopping = self._stop.is_set()
            if self.degraded is None:
                due = ticks % self.flush_every == 0
            else:
                due = time.monotonic() >= retry_at
            if due or stopping:
                compact = stopping or now - last_compact >= COMPACT_EVERY_SECONDS
                try:
                    if not interrupted_marked:
                        self._mark_interrupted(store)
                        interrupted_marked = True
                    self._write(store, now, compact)
                except Exception as error:  # transient or not: keep sampling, retry later
                    self._failed(error, stopping)
                    retry_at = time.monotonic() + backoff
                    backoff = min(backoff * 2, self._retry_max)
                else:
                    self._wrote(now)
                    backoff = min(RETRY_FIRST_SECONDS, self._retry_max)
                    if compact:
                        last_compact = now
            if stopping:
                return
            scheduled = next_tick(scheduled, time.monotonic(), self.interval)
            self._stop.wait(max(0.0, scheduled - time.monotonic()))

    def _tick(self, now: float) -> None:
        peak, peak_at = take_memory_peak()  # taken first: the tick's reading is no older
        try:
            rows = self._sample()
        except Exception:  # a collector of the service failed: lose this tick, not the recorder
            _log.exception("the jobcorr recorder could not sample the registry")
            return
        brief = brief_peak(rows, peak)
        # Stamped when it was read, which may be just after `now` (the tick's own stamp).
        if brief is not None and int(peak_at * 1000) != int(now * 1000):
            self.samples.put((int(peak_at * 1000), [brief]), 1)
        self.samples.put((int(now * 1000), rows), len(rows))

    def _sample(self) -> list[Row]:
        rows = list(recorded_samples(self.registry))
        rows.extend((name, {}, "gauge", value) for name, value in host_samples())
        rows.extend(child_samples())  # a pool's children (Celery prefork, RQ's work-horse)
        return rows

    @staticmethod
    def _mark_interrupted(store: Store) -> None:
        interrupted = store.mark_interrupted()
        if interrupted:
            _log.warning("marked %d runs of a previous process as interrupted", interrupted)

    def _write(self, store: Store, now: float, compact: bool) -> None:
        """Everything queued in one transaction; requeued, oldest first, if it fails."""
        ticks, starts, records = self.samples.take(), self.starts.take(), self.records.take()
        try:
            rows = [
                (store.series_id(name, labels, kind), ts, value)
                for ts, tick in ticks.items()
                for name, labels, kind, value in tick
            ]
            store.write(rows, starts.items(), records.items())
        except BaseException:
            self.samples.give_back(ticks)
            self.starts.give_back(starts)
            self.records.give_back(records)
            raise
        if compact:
            store.compact(now)

    def _failed(self, error: Exception, stopping: bool) -> None:
        reason = f"cannot write to {self.path}: {error}"
        if stopping:
            _log.error(
                "the jobcorr recorder stopped with %d samples and %d runs unwritten: %s",
                len(self.samples),
                len(self.records),
                reason,
            )
        elif self.degraded is None:
            _log.warning(
                "the jobcorr recorder %s; retrying, keeping the newest %d samples and %d runs",
                reason,
                self.samples.capacity,
                self.records.capacity,
            )
        self.degraded = reason

    def _wrote(self, now: float) -> None:
        if self.degraded is not None:
            _log.warning(
                "the jobcorr recorder writes to %s again; dropped meanwhile: %d samples, "
                "%d run starts, %d runs",
                self.path,
                self.samples.dropped,
                self.starts.dropped,
                self.records.dropped,
            )
        self.degraded = None
        self.last_write = now


class _RecorderMetrics(Collector):
    """The recorder's own health, read at scrape time: up, last write, dropped by kind."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[Metric]:
        recorder = self._recorder
        up = contract.RECORDER_UP
        yield GaugeMetricFamily(up.name, up.help, value=float(recorder.degraded is None))
        last = contract.RECORDER_LAST_WRITE
        yield GaugeMetricFamily(last.name, last.help, value=recorder.last_write or 0.0)
        spec = contract.RECORDER_DROPPED
        dropped = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
        dropped.add_metric(["samples"], recorder.samples.dropped)
        dropped.add_metric(["run_starts"], recorder.starts.dropped)
        dropped.add_metric(["runs"], recorder.records.dropped)
        yield dropped


def start_recorder(
    path: str | Path,
    interval: float = 1.0,
    *,
    registry: CollectorRegistry | None = None,
    raw_retention: float = RAW_RETENTION_SECONDS,
    rollup_retention: float = ROLLUP_RETENTION_SECONDS,
) -> Recorder:
    """Start recording `registry` (default: prometheus_client's) into the store at `path`."""
    return Recorder(
        Path(path),
        registry=registry,
        interval=interval,
        raw_retention=raw_retention,
        rollup_retention=rollup_retention,
    ).start()
