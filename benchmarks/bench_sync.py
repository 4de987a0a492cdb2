"""clickhouse_sync throughput and peak memory, against a naive whole-backlog variant.

Builds a SQLite store holding N observations (default 1 000 000), then syncs it into
embedded ClickHouse (chdb) twice, each variant in a fresh child process on its own copy:

- batched: the real `sync_operation` (10 000-row batches, watermark after each ack);
- naive:   the same query with no limit, the whole backlog in one list and one INSERT.

Peak RSS growth is measured by jobcorr itself: each variant runs inside `jobcorr.track()`
and reports its RunRecord's peak RSS minus RSS at start.

    python benchmarks/bench_sync.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

import jobcorr
from bf42stats import db
from bf42stats.clickhouse import open_clickhouse
from bf42stats.feed.client import FeedClient
from bf42stats.jobs import JobContext
from bf42stats.jobs.clickhouse_sync import PLAYER_METRICS, sync_operation
from bf42stats.metrics import service_metrics


def build_store(path: Path, rows: int) -> None:
    rng = random.Random(1942)
    conn = db.connect(path)
    servers = [f"{i:016x}" for i in range(30)]
    with db.transaction(conn):
        conn.executemany(
            "INSERT INTO servers VALUES (?, 'bf1942', ?, ?, 64, 32, 'wake', 0, 0)",
            [(guid, f"192.0.2.{i}:14567", f"server {i}") for i, guid in enumerate(servers)],
        )
        conn.executemany(
            "INSERT INTO players(id, name, first_seen, last_seen) VALUES (?, ?, 0, 0)",
            [(i, f"player_{i:05d}") for i in range(1, 2001)],
        )
        start = 1_795_000_000.0
        conn.executemany(
            "INSERT INTO observations(observed_at, server_guid, player_id, score, kills, deaths,"
            " ping, team) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (start + i // 500 * 30, servers[i % 30], 1 + i % 2000, rng.randrange(200),
                 rng.randrange(80), rng.randrange(60), rng.randrange(20, 200), 1 + i % 2)
                for i in range(rows)
            ),
        )  # fmt: skip
    conn.close()


def run_variant(variant: str, workdir: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    records: list[jobcorr.RunRecord] = []
    remove = jobcorr.add_run_listener(records.append)
    clickhouse = open_clickhouse("", workdir)
    ctx = JobContext(
        workdir / "store.sqlite3",
        clickhouse,
        FeedClient("http://127.0.0.1:9"),  # unused: no poll here
        service_metrics(registry),
    )
    conn = db.connect(ctx.db_path)
    started = time.perf_counter()
    with jobcorr.track("clickhouse_sync", registry=registry):
        if variant == "batched":
            synced = sync_operation(ctx, conn, PLAYER_METRICS)
        else:
            everything = conn.execute(PLAYER_METRICS.select, (0, 2**62)).fetchall()
            clickhouse.insert(PLAYER_METRICS.table, PLAYER_METRICS.columns, everything)
            synced = len(everything)
            del everything
    elapsed = time.perf_counter() - started
    remove()
    in_clickhouse = clickhouse.query(
        f"SELECT count() FROM {clickhouse.database}.player_metrics FINAL"
    )[0][0]
    clickhouse.close()
    [record] = records
    return {
        "rows": synced,
        "in_clickhouse": in_clickhouse,
        "seconds": elapsed,
        "rows_per_second": synced / elapsed,
        "peak_rss_growth_mb": (record.peak_rss_bytes - record.rss_at_start) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--variant", choices=("batched", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.workdir)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.sqlite3"
        print(f"building a store with {args.rows:,} observations ...", flush=True)
        build_store(source, args.rows)
        results = {}
        for variant in ("batched", "naive"):
            workdir = Path(tmp) / variant
            workdir.mkdir()
            shutil.copy(source, workdir / "store.sqlite3")
            child = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--workdir", str(workdir)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[variant] = json.loads(child.stdout.strip().splitlines()[-1])
    for variant, result in results.items():
        assert result["in_clickhouse"] == args.rows, result
        print(
            f"{variant:8s} {result['rows']:>9,} rows in {result['seconds']:6.2f} s = "
            f"{result['rows_per_second']:>9,.0f} rows/s, peak RSS growth "
            f"{result['peak_rss_growth_mb']:7.1f} MiB"
        )
    ratio = results["batched"]["peak_rss_growth_mb"] / results["naive"]["peak_rss_growth_mb"]
    throughput = results["batched"]["rows_per_second"]
    print(f"batched throughput: {throughput:,.0f} rows/s (target >= 100,000)")
    print(f"peak RSS growth, batched / naive: {ratio:.3f} (target <= 0.2)")


if __name__ == "__main__":
    main()
