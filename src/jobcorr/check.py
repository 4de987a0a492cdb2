"""Verify a live /metrics endpoint against the metric contract, family by family.

    >>> reports = check_exposition(text)            # doctest: +SKIP
    >>> [r for r in reports if not r.ok]            # doctest: +SKIP
    []

This is the seed's "verify metrics are being scraped" step (`curl ... | grep bg_`), done
properly: it parses the exposition and compares types and label names, not substrings.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from jobcorr.contract import CONTRACT, JOB, FamilySpec
from jobcorr.errors import JobcorrError

_STRUCTURAL_LABELS = {"le", "quantile"}


class EndpointUnreadable(JobcorrError):
    """The endpoint could not be fetched or parsed; the message says why."""


@dataclass(frozen=True)
class FamilyReport:
    """The verdict on one contract family: `present`, `missing`, `wrong_type` or `wrong_labels`."""

    spec: FamilySpec
    verdict: str
    detail: str
    series: int

    @property
    def ok(self) -> bool:
        return self.verdict == "present"


def check_families(
    families: Iterable[Metric],
    specs: Sequence[FamilySpec] = CONTRACT,
    *,
    require_jobs: Sequence[str] = (),
) -> list[FamilyReport]:
    """Compare parsed families with `specs`; `require_jobs` need a series in each job family."""
    found = {family.name: family for family in families}
    return [_judge(spec, found.get(spec.name), require_jobs) for spec in specs]


def _judge(spec: FamilySpec, family: Metric | None, require_jobs: Sequence[str]) -> FamilyReport:
    if family is None:
        return FamilyReport(spec, "missing", f"no family named {spec.exposed_name}", 0)
    if family.type != spec.type:
        return FamilyReport(spec, "wrong_type", f"type is {family.type}, expected {spec.type}", 0)
    series = {
        tuple(sorted((k, v) for k, v in s.labels.items() if k not in _STRUCTURAL_LABELS))
        for s in family.samples
    }
    expected = set(spec.labels)
    for labels in series:
        names = {name for name, _ in labels}
        if names != expected:
            return FamilyReport(
                spec,
                "wrong_labels",
                f"labels are {sorted(names)}, expected {sorted(expected)}",
                len(series),
            )
    if spec.labels == JOB:  # one series per job; log records exist only for jobs that logged
        seen_jobs = {dict(labels)["job"] for labels in series}
        absent = [job for job in require_jobs if job not in seen_jobs]
        if absent:
            return FamilyReport(
                spec, "missing", f"no series for job {', '.join(absent)}", len(series)
            )
    detail = f"{len(series)} series" if series else "no series yet (no job has run)"
    return FamilyReport(spec, "present", detail, len(series))


def check_exposition(
    text: str,
    specs: Sequence[FamilySpec] = CONTRACT,
    *,
    openmetrics: bool = False,
    require_jobs: Sequence[str] = (),
) -> list[FamilyReport]:
    """Parse an exposition (text format, or OpenMetrics) and check it against `specs`."""
    parse = parse_openmetrics if openmetrics else parse_text
    try:
        families = list(parse(text))
    except ValueError as error:
        raise EndpointUnreadable(f"the response is not a valid exposition: {error}") from error
    return check_families(families, specs, require_jobs=require_jobs)


def check_url(
    url: str,
    specs: Sequence[FamilySpec] = CONTRACT,
    *,
    timeout: float = 10.0,
    require_jobs: Sequence[str] = (),
) -> list[FamilyReport]:
    """Fetch `url` and check it; raises `EndpointUnreadable` with the reason when it cannot."""
    text, content_type = _fetch(url, timeout)
    openmetrics = content_type.startswith("application/openmetrics")
    return check_exposition(text, specs, openmetrics=openmetrics, require_jobs=require_jobs)


def _fetch(url: str, timeout: float) -> tuple[str, str]:
    """The body and content type of a 200 answer (stdlib only: the core needs no client)."""
    if not url.startswith(("http://", "https://")):
        raise EndpointUnreadable(f"{url!r} is not an http:// or https:// URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode("utf-8", "replace"), response.headers.get(
                "content-type", ""
            )
    except urllib.error.HTTPError as error:
        raise EndpointUnreadable(f"{url} answered HTTP {error.code}, expected 200") from error
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error or type(error).__name__
        raise EndpointUnreadable(f"cannot fetch {url}: {reason}") from error
