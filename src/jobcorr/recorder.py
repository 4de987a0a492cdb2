"""The embedded recorder: samples the registry into a `Store` at 1 Hz, with every run.

    recorder = jobcorr.start_recorder("data/jobcorr.sqlite3")
    ...
    recorder.stop()

What it records each tick: resident memory, the cgroup working set where there is one,
CPU seconds, GC collections and pauses, `bg_job_in_progress`, `bg_log_records_total`,
and every other counter and gauge of the registry (the service's volume metrics).
Run starts and finished runs arrive through jobcorr's run listeners. Writes are batched
(one transaction per `flush_every` ticks); once a minute, finished minutes are rolled up
and retention applied. Runs left 'running' by a crash are marked 'interrupted' at start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry

from jobcorr import contract
from jobcorr.runtime import cgroup_working_set_bytes
from jobcorr.store import RAW_RETENTION_SECONDS, ROLLUP_RETENTION_SECONDS, Store
from jobcorr.tracking import RunRecord, RunStart, add_run_listener, add_run_start_listener

_log = logging.getLogger(__name__)

CGROUP_SERIES = "cgroup_memory_working_set_bytes"
_ALWAYS = {
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "python_gc_collections_total",
    "python_gc_pause_seconds_sum",
    "python_gc_pause_seconds_count",
    "bg_job_in_progress",
    "bg_log_records_total",
}
_NEVER_PREFIXES = ("process_", "python_", *(f.name for f in contract.JOB_FAMILIES))


def recorded_samples(
    registry: CollectorRegistry,
) -> Iterator[tuple[str, dict[str, str], str, float]]:
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
    ) -> None:
        self.path = Path(path)
        self.registry = REGISTRY if registry is None else registry
        self.interval = interval
        self.flush_every = flush_every
        self._retention = (raw_retention, rollup_retention)
        self._starts: deque[RunStart] = deque()
        self._records: deque[RunRecord] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobcorr-recorder", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._removers = [
            add_run_start_listener(self._starts.append),
            add_run_listener(self._records.append),
        ]

    def start(self) -> Recorder:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def stop(self) -> None:
        """Flush what is queued and stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        for remove in self._removers:
            remove()

    def _run(self) -> None:
        try:
            store = Store(
                self.path, raw_retention=self._retention[0], rollup_retention=self._retention[1]
            )
            interrupted = store.mark_interrupted()
            if interrupted:
                _log.warning("marked %d runs of a previous process as interrupted", interrupted)
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        pending: list[tuple[int, int, float]] = []
        ticks = 0
        next_tick = time.monotonic()
        last_compact = 0.0
        try:
            while True:
                now = time.time()
                pending.extend(self._sample(store, now))
                ticks += 1
                stopping = self._stop.is_set()
                if ticks % self.flush_every == 0 or stopping:
                    self._flush(store, pending)
                    pending = []
                if now - last_compact >= 60 or stopping:
                    store.compact(now)
                    last_compact = now
                if stopping:
                    return
                next_tick += self.interval
                self._stop.wait(max(0.0, next_tick - time.monotonic()))
        except Exception:
            _log.exception("the jobcorr recorder stopped: %s", self.path)
        finally:
            store.close()

    def _sample(self, store: Store, now: float) -> list[tuple[int, int, float]]:
        ts = int(now * 1000)
        rows = [
            (store.series_id(name, labels, kind), ts, value)
            for name, labels, kind, value in recorded_samples(self.registry)
        ]
        working_set = cgroup_working_set_bytes()
        if working_set is not None:
            rows.append((store.series_id(CGROUP_SERIES, {}, "gauge"), ts, float(working_set)))
        return rows

    def _flush(self, store: Store, samples: list[tuple[int, int, float]]) -> None:
        starts = [self._starts.popleft() for _ in range(len(self._starts))]
        records = [self._records.popleft() for _ in range(len(self._records))]
        store.write(samples, starts, records)


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
