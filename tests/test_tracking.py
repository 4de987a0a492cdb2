"""One run's life: metrics state, run records, status, volumes, CPU and peak memory."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import jobcorr
from jobcorr.metrics import job_metrics
from support import missing

SAMPLER_PATIENCE_SECONDS = 30  # for one 10 ms tick of the RSS sampler on a busy 2-core machine


def state(registry, job):
    return job_metrics(registry).jobs()[job]


def test_success_updates_every_family_and_yields_a_record(registry, records) -> None:
    before = time.time()
    with jobcorr.track("clickhouse_sync", registry=registry) as run:
        assert state(registry, "clickhouse_sync").in_progress == 1
        assert jobcorr.current_run() is run
        run.add("player_metrics", 50_000)
        run.add("player_metrics", 25)
        run.add("rounds")
        time.sleep(0.02)
    after = time.time()
    assert jobcorr.current_run() is None

    s = state(registry, "clickhouse_sync")
    assert (s.in_progress, s.executions, s.failures, s.skipped) == (0, 1, 0, 0)
    assert before <= s.last_start <= s.last_success <= after
    assert 0.02 <= s.last_duration < 1
    assert s.duration_sum == s.last_duration
    assert sum(s.bucket_counts) == 1

    [record] = records
    assert record.run_id == run.run_id
    assert record.job == "clickhouse_sync"
    assert record.status == "success"
    assert record.error_type is None and record.error_message is None
    assert record.volumes == {"player_metrics": 50_025, "rounds": 1}
    assert record.started_at == s.last_start
    assert record.ended_at == pytest.approx(s.last_success)
    assert record.duration == pytest.approx(s.last_duration, abs=1e-6)
    assert record.rss_at_start > 0 and record.rss_at_end > 0
    assert record.peak_rss_bytes >= max(record.rss_at_start, record.rss_at_end)


def test_failure_propagates_the_exception_unchanged_and_is_counted(registry, records) -> None:
    error = KeyError("missing server")
    with pytest.raises(KeyError) as raised, jobcorr.track("ranking_calc", registry=registry):
        raise error
    assert raised.value is error
    s = state(registry, "ranking_calc")
    assert (s.executions, s.failures, s.last_success, s.in_progress) == (1, 1, 0.0, 0)
    [record] = records
    assert record.status == "failure"
    assert record.error_type == "KeyError"
    assert record.error_message == "'missing server'"


def test_cancelled_runs_are_neither_failures_nor_successes(registry, records) -> None:
    with pytest.raises(jobcorr.Cancelled), jobcorr.track("gamification", registry=registry):
        raise jobcorr.Cancelled("shutting down")
    s = state(registry, "gamification")
    assert (s.executions, s.failures, s.last_success) == (1, 0, 0.0)
    assert records[0].status == "cancelled"


def test_run_ids_are_unique_and_a_run_is_entered_once(registry) -> None:
    ids = set()
    for _ in range(1000):
        with jobcorr.track("stats_collection", registry=registry) as run:
            ids.add(run.run_id)
    assert len(ids) == 1000
    with pytest.raises(RuntimeError, match="already entered"), run:
        pass


def test_nested_runs_restore_the_outer_run(registry, records) -> None:
    with jobcorr.track("clickhouse_sync", registry=registry) as outer:
        with jobcorr.track("ranking_calc", registry=registry) as inner:
            assert jobcorr.current_run() is inner
            assert state(registry, "clickhouse_sync").in_progress == 1
            assert state(registry, "ranking_calc").in_progress == 1
        assert jobcorr.current_run() is outer
    assert [r.job for r in records] == ["ranking_calc", "clickhouse_sync"]
    assert records[0].started_at >= records[1].started_at
    assert records[0].ended_at <= records[1].ended_at


def test_decorator_tracks_sync_and_async_functions(registry, records) -> None:
    @jobcorr.job("stats_collection", registry=registry)
    def collect(n: int) -> int:
        """Collects."""
        jobcorr.current_run().add("servers", n)  # type: ignore[union-attr]
        return n * 2

    @jobcorr.job("gamification", registry=registry)
    async def award() -> str:
        await asyncio.sleep(0.01)
        return "done"

    assert collect(3) == 6
    assert collect.__doc__ == "Collects." and collect.__name__ == "collect"
    assert asyncio.run(award()) == "done"
    assert [(r.job, r.status) for r in records] == [
        ("stats_collection", "success"),
        ("gamification", "success"),
    ]
    assert records[0].volumes == {"servers": 3}
    assert records[1].duration >= 0.01


def test_async_cancellation_is_recorded_as_cancelled(registry, records) -> None:
    @jobcorr.job("clickhouse_sync", registry=registry)
    async def slow() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert records[0].status == "cancelled"
    assert state(registry, "clickhouse_sync").in_progress == 0


def test_cpu_seconds_counts_the_runs_thread_cpu(registry, records) -> None:
    with jobcorr.track("ranking_calc", registry=registry):
        deadline = time.thread_time() + 0.1
        while time.thread_time() < deadline:
            pass
    with jobcorr.track("gamification", registry=registry):
        time.sleep(0.1)
    busy, idle = records
    assert 0.1 <= busy.cpu_seconds < 0.5
    assert idle.cpu_seconds < 0.02
    assert state(registry, "ranking_calc").cpu_seconds == busy.cpu_seconds


def _burn(seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


def _live_cpu_of_a_busy_run(registry) -> float:
    """CPU so far of a run that has burnt 0.1 s in this thread, read from another thread."""
    seen: list[float] = []
    with jobcorr.track("ranking_calc", registry=registry) as run:
        _burn(0.1)
        reader = threading.Thread(target=lambda: seen.append(run.cpu_so_far()))
        reader.start()
        reader.join()
    return seen[0]


def test_live_cpu_is_the_runs_own_thread_also_in_a_forked_child(registry) -> None:
    """A run's live CPU comes from its thread's CPU clock, looked up once per thread; a forked
    child's threads have other ids, so the child must not read its parent's clock."""
    assert 0.1 <= _live_cpu_of_a_busy_run(registry) < 0.5  # the clock is now cached here
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write_end, repr(_live_cpu_of_a_busy_run(registry)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        reported = pipe.read()
    os.waitpid(child, 0)
    assert 0.1 <= float(reported) < 0.5  # the parent's waiting thread would read ~0


def test_peak_rss_sees_memory_held_only_inside_the_run(registry, records) -> None:
    size = 300 * 1024 * 1024
    with jobcorr.track("clickhouse_sync", registry=registry):
        batch = bytearray(size)
        batch[::4096] = b"x" * len(batch[::4096])  # touch every page so it is resident
        time.sleep(0.05)
        del batch
        time.sleep(0.05)
    [record] = records
    assert record.peak_rss_bytes - record.rss_at_end >= size * 0.9
    assert state(registry, "clickhouse_sync").peak_rss == record.peak_rss_bytes


def test_peak_rss_catches_a_spike_shorter_than_the_sampling_interval(registry, records) -> None:
    from jobcorr.tracking import _sampler

    if _sampler.method != "hwm":
        missing("a writable /proc/self/clear_refs (exact peaks)")
    size = 200 * 1024 * 1024
    with jobcorr.track("ranking_calc", registry=registry) as run:
        time.sleep(0.05)  # the sampler is ticking
        blob = b"y" * size  # allocated, filled and freed between two ticks
        del blob
        # A tick after the free must still see the peak; on a loaded machine the sampler
        # thread may wait for a core longer than a fixed sleep (failed so under load ~17).
        deadline = time.monotonic() + SAMPLER_PATIENCE_SECONDS
        while run.rss_peak - run.rss_start < size * 0.9 and time.monotonic() < deadline:
            time.sleep(0.01)
    [record] = records
    assert record.peak_rss_bytes - record.rss_at_end >= size * 0.9


def test_a_failing_listener_never_fails_the_run(registry, records, caplog) -> None:
    def broken(record: jobcorr.RunRecord) -> None:
        raise RuntimeError("listener bug")

    remove = jobcorr.add_run_listener(broken)
    try:
        with jobcorr.track("stats_collection", registry=registry):
            pass
    finally:
        remove()
    assert len(records) == 1
    assert "listener" in caplog.text and "listener bug" in caplog.text


def test_record_skipped_counts_skipped_ticks(registry) -> None:
    jobcorr.record_skipped("clickhouse_sync", registry=registry)
    jobcorr.record_skipped("clickhouse_sync", registry=registry)
    assert state(registry, "clickhouse_sync").skipped == 2
    with pytest.raises(ValueError):
        jobcorr.record_skipped("Not A Job", registry=registry)


def test_a_run_starts_from_a_fresh_reading_and_not_from_earlier_peaks(registry, records) -> None:
    with jobcorr.track("warm_up", registry=registry):
        time.sleep(0.05)  # the sampler is awake and ticking slowly between runs
    size = 200 * 1024 * 1024
    spike = bytearray(size)
    spike[::4096] = b"s" * len(spike[::4096])
    del spike  # a spike outside every run
    held = bytearray(size)
    held[::4096] = b"h" * len(held[::4096])  # memory that grew outside every run, and stays
    time.sleep(0.3)  # several slow ticks
    with jobcorr.track("ranking_calc", registry=registry):
        time.sleep(0.1)
    run = records[-1]
    assert run.rss_at_start >= records[0].rss_at_end + size * 0.9  # the growth is seen
    assert run.peak_rss_bytes - run.rss_at_start < size * 0.5  # the earlier spike is not its
    del held


def test_memory_that_rose_just_before_a_run_is_not_its_own_rise(registry, records) -> None:
    """The sampler lingers awake after a run; a run starting right after memory grew outside
    every job must still start from a reading taken after that growth."""
    with jobcorr.track("warm_up", registry=registry):
        time.sleep(0.05)
    size = 200 * 1024 * 1024
    held = bytearray(size)
    held[::4096] = b"h" * len(held[::4096])  # grown outside every run, just now
    with jobcorr.track("stats_collection", registry=registry):
        time.sleep(0.05)
    run = records[-1]
    assert run.rss_at_start >= records[0].rss_at_end + size * 0.9
    assert run.peak_rss_bytes - run.rss_at_start < size * 0.5
    del held
