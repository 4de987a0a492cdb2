"""Ground truth: real jobs with known culprits; `explain` must name them and what they did,
or blame nobody when nobody did it.

Each scenario is a real process with real tracked jobs and the recorder at 10 Hz (time
compressed tenfold), several run side by side. Every question (a scenario's spike, and
each further step of a stacked climb) gets one outcome: right, wrong (another job named),
abstained (nobody named though a job did it), or a false blame (a job named for a spike no
job caused, or the wrong job). A spike that is not detected is a failure. Targets: at
least 95% right, no false blame, no missed spike, and a reliability table that holds
(of the answers at confidence >= c, at least c are right).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from jobcorr.analysis import Explanation, explain, survey
from jobcorr.analysis.narrative import count
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.times import iso_local
from scenarios.harness import Ran

WINDOW = 3.0
HISTORY = 60.0
ASKED_AFTER = 0.3
"""Seconds after the planted moment the question is asked (a user clicking the climb)."""
RIGHT_SHARE = 0.95
LEVELS = (0.5, 0.7, 0.9)


@dataclass(frozen=True)
class Outcome:
    scenario: str
    family: str
    result: str
    """right, wrong, abstained, false_blame or missed."""
    confidence: float | None
    """The top candidate's confidence, when there was one."""
    top_right: bool
    conclusion: str


def questions(ran: Ran) -> list[dict[str, Any]]:
    spec = ran.spec
    first = {"spike_at": spec["spike_at"], "guilty": spec["guilty"], "volume": spec["volume"]}
    return [first, *spec.get("also", [])]


def judge(ran: Ran, question: dict[str, Any]) -> Outcome:
    planted = ran.started + question["spike_at"]
    answer = explain(
        EmbeddedTimeline(ran.store), planted + ASKED_AFTER, window=WINDOW,
        metric=ran.spec["metric"], history=HISTORY,
    )  # fmt: skip
    guilty = question["guilty"]
    top = answer.candidates[0] if answer.candidates else None
    outcome = _classify(answer, planted, guilty, question["volume"])
    return Outcome(ran.spec["name"], ran.spec.get("family", "-"), outcome,
                   None if top is None else top.confidence,
                   top is not None and top.job == guilty, answer.conclusion)  # fmt: skip


def _classify(answer: Explanation, planted: float, guilty: str | None, volume: dict) -> str:
    spike = answer.spike
    if spike is None or not (spike.rise_start <= planted + 1.5 and spike.peak_at >= planted - 0.5):
        return "missed"
    blamed = answer.blamed.job if answer.blamed else None
    if guilty is None:
        return "false_blame" if blamed else "right"
    if blamed is None:
        return "abstained"
    [(name, amount)] = volume.items()
    if blamed == guilty and f"{count(amount)} {name}" in answer.conclusion:
        return "right"
    return "wrong" if blamed == guilty else "false_blame"


def report(outcomes: list[Outcome]) -> str:
    """The per-family table and the reliability table, as printed into RESULTS.md."""
    by_family: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        by_family[outcome.family][outcome.result] += 1
    by_family["all"] = sum(by_family.values(), Counter())
    lines = ["| family | questions | right | wrong | abstained | false blames | missed |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for family, counts in by_family.items():
        lines.append(
            f"| {family} | {sum(counts.values())} | {counts['right']} | {counts['wrong']} | "
            f"{counts['abstained']} | {counts['false_blame']} | {counts['missed']} |"
        )
    lines += ["", "| confidence ≥ | answers | right | share right |", "|---|---|---|---|"]
    for level, answers, right in reliability(outcomes):
        share = f"{right / answers:.0%}" if answers else "-"
        lines.append(f"| {level} | {answers} | {right} | {share} |")
    return "\n".join(lines)


def reliability(outcomes: list[Outcome]) -> list[tuple[float, int, int]]:
    """(c, answers with top confidence >= c, of which the top job was the guilty one)."""
    rows = []
    for level in LEVELS:
        given = [o for o in outcomes if o.confidence is not None and o.confidence >= level]
        rows.append((level, len(given), sum(o.top_right for o in given)))
    return rows


def test_explain_names_the_guilty_job_or_nobody(ran: list[Ran]) -> None:
    assert len(ran) >= 40
    outcomes = [judge(scenario, question) for scenario in ran for question in questions(scenario)]
    print("\n" + report(outcomes))
    failed = [o for o in outcomes if o.result != "right"]
    assert not [o for o in outcomes if o.result in ("missed", "false_blame")], failed
    right = sum(o.result == "right" for o in outcomes)
    assert right / len(outcomes) >= RIGHT_SHARE, failed
    for level, answers, correct in reliability(outcomes):
        assert correct >= level * answers, (level, answers, correct, failed)


def test_the_cli_gives_the_same_answer_as_json(ran: list[Ran]) -> None:
    scenario = next(r for r in ran if r.spec["guilty"] and r.spec["family"] == "guilty_short")
    asked = iso_local(scenario.spike_at + ASKED_AFTER)
    common = ["--source", f"embedded:{scenario.store}", "--at", asked, "--window", "3s",
              "--history", "60s"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "explain", *common, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["metric"] == scenario.spec["metric"]
    assert answer["verdict"] == "blamed" and answer["blamed"] == scenario.spec["guilty"]
    best = answer["candidates"][0]
    assert best["job"] == scenario.spec["guilty"]
    assert 0.6 <= best["confidence"] <= 1
    assert best["volumes"] == scenario.spec["volume"]
    assert [c["confidence"] for c in answer["candidates"]] == sorted(
        (c["confidence"] for c in answer["candidates"]), reverse=True
    )
    human = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "explain", *common],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert human.stdout.startswith(answer["conclusion"][:40])
    assert "evidence" in human.stdout


def test_spikes_gives_the_same_answer_as_explain(ran: list[Ran]) -> None:
    """spikes and explain read the same detection: each listed spike, asked about at its
    peak, is the same spike with the same verdict and the same job."""
    for scenario in [r for r in ran if r.spec["family"] in ("guilty_short", "no_job_main")][:4]:
        timeline = EmbeddedTimeline(scenario.store)
        end = scenario.started + scenario.spec["duration"]
        spikes = survey(timeline, scenario.started - 1, end, metric=scenario.spec["metric"])
        near = [s for s in spikes if abs(s.spike.peak_at - scenario.spike_at) < 2]
        assert near, scenario.spec["name"]
        for item in near:
            answer = explain(timeline, item.spike.peak_at, window=WINDOW,
                             metric=scenario.spec["metric"])  # fmt: skip
            assert answer.spike == item.spike, scenario.spec["name"]
            assert answer.verdict == item.verdict
            blamed = answer.blamed.job if answer.blamed else None
            assert blamed == (item.top.job if item.top else None)
            assert blamed == scenario.spec["guilty"], (scenario.spec["name"], answer.conclusion)
