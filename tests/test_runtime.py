"""Runtime metrics: GC pauses (without deadlock), log records by job, JSON logs."""

from __future__ import annotations

import gc
import io
import json
import logging
import threading

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import jobcorr
from jobcorr.runtime import GCPauseCollector


def collections_by_generation() -> dict[int, int]:
    return {gen: stats["collections"] for gen, stats in enumerate(gc.get_stats())}


def delta(after: dict[int, int], before: dict[int, int]) -> dict[int, int]:
    """Collections per generation between two readings; generations with none left out."""
    changes = {gen: after.get(gen, 0) - before.get(gen, 0) for gen in {*after, *before}}
    return {gen: change for gen, change in changes.items() if change}


def test_gc_pause_histogram_counts_forced_collections(registry) -> None:
    pauses = jobcorr.register_runtime_metrics(registry)
    gc.disable()  # no automatic collection between the readings
    try:
        counted, collected = pauses.pause_counts(), collections_by_generation()
        for generation in (0, 0, 1, 2, 2, 2):
            gc.collect(generation)
        counted_delta = delta(pauses.pause_counts(), counted)
        collected_delta = delta(collections_by_generation(), collected)
    finally:
        gc.enable()
    assert counted_delta == collected_delta
    assert counted_delta[2] >= 3

    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    histogram = families["python_gc_pause_seconds"]
    assert histogram.type == "histogram"
    counts = {
        s.labels["generation"]: s.value
        for s in histogram.samples
        if s.name == "python_gc_pause_seconds_count"
    }
    assert counts["2"] >= 3
    assert all(s.value > 0 for s in histogram.samples if s.name == "python_gc_pause_seconds_sum")


def test_gc_hook_never_deadlocks_under_allocating_threads(registry) -> None:
    """8 threads allocate cyclic garbage inside tracked runs, log and scrape, while the main
    thread forces collections. Each of those holds a lock while allocating, so a GC hook that
    took any of those locks would hang here."""
    pauses = jobcorr.register_runtime_metrics(registry)
    logging.getLogger().setLevel(logging.INFO)
    log = logging.getLogger("stress")
    stop = threading.Event()

    def churn(index: int) -> None:
        while not stop.is_set():
            with jobcorr.track(f"stress_{index}", registry=registry) as run:
                garbage = []
                for i in range(200):
                    node: dict[str, object] = {"i": i}
                    node["self"] = node
                    garbage.append(node)
                run.add("nodes", len(garbage))
                log.info("churned")
                generate_latest(registry)

    gc.disable()
    counted, collected = pauses.pause_counts(), collections_by_generation()
    gc.enable()
    threads = [threading.Thread(target=churn, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(30):
        gc.collect()
        generate_latest(registry)
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a thread hung: deadlock"
    gc.disable()
    try:
        counted_delta = delta(pauses.pause_counts(), counted)
        collected_delta = delta(collections_by_generation(), collected)
    finally:
        gc.enable()
    assert counted_delta == collected_delta
    assert sum(counted_delta.values()) >= 30


def test_gc_collector_install_is_idempotent() -> None:
    collector = GCPauseCollector()
    collector.install()
    collector.install()
    try:
        assert gc.callbacks.count(collector._callback) == 1
    finally:
        collector.uninstall()
    assert collector._callback not in gc.callbacks


def test_log_records_are_counted_by_job_and_level(registry) -> None:
    jobcorr.register_runtime_metrics(registry)
    jobcorr.register_runtime_metrics(registry)  # idempotent: counts once
    logging.getLogger().setLevel(logging.DEBUG)
    log = logging.getLogger("bf42")
    log.info("outside")
    with jobcorr.track("clickhouse_sync", registry=registry):
        log.info("a")
        log.info("b")
        log.error("c")
        log.log(25, "custom level")
    logs = {
        (s.labels["job"], s.labels["level"]): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
        if s.name == "bg_log_records_total"
    }
    assert logs == {
        **{("", level): 0 for level in ("debug", "warning", "error", "critical")},
        ("", "info"): 1,
        ("clickhouse_sync", "info"): 2,
        ("clickhouse_sync", "error"): 1,
        ("clickhouse_sync", "other"): 1,
    }


def test_records_outside_every_job_are_exposed_before_the_first(registry) -> None:
    # A scraper rates a counter between two samples: a series born with its first burst
    # would hide that burst. Outside every job is where "no job did it" is read.
    jobcorr.register_runtime_metrics(registry)
    before = {
        (s.labels["job"], s.labels["level"]): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
        if s.name == "bg_log_records_total"
    }
    assert before == {("", level): 0 for level in ("debug", "info", "warning", "error", "critical")}


def test_json_logs_carry_job_and_run_id_inside_runs(registry) -> None:
    stream = io.StringIO()
    jobcorr.configure_logging(logging.INFO, stream=stream)
    log = logging.getLogger("bf42stats.sync")
    log.info("before")
    with jobcorr.track("clickhouse_sync", registry=registry) as run:
        log.info("synced %d rows", 50_000)
        try:
            raise ValueError("bad row")
        except ValueError:
            log.exception("sync failed")
    before, inside, failed = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "job" not in before and "run_id" not in before
    assert inside["message"] == "synced 50000 rows"
    assert (inside["job"], inside["run_id"], inside["level"]) == (
        "clickhouse_sync",
        run.run_id,
        "info",
    )
    assert inside["logger"] == "bf42stats.sync"
    assert inside["ts"].endswith("+00:00")
    assert failed["job"] == "clickhouse_sync"
    assert "ValueError: bad row" in failed["exception"]
