"""Ownership on real recorded data: threads burning CPU and logging inside and outside runs,
recorded by the real recorder into SQLite and read back through the embedded Timeline."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import jobcorr
from jobcorr.runtime import usable_cores
from jobcorr.sources.embedded import MEMORY, EmbeddedTimeline
from jobcorr.store import Store
from jobcorr.timeline import Series

INTERVAL = 0.2
"""Recorder interval: several samples inside a run of under a second of CPU."""
BURN = 2.0
"""CPU seconds each burning thread spends; on a loaded 2-core machine that takes seconds.
Two threads spinning in one process starve the recorder's thread of the GIL for up to a
second and more between ticks (seen: 1.2 s), so the run lasts several such gaps and its
ticks inside it still come to two or more (0.8 s saw one, in 1 run of 5 on a quiet machine)."""
TOLERANCE = 0.05
"""CPU seconds: /proc's process CPU has 10 ms ticks, and collection takes a moment."""

_log = logging.getLogger("jobcorr.tests.ownership")


def _burn(seconds: float) -> float:
    """Spin until this thread has used `seconds` of CPU; returns the CPU it used."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(range(1000))
    return time.thread_time() - start


def _integral(rate: Series) -> float:
    """What a rate series adds up to (each rate covers the gap since the previous sample)."""
    return float(np.sum(rate.values[1:] * np.diff(rate.times)))


def _record(path: Path, registry: CollectorRegistry, work: list[threading.Thread]) -> None:
    jobcorr.register_runtime_metrics(registry)
    recorder = jobcorr.start_recorder(path, interval=INTERVAL, registry=registry)
    try:
        time.sleep(3 * INTERVAL)  # quiet ticks before the work: the first rates are idle
        for thread in work:
            thread.start()
        for thread in work:
            thread.join(120)
        time.sleep(3 * INTERVAL)  # ticks after it, so every increase is sampled
    finally:
        recorder.stop()


def test_cpu_and_logs_are_owned_by_the_job_that_spent_them(
    tmp_path: Path, registry: CollectorRegistry, records: list[jobcorr.RunRecord]
) -> None:
    spent: dict[str, float] = {}

    def in_job() -> None:
        with jobcorr.track("burner", registry=registry):
            for index in range(40):
                _log.warning("job record %d", index)
            spent["job"] = _burn(BURN)

    def outside() -> None:
        for index in range(25):
            _log.warning("outside record %d", index)
        spent["outside"] = _burn(BURN)

    path = tmp_path / "s.sqlite3"
    _record(path, registry, [threading.Thread(target=in_job), threading.Thread(target=outside)])
    [run] = [r for r in records if r.job == "burner"]
    timeline = EmbeddedTimeline(path)
    first, last = timeline.bounds() or (0.0, 0.0)

    cpu = timeline.owned("cpu", first, last)
    assert cpu is not None and set(cpu.by_job) == {"burner"}
    job = cpu.by_job["burner"]
    assert _integral(job) == pytest.approx(run.cpu_seconds, abs=TOLERANCE)
    assert _integral(cpu.outside) >= spent["outside"] - TOLERANCE
    assert _integral(cpu.outside) + _integral(job) == pytest.approx(
        _integral(timeline.metric("cpu", first, last)), abs=TOLERANCE
    )
    # Live, not at run end: CPU is owned on the ticks while the run was going.
    during = job.between(run.started_at + INTERVAL, run.ended_at)
    assert len(during) >= 2 and (during.values > 0).sum() >= len(during) / 2
    assert max(job.values.max(), cpu.outside.values.max()) <= usable_cores() + 1e-9

    logs = timeline.owned("logs", first, last)
    assert logs is not None
    assert _integral(logs.by_job["burner"]) == pytest.approx(40)
    assert _integral(logs.outside) == pytest.approx(25)


def test_memory_and_gc_cannot_be_owned(tmp_path: Path, registry: CollectorRegistry) -> None:
    path = tmp_path / "s.sqlite3"
    _record(path, registry, [])
    timeline = EmbeddedTimeline(path)
    first, last = timeline.bounds() or (0.0, 0.0)
    assert timeline.owned("memory", first, last) is None
    assert timeline.owned("gc", first, last) is None


def _hold_the_gil(seconds: float) -> None:
    """Stall every thread of the process (the recorder's too) for about `seconds`: one call
    into C that never returns to the interpreter, so it never lets the GIL go."""
    probe, took = 1_000_000, []
    for _ in range(3):  # CPU time, not wall: a probe preempted by a busy machine would
        began = time.thread_time()  # look slow and make the stall too short
        sum(range(probe))
        took.append(time.thread_time() - began)
    per_item = max(min(took), 1e-9) / probe
    sum(range(int(seconds / per_item)))


def test_a_stalled_recorder_neither_replays_ticks_nor_reads_impossible_cpu(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    stalled: list[float] = []

    def work() -> None:
        with jobcorr.track("burner", registry=registry):
            began = time.monotonic()
            _hold_the_gil(12 * INTERVAL)
            stalled.append(time.monotonic() - began)
            _burn(BURN)

    path = tmp_path / "s.sqlite3"
    _record(path, registry, [threading.Thread(target=work)])

    store = Store(path, readonly=True)
    [memory] = [info for info in store.series() if info.name == MEMORY]
    ticks = np.array([ts for ts, _ in store.samples(memory.id, 0, 2e9)]) / 1000
    gaps = np.diff(ticks)
    assert stalled[0] >= 6 * INTERVAL
    assert gaps.max() >= 5 * INTERVAL  # the stall is in the data ...
    assert gaps.min() >= INTERVAL / 2  # ... and no missed tick was fired back to back

    timeline = EmbeddedTimeline(path)
    first, last = timeline.bounds() or (0.0, 0.0)
    cores = usable_cores()
    assert timeline.metric("cpu", first, last).values.max() <= cores + 1e-9
    owned = timeline.owned("cpu", first, last)
    assert owned is not None
    assert owned.by_job["burner"].values.max() <= cores + 1e-9
