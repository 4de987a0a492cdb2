"""Prometheus (or any engine speaking its HTTP API: VictoriaMetrics, Thanos, Mimir) as a
Timeline.

Only the service's own series are read: those matching `match` (e.g. `{pod="bf42stats-0"}`)
or, without it, those of the targets (`instance`) that expose jobcorr's job metrics; never
alert state (`ALERTS`), recording rules (names with a colon) or other exporters' series.

Series come from `/api/v1/query_range`, in chunks of at most 11 000 points per series
(Prometheus's limit), sent as POST so long queries fit. The step is the scrape interval,
read from the data (the median step between the raw samples of the service's memory
series in the ten minutes before the window; the targets' `scrapeInterval` when there are
none), unless given: a process younger than the lookback is read at its real step.

Runs are rebuilt, not recorded, from the raw scrapes of `bg_job_last_start_timestamp_seconds`,
`bg_job_last_duration_seconds`, `bg_job_in_progress` and the counters of finished runs, their
durations and failures (`jobcorr.sources.rebuild`): every run that ended between two scrapes
is counted, even when no scrape fell inside it; the last of them is exact to the
millisecond, the others are placed evenly between the scrapes. What a run processed is the
increase of the service's counters from the scrape before it to the scrape after it,
shared among the runs of its job in that span.
"""

from __future__ import annotations

from jobcorr.extras import require

require("explain", "httpx")

import math
import re
import time
from collections import defaultdict
from typing import Any, Literal

import httpx
import numpy as np

from jobcorr import contract
from jobcorr.contract import Metric
from jobcorr.sources import Source, SourceError
from jobcorr.sources.rebuild import JobScrapes, Rebuilt, from_zero, rebuild_runs, share_volumes
from jobcorr.timeline import FloatArray, Ownership, RunSpan, Series, VolumeSeries
from jobcorr.times import TimeParseError, parse_duration

MAX_POINTS = 11_000
MAX_CHUNKS = 8
SCRAPE_LOOKBACK = 600.0
"""Seconds of raw samples read to measure the scrape interval: 20 scrapes at 30 s, and
cheap at 1 s."""
DEFAULT_INTERVAL = 15.0
"""Prometheus's usual scrape interval, when neither the data nor the targets tell."""
RUN_REACH = 300.0
"""Seconds before a window searched for the start of a run still going at its beginning."""
_OTHER_EXPORTERS = (
    *("go_", "prometheus_", "scrape_", "promhttp_", "net_", "node_"),
    *("container_", "kube_", "cgroup_", "jobcorr_"),
)
_NOT_VOLUMES = (
    *contract.RUNTIME_PREFIXES,
    *_OTHER_EXPORTERS,
    *(family.name for family in contract.CONTRACT),
)
_NOT_VOLUME_SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_info")
_RULE_OUTPUTS = {"ALERTS", "ALERTS_FOR_STATE", "up"}
"""Series Prometheus itself writes for every target or rule, never the service's."""
_TARGET_LABELS = ("__name__", "instance", "job")
"""Labels every scraped series carries; never part of a volume's name."""
MAX_VOLUME_NAMES = 50
_JOB_SERIES = {
    "last_start": contract.LAST_START.exposed_name,
    "last_duration": contract.LAST_DURATION.exposed_name,
    "in_progress": contract.IN_PROGRESS.exposed_name,
    "executions": contract.EXECUTIONS.exposed_name,
    "duration_sum": f"{contract.DURATION.name}_sum",
    "failures": contract.FAILURES.exposed_name,
    "last_success": contract.LAST_SUCCESS.exposed_name,
    "start_rss": contract.START_RSS.exposed_name,
    "peak_rss": contract.PEAK_RSS.exposed_name,
}
"""`JobScrapes` field -> the series it is read from."""


class PrometheusTimeline(Source):
    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        match: str | None = None,
        step: float | None = None,
        timeout: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        auth = httpx.BasicAuth(username, password or "") if username else None
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, auth=auth, headers=headers, timeout=timeout)
        self._match = (match or "").strip().removeprefix("{").removesuffix("}").strip()
        self._matchers: str | None = None  # the service's, found on first use
        self._instances: list[str] = []
        self._step: float | None = step

    def refresh(self) -> None:
        """Nothing to do: every answer is a fresh query."""

    def close(self) -> None:
        self._http.close()

    # --- HTTP ----------------------------------------------------------------------

    def _post(self, path: str, data: dict[str, str], *, method: str = "POST") -> Any:
        try:
            if method == "POST":
                response = self._http.post(path, data=data)
            else:
                response = self._http.get(path, params=data)
        except httpx.TimeoutException as error:
            raise SourceError(
                f"Prometheus at {self.url} did not answer in time: {error}"
            ) from error
        except httpx.HTTPError as error:
            raise SourceError(f"cannot reach Prometheus at {self.url}: {error}") from error
        if response.status_code in (401, 403):
            raise SourceError(
                f"Prometheus at {self.url} refused the credentials (HTTP {response.status_code}): "
                "pass --username with JOBCORR_PROMETHEUS_PASSWORD, or JOBCORR_PROMETHEUS_TOKEN"
            )
        try:
            body = response.json()
        except ValueError:
            raise SourceError(
                f"{self.url}{path} answered HTTP {response.status_code} with no Prometheus API "
                "response: is this a Prometheus URL?"
            ) from None
        if body.get("status") != "success":
            kind = body.get("errorType", f"HTTP {response.status_code}")
            raise SourceError(
                f"Prometheus rejected {data.get('query', path)!r}: {kind}: {body.get('error')}"
            )
        return body["data"]

    def _service(self) -> str:
        """Matchers of the service's own series: `match`, or the instances (targets) that
        expose jobcorr's job metrics."""
        if self._matchers is None:
            self._matchers = self._match
            if not self._match:
                names = "|".join(
                    (contract.EXECUTIONS.exposed_name, contract.LOG_RECORDS.exposed_name)
                )
                self._instances = sorted(self._post(
                    "/api/v1/label/instance/values",
                    {"match[]": f'{{__name__=~"{names}"}}'},
                    method="GET",  # the label values endpoint takes no POST
                ))  # fmt: skip
                if self._instances:
                    pattern = "|".join(_regex_literal(value) for value in self._instances)
                    self._matchers = f'instance=~"{pattern}"'
        return self._matchers

    def _selector(self, name: str) -> str:
        matchers = self._service()
        return f"{name}{{{matchers}}}" if matchers else name

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], Series]]:
        """Every series of `expr`, chunked under the points-per-series limit."""
        points: dict[tuple[tuple[str, str], ...], dict[float, float]] = defaultdict(dict)
        chunk = step * (MAX_POINTS - 1)
        cursor = start
        while cursor <= end:
            last = min(end, cursor + chunk)
            data = self._post(
                "/api/v1/query_range",
                {
                    "query": expr,
                    "start": f"{cursor:.3f}",
                    "end": f"{last:.3f}",
                    "step": f"{step:g}",
                },
            )
            for result in data["result"]:
                key = tuple(sorted(result["metric"].items()))
                points[key].update((float(t), float(v)) for t, v in result["values"])
            cursor = last + step
        return [
            (dict(key), Series.of(sorted(values.items())))
            for key, values in points.items()
            if values
        ]

    def _raw(self, name: str, start: float, end: float) -> list[tuple[dict[str, str], Series]]:
        """The raw samples (as scraped) of every series of `name` in (start, end]."""
        span = f"{max(1, math.ceil((end - start) * 1000))}ms"
        data = self._post(
            "/api/v1/query", {"query": f"{self._selector(name)}[{span}]", "time": f"{end:.3f}"}
        )
        return [
            (result["metric"], Series.of([(float(t), float(v)) for t, v in result["values"]]))
            for result in data["result"]
        ]

    # --- Timeline --------------------------------------------------------------------

    @property
    def resolution(self) -> float:
        return self._ensure_step(time.time())

    def _ensure_step(self, near: float) -> float:
        """The scrape interval, measured once from the data; until there are samples near
        a window, the targets' configured interval stands in (and is not kept)."""
        if self._step is None:
            self._step = self._measured_interval(near)
        return self._step or self._configured_interval() or DEFAULT_INTERVAL

    def _measured_interval(self, near: float) -> float | None:
        """The median step between the raw samples of the service's memory series in the
        lookback before `near`, or None when there are fewer than two."""
        raw = self._raw(contract.PROCESS_RESIDENT_MEMORY, near - SCRAPE_LOOKBACK, near)
        steps = [np.diff(series.times) for _, series in raw if len(series) >= 2]
        return float(np.median(np.concatenate(steps))) if steps else None

    def _configured_interval(self) -> float | None:
        """The median `scrapeInterval` of the service's targets (Prometheus's target
        metadata), or None where the engine has none (VictoriaMetrics without vmagent)."""
        try:
            data = self._post("/api/v1/targets", {"state": "active"}, method="GET")
        except SourceError:
            return None
        intervals = []
        for target in data.get("activeTargets", []):
            instance = target.get("labels", {}).get("instance")
            if self._instances and instance not in self._instances:
                continue
            try:
                intervals.append(parse_duration(target.get("scrapeInterval", "")))
            except TimeParseError:
                continue
        return float(np.median(intervals)) if intervals else None

    def _step_for(self, start: float, end: float) -> float:
        step = self._ensure_step(end)
        return max(step, (end - start) / (MAX_POINTS * MAX_CHUNKS))

    def _irate(self, name: str, step: float) -> str:
        """Per-second increase between the last two samples in a window of 4 steps."""
        return f"irate({self._selector(name)}[{math.ceil(4 * step * 1000)}ms])"

    def metric(self, metric: Metric, start: float, end: float, step: float | None = None) -> Series:
        chosen = max(step or 0.0, self._step_for(start, end))
        expr = {
            "memory": f"max({self._selector(contract.PROCESS_RESIDENT_MEMORY)})",
            "cpu": f"sum({self._irate(contract.PROCESS_CPU_SECONDS, chosen)})",
            "logs": f"sum({self._irate(contract.LOG_RECORDS.exposed_name, chosen)})",
            "gc": f"sum({self._irate(contract.PYTHON_GC_COLLECTIONS, chosen)})",
        }[metric]
        results = self.query_range(expr, start, end, chosen)
        return results[0][1] if results else Series.empty()

    def owned(
        self, metric: Metric, start: float, end: float, step: float | None = None
    ) -> Ownership | None:
        """Rates of `bg_job_cpu_seconds_total` (live: it includes runs still going) or
        `bg_log_records_total` per job; outside is the process's CPU minus the jobs', or
        the records of no job the service's job metrics name.

        The service counts records outside every job under `job=""`, which Prometheus reads
        as no `job` label: with `honor_labels` the series has none, but without it (or with
        `exported_job` copied back to `job`) the target's `job`, the scrape job's name, fills
        the empty label. Such a name is no job of the service's."""
        if metric not in ("cpu", "logs"):
            return None
        chosen = max(step or 0.0, self._step_for(start, end))
        family = contract.CPU if metric == "cpu" else contract.LOG_RECORDS
        expr = f"sum by (job) ({self._irate(family.exposed_name, chosen)})"
        by_job = {
            labels.get("job", ""): series
            for labels, series in self.query_range(expr, start, end, chosen)
        }
        if metric == "logs":
            jobs = self._job_names(start, end)
            outside = [series for job, series in by_job.items() if job not in jobs]
            by_job = {job: series for job, series in by_job.items() if job in jobs}
            return Ownership(by_job, _sum_on_grid(outside) if outside else Series.empty())
        process = self.metric("cpu", start, end, chosen)
        owned = sum((_on(rate, process.times) for rate in by_job.values()), np.zeros(len(process)))
        return Ownership(by_job, Series(process.times, np.maximum(process.values - owned, 0.0)))

    def _job_names(self, start: float, end: float) -> set[str]:
        """The jobs the service's job metrics name in [start, end]."""
        data = self._post(
            "/api/v1/label/job/values",
            {"match[]": self._selector(contract.EXECUTIONS.exposed_name),
             "start": f"{start:.3f}", "end": f"{end:.3f}"},
            method="GET",  # the label values endpoint takes no POST
        )  # fmt: skip
        return set(data)

    def _volume_names(self, start: float, end: float) -> list[str]:
        matchers = self._service()
        selector = f'{{__name__=~".+", {matchers}}}' if matchers else '{__name__=~".+"}'
        data = self._post(
            "/api/v1/label/__name__/values",
            {"match[]": selector, "start": f"{start:.3f}", "end": f"{end:.3f}"},
            method="GET",  # the label values endpoint takes no POST
        )
        names = [
            name for name in data
            if name not in _RULE_OUTPUTS and ":" not in name  # recording rules have colons
            and not name.startswith(_NOT_VOLUMES) and not name.endswith(_NOT_VOLUME_SUFFIXES)
        ]  # fmt: skip
        return sorted(names)[:MAX_VOLUME_NAMES]

    def volumes(self, start: float, end: float, step: float | None = None) -> list[VolumeSeries]:
        step = max(step or 0.0, self._step_for(start, end))
        target = self._target_labels(start, end)
        found = []
        for name in self._volume_names(start, end):
            kind: Literal["counter", "gauge"] = "counter" if name.endswith("_total") else "gauge"
            series = self.query_range(self._selector(name), start, end, step)
            for labels, summed in _by_naming_labels(series, target):
                found.append(VolumeSeries(name, labels, kind, summed))
        return found

    def _target_labels(self, start: float, end: float) -> set[str]:
        """Labels the scrape adds (`instance`, `job`, `pod`, ...): those of the service's
        memory series, which the process itself exposes without labels."""
        names = self._post(
            "/api/v1/labels",
            {"match[]": self._selector(contract.PROCESS_RESIDENT_MEMORY),
             "start": f"{start:.3f}", "end": f"{end:.3f}"},
            method="GET",
        )  # fmt: skip
        return {*names, *_TARGET_LABELS}

    def _raw_counters(self, start: float, end: float) -> list[tuple[dict[str, str], VolumeSeries]]:
        """(all labels, volume as scraped) of the service's counters."""
        target = self._target_labels(start, end)
        found = []
        for name in self._volume_names(start, end):
            if name.endswith("_total"):
                for labels, series in self._raw(name, start, end):
                    naming = {k: v for k, v in labels.items() if k not in target}
                    found.append((labels, VolumeSeries(name, naming, "counter", series)))
        return found

    def runs(self, start: float, end: float) -> list[RunSpan]:
        reach = start - RUN_REACH  # a run going at `start` began before it
        scrapes: dict[tuple[tuple[str, str], ...], dict[str, Series]] = defaultdict(dict)
        for field, name in _JOB_SERIES.items():
            for labels, series in self._raw(name, reach, end):
                key = tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))
                scrapes[key][field] = series
        counters = self._raw_counters(reach, end)
        rebuilt = {
            key: rebuild_runs(JobScrapes(**{f: found.get(f, Series.empty()) for f in _JOB_SERIES}))
            for key, found in scrapes.items()
            if "executions" in found and "last_start" in found
        }
        runs: list[RunSpan] = []
        for instance in {dict(key).get("instance") for key in rebuilt}:
            jobs = {key: found for key, found in rebuilt.items()
                    if dict(key).get("instance") == instance}  # fmt: skip
            scraped = np.unique(np.concatenate([scrapes[key]["executions"].times for key in jobs]))
            mine = [(v.title, from_zero(v.series, scraped)) for where, v in counters
                    if where.get("instance") == instance]  # fmt: skip
            shared = share_volumes(jobs, mine, end)
            for key, job_runs in jobs.items():
                job = dict(key).get("job", "")
                runs += _run_spans(job, job_runs, shared[key], (start, end))
        return sorted(runs, key=lambda run: run.start)


def _run_spans(
    job: str, rebuilt: list[Rebuilt], volumes: list[dict[str, float]], window: tuple[float, float]
) -> list[RunSpan]:
    """The rebuilt runs of `job` that overlap `window`, with what each processed."""
    start, end = window
    spans = []
    for run, processed in zip(rebuilt, volumes, strict=True):
        if (run.end if run.end is not None else end) < start or run.start > end:
            continue
        status = "running" if run.end is None else "failure" if run.failed else "success"
        at_start, peak = run.rss if run.rss is not None else (None, None)
        spans.append(RunSpan(f"{job}@{run.start:.3f}", job, run.start, run.end, status,
                             processed, exact=False, placed=run.placed,
                             peak_memory=peak, memory_at_start=at_start))  # fmt: skip
    return spans


def _by_naming_labels(
    found: list[tuple[dict[str, str], Series]], target: set[str]
) -> list[tuple[dict[str, str], Series]]:
    """One metric's series keyed by the labels that name them (`operation`, `game`), not
    by the `target` labels the scrape added; series left with the same key (one per
    instance) are summed."""
    merged: dict[tuple[tuple[str, str], ...], list[Series]] = defaultdict(list)
    for labels, series in found:
        merged[tuple(sorted((k, v) for k, v in labels.items() if k not in target))].append(series)
    return [(dict(key), _sum_on_grid(parts)) for key, parts in merged.items()]


def _sum_on_grid(parts: list[Series]) -> Series:
    """The sum of series from one query grid (a point missing from one part counts 0)."""
    if len(parts) == 1:
        return parts[0]
    times = np.unique(np.concatenate([part.times for part in parts]))
    return Series(times, sum((_on(part, times) for part in parts), np.zeros(len(times))))


def _regex_literal(value: str) -> str:
    """`value` matched literally inside a PromQL regex string."""
    return re.escape(value).replace("\\", "\\\\").replace('"', '\\"')


def _on(series: Series, times: FloatArray) -> FloatArray:
    """`series` at exactly `times` (one query grid), 0 where it has no point."""
    if not len(series):
        return np.zeros(len(times))
    index = np.clip(np.searchsorted(series.times, times), 0, len(series) - 1)
    return np.where(series.times[index] == times, series.values[index], 0.0)
