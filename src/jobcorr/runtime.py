"""Runtime metrics beside the job metrics: GC pauses, log records by job, JSON logs.

    >>> import jobcorr
    >>> jobcorr.register_runtime_metrics()        # doctest: +SKIP
    >>> jobcorr.configure_logging()               # doctest: +SKIP

`register_runtime_metrics` adds prometheus_client's process and GC collectors (already on
the default registry), `python_gc_pause_seconds{generation}` and a logging handler that
counts `bg_log_records_total{job,level}`.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    GCCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from jobcorr import contract
from jobcorr.tracking import current_run

GC_PAUSE_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
_GC_BUCKET_LABELS = (*(repr(b) for b in GC_PAUSE_BUCKETS), "+Inf")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class GCPauseCollector(Collector):
    """`python_gc_pause_seconds{generation}`, timed by a `gc.callbacks` hook.

    The hook takes no lock. It runs inside a collection, which any allocation in any
    thread may trigger, including one made while that thread holds a lock; a hook that
    waited for a lock could wait for its own thread (prometheus/client_python issues 363
    and 429). Collections do not overlap, so the hook is the only writer; it replaces a
    generation's immutable (bucket counts, sum) tuple in one assignment, and a scrape
    reads whole tuples.
    """

    def __init__(self) -> None:
        self._started = 0.0
        self._pauses: dict[int, tuple[tuple[int, ...], float]] = {}

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        counts, total = self._pauses.get(generation) or ((0,) * len(_GC_BUCKET_LABELS), 0.0)
        bucket = bisect_left(GC_PAUSE_BUCKETS, pause)
        counts = (*counts[:bucket], counts[bucket] + 1, *counts[bucket + 1 :])
        self._pauses[generation] = (counts, total + pause)

    def pause_counts(self) -> dict[int, int]:
        """Collections timed so far, by generation."""
        return {gen: sum(counts) for gen, (counts, _) in dict(self._pauses).items()}

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            contract.GC_PAUSE.name, contract.GC_PAUSE.help, labels=contract.GC_PAUSE.labels
        )
        for generation, (counts, total) in sorted(dict(self._pauses).items()):
            cumulative = 0
            buckets = []
            for label, count in zip(_GC_BUCKET_LABELS, counts, strict=True):
                cumulative += count
                buckets.append((label, float(cumulative)))
            family.add_metric([str(generation)], buckets, total)
        yield family


def cgroup_working_set_bytes() -> int | None:
    """The container's working set as cAdvisor computes it (usage minus inactive file
    cache), from cgroup v2 or v1; None outside a memory cgroup."""
    for usage_file, stat_key in (
        ("/sys/fs/cgroup/memory.current", "inactive_file"),
        ("/sys/fs/cgroup/memory/memory.usage_in_bytes", "total_inactive_file"),
    ):
        try:
            with open(usage_file) as usage:
                used = int(usage.read())
            with open(usage_file.rsplit("/", 1)[0] + "/memory.stat") as stat:
                inactive = next(
                    (int(line.split()[1]) for line in stat if line.split()[0] == stat_key), 0
                )
        except (OSError, ValueError):
            continue
        return max(0, used - inactive)
    return None


def usable_cores() -> float:
    """Cores this process can use: its CPU affinity, capped by the cgroup's CPU quota
    (v2 `cpu.max`, v1 `cpu.cfs_quota_us`) where there is one."""
    if hasattr(os, "sched_getaffinity"):
        cores = float(len(os.sched_getaffinity(0)))
    else:
        cores = float(os.cpu_count() or 1)
    quota = _cgroup_cpu_quota()
    return cores if quota is None else min(cores, quota)


def _cgroup_cpu_quota() -> float | None:
    """The cgroup's CPU quota in cores, or None when unlimited or not in a CPU cgroup."""
    for quota_file, period_file in (
        ("/sys/fs/cgroup/cpu.max", None),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    ):
        try:
            with open(quota_file) as file:
                fields = file.read().split()
            if period_file is not None:
                with open(period_file) as file:
                    fields.append(file.read().strip())
            quota, period = fields[0], float(fields[1])
        except (OSError, ValueError, IndexError):
            continue
        if quota in ("max", "-1") or period <= 0:
            return None
        return float(quota) / period
    return None


class ThreadCountCollector(Collector):
    """`python_threads`: live threads in this process (`threading.active_count()`)."""

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("python_threads", "Live Python threads.", threading.active_count())


class LogRecordCounter(logging.Handler):
    """A logging handler that counts records by the job that emitted them and their level.

    The job comes from the run active in the emitting thread or task (`job=""` outside
    runs). Levels outside the standard five are counted as `other`. The records outside
    every job are exposed from the start, at 0: a scraper reads their first burst as an
    increase (a series that appears with it has no earlier sample to rate against).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._counter = Counter(
            contract.LOG_RECORDS.name,
            contract.LOG_RECORDS.help,
            contract.LOG_RECORDS.labels,
            registry=registry,
        )
        for level in LOG_LEVELS:  # a series born at its first burst hides that burst from rate()
            self._counter.labels("", level)

    def emit(self, record: logging.LogRecord) -> None:
        run = current_run()
        level = record.levelname.lower()
        self._counter.labels(
            "" if run is None else run.job, level if level in LOG_LEVELS else "other"
        ).inc()


@dataclass(frozen=True)
class _Runtime:
    gc_pauses: GCPauseCollector
    log_counter: LogRecordCounter


_installed: weakref.WeakKeyDictionary[CollectorRegistry, _Runtime] = weakref.WeakKeyDictionary()
_installed_lock = threading.Lock()


def register_runtime_metrics(
    registry: CollectorRegistry | None = None, *, logger: logging.Logger | None = None
) -> GCPauseCollector:
    """Add the runtime families to `registry` once; attach the log counter to `logger` (root).

    Returns the GC pause collector (its `pause_counts()` is handy in tests).
    """
    target = REGISTRY if registry is None else registry
    with _installed_lock:
        runtime = _installed.get(target)
        if runtime is None:
            if target is not REGISTRY:  # the default registry has both from the start
                ProcessCollector(registry=target)
                GCCollector(registry=target)
            gc_pauses = GCPauseCollector()
            target.register(gc_pauses)
            target.register(ThreadCountCollector())
            gc_pauses.install()
            runtime = _installed[target] = _Runtime(gc_pauses, LogRecordCounter(target))
        (logger or logging.getLogger()).addHandler(runtime.log_counter)
        return runtime.gc_pauses


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with `job` and `run_id` when emitted inside a run (for Loki).

    {"ts": "2026-11-28T14:23:01.123+00:00", "level": "info", "logger": "bf42stats.sync",
     "message": "synced 50000 rows", "job": "clickhouse_sync", "run_id": "9f2c61d0a7b4-1a"}
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}+00:00",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        run = current_run()
        if run is not None:
            entry["job"] = run.job
            entry["run_id"] = run.run_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(
    level: int | str = logging.INFO, *, stream: TextIO | None = None
) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) as JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
