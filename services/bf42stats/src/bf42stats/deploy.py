"""bf42-stats as jobcorr's artifact generator sees it (`jobcorr export all --out deploy/`).

Every service-specific word of the dashboards and alerts comes from here: the volume
panels and their titles, the sync job and its volume, the label that splits it.
"""

from __future__ import annotations

from jobcorr.artifacts import DASHBOARD_PORT, Description, VolumeQuery

DESCRIPTION = Description(
    service="bf42-stats",
    jobs={
        "stats_collection": 30,
        "clickhouse_sync": 60,
        "ranking_calc": 3600,
        "gamification": 300,
    },
    volumes=(
        VolumeQuery("Active players", "bg_active_players", "players online"),
        VolumeQuery("ClickHouse records synced", "bg_clickhouse_records_synced_total",
                    "{{operation}} records/s", by="operation"),
        VolumeQuery("Servers processed", "bg_servers_processed_total", "{{game}} servers/s",
                    by="game"),
    ),
    sync_job="clickhouse_sync",
    sync_title="ClickHouseSync",
    sync_volume=VolumeQuery("ClickHouse sync volume", "bg_clickhouse_records_synced_total",
                            "{{operation}}", by="operation"),
    sync_volume_example="player_metrics",
    image="ghcr.io/jobcorr/bf42-stats:0.1.0",
    scaling_note="Its SQLite store and embedded ClickHouse share that volume. To scale, point "
    "CLICKHOUSE_URL at a ClickHouse server\n(the analytics copy then outlives the pod) and keep "
    "the four jobs in this one pod; see the README's Kubernetes section.",
    command=("bf42-stats", "serve", "--host", "0.0.0.0", "--data-dir", "/data"),
    dashboard_port=DASHBOARD_PORT,
)  # fmt: skip
