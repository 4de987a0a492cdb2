"""Grafana dashboards, built with grafana-foundation-sdk.

"Background Job Correlation" stacks the seed's four panels (Memory Usage, Active
Background Jobs, Job Volume, GC Activity) with a shared crosshair, then CPU, log volume,
durations, failures and the seed's query examples. "Python runtime" is the counterpart of
the ASP.NET Core dashboard the seed imports.

Panel ids are fixed here (links to a panel survive regeneration); variables carry no id.
The memory and CPU panels link to `jobcorr dashboard` ("Explain this moment") with the
clicked time, the metric and the process's labels. Job runs are annotated from
`bg_job_last_start_timestamp_seconds`, whose value is the start itself, so a run that fell
between two scrapes still shows at its own time.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

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

from jobcorr import contract
from jobcorr.artifacts.description import Description, select
from jobcorr.contract import Metric

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
FULL_WIDTH = 24
HALF_WIDTH = 12
HEIGHT = 8
EXPLAIN = "Explain this moment"
CLICKED_SECONDS = "${__value.time:date:seconds}"
"""Grafana's data-link variable for the clicked point's time, as unix seconds."""
RUN_STARTS_MS = 1000
"""Grafana reads an annotation's time from the series value in milliseconds."""


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range()


def _panel(
    panel_id: int,
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
        .id(panel_id)
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


def explain_link(d: Description, metric: Metric) -> str:
    """The "Explain this moment" URL: `jobcorr dashboard`'s page at the clicked time, for
    `metric`, with the clicked series' process labels (pod, or instance)."""
    labels = "".join(f"&{label}=${{__field.labels.{label}}}" for label in d.memory.match_on)
    return f"{d.explain_url}/?at={CLICKED_SECONDS}&metric={quote(metric)}{labels}"


def _variables(d: Description, builder: dashboards.Dashboard) -> dashboards.Dashboard:
    builder = builder.with_variable(
        dashboards.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )
    chosen: list[str] = []
    for label in d.memory.match_on:
        series = select(contract.PROCESS_START_TIME, *chosen)
        builder = builder.with_variable(
            dashboards.QueryVariable(label)
            .label(label.capitalize())
            .datasource(DATASOURCE)
            .query(f"label_values({series}, {label})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
        )
        chosen.append(f'{label}=~"${label}"')
    return builder


def correlation_dashboard(d: Description) -> dict[str, Any]:
    f = d.memory.grafana_filter
    memory = d.memory.memory(f)

    def job(metric: str) -> str:
        return select(metric, f)

    in_progress = f"max by (job) ({job(contract.IN_PROGRESS.exposed_name)})"
    executions = f"sum by (job) (rate({job(contract.EXECUTIONS.exposed_name)}[{RATE}]))"
    buckets = f"sum by (job, le) (rate({job(contract.DURATION.name + '_bucket')}[{RATE}]))"
    cpu = f"sum(rate({d.memory.cpu_seconds(f)}[{RATE}]))"
    gc_pause = f"{contract.GC_PAUSE.name}_sum"
    panels = [
        _panel(
            1,
            "Memory Usage",
            [(memory, "{{pod}} {{instance}}")],
            unit="bytes",
            threshold=d.thresholds.memory_bytes,
            description="The spike you are asking about. The dashed line is the alert limit. "
            f'Click a point, then "{EXPLAIN}", for jobcorr\'s answer.',
        ),
        _panel(
            2,
            "Active Background Jobs",
            [(in_progress, "{{job}} running"), (executions, "{{job}} runs/s")],
            bars=True,
            description="Which job was running: bg_job_in_progress is exact, even for long "
            "runs; the completion rate (the seed's query) is shown beside it, and the run "
            "annotations mark every run's start.",
        ),
        _panel(
            3,
            "Job Volume",
            [(v.expr(f, RATE), v.legend) for v in d.volumes],
            description="What the jobs were processing at the time.",
        ),
        _panel(
            4,
            "GC Activity",
            [
                (
                    f"sum by (generation) (rate({job(contract.PYTHON_GC_COLLECTIONS)}[{RATE}]))",
                    "gen {{generation}} collections/s",
                ),
                (
                    f"sum by (generation) (rate({job(gc_pause)}[{RATE}]))",
                    "gen {{generation}} pause s/s",
                ),
            ],
            description="Is the garbage collector struggling to keep up (memory pressure)?",
        ),
        _panel(5, "CPU", [(cpu, "cores")], unit="none", threshold=d.thresholds.cpu_cores,
               description=f'Click a point, then "{EXPLAIN}", for jobcorr\'s answer.'),
        _panel(
            6,
            "Log volume by job",
            [(f"sum by (job) (rate({job(contract.LOG_RECORDS.exposed_name)}[{RATE}]))",
              "{{job}}")],
        ),
        _panel(7, "p95 duration by job", [(f"histogram_quantile(0.95, {buckets})", "{{job}} p95")],
               unit="s", width=HALF_WIDTH),
        _panel(8, "Last duration",
               [(f"max by (job) ({job(contract.LAST_DURATION.exposed_name)})", "{{job}}")],
               unit="s", width=HALF_WIDTH),
        _panel(9, "Failures",
               [(f"sum by (job) (increase({job(contract.FAILURES.exposed_name)}[{RATE}]))",
                 "{{job}}")], bars=True, width=HALF_WIDTH),
        _panel(10, "Which job runs most frequently?", [(f"topk(4, {executions})", "{{job}}")],
               width=HALF_WIDTH),
        _panel(11, "Which job takes longest?",
               [(f"histogram_quantile(0.95, {buckets})", "{{job}}")], unit="s", width=HALF_WIDTH),
    ]  # fmt: skip
    if d.sync_volume:
        volume = d.sync_volume
        panels.append(
            _panel(12, f"{volume.title} over time", [(volume.expr(f, RATE), volume.legend)],
                   width=HALF_WIDTH)
        )  # fmt: skip
    if d.volumes:
        first = d.volumes[0]
        panels.append(
            _panel(
                13,
                f"Memory vs {first.title.lower()}",
                [(memory, "memory"), (first.expr(f, RATE), first.legend)],
                unit="bytes",
                description="Two axes instead of the seed's `* 10000000` scaling.",
            ).override_by_query(
                "B",
                [
                    {"id": "custom.axisPlacement", "value": "right"},  # type: ignore[list-item]
                    {"id": "unit", "value": first.unit},  # type: ignore[list-item]
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
            .expr(run_starts(d))
        )
    )
    builder = _variables(d, builder)
    for panel in panels:
        builder = builder.with_panel(panel)
    dashboard = _to_json(builder)
    _link(dashboard, {1: explain_link(d, "memory"), 5: explain_link(d, "cpu")})
    _annotate_from_values(dashboard)
    return dashboard


def run_starts(d: Description) -> str:
    """Every run's start, in milliseconds: the annotation query (its value is the time)."""
    starts = select(contract.LAST_START.exposed_name, d.memory.grafana_filter)
    return f"{RUN_STARTS_MS} * max by (job) ({starts}) > 0"


def runtime_dashboard(d: Description) -> dict[str, Any]:
    f = d.memory.grafana_filter
    gc_bucket = f"{contract.GC_PAUSE.name}_bucket"
    panels = [
        _panel(1, "Memory", [(d.memory.memory(f), "working set / RSS"),
                             (select(contract.PROCESS_VIRTUAL_MEMORY, f), "virtual")],
               unit="bytes"),
        _panel(2, "CPU", [(f"sum(rate({d.memory.cpu_seconds(f)}[{RATE}]))", "cores")],
               unit="none"),
        _panel(3, "GC collections",
               [(f"sum by (generation) (rate({select(contract.PYTHON_GC_COLLECTIONS, f)}[{RATE}]))",
                 "gen {{generation}}")]),
        _panel(4, "GC pause p95", [(f"histogram_quantile(0.95, sum by (generation, le) "
                                    f"(rate({select(gc_bucket, f)}[{RATE}])))",
                                    "gen {{generation}}")], unit="s"),
        _panel(5, "Threads", [(select(contract.PYTHON_THREADS, f), "threads")], width=HALF_WIDTH),
        _panel(6, "Open file descriptors", [(select(contract.PROCESS_OPEN_FDS, f), "open"),
                                            (select(contract.PROCESS_MAX_FDS, f), "max")],
               width=HALF_WIDTH),
        _panel(7, "Uptime", [(f"time() - {select(contract.PROCESS_START_TIME, f)}", "uptime")],
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
    builder = _variables(d, builder)
    for panel in panels:
        builder = builder.with_panel(panel)
    return _to_json(builder)


def _to_json(builder: dashboards.Dashboard) -> dict[str, Any]:
    """The dashboard JSON, without the SDK's all-zero variable ids (older Grafana versions
    key a new variable by it)."""
    result: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for variable in result.get("templating", {}).get("list", []):
        variable.pop("id", None)
    return result


def _link(dashboard: dict[str, Any], urls: dict[int, str]) -> None:
    """Give the panels with these ids a data link "Explain this moment"."""
    for panel in dashboard["panels"]:
        if panel["id"] in urls:
            defaults = panel.setdefault("fieldConfig", {}).setdefault("defaults", {})
            defaults["links"] = [{"title": EXPLAIN, "url": urls[panel["id"]],
                                  "targetBlank": True}]  # fmt: skip


def _annotate_from_values(dashboard: dict[str, Any]) -> None:
    """Annotations take their time from the series value (a start in ms), one per start;
    the SDK's builder has no field for Prometheus's `useValueForTime`."""
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            annotation.update(useValueForTime=True, titleFormat="{{job}} started", step="1s")


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and annotations."""
    exprs = [
        target["expr"]
        for panel in dashboard.get("panels", [])
        for target in panel.get("targets", [])
    ]
    exprs += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if "expr" in a]
    return exprs
