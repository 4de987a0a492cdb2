"""Scoring the ground truth: every question about a scenario gets one outcome, tallied per
family, with the reliability table. The embedded suite (tests/test_scenarios.py) and the
fleet suite (tests/test_fleet.py) score alike; `scale` stretches the catalog's seconds
for scenarios played slower (scenarios/fleet.py).

Outcomes: right, wrong (the guilty job named with the wrong volume), abstained (nobody
named though a job did it), false_blame (a job named for a spike no job caused, or the
wrong job), missed (the planted spike was not detected: a failure, whatever is named).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from jobcorr.analysis import Explanation, explain
from jobcorr.analysis.narrative import count
from jobcorr.timeline import Timeline
from scenarios.harness import Ran

WINDOW = 3.0
HISTORY = 60.0
ASKED_AFTER = 0.3
"""Seconds after the planted moment the question is asked (a user clicking the climb)."""
LEVELS = (0.5, 0.7, 0.9)
DETECTED = (-0.5, 1.5)
"""The detected spike must peak after planted-0.5 s and begin climbing before planted+1.5 s."""


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
    blamed: str | None = None
    """The job the conclusion names, if any."""


def questions(ran: Ran) -> list[dict[str, Any]]:
    spec = ran.spec
    first = {"spike_at": spec["spike_at"], "guilty": spec["guilty"], "volume": spec["volume"]}
    return [first, *spec.get("also", [])]


def judge(ran: Ran, question: dict[str, Any], timeline: Timeline, scale: float = 1.0) -> Outcome:
    """Ask `timeline` the question; a scenario played `scale` times slower is asked alike."""
    planted = ran.started + question["spike_at"]
    answer = explain(
        timeline, planted + ASKED_AFTER * scale, window=WINDOW * scale,
        metric=ran.spec["metric"], history=HISTORY * scale,
    )  # fmt: skip
    guilty = question["guilty"]
    top = answer.candidates[0] if answer.candidates else None
    outcome = _classify(answer, planted, guilty, question["volume"], scale)
    return Outcome(ran.spec["name"], ran.spec.get("family", "-"), outcome,
                   None if top is None else top.confidence,
                   top is not None and top.job == guilty, answer.conclusion,
                   answer.blamed.job if answer.blamed else None)  # fmt: skip


def _classify(
    answer: Explanation, planted: float, guilty: str | None, volume: dict[str, float], scale: float
) -> str:
    spike = answer.spike
    early, late = DETECTED[0] * scale, DETECTED[1] * scale
    if spike is None or not (
        spike.rise_start <= planted + late and spike.peak_at >= planted + early
    ):
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
