"""bf42-stats as jobcorr's artifact generator sees it (`jobcorr export all --out deploy/`)."""

from __future__ import annotations

from jobcorr.artifacts import Description, MemorySource, VolumeQuery

DESCRIPTION = Description(
    service="bf42-stats",
    jobs={
        "stats_collection": 30,
        "clickhouse_sync": 60,
        "ranking_calc": 3600,
        "gamification": 300,
    },
    volumes=(
        VolumeQuery("Active players", 'bg_active_players{namespace=~"$namespace", pod=~"$pod"}',
                    "players online"),
        VolumeQuery(
            "ClickHouse records synced",
            'sum by (operation) (rate(bg_clickhouse_records_synced_total{namespace=~"$namespace",'
            ' pod=~"$pod"}[$__rate_interval]))',
            "{{operation}} records/s",
        ),
        VolumeQuery(
            "Servers processed",
            'sum by (game) (rate(bg_servers_processed_total{namespace=~"$namespace",'
            ' pod=~"$pod"}[$__rate_interval]))',
            "{{game}} servers/s",
        ),
    ),
    sync_job="clickhouse_sync",
    sync_title="ClickHouseSync",
    sync_volume="bg_clickhouse_records_synced_total",
    memory=MemorySource.kubernetes("bf42-stats"),
    image="ghcr.io/jobcorr/bf42-stats:0.1.0",
    command=("bf42-stats", "serve", "--host", "0.0.0.0", "--data-dir", "/data"),
)  # fmt: skip
