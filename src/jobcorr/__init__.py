"""jobcorr: which background job was running when memory spiked, and what was it doing?

Instrument a job in one line, expose the metric contract, and read runs as records:

    import jobcorr

    with jobcorr.track("clickhouse_sync") as run:
        run.add("player_metrics", 50_000)

    @jobcorr.job("ranking_calc")
    def recalculate() -> None: ...

    jobcorr.serve_metrics()                     # http://127.0.0.1:8080/metrics
"""

from jobcorr.errors import JobcorrError
from jobcorr.exposition import MetricsServer, metrics_app, serve_metrics
from jobcorr.metrics import set_limits
from jobcorr.names import NAME_RULE
from jobcorr.recorder import Recorder, start_recorder
from jobcorr.runtime import JsonFormatter, configure_logging, register_runtime_metrics
from jobcorr.tracking import (
    Cancelled,
    Run,
    RunRecord,
    RunStart,
    add_run_listener,
    add_run_start_listener,
    add_volume,
    current_run,
    job,
    record_skipped,
    track,
)

__all__ = [
    "NAME_RULE",
    "Cancelled",
    "JobcorrError",
    "JsonFormatter",
    "MetricsServer",
    "Recorder",
    "Run",
    "RunRecord",
    "RunStart",
    "add_run_listener",
    "add_run_start_listener",
    "add_volume",
    "configure_logging",
    "current_run",
    "job",
    "metrics_app",
    "record_skipped",
    "register_runtime_metrics",
    "serve_metrics",
    "set_limits",
    "start_recorder",
    "track",
]
