"""The four background jobs. Each is a function of a `JobContext`; the scheduler (with
jobcorr's APScheduler integration) makes every call a tracked run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jobcorr
from bf42stats.clickhouse import ClickHouse
from bf42stats.feed.client import FeedClient
from bf42stats.metrics import ServiceMetrics


@dataclass
class JobContext:
    """What the jobs share: the stores, the feed, the metrics and the stop signal."""

    db_path: Path
    clickhouse: ClickHouse
    feed: FeedClient
    metrics: ServiceMetrics
    batch_size: int = 2_000
    sync_strategy: str = "batched"
    session_timeout: float = 300.0
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.time

    def check_stop(self) -> None:
        """Between units of work: end the run as cancelled when the service is stopping."""
        if self.stop.is_set():
            raise jobcorr.Cancelled("the service is shutting down")
