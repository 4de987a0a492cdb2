"""Cardinality caps: job names per process, volume names per job, and forgetting old jobs."""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import jobcorr
from jobcorr.metrics import MAX_JOBS, OVER_LIMIT, job_metrics
from jobcorr.store import Store
from support import running

NAMES = 10_000
METRICS_BYTES = 1_000_000  # the bound on /metrics with 10 000 names
RENDER_SECONDS = 0.050  # and on the CPU time to render it (median of RENDERS)
RENDERS = 7


def test_ten_thousand_job_names_keep_metrics_small_and_fast_and_the_recorder_at_1_hz(
    tmp_path: Path, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    jobcorr.register_runtime_metrics(registry)
    recorder = jobcorr.start_recorder(tmp_path / "s.sqlite3", interval=1.0, registry=registry)
    ran = 0
    with caplog.at_level(logging.WARNING, logger="jobcorr.metrics"):
        for index in range(NAMES):
            with jobcorr.track(f"job_{index}", registry=registry) as run:
                run.add("items")
                ran += 1
    assert ran == NAMES  # every run ran, over the cap or not
    warnings = [r for r in caplog.records if "distinct job names" in r.getMessage()]
    assert len(warnings) == 1 and "'job_100'" in warnings[0].getMessage()

    renders = []
    for _ in range(RENDERS):  # this thread's CPU time: what rendering costs, whatever the load
        started = time.thread_time()
        text = generate_latest(registry)
        renders.append(time.thread_time() - started)
    assert len(text) < METRICS_BYTES
    assert statistics.median(renders) < RENDER_SECONDS, renders
    assert registry.get_sample_value("jobcorr_jobs_over_limit_total") == NAMES - MAX_JOBS
    assert registry.get_sample_value("bg_job_executions_total", {"job": OVER_LIMIT}) == (
        NAMES - MAX_JOBS
    )
    assert registry.get_sample_value("bg_job_executions_total", {"job": "job_99"}) == 1
    assert registry.get_sample_value("bg_job_executions_total", {"job": "job_100"}) is None

    time.sleep(6)  # six ticks at 1 Hz
    recorder.stop()
    with Store(tmp_path / "s.sqlite3", readonly=True) as store:
        [memory] = [s for s in store.series() if s.name == "process_resident_memory_bytes"]
        times = [ts / 1000 for ts, _ in store.samples(memory.id, 0, 2e9)]
        jobs_recorded = {s.labels["job"] for s in store.series() if s.name == "bg_job_in_progress"}
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) >= 5, times
    assert statistics.median(gaps) < 1.2, gaps  # 1 Hz, with slack for a busy machine
    assert len(jobs_recorded) == MAX_JOBS + 1  # the first 100 names and over_limit


def test_volume_names_per_job_are_capped_too(registry: CollectorRegistry, records) -> None:
    jobcorr.set_limits(max_volumes=3, registry=registry)
    with jobcorr.track("importer", registry=registry) as run:
        for index in range(5):
            run.add(f"table_{index}", 10)
    with jobcorr.track("importer", registry=registry) as run:
        run.add("table_0", 1)
        run.add("table_9", 1)
    assert records[0].volumes == {"table_0": 10, "table_1": 10, "table_2": 10, OVER_LIMIT: 20}
    assert records[1].volumes == {"table_0": 1, OVER_LIMIT: 1}


def test_a_job_unseen_for_the_configured_time_leaves_metrics_unless_it_is_running(
    registry: CollectorRegistry,
) -> None:
    jobcorr.set_limits(forget_after=0.5, max_jobs=2, registry=registry)
    with jobcorr.track("renamed_long_ago", registry=registry):
        pass
    with running("long_running", registry):
        time.sleep(1.0)  # twice forget_after
        jobs = job_metrics(registry).jobs()
        assert "renamed_long_ago" not in jobs
        assert jobs["long_running"].in_progress == 1
        assert b'job="renamed_long_ago"' not in generate_latest(registry)
        with jobcorr.track("new_job", registry=registry) as run:
            assert run.job == "new_job"  # the forgotten job's slot is free again


def test_limits_must_be_positive(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="max_jobs=0"):
        jobcorr.set_limits(max_jobs=0, registry=registry)
