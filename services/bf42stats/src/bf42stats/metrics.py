"""The reference service's volume metrics, with the seed's names exactly.

Label values are fixed sets (games, sync operations, rejection reasons), created at zero
when the service starts so that every series exists before the first run.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bf42stats.feed import GAMES

OPERATIONS: tuple[str, ...] = ("player_metrics", "server_counts", "rounds")
REJECT_REASONS: tuple[str, ...] = ("invalid_server", "invalid_player", "duplicate_server")
SYNC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True)
class ServiceMetrics:
    active_players: Gauge
    servers_processed: Counter
    records_synced: Counter
    sync_duration: Histogram
    rankings_inserted: Counter
    feed_rejected: Counter


def service_metrics(registry: CollectorRegistry) -> ServiceMetrics:
    metrics = ServiceMetrics(
        active_players=Gauge(
            "bg_active_players", "Players online across all polled servers.", registry=registry
        ),
        servers_processed=Counter(
            "bg_servers_processed", "Game servers processed by stats_collection.", ["game"],
            registry=registry,
        ),
        records_synced=Counter(
            "bg_clickhouse_records_synced", "Rows ClickHouse acknowledged, by sync operation.",
            ["operation"], registry=registry,
        ),
        sync_duration=Histogram(
            "bg_clickhouse_sync_duration_seconds", "Time to sync one operation's new rows.",
            ["operation"], buckets=SYNC_BUCKETS, registry=registry,
        ),
        rankings_inserted=Counter(
            "bg_rankings_inserted", "Ranking rows written by ranking_calc.", registry=registry
        ),
        feed_rejected=Counter(
            "bg_feed_records_rejected", "Feed entries skipped as malformed, by reason.",
            ["game", "reason"], registry=registry,
        ),
    )  # fmt: skip
    for game in GAMES:
        metrics.servers_processed.labels(game)
        for reason in REJECT_REASONS:
            metrics.feed_rejected.labels(game, reason)
    for operation in OPERATIONS:
        metrics.records_synced.labels(operation)
        metrics.sync_duration.labels(operation)
    return metrics
