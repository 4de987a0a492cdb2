"""bf42-stats with its ClickHouse server down at start, then back: a real service process,
and a real ClickHouse engine (chdb behind ClickHouse's HTTP interface) on the port the
service was told, started late."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bf42stats.clickhouse import open_clickhouse
from support import bf42_stats, chdb_http_server, free_port, wait_for

from .helpers import ch_count

SPEED = "60"  # a sync every second, stats_collection every half second
WAIT = 120.0  # seconds any step may take on a busy 2-core machine


def job_samples(port: int) -> dict[tuple[str, str], float]:
    """{(sample name, job): value} from the service's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, sample.labels.get("job", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def samples_when(what: str, port: int, check: Callable[[dict], bool]) -> dict:
    """The service's samples once `check` holds for them."""
    latest: dict = {}

    def holds() -> bool:
        try:
            latest.update(job_samples(port))
        except httpx.HTTPError:
            return False
        return check(latest)

    wait_for(holds, what, WAIT, poll=0.5)
    return dict(latest)


def runs(samples: dict, job: str) -> float:
    return samples.get(("bg_job_executions_total", job), 0.0)


def failures(samples: dict, job: str) -> float:
    return samples.get(("bg_job_failures_total", job), 0.0)


def synced_mark(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT value FROM sync_watermarks WHERE operation = 'player_metrics'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_starts_without_clickhouse_and_catches_up_when_it_returns(tmp_path: Path) -> None:
    app_port, clickhouse_port = free_port(), free_port()
    url = f"http://127.0.0.1:{clickhouse_port}"
    service = bf42_stats(
        "serve", "--demo", "--speed", SPEED, "--port", str(app_port),
        "--data-dir", str(tmp_path / "data"), "--clickhouse-url", url,
        env={"BF42_INCIDENT": ""},  # only the real outage: nothing listens on the port
    )  # fmt: skip
    try:
        down = samples_when(
            "/metrics served, stats_collection running, clickhouse_sync failing", app_port,
            lambda s: runs(s, "stats_collection") >= 3 and failures(s, "clickhouse_sync") >= 3,
        )  # fmt: skip
        assert runs(down, "clickhouse_sync") == failures(down, "clickhouse_sync")
        assert failures(down, "stats_collection") == 0
        assert down[("bg_job_last_success_timestamp_seconds", "clickhouse_sync")] == 0
        db = tmp_path / "data/bf42stats.sqlite3"
        assert synced_mark(db) == 0
        with sqlite3.connect(db) as conn:
            backlog = int(conn.execute("SELECT MAX(id) FROM observations").fetchone()[0])
        assert backlog > 0  # rows waited for ClickHouse

        with chdb_http_server(tmp_path / "clickhouse", clickhouse_port):
            back = samples_when(
                "clickhouse_sync succeeding again", app_port,
                lambda s: s[("bg_job_last_success_timestamp_seconds", "clickhouse_sync")] > 0,
            )  # fmt: skip
            assert runs(back, "stats_collection") > runs(down, "stats_collection")
            assert failures(back, "stats_collection") == 0
            service.send_signal(signal.SIGTERM)
            _, err = service.communicate(timeout=WAIT)
            assert service.returncode in (0, -signal.SIGTERM), err[-2000:]
            assert "stopped: every in-flight run finished" in err
            assert "ClickHouse is reachable again" in err
            mark = synced_mark(db)
            assert mark >= backlog  # caught up past everything that waited
            with sqlite3.connect(db) as conn:
                sent = conn.execute("SELECT COUNT(*) FROM observations WHERE id <= ?", (mark,))
                expected = int(sent.fetchone()[0])
            clickhouse = open_clickhouse(url, tmp_path)
            try:
                # every row up to the mark, each once: nothing lost, nothing sent twice
                assert ch_count(clickhouse, "player_metrics") == expected
                assert ch_count(clickhouse, "player_metrics", final=False) == expected
            finally:
                clickhouse.close()
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate(timeout=30)


def test_a_down_server_is_retried_after_doubling_waits_and_fails_fast_between(
    tmp_path: Path,
) -> None:
    """Real connection attempts to a port nothing listens on; the clock is the test's."""
    from bf42stats.clickhouse import ClickHouseUnreachable, Reconnecting, RemoteClickHouse

    url = f"http://127.0.0.1:{free_port()}"
    attempts: list[float] = []
    now = [1000.0]

    def connect() -> RemoteClickHouse:
        attempts.append(now[0])
        return RemoteClickHouse(url)

    clickhouse = Reconnecting(connect, "bf42", max_wait=5.0, clock=lambda: now[0])
    with pytest.raises(ClickHouseUnreachable, match="cannot connect to ClickHouse"):
        clickhouse.query("SELECT 1")
    for wait in (1.0, 2.0, 4.0, 5.0, 5.0):  # doubling, capped at max_wait
        tried = len(attempts)
        now[0] += wait - 0.5
        with pytest.raises(ClickHouseUnreachable, match=r"next try in \d+ s"):
            clickhouse.query("SELECT 1")
        assert len(attempts) == tried  # failed at once, without touching the network
        now[0] += 0.5
        with pytest.raises(ClickHouseUnreachable, match="cannot connect to ClickHouse"):
            clickhouse.insert("player_metrics", ["observation_id"], [[1]])
        assert len(attempts) == tried + 1
