"""The embedded store and recorder: batching, rollups, retention, crashes and restarts."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge

import jobcorr
from jobcorr.analysis import default_settings, find_spikes
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.store import Store, StoreError


def test_the_recorder_keeps_metrics_volumes_and_runs(tmp_path: Path, registry) -> None:
    jobcorr.register_runtime_metrics(registry)
    players = Gauge("bg_active_players", "", registry=registry)
    recorder = jobcorr.start_recorder(tmp_path / "s.sqlite3", interval=0.05, registry=registry)
    players.set(200)
    gc.collect()  # at least one timed GC pause
    with jobcorr.track("clickhouse_sync", registry=registry) as run:
        run.add("player_metrics", 50_000)
        time.sleep(0.3)
    with pytest.raises(RuntimeError), jobcorr.track("ranking_calc", registry=registry):
        raise RuntimeError("boom")
    time.sleep(0.2)
    recorder.stop()

    store = Store(tmp_path / "s.sqlite3", readonly=True)
    names = {info.name for info in store.series()}
    for expected in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                     "python_gc_collections_total", "python_gc_pause_seconds_sum",
                     "bg_job_in_progress", "bg_active_players"):  # fmt: skip
        assert expected in names
    assert not any(n.startswith("bg_job_executions") or n.endswith("_created") for n in names)
    runs = {r.job: r for r in store.runs(0, 2e9)}
    assert runs["clickhouse_sync"].status == "success"
    assert runs["clickhouse_sync"].volumes == {"player_metrics": 50_000}
    assert runs["clickhouse_sync"].ended_at - runs["clickhouse_sync"].started_at >= 0.3
    assert runs["ranking_calc"].status == "failure"
    assert runs["ranking_calc"].error_type == "RuntimeError"

    timeline = EmbeddedTimeline(tmp_path / "s.sqlite3")
    first, last = timeline.bounds()
    # 20 Hz asked; a loaded machine stretches ticks, so only bound the median gap loosely
    assert 0.03 < timeline.resolution < 1.0
    memory = timeline.metric("memory", first, last)
    assert len(memory) >= 3 and memory.values.min() > 1e6
    [volume] = [v for v in timeline.volumes(first, last) if v.name == "bg_active_players"]
    assert volume.kind == "gauge" and volume.series.at(last) == 200
    in_progress = [r for r in timeline.runs(first, last) if r.job == "clickhouse_sync"]
    assert in_progress[0].volumes == {"player_metrics": 50_000}


def test_a_jobs_brief_peak_between_two_ticks_is_recorded_at_its_height(
    tmp_path: Path, registry
) -> None:
    """The demo's incident in small: a catch-up holds 200 MB for 0.1 s between two samples
    a second apart. The stored memory keeps its peak, and the spike is found from it."""
    jobcorr.register_runtime_metrics(registry)
    recorder = jobcorr.start_recorder(tmp_path / "s.sqlite3", interval=1.0, registry=registry)
    size = 200 * 1024 * 1024
    try:
        time.sleep(6.5)  # a baseline of samples, and the next tick half a second away
        with jobcorr.track("clickhouse_sync", registry=registry):
            blob = b"y" * size
            time.sleep(0.1)
            del blob
        time.sleep(2.5)
    finally:
        recorder.stop()
    timeline = EmbeddedTimeline(tmp_path / "s.sqlite3")
    first, last = timeline.bounds()
    memory = timeline.metric("memory", first, last)
    before = float(np.median(memory.values[:5]))
    assert memory.values.max() - before >= size * 0.9, memory.values
    [spike] = find_spikes(memory, "memory", default_settings("memory", timeline.resolution))
    assert spike.peak - spike.baseline >= size * 0.9
    [run] = timeline.runs(first, last)
    assert run.start <= spike.peak_at <= run.end  # stamped when it was read, not at the tick
    assert 0.9 < timeline.resolution < 1.1  # one extra reading leaves the spacing alone


def test_rollups_and_retention(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3", raw_retention=3600, rollup_retention=86400)
    memory = store.series_id("process_resident_memory_bytes", {}, "gauge")
    now = 1_800_000_000.0
    start = now - 2 * 86400
    store.write((memory, int((start + i) * 1000), float(i % 120)) for i in range(0, 2 * 86400, 10))
    store.compact(now)
    rollups = store.rollups(memory, now - 7200, now - 3600, "max")
    assert len(rollups) == 61
    # The series saws 0..110 every two minutes: each minute holds one half of the saw.
    assert {value for _, value in store.rollups(memory, now - 7200, now - 3600, "max")} == {50, 110}
    assert {value for _, value in store.rollups(memory, now - 7200, now - 3600, "min")} == {0, 60}
    assert store.raw_since(memory) >= now - 3600
    assert store.rollups(memory, 0, now - 86400 - 60, "max") == []  # past rollup retention
    store.compact(now)  # idempotent
    assert len(store.rollups(memory, now - 7200, now - 3600, "avg")) == 61


def test_a_store_that_is_not_one_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a database, just words " * 100)
    with pytest.raises(StoreError, match="not a readable jobcorr store"):
        Store(bogus, readonly=True)
    with pytest.raises(StoreError, match="no jobcorr store"):
        Store(tmp_path / "missing.sqlite3", readonly=True)


def test_kill_9_mid_run_leaves_the_run_interrupted_at_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time, jobcorr
            jobcorr.start_recorder({str(path)!r}, interval=0.05)
            with jobcorr.track("clickhouse_sync"):
                print("running", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "running"
    time.sleep(0.6)  # a few flushes: the run start is stored
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    [run] = Store(path, readonly=True).runs(0, 2e9)
    assert run.status == "running" and run.ended_at is None

    recorder = jobcorr.start_recorder(path, interval=0.05, registry=CollectorRegistry())
    recorder.stop()
    [run] = Store(path, readonly=True).runs(0, 2e9)
    assert run.status == "interrupted"
    assert run.ended_at is not None and run.ended_at >= run.started_at
    samples_before_crash = Store(path, readonly=True).series()
    assert samples_before_crash  # what was flushed before the kill survived
