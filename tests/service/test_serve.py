"""`bf42-stats serve` as a real process: settings, the demo end to end, graceful shutdown."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import jobcorr
from bf42stats.config import ConfigError, load_settings
from bf42stats.jobs.clickhouse_sync import sync_clickhouse
from bf42stats.jobs.stats_collection import collect_stats
from support import bf42_stats, free_port

JOBS = ("stats_collection", "clickhouse_sync", "ranking_calc", "gamification")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "99999"], {}, "--port='99999' must be a port number"),
        ([], {"BF42_PORT": "+8080"}, "BF42_PORT='+8080' must be a port number from 0 to 65535"),
        (
            [],
            {"STATS_COLLECTION_INTERVAL_SECONDS": "abc"},
            "STATS_COLLECTION_INTERVAL_SECONDS='abc'",
        ),
        ([], {"CLICKHOUSE_SYNC_INTERVAL_SECONDS": "-5"}, "must be a positive number"),
        ([], {"ENABLE_GAMIFICATION": "maybe"}, "ENABLE_GAMIFICATION='maybe' must be true or false"),
        (["--speed", "0"], {}, "--speed='0' must be a positive number"),
        (["--feed-url", "ftp://x"], {}, "must be an http:// or https:// URL"),
    ],
)
def test_bad_settings_are_refused_at_start_naming_the_setting(args, env, message) -> None:
    process = bf42_stats("serve", *args, env=env)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert message in err
    assert "Traceback" not in err


def test_flags_win_over_environment_over_defaults() -> None:
    import argparse

    from bf42stats.config import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = load_settings(
        parser.parse_args(["--sync-interval", "5"]),
        {
            "CLICKHOUSE_SYNC_INTERVAL_SECONDS": "7",
            "RANKING_INTERVAL_SECONDS": "60",
            "BF42_SPEED": "2",
        },
    )
    assert settings.sync_interval == 5
    assert settings.ranking_interval == 60
    assert settings.stats_interval == 30
    assert settings.interval("ranking_calc") == 30
    assert settings.host == "127.0.0.1"
    with pytest.raises(ConfigError, match="BF42_PORT"):
        load_settings(None, {"BF42_PORT": "http"})


def test_help_documents_every_setting() -> None:
    out, _ = bf42_stats("serve", "--help").communicate(timeout=60)
    for env in (
        "STATS_COLLECTION_INTERVAL_SECONDS",
        "CLICKHOUSE_SYNC_INTERVAL_SECONDS",
        "RANKING_INTERVAL_SECONDS",
        "GAMIFICATION_INTERVAL_SECONDS",
        "ENABLE_GAMIFICATION",
        "CLICKHOUSE_URL",
        "--data-dir",
        "--speed",
        "--demo",
    ):
        assert env in out


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_the_demo_shows_all_four_jobs_and_every_volume_metric_then_stops_cleanly(
    tmp_path: Path,
) -> None:
    port = free_port()
    process = bf42_stats(
        "serve", "--demo", "--speed", "60", "--port", str(port), "--data-dir", str(tmp_path),
        "--incident", "", "--servers", "12",  # no outage, every run must succeed; light runs
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    volumes = [
        ("bg_active_players", ()),
        *[("bg_servers_processed_total", (("game", g),)) for g in ("bf1942", "fh2", "bfvietnam")],
        *[
            (name, (("operation", op),))
            for op in ("player_metrics", "server_counts", "rounds")
            for name in (
                "bg_clickhouse_records_synced_total",
                "bg_clickhouse_sync_duration_seconds_count",
            )
        ],
        ("bg_rankings_inserted_total", ()),
    ]
    try:
        deadline = time.monotonic() + 60
        samples: dict = {}
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                samples = scrape(url)
            except httpx.HTTPError:
                continue
            executions = {
                job: samples.get(("bg_job_executions_total", (("job", job),)), 0) for job in JOBS
            }
            if all(executions.values()) and all(samples.get(v, 0) > 0 for v in volumes):
                break
        missing = [v for v in volumes if samples.get(v, 0) <= 0]
        assert not missing, missing
        assert all(samples[("bg_job_failures_total", (("job", job),))] == 0 for job in JOBS)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        check = subprocess.run(
            [sys.executable, "-m", "jobcorr.cli", "check", url,
             *[arg for job in JOBS for arg in ("--require-job", job)]],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    # uvicorn re-raises the signal once shutdown is done, so the exit reflects SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), err[-2000:]
    assert "stopped: every in-flight run finished" in err
    assert "Traceback" not in err
    db = sqlite3.connect(tmp_path / "bf42stats.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT COUNT(*) FROM observations").fetchone()[0] > 0
    from jobcorr.store import Store

    recorded = Store(tmp_path / "jobcorr.sqlite3", readonly=True)
    assert {run.job for run in recorded.runs(0, 2e9)} == set(JOBS)
    assert {"process_resident_memory_bytes", "bg_active_players"} <= {
        info.name for info in recorded.series()
    }
    log_jobs = {
        line.split('"job": "')[1].split('"')[0] for line in err.splitlines() if '"job": "' in line
    }
    assert log_jobs <= set(JOBS)


def test_a_run_in_flight_at_shutdown_ends_as_cancelled_with_nothing_half_written(
    ctx, clock, registry, records
) -> None:
    for _ in range(10):
        collect_stats(ctx)
        clock.advance(30)
    ctx.batch_size = 10
    inserted = []
    real_insert = ctx.clickhouse.insert

    def insert_then_signal_stop(table, columns, rows):
        real_insert(table, columns, rows)
        inserted.append(len(rows))
        if len(inserted) == 3:
            ctx.stop.set()  # SIGTERM arrives while the third batch is being acknowledged

    ctx.clickhouse.insert = insert_then_signal_stop
    with pytest.raises(jobcorr.Cancelled), jobcorr.track("clickhouse_sync", registry=registry):
        sync_clickhouse(ctx)
    assert records[-1].status == "cancelled"
    assert records[-1].volumes == {"player_metrics": 30}
    with sqlite3.connect(ctx.db_path) as db:
        mark = db.execute("SELECT value FROM sync_watermarks").fetchall()
    ids = [
        row[0]
        for row in sqlite3.connect(ctx.db_path).execute("SELECT id FROM observations ORDER BY id")
    ]
    assert mark == [(ids[29],)]  # exactly the three acknowledged batches
