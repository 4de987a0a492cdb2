"""Prometheus alert rules, and `promtool test rules` cases for each alert (fires / must not).

The seed's two alerts are repaired: `and on(...)` with labels both sides carry, and windows
of four scrape intervals. "Running" is `bg_job_in_progress`, or a run that ended within the
window by its own gauges (`bg_job_last_start_timestamp_seconds` plus
`bg_job_last_duration_seconds`), so a run that fell between two scrapes still counts.
Every metric name comes from `jobcorr.contract` or the Description.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from jobcorr.artifacts.description import Description, select
from jobcorr.contract import (
    EXECUTIONS,
    FAILURES,
    IN_PROGRESS,
    LAST_DURATION,
    LAST_START,
    LAST_SUCCESS,
    LOG_RECORDS,
    FamilySpec,
)

IN_PROGRESS_NAME = IN_PROGRESS.exposed_name
FAILING_WINDOW = "10m"
"""BackgroundJobFailing looks this far back: a failure keeps the alert up this long."""


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    summary: str
    description: str
    severity: str = "warning"
    for_: str | None = None

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


def _on(d: Description) -> str:
    return ", ".join(d.memory.match_on)


def _same_process(d: Description, query: str) -> str:
    """A template that runs `query` (with `{m}` for this alert's process matchers)."""
    matchers = ", ".join(f'{label}=\\"%s\\"' for label in d.memory.match_on)
    args = " ".join(f"$labels.{label}" for label in d.memory.match_on)
    repeated = " ".join([args] * query.count("{m}"))
    return f'printf "{query.replace("{m}", matchers)}" {repeated}'


def _jobs_running(d: Description) -> str:
    query = _same_process(d, f"max by (job) ({_running_selector(d, '{m}')})")
    return (
        f"{{{{ range $i, $s := {query} | query }}}}{{{{ if $i }}}}, {{{{ end }}}}"
        f"{{{{ $s.Labels.job }}}}{{{{ else }}}}none{{{{ end }}}}"
    )


def _volume(d: Description) -> str:
    """The process's sync volume rate, humanized, as a template (empty without one)."""
    if not d.sync_volume:
        return ""
    metric = d.sync_volume.metric
    rate = _same_process(d, f"sum(rate({metric}{{{{m}}}}[{d.rate_window}]))")
    return (
        f" Volume: {{{{ with {rate} | query }}}}{{{{ . | first | value | humanize }}}}"
        f"{{{{ else }}}}0{{{{ end }}}} {metric}/s."
    )


def _running_selector(d: Description, matchers: str) -> str:
    """Series of jobs running now, or whose last run ended within the rule window: the
    gauges keep a run's start and length until the next run, whatever the scrape saw."""
    ended = (
        f"(time() - ({select(LAST_START.exposed_name, matchers)} + "
        f"{select(LAST_DURATION.exposed_name, matchers)}) < {d.rate_window.removesuffix('s')})"
    )
    return f"{select(IN_PROGRESS_NAME, matchers)} > 0 or {ended}"


def running(d: Description, job: str) -> str:
    """True while `job` runs, or finished within the window (short runs between scrapes)."""
    selector = _running_selector(d, f'job="{job}"')
    return f"({selector})"


def alerts(d: Description) -> list[Alert]:
    t = d.thresholds
    w = d.rate_window
    memory = d.memory.memory()
    memory_limit = _humanize(t.memory_bytes)
    result = [
        Alert(
            "HighMemoryUsage",
            f"{memory} > {t.memory_bytes:g}",
            f"Memory over {memory_limit}B",
            f"Memory is {{{{ $value | humanize }}}}B (limit {memory_limit}B). "
            f"Jobs running: {_jobs_running(d)}.{_volume(d)}",
            for_=t.alert_for,
        ),
        Alert(
            "HighCPUUsage",
            f"rate({d.memory.cpu_seconds()}[{w}]) > {t.cpu_cores:g}",
            f"CPU over {t.cpu_cores:g} cores",
            f'CPU is {{{{ printf "%.2f" $value }}}} cores (limit {t.cpu_cores:g}). '
            f"Jobs running: {_jobs_running(d)}.{_volume(d)}",
            for_=t.alert_for,
        ),
    ]
    if d.sync_job and d.sync_volume:
        volume, by = d.sync_volume.metric, d.sync_volume.by
        volume_rate = _same_process(d, f"sum(rate({volume}{{{{m}}}}[{w}]))")
        result += [
            Alert(
                f"HighMemoryDuring{d.sync_title}",
                f"{memory} > {t.memory_bytes:g} and on({_on(d)}) {running(d, d.sync_job)}",
                f"Memory over {memory_limit}B while {d.sync_job} runs",
                f"Memory is {{{{ $value | humanize }}}}B while {d.sync_job} is active, "
                f"writing {{{{ with {volume_rate} | query }}}}"
                f"{{{{ . | first | value | humanize }}}}{{{{ end }}}} {volume}/s.",
                severity="critical",
                for_=t.alert_for,
            ),
            Alert(
                f"HighVolume{d.sync_title}",
                f"rate({volume}[{_at_least(w, '5m')}]) > {d.sync_volume_threshold:g}",
                f"{d.sync_job} volume over {d.sync_volume_threshold:g}/s",
                f"{d.sync_job} is writing {{{{ $value | humanize }}}} {volume}/s "
                f"({{{{ $labels.{by} }}}}); this may cause a memory spike.",
                for_=t.alert_for,
            ),
        ]
    stale = " or ".join(
        f'(time() - {LAST_SUCCESS.exposed_name}{{job="{job}"}} > {3 * interval:g})'
        for job, interval in sorted(d.jobs.items())
    )
    result += [
        Alert(
            "BackgroundJobFailing",
            f"increase({FAILURES.exposed_name}[{FAILING_WINDOW}]) > 0",
            "{{ $labels.job }} is failing",
            '{{ $labels.job }} failed {{ printf "%.0f" $value }} times in the last '
            f"{FAILING_WINDOW.removesuffix('m')} minutes.",
        ),
        Alert(
            "BackgroundJobStale",
            stale,
            "{{ $labels.job }} has not succeeded for three intervals",
            "{{ $labels.job }} last succeeded {{ $value | humanizeDuration }} ago.",
            for_=t.alert_for,
        ),
        Alert(
            "HighLogVolumeDuringJob",
            f'sum by ({_on(d)}, job) (rate({LOG_RECORDS.exposed_name}{{job!=""}}[{w}])) '
            f"> {t.log_records_per_second:g}",
            "{{ $labels.job }} logs heavily",
            "{{ $labels.job }} emits {{ $value | humanize }} log records/s "
            f"(limit {t.log_records_per_second:g}).",
            for_=t.alert_for,
        ),
    ]
    return result


def _at_least(window: str, floor: str) -> str:
    seconds = {"s": 1, "m": 60, "h": 3600}
    value = int(window[:-1]) * seconds[window[-1]]
    return window if value >= int(floor[:-1]) * seconds[floor[-1]] else floor


def rule_groups(d: Description) -> dict[str, Any]:
    """The `groups:` document of a Prometheus rule file."""
    return {
        "groups": [
            {
                "name": f"jobcorr-{d.service}",
                "rules": [alert.rule() for alert in alerts(d)],
            }
        ]
    }


# --- promtool test cases -------------------------------------------------------------

STEP = 30  # seconds between test samples: the scrape interval the rules are written for
EVAL_MINUTES = 10


@dataclass
class Case:
    """One `promtool test rules` case: series in, the named alert expected (or not) out."""

    alert: str
    name: str
    series: dict[str, str]
    expected: list[dict[str, Any]] = field(default_factory=list)


def _humanize(value: float) -> str:
    """Prometheus's `humanize` template function (SI prefixes, %.4g)."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return f"{value:.4g}"
    prefixes = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"]
    index = 0
    while abs(value) >= 1000 and index < len(prefixes) - 1:
        value /= 1000
        index += 1
    return f"{value:.4g}{prefixes[index]}"


def _humanize_duration(seconds: float) -> str:
    whole = int(seconds)
    days, hours = whole // 86400, whole // 3600 % 24
    minutes, secs = whole // 60 % 60, whole % 60
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{seconds:.4g}s"


def _series(name: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def _ramp(per_second: float) -> str:
    """A counter growing by `per_second`, sampled every STEP for EVAL_MINUTES."""
    return f"0+{per_second * STEP:g}x{EVAL_MINUTES * 60 // STEP}"


def _flat(value: float) -> str:
    return f"{value:g}x{EVAL_MINUTES * 60 // STEP}"


def unit_test_cases(d: Description) -> list[Case]:
    t = d.thresholds
    process = {label: f"{d.service}-0" if label == "pod" else d.namespace if label == "namespace"
               else f"{d.service}:{d.port}" for label in d.memory.match_on}  # fmt: skip
    memory = _series(d.memory.memory_metric, {**process, **dict(d.memory.labels)})
    cpu = _series(d.memory.cpu_metric, {**process, **dict(d.memory.labels)})
    high_memory = t.memory_bytes * 1.25
    sync = d.sync_job or next(iter(sorted(d.jobs)))

    def job_series(family: FamilySpec, job: str) -> str:
        return _series(family.exposed_name, {**process, "job": job})

    def in_progress(job: str) -> str:
        return job_series(IN_PROGRESS, job)

    def runs_between_scrapes(job: str, every: int) -> dict[str, str]:
        """One-second runs every `every` seconds, each between two scrapes: never seen in
        progress, only their gauges tell."""
        starts = " ".join(
            f"{t // every * every + 1}" for t in range(0, EVAL_MINUTES * 60 + 1, STEP)
        )
        return {in_progress(job): _flat(0), job_series(LAST_START, job): starts,
                job_series(LAST_DURATION, job): _flat(1)}  # fmt: skip

    def ran_long_ago(job: str) -> dict[str, str]:
        return {in_progress(job): _flat(0), job_series(LAST_START, job): _flat(0),
                job_series(LAST_DURATION, job): _flat(1),
                job_series(EXECUTIONS, job): _flat(5)}  # fmt: skip

    def firing(alert: str, labels: dict[str, str], **annotations: str) -> list[dict[str, Any]]:
        named = next(a for a in alerts(d) if a.name == alert)
        return [
            {
                "exp_labels": {"severity": named.severity, **labels},
                "exp_annotations": {
                    "summary": annotations.pop("summary", named.summary),
                    **annotations,
                },
            }
        ]

    memory_labels = {**process, **dict(d.memory.labels)}

    volume_metric = d.sync_volume.metric if d.sync_volume else ""
    volume_labels = {**process, d.sync_volume.by: d.sync_volume_example} if d.sync_volume else {}

    def volume_text(rate: float) -> str:
        return f" Volume: {_humanize(rate)} {volume_metric}/s." if d.sync_volume else ""

    volume = _series(volume_metric, volume_labels)
    with_volume = {volume: _ramp(100)} if d.sync_volume else {}
    cases = [
        Case(
            "HighMemoryUsage",
            "memory over the limit while a job runs",
            {memory: _flat(high_memory), in_progress(sync): _flat(1), **with_volume},
            firing(
                "HighMemoryUsage",
                memory_labels,
                description=f"Memory is {_humanize(high_memory)}B (limit "
                f"{_humanize(t.memory_bytes)}B). Jobs running: {sync}.{volume_text(100)}",
            ),
        ),
        Case(
            "HighMemoryUsage",
            f"memory over the limit while {sync} runs between scrapes",
            {memory: _flat(high_memory), **runs_between_scrapes(sync, 2 * STEP)},
            firing(
                "HighMemoryUsage",
                memory_labels,
                description=f"Memory is {_humanize(high_memory)}B (limit "
                f"{_humanize(t.memory_bytes)}B). Jobs running: {sync}.{volume_text(0)}",
            ),
        ),
        Case(
            "HighMemoryUsage",
            "memory under the limit",
            {memory: _flat(t.memory_bytes * 0.75), in_progress(sync): _flat(1)},
        ),
        Case(
            "HighCPUUsage",
            "cpu over the limit with no job running",
            {cpu: _ramp(t.cpu_cores + 0.1)},
            firing(
                "HighCPUUsage",
                memory_labels,
                description=f"CPU is {t.cpu_cores + 0.1:.2f} cores (limit {t.cpu_cores:g}). "
                f"Jobs running: none.{volume_text(0)}",
            ),
        ),
        Case("HighCPUUsage", "cpu under the limit", {cpu: _ramp(t.cpu_cores / 2)}),
    ]
    if d.sync_job and d.sync_volume:
        high_rate = d.sync_volume_threshold * 2

        def memory_during_sync() -> list[dict[str, Any]]:
            return firing(
                f"HighMemoryDuring{d.sync_title}",
                memory_labels,
                description=f"Memory is {_humanize(high_memory)}B while {sync} is "
                f"active, writing 100 {volume_metric}/s.",
            )

        cases += [
            Case(
                f"HighMemoryDuring{d.sync_title}",
                f"memory over the limit while {sync} runs",
                {memory: _flat(high_memory), in_progress(sync): _flat(1), volume: _ramp(100)},
                memory_during_sync(),
            ),
            Case(
                f"HighMemoryDuring{d.sync_title}",
                f"memory over the limit while {sync} runs between scrapes",
                {
                    memory: _flat(high_memory),
                    volume: _ramp(100),
                    **runs_between_scrapes(sync, 2 * STEP),
                },
                memory_during_sync(),
            ),
            Case(
                f"HighMemoryDuring{d.sync_title}",
                f"memory over the limit while {sync} is idle (its last run ended long ago)",
                {memory: _flat(high_memory), **ran_long_ago(sync)},
            ),
            Case(
                f"HighMemoryDuring{d.sync_title}",
                f"{sync} runs but memory is under the limit",
                {memory: _flat(t.memory_bytes / 2), in_progress(sync): _flat(1)},
            ),
            Case(
                f"HighVolume{d.sync_title}",
                "volume over the threshold",
                {volume: _ramp(high_rate)},
                firing(
                    f"HighVolume{d.sync_title}",
                    volume_labels,
                    description=f"{sync} is writing {_humanize(high_rate)} {volume_metric}/s "
                    f"({d.sync_volume_example}); this may cause a memory spike.",
                ),
            ),
            Case(
                f"HighVolume{d.sync_title}",
                "volume under the threshold",
                {volume: _ramp(d.sync_volume_threshold / 10)},
            ),
        ]
    failures = job_series(FAILURES, sync)
    last_success = job_series(LAST_SUCCESS, sync)
    logs = _series(LOG_RECORDS.exposed_name, {**process, "job": sync, "level": "info"})
    stale_at = 60.0
    cases += [
        Case(
            "BackgroundJobFailing",
            "a run failed within ten minutes",
            {failures: f"0x10 1x{EVAL_MINUTES * 60 // STEP - 10}"},
            firing(
                "BackgroundJobFailing",
                {**process, "job": sync},
                summary=f"{sync} is failing",
                description=f"{sync} failed 1 times in the last "
                f"{FAILING_WINDOW.removesuffix('m')} minutes.",
            ),
        ),
        Case("BackgroundJobFailing", "no failures", {failures: _flat(0)}),
        Case(
            "BackgroundJobStale",
            "no success for three intervals",
            {last_success: _flat(stale_at)},
            firing(
                "BackgroundJobStale",
                {**process, "job": sync},
                summary=f"{sync} has not succeeded for three intervals",
                description=f"{sync} last succeeded "
                f"{_humanize_duration(EVAL_MINUTES * 60 - stale_at)} ago.",
            ),
        ),
        Case(
            "BackgroundJobStale",
            "succeeding on every tick",
            {last_success: f"0+{STEP}x{EVAL_MINUTES * 60 // STEP}"},
        ),
        Case(
            "HighLogVolumeDuringJob",
            "a job logs heavily",
            {logs: _ramp(t.log_records_per_second * 2)},
            firing(
                "HighLogVolumeDuringJob",
                {**process, "job": sync},
                summary=f"{sync} logs heavily",
                description=f"{sync} emits {_humanize(t.log_records_per_second * 2)} log "
                f"records/s (limit {t.log_records_per_second:g}).",
            ),
        ),
        Case(
            "HighLogVolumeDuringJob",
            "a job logs a little",
            {logs: _ramp(t.log_records_per_second / 10)},
        ),
    ]
    return cases


def rule_tests(d: Description, rule_file: str = "rules.yml") -> dict[str, Any]:
    """A `promtool test rules` document with every case of `unit_test_cases`."""
    return {
        "rule_files": [rule_file],
        "evaluation_interval": f"{STEP}s",
        "tests": [
            {
                "name": f"{case.alert}: {case.name}",
                "interval": f"{STEP}s",
                "input_series": [
                    {"series": series, "values": values} for series, values in case.series.items()
                ],
                "alert_rule_test": [
                    {
                        "eval_time": f"{EVAL_MINUTES}m",
                        "alertname": case.alert,
                        "exp_alerts": case.expected,
                    }
                ],
            }
            for case in unit_test_cases(d)
        ],
    }
