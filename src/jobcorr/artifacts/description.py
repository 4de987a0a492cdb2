"""The one description every artifact is generated from.

A service describes its jobs (with their intervals), the volume queries that say what
the jobs processed, the alert thresholds, where memory and CPU come from, and how its
series are selected. `bf42stats.deploy` is an example.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from jobcorr.names import check_name

GRAFANA_FILTER = 'namespace=~"$namespace", pod=~"$pod"'
"""The dashboards' variable filter; Prometheus rules use no such filter."""


def select(metric: str, *matchers: str) -> str:
    """`metric{a, b}` from the non-empty matchers; `metric` alone when there are none."""
    present = [m for m in matchers if m]
    return f"{metric}{{{', '.join(present)}}}" if present else metric


@dataclass(frozen=True)
class MemorySource:
    """Where the memory and CPU series come from, and which labels tie them to job series.

    `match_on` are labels that both the memory series and `bg_job_*` series carry for the
    same process: `and on(match_on)` then pairs them (the seed's `and` paired nothing).
    """

    memory_metric: str
    cpu_metric: str
    labels: tuple[tuple[str, str], ...]
    """Fixed labels selecting the service's series, e.g. (("container", "bf42-stats"),)."""
    match_on: tuple[str, ...]

    @classmethod
    def kubernetes(cls, container: str) -> MemorySource:
        """cAdvisor's working set and CPU, as the seed uses; paired by namespace and pod."""
        return cls(
            "container_memory_working_set_bytes",
            "container_cpu_usage_seconds_total",
            (("container", container),),
            ("namespace", "pod"),
        )

    @classmethod
    def process(cls) -> MemorySource:
        """prometheus_client's process metrics (outside Kubernetes); paired by instance."""
        return cls("process_resident_memory_bytes", "process_cpu_seconds_total", (), ("instance",))

    @property
    def matchers(self) -> str:
        return ", ".join(f'{name}="{value}"' for name, value in self.labels)

    def memory(self, *filters: str) -> str:
        return select(self.memory_metric, self.matchers, *filters)

    def cpu_seconds(self, *filters: str) -> str:
        return select(self.cpu_metric, self.matchers, *filters)


@dataclass(frozen=True)
class VolumeQuery:
    """A panel query saying what the jobs processed, e.g. records synced per second."""

    title: str
    expr: str
    legend: str
    unit: str = "short"


@dataclass(frozen=True)
class Thresholds:
    memory_bytes: float = 2e9
    cpu_cores: float = 0.8
    log_records_per_second: float = 50.0
    alert_for: str = "2m"


@dataclass(frozen=True)
class Description:
    """Everything the artifacts need to know about one service."""

    service: str
    jobs: dict[str, float]
    """Job name -> interval in seconds (staleness alerts use three intervals)."""
    volumes: tuple[VolumeQuery, ...] = ()
    sync_job: str | None = None
    """The job whose memory and volume get the seed's dedicated alerts."""
    sync_title: str = ""
    """How alert names spell the sync job, e.g. `ClickHouseSync`."""
    sync_volume: str | None = None
    """A counter of what `sync_job` writes, e.g. `bg_clickhouse_records_synced_total`."""
    sync_volume_threshold: float = 10_000.0
    """Per-second rate of `sync_volume` above which HighVolume... fires (the seed's 10000)."""
    memory: MemorySource = field(default_factory=MemorySource.process)
    thresholds: Thresholds = field(default_factory=Thresholds)
    namespace: str = "default"
    port: int = 8080
    image: str = ""
    memory_limit: str = "3Gi"
    scrape_interval_seconds: int = 30
    command: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for job in self.jobs:
            check_name("job", job)
        if self.sync_job is not None and self.sync_job not in self.jobs:
            raise ValueError(
                f"sync_job {self.sync_job!r} is not one of the jobs {sorted(self.jobs)}"
            )

    @property
    def rate_window(self) -> str:
        """A rule window of four scrape intervals: rate() needs at least two samples."""
        return f"{4 * self.scrape_interval_seconds}s"

    def with_memory(self, memory: MemorySource) -> Description:
        return replace(self, memory=memory)


def load_description(spec: str | None = None, *, project: Path = Path(".")) -> Description:
    """Import `module:attribute`; without a spec, read `[tool.jobcorr] description` from
    `project/pyproject.toml`."""
    if spec is None:
        pyproject = project / "pyproject.toml"
        try:
            config = tomllib.loads(pyproject.read_text())
            spec = config["tool"]["jobcorr"]["description"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            raise ValueError(
                "no description given: pass --description MODULE:ATTRIBUTE, or set "
                f'[tool.jobcorr] description = "module:attribute" in {pyproject}'
            ) from None
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError(f"description {spec!r} is not MODULE:ATTRIBUTE")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot load description {spec!r}: {error}") from error
    if not isinstance(value, Description):
        raise ValueError(f"{spec!r} is a {type(value).__name__}, not a jobcorr Description")
    return value
