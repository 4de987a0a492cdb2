"""The one description every artifact is generated from.

A service describes its jobs (with their intervals), the volume queries that say what
the jobs processed, the alert thresholds, where memory and CPU come from, and how its
series are selected; a service keeps its own, e.g. in a `deploy.py`.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from jobcorr import contract
from jobcorr.names import check_name


def select(metric: str, *matchers: str) -> str:
    """`metric{a, b}` from the non-empty matchers; `metric` alone when there are none."""
    present = [m for m in matchers if m]
    return f"{metric}{{{', '.join(present)}}}" if present else metric


@dataclass(frozen=True)
class MemorySource:
    """Where the memory and CPU series come from, and which labels tie them to job series.

    `match_on` are labels that both the memory series and `bg_job_*` series carry for the
    same process: `and on(match_on)` then pairs them (the seed's `and` paired nothing), and
    the dashboards offer one variable per label to pick the process.
    """

    name: str
    """The artifact set, e.g. `kubernetes` or `prometheus` (plain)."""
    memory_metric: str
    cpu_metric: str
    labels: tuple[tuple[str, str], ...]
    """Fixed labels selecting the service's series, e.g. (("container", "my-service"),)."""
    match_on: tuple[str, ...]

    @classmethod
    def kubernetes(cls, container: str) -> MemorySource:
        """cAdvisor's working set and CPU, as the seed uses; paired by namespace and pod."""
        return cls(
            "kubernetes",
            contract.CONTAINER_WORKING_SET,
            contract.CONTAINER_CPU_SECONDS,
            (("container", container),),
            ("namespace", "pod"),
        )

    @classmethod
    def process(cls) -> MemorySource:
        """prometheus_client's process metrics (outside Kubernetes); paired by instance."""
        return cls(
            "prometheus",
            contract.PROCESS_RESIDENT_MEMORY,
            contract.PROCESS_CPU_SECONDS,
            (),
            ("instance",),
        )

    @property
    def matchers(self) -> str:
        return ", ".join(f'{name}="{value}"' for name, value in self.labels)

    @property
    def grafana_filter(self) -> str:
        """The dashboards' variable filter (one variable per `match_on` label); Prometheus
        rules use no such filter."""
        return ", ".join(f'{label}=~"${label}"' for label in self.match_on)

    def memory(self, *filters: str) -> str:
        return select(self.memory_metric, self.matchers, *filters)

    def cpu_seconds(self, *filters: str) -> str:
        return select(self.cpu_metric, self.matchers, *filters)


@dataclass(frozen=True)
class VolumeQuery:
    """A panel query saying what the jobs processed: a gauge as it is (users online), a
    counter (`..._total`) as a rate, split by `by` when given."""

    title: str
    metric: str
    legend: str
    by: str = ""
    unit: str = "short"

    def expr(self, matchers: str, window: str) -> str:
        selected = select(self.metric, matchers)
        value = f"rate({selected}[{window}])" if self.metric.endswith("_total") else selected
        return f"sum by ({self.by}) ({value})" if self.by else value


@dataclass(frozen=True)
class Thresholds:
    """Every alert limit, for both artifact sets: the one place limits come from."""

    memory_bytes: float = 2e9
    cpu_cores: float = 0.8
    log_records_per_second: float = 50.0
    alert_for: str = "2m"


KUBE_PROMETHEUS_STACK = {"release": "kube-prometheus-stack"}
"""The label kube-prometheus-stack's Prometheus selects ServiceMonitors and PrometheusRules
by (`release: <helm release>`), for a release installed under the chart's own name."""

DASHBOARD_PORT = 8090
"""Where `jobcorr dashboard` listens by default, and the port a pod gives the dashboard it
serves: the same number wherever a user meets the dashboard."""
DEFAULT_EXPLAIN_URL = f"http://127.0.0.1:{DASHBOARD_PORT}"
"""Where `jobcorr dashboard` listens by default: the target of Grafana's "Explain this
moment" links unless export is given another URL."""


@dataclass(frozen=True)
class Description:
    """Everything the artifacts need to know about one service."""

    service: str
    jobs: dict[str, float]
    """Job name -> interval in seconds (staleness alerts use three intervals)."""
    volumes: tuple[VolumeQuery, ...] = ()
    """What the jobs process; the first is drawn against memory ("Memory vs ...")."""
    sync_job: str | None = None
    """The job whose memory and volume get the seed's dedicated alerts."""
    sync_title: str = ""
    """How alert names spell the sync job, e.g. `DatabaseSync`."""
    sync_volume: VolumeQuery | None = None
    """A counter of what `sync_job` writes, split by its `by` label, e.g. records synced
    by table; its title names the dashboard panel."""
    sync_volume_example: str = ""
    """A value of the sync volume's `by` label, for the rules' unit tests."""
    sync_volume_threshold: float = 10_000.0
    """Per-second rate of `sync_volume` above which HighVolume... fires (the seed's 10000)."""
    memory: MemorySource = field(default_factory=MemorySource.process)
    thresholds: Thresholds = field(default_factory=Thresholds)
    namespace: str = "default"
    port: int = 8080
    image: str = ""
    container: str = ""
    """The container's name in Kubernetes (cAdvisor's `container` label); the service's
    name when empty."""
    memory_limit: str = "3Gi"
    storage: str = "10Gi"
    """The PersistentVolumeClaim's size for the data directory."""
    data_dir: str = "/data"
    scrape_interval_seconds: int = 30
    command: tuple[str, ...] = ()
    """The container's args; the manifest appends `--port PORT`, and `--dashboard-port
    DASHBOARD_PORT` when the pod serves a dashboard."""
    dashboard_port: int | None = None
    """The port of the dashboard the pod serves in a process of its own
    (`jobcorr.web.process.DashboardProcess`), declared on the container and the Service as
    `dashboard` and kept off the ServiceMonitor's scrape; None when the pod serves none."""
    extra_env: dict[str, str] = field(default_factory=dict)
    monitor_labels: dict[str, str] = field(default_factory=lambda: dict(KUBE_PROMETHEUS_STACK))
    """Extra labels on the ServiceMonitor and PrometheusRule, for the Prometheus that
    selects them."""
    scaling_note: str = ""
    """What to do at scale, for the StatefulSet's comment on why it has one replica."""
    explain_url: str = DEFAULT_EXPLAIN_URL
    """Base URL of `jobcorr dashboard`, the target of Grafana's "Explain this moment"."""

    def __post_init__(self) -> None:
        for job in self.jobs:
            check_name("job", job)
        if self.sync_job is not None and self.sync_job not in self.jobs:
            raise ValueError(
                f"sync_job {self.sync_job!r} is not one of the jobs {sorted(self.jobs)}"
            )
        if self.sync_volume is not None and not self.sync_volume.metric.endswith("_total"):
            raise ValueError(f"sync_volume {self.sync_volume.metric!r} is not a counter")

    @property
    def rate_window(self) -> str:
        """A rule window of four scrape intervals: rate() needs at least two samples."""
        return f"{4 * self.scrape_interval_seconds}s"

    def with_memory(self, memory: MemorySource) -> Description:
        return replace(self, memory=memory)

    def on_kubernetes(self) -> Description:
        """The Kubernetes set: cAdvisor's working set and CPU of the service's container."""
        return self.with_memory(MemorySource.kubernetes(self.container or self.service))

    def plain(self) -> Description:
        """The plain set: the process's own RSS and CPU, for Prometheus without Kubernetes."""
        return self.with_memory(MemorySource.process())


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


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_./-]*")


def with_export_options(
    d: Description, *, monitor_labels: list[str] | None, explain_url: str | None
) -> Description:
    """The description with `jobcorr export`'s options applied; ValueError says what to fix.

    `monitor_labels` are `KEY=VALUE` texts (`["none"]` for no extra label)."""
    if monitor_labels is not None:
        labels: dict[str, str] = {}
        for text in monitor_labels:
            if text == "none":
                continue
            key, equals, value = text.partition("=")
            if not equals or not _LABEL_NAME.fullmatch(key) or not value:
                raise ValueError(f"--monitor-label {text!r} is not KEY=VALUE, "
                                 "e.g. release=kube-prometheus-stack (or none)")  # fmt: skip
            labels[key] = value
        d = replace(d, monitor_labels=labels)
    if explain_url is not None:
        parts = urlparse(explain_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"--explain-url {explain_url!r} is not an http:// or https:// URL, "
                             "e.g. http://jobcorr.example:8090")  # fmt: skip
        d = replace(d, explain_url=explain_url.rstrip("/"))
    return d
