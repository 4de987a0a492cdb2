"""The metric contract: the families every tracked job exposes, as data.

These names are public API (dashboards, alert rules and users' queries depend on them).
`jobcorr.metrics` renders them and `jobcorr.check` verifies a live endpoint against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Metric = Literal["memory", "cpu", "logs", "gc"]
METRICS: tuple[Metric, ...] = ("memory", "cpu", "logs", "gc")
"""What an answer can be about: memory in bytes, CPU in cores, log records per second, GC
collections per second."""


@dataclass(frozen=True)
class FamilySpec:
    """One metric family as exposed: its name without `_total`, its type and its labels."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str

    @property
    def exposed_name(self) -> str:
        """The sample name a user queries (`_total` for counters)."""
        return f"{self.name}_total" if self.type == "counter" else self.name


JOB = ("job",)

EXECUTIONS = FamilySpec(
    "bg_job_executions", "counter", JOB, "Finished runs of a background job, any outcome."
)
DURATION = FamilySpec(
    "bg_job_duration_seconds", "histogram", JOB, "Wall time of background job runs."
)
FAILURES = FamilySpec("bg_job_failures", "counter", JOB, "Background job runs that raised.")
SKIPPED = FamilySpec(
    "bg_job_skipped", "counter", JOB, "Ticks skipped because the previous run was still going."
)
IN_PROGRESS = FamilySpec("bg_job_in_progress", "gauge", JOB, "Runs of a background job active now.")
LAST_START = FamilySpec(
    "bg_job_last_start_timestamp_seconds", "gauge", JOB, "Unix time of the last start of a job."
)
LAST_SUCCESS = FamilySpec(
    "bg_job_last_success_timestamp_seconds", "gauge", JOB, "Unix time of the last successful run."
)
LAST_DURATION = FamilySpec(
    "bg_job_last_duration_seconds", "gauge", JOB, "Wall time of the last finished run of a job."
)
CPU = FamilySpec("bg_job_cpu_seconds", "counter", JOB, "CPU time spent by runs of a job.")
PEAK_RSS = FamilySpec(
    "bg_job_peak_rss_bytes", "gauge", JOB, "Peak resident memory seen during the last run of a job."
)
START_RSS = FamilySpec(
    "bg_job_last_start_rss_bytes",
    "gauge",
    JOB,
    "Resident memory when the last finished run of a job started.",
)
LOG_RECORDS = FamilySpec(
    "bg_log_records",
    "counter",
    ("job", "level"),
    "Log records emitted, by the job that emitted them.",
)
GC_PAUSE = FamilySpec(
    "python_gc_pause_seconds",
    "histogram",
    ("generation",),
    "Time the garbage collector paused the process.",
)

JOB_FAMILIES: tuple[FamilySpec, ...] = (
    EXECUTIONS,
    DURATION,
    FAILURES,
    SKIPPED,
    IN_PROGRESS,
    LAST_START,
    LAST_SUCCESS,
    LAST_DURATION,
    CPU,
    PEAK_RSS,
    START_RSS,
)
"""Families rendered by `jobcorr.metrics.JobMetrics`, one series per job."""

CONTRACT: tuple[FamilySpec, ...] = (*JOB_FAMILIES, LOG_RECORDS, GC_PAUSE)
"""Everything a service instrumented with jobcorr exposes beyond prometheus_client's own."""

DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
)  # fmt: skip
"""`bg_job_duration_seconds` buckets: 5 ms to 1 h, so that p95 means something for hourly jobs."""

# jobcorr's own health: the recorder and the cardinality caps (not part of a job's contract).
RECORDER_UP = FamilySpec(
    "jobcorr_recorder_up",
    "gauge",
    (),
    "1 while the recorder writes to its store, 0 while it cannot.",
)
RECORDER_LAST_WRITE = FamilySpec(
    "jobcorr_recorder_last_write_timestamp_seconds",
    "gauge",
    (),
    "Unix time of the recorder's last successful write.",
)
RECORDER_DROPPED = FamilySpec(
    "jobcorr_recorder_dropped",
    "counter",
    ("kind",),
    "Queued items the recorder dropped, oldest first, while it could not write (kind: "
    "samples, run_starts, runs).",
)
JOBS_OVER_LIMIT = FamilySpec(
    "jobcorr_jobs_over_limit",
    "counter",
    (),
    "Runs and skipped ticks counted as job 'over_limit': their job was beyond the cap on "
    "distinct job names.",
)
SELF_FAMILIES: tuple[FamilySpec, ...] = (
    RECORDER_UP,
    RECORDER_LAST_WRITE,
    RECORDER_DROPPED,
    JOBS_OVER_LIMIT,
)
"""jobcorr's own metrics; the recorder does not record them as the service's volumes."""


# Series jobcorr reads but does not define: prometheus_client's process and GC collectors
# (every Python service), and cAdvisor's per-container series (Kubernetes).
PROCESS_RESIDENT_MEMORY = "process_resident_memory_bytes"
PROCESS_VIRTUAL_MEMORY = "process_virtual_memory_bytes"
PROCESS_CPU_SECONDS = "process_cpu_seconds_total"
PROCESS_START_TIME = "process_start_time_seconds"
PROCESS_OPEN_FDS = "process_open_fds"
PROCESS_MAX_FDS = "process_max_fds"
PYTHON_GC_COLLECTIONS = "python_gc_collections_total"
PYTHON_THREADS = "python_threads"
CONTAINER_WORKING_SET = "container_memory_working_set_bytes"
CONTAINER_CPU_SECONDS = "container_cpu_usage_seconds_total"


def sample_names(family: FamilySpec) -> tuple[str, ...]:
    """Every sample name a family exposes (a histogram's `_bucket`, `_sum`, `_count`)."""
    if family.type == "histogram":
        return tuple(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return (family.exposed_name,)


RUNTIME_PREFIXES = ("process_", "python_")
"""Name prefixes of prometheus_client's process and platform collectors."""
