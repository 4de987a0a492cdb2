"""Attribution edge cases with a real recorder: what sampling alone cannot tell apart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

import jobcorr
from jobcorr.analysis import Explanation, explain
from jobcorr.sources.embedded import EmbeddedTimeline


def explain_a_jump(tmp_path: Path, jump: Callable[[CollectorRegistry], bytes]) -> Explanation:
    """Record 3 quiet seconds, `jump` (which returns the memory it holds), 3 more seconds;
    explain the moment after the jump."""
    registry = CollectorRegistry()
    jobcorr.register_runtime_metrics(registry)
    recorder = jobcorr.start_recorder(tmp_path / "s.sqlite3", interval=0.5, registry=registry)
    time.sleep(3)
    held = jump(registry)
    jumped_at = time.time()
    time.sleep(3)
    recorder.stop()
    del held
    return explain(EmbeddedTimeline(tmp_path / "s.sqlite3"), jumped_at, window=2.0, history=30)


def test_a_job_that_ran_right_after_memory_climbed_is_not_blamed(tmp_path: Path) -> None:
    """Memory jumps outside any job (a service starting up, say), and a short job runs in
    the same sampling interval. Sampling alone would make the job a suspect; its own
    readings show memory was already high when it started."""

    def outside_then_short_job(registry: CollectorRegistry) -> bytes:
        held = b"\x01" * 300_000_000  # not inside any job
        with jobcorr.track("stats_collection", registry=registry):
            time.sleep(0.02)
        return held

    answer = explain_a_jump(tmp_path, outside_then_short_job)
    assert answer.spike is not None and answer.spike.height > 250e6
    assert answer.blamed is None, answer.conclusion
    assert answer.verdict == "not_a_job"
    # A job did run in that sampling interval: the answer names it and says why it is not blamed.
    assert answer.conclusion.startswith("No background job caused this"), answer.conclusion
    assert "stats_collection ran during the climb, but memory did not rise" in answer.conclusion


def test_the_job_that_climbed_is_blamed_when_it_allocated(tmp_path: Path) -> None:
    def inside_the_job(registry: CollectorRegistry) -> bytes:
        with jobcorr.track("clickhouse_sync", registry=registry) as run:
            held = b"\x01" * 300_000_000
            run.add("rows", 300_000)
            time.sleep(0.05)
        return held

    answer = explain_a_jump(tmp_path, inside_the_job)
    assert answer.blamed is not None and answer.blamed.job == "clickhouse_sync"
    assert "300K rows" in answer.conclusion
