"""Prometheus (or any engine speaking its HTTP API: VictoriaMetrics, Thanos, Mimir) as a
Timeline.

Series come from `/api/v1/query_range`, in chunks of at most 11 000 points per series
(Prometheus's limit), sent as POST so long queries fit. The step is the scrape interval,
estimated from `count_over_time` unless given.

Runs are rebuilt from the gauges, not recorded: each new value of
`bg_job_last_start_timestamp_seconds` is a run's start, and once `bg_job_in_progress`
is back to 0 its end is that start plus `bg_job_last_duration_seconds`. Starts and ends
are therefore exact to the millisecond, but only the last run of each job between two
scrapes is seen: at a 30 s scrape, a job that runs more often than every 30 s loses runs,
and a run shorter than the scrape interval is found only if no other run of the same job
follows it within that interval. What a run processed is the increase of the service's
counters during it; failures, the increase of `bg_job_failures_total`.
"""

from __future__ import annotations

from jobcorr.extras import require

require("explain", "httpx")

import math
from collections import defaultdict
from typing import Any

import httpx
import numpy as np

from jobcorr import contract
from jobcorr.contract import Metric
from jobcorr.sources import Source, SourceError
from jobcorr.timeline import FloatArray, Ownership, RunSpan, Series, VolumeSeries

MAX_POINTS = 11_000
MAX_CHUNKS = 8
_NOT_VOLUMES = (
    *("process_", "python_", "go_", "prometheus_", "scrape_", "promhttp_", "net_", "node_"),
    *("container_", "kube_", "cgroup_", "bg_job_", "bg_log_records"),
)
_NOT_VOLUME_SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_info")
MAX_VOLUME_NAMES = 50


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
        self._matchers = (match or "").strip().removeprefix("{").removesuffix("}").strip()
        self._step = step

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

    def _selector(self, name: str) -> str:
        return f"{name}{{{self._matchers}}}" if self._matchers else name

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

    def _instant(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        data = self._post("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    # --- Timeline --------------------------------------------------------------------

    @property
    def resolution(self) -> float:
        return self._step if self._step is not None else 15.0

    def _ensure_step(self, near: float) -> float:
        if self._step is None:
            counts = self._instant(
                f"count_over_time({self._selector('process_resident_memory_bytes')}[5m])", near
            )
            best = max((count for _, count in counts), default=0.0)
            self._step = 300 / best if best >= 2 else 15.0
        return self._step

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
        the records of `job=""`."""
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
            outside = by_job.pop("", None)
            return Ownership(by_job, Series.empty() if outside is None else outside)
        process = self.metric("cpu", start, end, chosen)
        owned = sum((_on(rate, process.times) for rate in by_job.values()), np.zeros(len(process)))
        return Ownership(by_job, Series(process.times, np.maximum(process.values - owned, 0.0)))

    def _volume_names(self, start: float, end: float) -> list[str]:
        selector = f'{{__name__=~".+", {self._matchers}}}' if self._matchers else '{__name__=~".+"}'
        data = self._post(
            "/api/v1/label/__name__/values",
            {"match[]": selector, "start": f"{start:.3f}", "end": f"{end:.3f}"},
            method="GET",  # the label values endpoint takes no POST
        )
        names = [
            name for name in data
            if name != "up" and not name.startswith(_NOT_VOLUMES)
            and not name.endswith(_NOT_VOLUME_SUFFIXES)
        ]  # fmt: skip
        return sorted(names)[:MAX_VOLUME_NAMES]

    def volumes(self, start: float, end: float, step: float | None = None) -> list[VolumeSeries]:
        step = max(step or 0.0, self._step_for(start, end))
        found = []
        for name in self._volume_names(start, end):
            for labels, series in self.query_range(self._selector(name), start, end, step):
                kept = {k: v for k, v in labels.items() if k not in ("__name__", "instance", "job")}
                if name.endswith("_total"):
                    found.append(VolumeSeries(name, kept, "counter", series))
                else:
                    found.append(VolumeSeries(name, kept, "gauge", series))
        return found

    def runs(self, start: float, end: float) -> list[RunSpan]:
        step = self._step_for(start, end)
        reach = start - 300  # a run going at `start` began before it

        def by_job(name: str) -> dict[str, Series]:
            return {
                labels.get("job", ""): series
                for labels, series in self.query_range(self._selector(name), reach, end, step)
            }

        starts = by_job("bg_job_last_start_timestamp_seconds")
        durations = by_job("bg_job_last_duration_seconds")
        in_progress = by_job("bg_job_in_progress")
        failures = by_job("bg_job_failures_total")
        counters = [v for v in self.volumes(reach, end) if v.kind == "counter"]
        runs = []
        for job, last_start in starts.items():
            for begin, finish in _rebuild(last_start, durations.get(job), in_progress.get(job)):
                if (finish if finish is not None else end) < start or begin > end:
                    continue
                until = (finish if finish is not None else end) + step
                failed = _increase(failures.get(job), begin, until) > 0
                volumes = {v.title: amount for v in counters
                           if (amount := _increase(v.series, begin, until)) > 0}  # fmt: skip
                status = "running" if finish is None else "failure" if failed else "success"
                runs.append(RunSpan(f"{job}@{begin:.3f}", job, begin, finish, status, volumes,
                                    exact=False))  # fmt: skip
        return sorted(runs, key=lambda run: run.start)


def _rebuild(
    last_start: Series, last_duration: Series | None, in_progress: Series | None
) -> list[tuple[float, float | None]]:
    """(start, end or None) of every run the gauges show; see the module docstring."""
    runs: list[list[float | None]] = []
    for t, started in zip(last_start.times, last_start.values, strict=True):
        if started <= 0:
            continue
        if not runs or runs[-1][0] != started:
            runs.append([float(started), None])
        going = in_progress.at(t) if in_progress is not None else 0.0
        duration = last_duration.at(t) if last_duration is not None else None
        if runs[-1][1] is None and not going and duration is not None:
            runs[-1][1] = float(started) + duration
    return [(float(begin), end) for begin, end in runs if begin is not None]


def _on(series: Series, times: FloatArray) -> FloatArray:
    """`series` at exactly `times` (one query grid), 0 where it has no point."""
    if not len(series):
        return np.zeros(len(times))
    index = np.clip(np.searchsorted(series.times, times), 0, len(series) - 1)
    return np.where(series.times[index] == times, series.values[index], 0.0)


def _increase(series: Series | None, start: float, end: float) -> float:
    if series is None:
        return 0.0
    before, after = series.at(start), series.at(end)
    if after is None:
        return 0.0
    return float(after - (before or 0.0)) if after >= (before or 0.0) else float(after)
