"""The ground truth on the fleet path: Prometheus at 15 s and 30 s and VictoriaMetrics at
15 s scrape every scenario live, side by side (tests/scenarios/fleet.py), and explain
answers from each engine and from the embedded store of the same run.

Targets: Prometheus at 15 s names the culprit in at least 90% of the scenarios; at 30 s
at most 2% fail (abstaining is allowed, blaming the wrong job or missing the spike is
not); no engine blames a job the embedded answer does not (DESIGN.md, principle 5).
`make test-slow` runs this (about 20 minutes); `make test` leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from jobcorr.analysis import explain
from jobcorr.analysis.explain import Explanation
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.sources.prometheus import PrometheusTimeline
from jobcorr.timeline import Timeline
from scenarios.catalog import SCENARIOS
from scenarios.fleet import OUTCOMES, Fleet, family, live, outcome, question, tally
from scenarios.harness import Ran
from support import require_tool

pytestmark = pytest.mark.slow
PARALLEL = 4
"""Answers computed at once: the engines and the stores serve them while two cores idle."""
EMBEDDED = "embedded 1s"

Answers = dict[str, dict[str, Explanation]]
"""Source -> scenario -> explanation."""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    binaries = {
        "prometheus": require_tool("prometheus", "prometheus"),
        "victoria-metrics": require_tool("victoria-metrics", "victoria-metrics"),
    }
    with live(SCENARIOS, tmp_path_factory.mktemp("fleet"), binaries) as running:
        yield running


@pytest.fixture(scope="module")
def answers(fleet: Fleet) -> Answers:
    urls = {engine.name: engine.url for engine in fleet.engines}

    def answer(job: tuple[Ran, str]) -> Explanation:
        ran, source = job  # each timeline is opened in the thread that reads it (SQLite)
        timeline: Timeline = (
            EmbeddedTimeline(ran.store)
            if source == EMBEDDED
            else PrometheusTimeline(urls[source], match=f'{{scenario="{ran.spec["name"]}"}}')
        )
        return explain(timeline, **question(ran))

    jobs = [(ran, source) for ran in fleet.ran for source in [EMBEDDED, *urls]]
    with ThreadPoolExecutor(PARALLEL) as pool:
        explained = list(pool.map(answer, jobs))
    result: Answers = {}
    for (ran, source), explanation in zip(jobs, explained, strict=True):
        result.setdefault(source, {})[ran.spec["name"]] = explanation
    return result


def outcomes(fleet: Fleet, answers: Answers, source: str) -> dict[str, str]:
    return {ran.spec["name"]: outcome(ran, answers[source][ran.spec["name"]]) for ran in fleet.ran}


def table(fleet: Fleet, answers: Answers) -> str:
    """Markdown: per source and family, how many answers were right, wrong, ..."""
    specs = {ran.spec["name"]: ran.spec for ran in fleet.ran}
    lines = ["| source | family | n | " + " | ".join(OUTCOMES) + " |",
             "|---|---|---|" + "---|" * len(OUTCOMES)]  # fmt: skip
    for source in answers:
        counts = tally(outcomes(fleet, answers, source), specs)
        for name in sorted(counts, key=lambda n: (n == "all", n)):
            row = [str(counts[name][o]) for o in OUTCOMES]
            total = sum(counts[name].values())
            lines.append(f"| {source} | {name} | {total} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def failures(fleet: Fleet, answers: Answers, source: str, accepted: set[str]) -> list[str]:
    """Every answer of `source` whose outcome is not accepted, with what was concluded."""
    return [
        f"{name}: {result}: {answers[source][name].conclusion[:120]}"
        for name, result in outcomes(fleet, answers, source).items()
        if result not in accepted
    ]


def test_print_the_table(
    fleet: Fleet, answers: Answers, capsys: pytest.CaptureFixture[str]
) -> None:
    text = table(fleet, answers)
    with capsys.disabled():
        print(f"\n{text}")
    assert all(family(ran.spec) in text for ran in fleet.ran)


def test_prometheus_at_15s_names_the_culprit(fleet: Fleet, answers: Answers) -> None:
    wrong = failures(fleet, answers, "prometheus 15s", {"right"})
    assert len(wrong) <= 0.10 * len(fleet.ran), "\n".join(wrong)


def test_victoria_metrics_at_15s_names_the_culprit(fleet: Fleet, answers: Answers) -> None:
    wrong = failures(fleet, answers, "victoria-metrics 15s", {"right"})
    assert len(wrong) <= 0.10 * len(fleet.ran), "\n".join(wrong)


def test_prometheus_at_30s_abstains_rather_than_blames(fleet: Fleet, answers: Answers) -> None:
    wrong = failures(fleet, answers, "prometheus 30s", {"right", "abstained"})
    assert len(wrong) <= 0.02 * len(fleet.ran), "\n".join(wrong)


@pytest.mark.parametrize("source", ["prometheus 15s", "prometheus 30s", "victoria-metrics 15s"])
def test_the_fleet_blames_no_one_the_embedded_store_does_not(
    fleet: Fleet, answers: Answers, source: str
) -> None:
    def blamed(explanation: Explanation) -> str | None:
        return explanation.blamed.job if explanation.blamed else None

    embedded = {name: blamed(e) for name, e in answers[EMBEDDED].items()}
    remote = {name: blamed(e) for name, e in answers[source].items()}
    more = [
        f"{name}: embedded blames {embedded[name]}, {source} {job}"
        for name, job in remote.items()
        if job not in (None, embedded[name])
    ]
    assert not more, "\n".join(more)
