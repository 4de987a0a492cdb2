"""Grafana dashboards, built with grafana-foundation-sdk.

"Background Job Correlation" stacks the seed's four panels (Memory, Active Background
Jobs, Job Volume, GC Activity) with a shared crosshair, then CPU, log volume, durations,
failures and the seed's query examples. "Python runtime" is the counterpart of the
ASP.NET Core dashboard the seed imports.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboards
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
)

from jobcorr.artifacts.description import GRAFANA_FILTER, Description, select

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
FULL_WIDTH = 24
HEIGHT = 8


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range()


def _panel(
    title: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    bars: bool = False,
    threshold: float | None = None,
    width: int = FULL_WIDTH,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(HEIGHT)
        .span(width)
    )
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + index)))
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    if threshold is not None:
        panel = panel.thresholds(
            dashboards.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(None, "green"), Threshold(threshold, "red")])
        ).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    return panel


def _variables(builder: dashboards.Dashboard) -> dashboards.Dashboard:
    return (
        builder.with_variable(
            dashboards.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            dashboards.QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query("label_values(process_start_time_seconds, namespace)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
        )
        .with_variable(
            dashboards.QueryVariable("pod")
            .label("Pod")
            .datasource(DATASOURCE)
            .query('label_values(process_start_time_seconds{namespace=~"$namespace"}, pod)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
        )
    )


def _job(metric: str, *matchers: str) -> str:
    return select(metric, *matchers, GRAFANA_FILTER)


def correlation_dashboard(d: Description) -> dict[str, Any]:
    memory = d.memory.memory(GRAFANA_FILTER)
    in_progress = f"max by (job) ({_job('bg_job_in_progress')})"
    executions = f"sum by (job) (rate({_job('bg_job_executions_total')}[{RATE}]))"
    buckets = f"sum by (job, le) (rate({_job('bg_job_duration_seconds_bucket')}[{RATE}]))"
    cpu = f"sum(rate({d.memory.cpu_seconds(GRAFANA_FILTER)}[{RATE}]))"
    panels = [
        _panel(
            "Memory",
            [(memory, "{{pod}} {{instance}} working set")],
            unit="bytes",
            threshold=d.thresholds.memory_bytes,
            description="The spike you are asking about. The dashed line is the alert limit.",
        ),
        _panel(
            "Active Background Jobs",
            [(in_progress, "{{job}} running"), (executions, "{{job}} runs/s")],
            bars=True,
            description="Which job was running: bg_job_in_progress is exact, even for long "
            "runs; the completion rate (the seed's query) is shown beside it.",
        ),
        _panel(
            "Job Volume",
            [(v.expr, v.legend) for v in d.volumes],
            description="What the jobs were processing at the time.",
        ),
        _panel(
            "GC Activity",
            [
                (
                    f"sum by (generation) (rate({_job('python_gc_collections_total')}[{RATE}]))",
                    "gen {{generation}} collections/s",
                ),
                (
                    f"sum by (generation) (rate({_job('python_gc_pause_seconds_sum')}[{RATE}]))",
                    "gen {{generation}} pause s/s",
                ),
            ],
            description="Is the garbage collector struggling to keep up (memory pressure)?",
        ),
        _panel("CPU", [(cpu, "cores")], unit="none", threshold=d.thresholds.cpu_cores),
        _panel(
            "Log volume by job",
            [(f"sum by (job) (rate({_job('bg_log_records_total')}[{RATE}]))", "{{job}}")],
            unit="short",
        ),
        _panel(
            "p95 duration by job",
            [(f"histogram_quantile(0.95, {buckets})", "{{job}} p95")],
            unit="s",
            width=12,
        ),
        _panel(
            "Last duration",
            [(f"max by (job) ({_job('bg_job_last_duration_seconds')})", "{{job}}")],
            unit="s",
            width=12,
        ),
        _panel(
            "Failures",
            [(f"sum by (job) (increase({_job('bg_job_failures_total')}[{RATE}]))", "{{job}}")],
            bars=True,
            width=12,
        ),
        _panel(
            "Which job runs most frequently?",
            [
                (
                    f"topk(4, sum by (job) (rate({_job('bg_job_executions_total')}[{RATE}])))",
                    "{{job}}",
                )
            ],
            width=12,
        ),
        _panel(
            "Which job takes longest?",
            [(f"histogram_quantile(0.95, {buckets})", "{{job}}")],
            unit="s",
            width=12,
        ),
    ]
    if d.sync_volume:
        panels.append(
            _panel(
                "ClickHouse sync volume over time",
                [(f"sum by (operation) (rate({_job(d.sync_volume)}[{RATE}]))", "{{operation}}")],
                width=12,
            )
        )
    if d.volumes:
        panels.append(
            _panel(
                "Memory vs active players",
                [(memory, "memory"), (d.volumes[0].expr, d.volumes[0].legend)],
                unit="bytes",
                description="Two axes instead of the seed's `* 10000000` scaling.",
            ).override_by_query(
                "B",
                [
                    {"id": "custom.axisPlacement", "value": "right"},  # type: ignore[list-item]
                    {"id": "unit", "value": "short"},  # type: ignore[list-item]
                ],
            )
        )
    builder = (
        dashboards.Dashboard("Background Job Correlation")
        .uid(f"jobcorr-{d.service}")
        .tags(["jobcorr", d.service])
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .annotation(
            dashboards.AnnotationQuery()
            .name("Job runs")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("rgba(255, 96, 96, 1)")
            .expr(f"{in_progress} > 0")
        )
    )
    builder = _variables(builder)
    for panel in panels:
        builder = builder.with_panel(panel)
    return _to_json(builder)


def runtime_dashboard(d: Description) -> dict[str, Any]:
    f = GRAFANA_FILTER
    panels = [
        _panel("Memory", [(d.memory.memory(f), "working set / RSS"),
                          (select("process_virtual_memory_bytes", f), "virtual")], unit="bytes"),
        _panel("CPU", [(f"sum(rate({d.memory.cpu_seconds(f)}[{RATE}]))", "cores")], unit="none"),
        _panel("GC collections", [(f"sum by (generation) "
                                   f"(rate({select('python_gc_collections_total', f)}[{RATE}]))",
                                   "gen {{generation}}")]),
        _panel("GC pause p95", [(f"histogram_quantile(0.95, sum by (generation, le) "
                                 f"(rate({select('python_gc_pause_seconds_bucket', f)}[{RATE}])))",
                                 "gen {{generation}}")], unit="s"),
        _panel("Threads", [(select("python_threads", f), "threads")], width=12),
        _panel("Open file descriptors", [(select("process_open_fds", f), "open"),
                                         (select("process_max_fds", f), "max")], width=12),
        _panel("Uptime", [(f"time() - {select('process_start_time_seconds', f)}", "uptime")],
               unit="s"),
    ]  # fmt: skip
    builder = (
        dashboards.Dashboard("Python runtime")
        .uid(f"jobcorr-{d.service}-runtime")
        .tags(["jobcorr", d.service, "python"])
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
    )
    builder = _variables(builder)
    for panel in panels:
        builder = builder.with_panel(panel)
    return _to_json(builder)


def _to_json(builder: dashboards.Dashboard) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return result


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and annotations."""
    exprs = [
        target["expr"]
        for panel in dashboard.get("panels", [])
        for target in panel.get("targets", [])
    ]
    exprs += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if "expr" in a]
    return exprs
