"""The ground truth on the fleet path: Prometheus at 15 s and 30 s and VictoriaMetrics at
15 s scrape every scenario live, side by side (tests/scenarios/fleet.py), and every
question is asked of each engine and of the embedded store of the same run, and scored
as tests/test_scenarios.py scores it (tests/scenarios/scoring.py).

Targets: Prometheus (and VictoriaMetrics) at 15 s right in at least 90% of the questions;
at 30 s at most 2% wrong, falsely blamed or missed (abstaining is allowed, blaming is
not); no engine names a job the embedded answer does not (DESIGN.md, principle 5).
`make test-fleet` runs this (about 27 minutes); `make test` leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.sources.prometheus import PrometheusTimeline
from jobcorr.timeline import Timeline
from scenarios.catalog import SCENARIOS
from scenarios.fleet import SCALE, Fleet, live
from scenarios.harness import Ran
from scenarios.scoring import Outcome, judge, questions, report
from support import require_tool

pytestmark = pytest.mark.fleet
PARALLEL = 4
"""Questions answered at once: the engines and the stores serve them while cores idle."""
EMBEDDED = "embedded 1s"
ENGINES = ("prometheus 15s", "prometheus 30s", "victoria-metrics 15s")
RIGHT_AT_15S = 0.90
FAILED_AT_30S = 0.02

Scored = dict[str, list[Outcome]]
"""Source -> an outcome per question, in the same order for every source."""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    binaries = {
        "prometheus": require_tool("prometheus", "prometheus"),
        "victoria-metrics": require_tool("victoria-metrics", "victoria-metrics"),
    }
    with live(SCENARIOS, tmp_path_factory.mktemp("fleet"), binaries) as running:
        yield running


@pytest.fixture(scope="module")
def scored(fleet: Fleet) -> Scored:
    urls = {engine.name: engine.url for engine in fleet.engines}

    def ask(job: tuple[str, Ran, dict[str, Any]]) -> Outcome:
        source, ran, question = job  # each timeline is opened in the thread that reads it
        timeline: Timeline = (
            EmbeddedTimeline(ran.store)
            if source == EMBEDDED
            else PrometheusTimeline(urls[source], match=f'{{scenario="{ran.spec["name"]}"}}')
        )
        return judge(ran, question, timeline, SCALE)

    jobs = [(s, ran, q) for s in [EMBEDDED, *urls] for ran in fleet.ran for q in questions(ran)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(ask, jobs))
    result: Scored = {}
    for (source, _, _), outcome in zip(jobs, outcomes, strict=True):
        result.setdefault(source, []).append(outcome)
    return result


def failed(outcomes: list[Outcome], accepted: set[str]) -> list[str]:
    return [
        f"{o.scenario}: {o.result}: {o.conclusion[:140]}"
        for o in outcomes
        if o.result not in accepted
    ]


def test_print_the_tables(scored: Scored, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        for source, outcomes in scored.items():
            print(f"\n{source}\n\n{report(outcomes)}")
    assert set(scored) == {EMBEDDED, *ENGINES}


@pytest.mark.parametrize("source", ["prometheus 15s", "victoria-metrics 15s"])
def test_at_15s_the_culprit_is_named(scored: Scored, source: str) -> None:
    wrong = failed(scored[source], {"right"})
    assert len(wrong) <= (1 - RIGHT_AT_15S) * len(scored[source]), "\n".join(wrong)


def test_at_30s_prometheus_abstains_rather_than_blames(scored: Scored) -> None:
    wrong = failed(scored["prometheus 30s"], {"right", "abstained"})
    assert len(wrong) <= FAILED_AT_30S * len(scored["prometheus 30s"]), "\n".join(wrong)


@pytest.mark.parametrize("source", ENGINES)
def test_the_fleet_blames_no_one_the_embedded_store_does_not(scored: Scored, source: str) -> None:
    more = [
        f"{remote.scenario}: embedded blames {embedded.blamed}, {source} {remote.blamed}"
        for embedded, remote in zip(scored[EMBEDDED], scored[source], strict=True)
        if remote.blamed not in (None, embedded.blamed)
    ]
    assert not more, "\n".join(more)
