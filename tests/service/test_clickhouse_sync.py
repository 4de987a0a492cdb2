"""clickhouse_sync on real chdb, embedded and behind ClickHouse's HTTP interface through
clickhouse-connect: counts match the source, through outages and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import jobcorr
from bf42stats.clickhouse import open_clickhouse
from bf42stats.jobs.clickhouse_sync import sync_clickhouse
from bf42stats.jobs.stats_collection import collect_stats

from .helpers import both_clickhouse_paths, ch_count, count, sample, sql

pytestmark = both_clickhouse_paths

SOURCES = {
    "player_metrics": ("observations", "player_metrics"),
    "server_counts": ("server_snapshots", "server_online_counts"),
}


def poll(ctx, clock, times: int, step: float = 30.0) -> None:
    for _ in range(times):
        collect_stats(ctx)
        clock.advance(step)


def closed_round_rows(db_path) -> int:
    return sql(
        db_path,
        "SELECT COUNT(*) FROM round_participants rp JOIN rounds r ON r.id = rp.round_id "
        "WHERE r.closed_seq IS NOT NULL",
    )[0][0]


def assert_in_sync(ctx) -> None:
    for source, table in SOURCES.values():
        assert ch_count(ctx.clickhouse, table) == count(ctx.db_path, source), table
    assert ch_count(ctx.clickhouse, "player_rounds") == closed_round_rows(ctx.db_path)


def sync(ctx, registry):
    with jobcorr.track("clickhouse_sync", registry=registry) as run:
        sync_clickhouse(ctx)
    return run


def test_sync_copies_every_new_row_in_bounded_batches(ctx, clock, registry, records):
    poll(ctx, clock, 40)  # 20 simulated minutes: rounds close too
    sync(ctx, registry)
    assert_in_sync(ctx)
    observations = count(ctx.db_path, "observations")
    assert observations > 5 * ctx.batch_size  # many batches
    assert sample(registry, "bg_clickhouse_records_synced_total", operation="player_metrics") == (
        observations
    )
    assert records[-1].volumes["player_metrics"] == observations
    assert records[-1].volumes["rounds"] == closed_round_rows(ctx.db_path)
    for operation in ("player_metrics", "server_counts", "rounds"):
        assert (
            sample(registry, "bg_clickhouse_sync_duration_seconds_count", operation=operation) == 1
        )
    # times arrive as the same instants (SQLite's unix seconds, ClickHouse's DateTime64(3))
    [[first, last]] = ctx.clickhouse.query(
        "SELECT toUnixTimestamp64Milli(min(observed_at)), toUnixTimestamp64Milli(max(observed_at))"
        f" FROM {ctx.clickhouse.database}.player_metrics"
    )
    [(low, high)] = sql(ctx.db_path, "SELECT MIN(observed_at), MAX(observed_at) FROM observations")
    assert (int(first), int(last)) == (round(low * 1000), round(high * 1000))
    marks = dict(sql(ctx.db_path, "SELECT operation, value FROM sync_watermarks"))
    assert marks["player_metrics"] == sql(ctx.db_path, "SELECT MAX(id) FROM observations")[0][0]

    poll(ctx, clock, 2)
    sync(ctx, registry)
    assert_in_sync(ctx)
    assert records[-1].volumes["player_metrics"] == count(ctx.db_path, "observations") - (
        observations
    )
    # Nothing was sent twice: raw rows equal deduplicated rows.
    assert ch_count(ctx.clickhouse, "player_metrics", final=False) == count(
        ctx.db_path, "observations"
    )


def test_clickhouse_outage_for_two_ticks_loses_nothing_and_duplicates_nothing(
    ctx, clock, registry, records
):
    poll(ctx, clock, 3)
    sync(ctx, registry)
    ch = ctx.clickhouse
    ch.command(f"DETACH TABLE {ch.database}.server_online_counts")  # a real engine failure
    for _ in range(2):
        poll(ctx, clock, 2)  # stats_collection keeps going meanwhile
        with pytest.raises(Exception, match="server_online_counts"):
            sync(ctx, registry)
        assert records[-1].status == "failure"
    ch.command(f"ATTACH TABLE {ch.database}.server_online_counts")
    poll(ctx, clock, 1)
    sync(ctx, registry)
    assert records[-1].status == "success"
    assert_in_sync(ctx)
    # player_metrics batches before the failing operation were acknowledged each time, so
    # raw equals deduplicated there; for server counts nothing was delivered while detached.
    for source, table in SOURCES.values():
        assert ch_count(ch, table, final=False) == count(ctx.db_path, source)


def test_kill_9_in_the_middle_of_a_sync_resumes_from_the_watermark(
    ctx, clock, registry, tmp_path, clickhouse_url, clickhouse_database
):
    poll(ctx, clock, 60)
    ctx.clickhouse.close()  # chdb serves one process at a time: hand the data to the child
    total = count(ctx.db_path, "observations")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            from pathlib import Path
            from prometheus_client import CollectorRegistry
            from bf42stats.clickhouse import open_clickhouse
            from bf42stats.feed.client import FeedClient
            from bf42stats.jobs import JobContext
            from bf42stats.jobs.clickhouse_sync import sync_clickhouse
            from bf42stats.metrics import service_metrics
            import time
            ch = open_clickhouse({clickhouse_url!r}, Path({str(tmp_path)!r}),
                                 {clickhouse_database!r})
            ctx = JobContext(Path({str(ctx.db_path)!r}), ch, FeedClient("http://127.0.0.1:9"),
                             service_metrics(CollectorRegistry()), batch_size=50)
            real_insert = ch.insert
            def slow_insert(*args):
                real_insert(*args)
                time.sleep(0.01)  # widen the window between acknowledgement and watermark
            ch.insert = slow_insert
            sync_clickhouse(ctx)
            print("finished")
        """)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    mark = 0
    while time.monotonic() < deadline and mark < total // 3:
        time.sleep(0.05)
        rows = sql(
            ctx.db_path, "SELECT value FROM sync_watermarks WHERE operation='player_metrics'"
        )
        mark = rows[0][0] if rows else 0
    os.kill(child.pid, signal.SIGKILL)
    out, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    assert "finished" not in out
    assert 0 < mark < total

    ctx.clickhouse = open_clickhouse(clickhouse_url, tmp_path, clickhouse_database)
    try:
        partial = ch_count(ctx.clickhouse, "player_metrics")
        assert 0 < partial < total
        sync(ctx, registry)
        assert_in_sync(ctx)
    finally:
        ctx.clickhouse.close()


def test_jobs_share_one_clickhouse_from_several_threads(clickhouse) -> None:
    """clickhouse_sync and gamification run at once on one client: a server refuses a second
    statement in a session still in use, so the client must not tie them to one session."""
    errors: list[Exception] = []

    def work() -> None:
        try:
            for _ in range(20):
                [[total]] = clickhouse.query("SELECT sum(number) FROM numbers(200000)")
                assert int(total) == 199999 * 200000 // 2
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
