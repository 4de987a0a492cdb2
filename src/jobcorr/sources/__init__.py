"""Timeline sources: `embedded:PATH` (the recorder's store) and `prometheus:URL`.

timeline = open_source("embedded:data/jobcorr.sqlite3")
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from jobcorr.errors import JobcorrError
from jobcorr.timeline import Timeline


class SourceError(JobcorrError):
    """The source cannot be used; the message says why and what to do."""


class Source:
    """What every source shares: `with open_source(...) as timeline:` closes it at the end."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_source(
    spec: str,
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    match: str | None = None,
) -> Timeline:
    """`embedded:PATH` or `prometheus:URL` (the options are for Prometheus)."""
    kind, _, target = spec.partition(":")
    if kind == "embedded" and target:
        from jobcorr.sources.embedded import EmbeddedTimeline

        return EmbeddedTimeline(Path(target))
    if kind == "prometheus" and target:
        from jobcorr.sources.prometheus import PrometheusTimeline

        return PrometheusTimeline(
            target, username=username, password=password, token=token, match=match
        )
    raise SourceError(
        f"source {spec!r} is not embedded:PATH (a jobcorr store) or prometheus:URL "
        "(e.g. prometheus:http://127.0.0.1:9090)"
    )
