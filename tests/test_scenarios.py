"""Ground truth: real jobs with known culprits; `explain` must name them and what they did.

Target: the top candidate is right in at least 95% of the scenarios, and no job is
blamed for a spike that happened while none ran. Each scenario is a real process with
real tracked jobs and the recorder at 10 Hz (time compressed tenfold).
"""

from __future__ import annotations

import json
import subprocess
import sys

from jobcorr.analysis import explain
from jobcorr.analysis.narrative import count
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.times import iso_local
from scenarios.harness import Ran

WINDOW = 3.0
HISTORY = 60.0


def verdict(ran: Ran) -> tuple[str | None, str]:
    explanation = explain(
        EmbeddedTimeline(ran.store), ran.spike_at + 0.3, window=WINDOW,
        metric=ran.spec["metric"], history=HISTORY,
    )  # fmt: skip
    blamed = explanation.blamed
    return (blamed.job if blamed else None), explanation.conclusion


def test_explain_names_the_guilty_job_and_its_volume(ran: list[Ran]) -> None:
    assert len(ran) >= 20
    right, wrong = 0, []
    for scenario in ran:
        job, conclusion = verdict(scenario)
        guilty = scenario.spec["guilty"]
        if guilty is None:
            assert job is None, (scenario.spec["name"], conclusion)
            assert conclusion.startswith("No background job was running"), conclusion
            right += 1
            continue
        [(volume, amount)] = scenario.spec["volume"].items()
        if job == guilty and f"{count(amount)} {volume}" in conclusion:
            right += 1
        else:
            wrong.append((scenario.spec["name"], job, conclusion))
    assert right / len(ran) >= 0.95, wrong


def test_the_cli_gives_the_same_answer_as_json(ran: list[Ran]) -> None:
    scenario = next(r for r in ran if r.spec["guilty"] and r.spec["metric"] == "memory")
    result = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "explain", "--source", f"embedded:{scenario.store}",
         "--at", iso_local(scenario.spike_at + 0.3), "--window", "3s", "--history", "60s",
         "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert {"metric", "at", "value", "conclusion", "candidates"} <= set(answer)
    assert answer["metric"] == "memory"
    assert answer["value"] > 200e6
    best = answer["candidates"][0]
    assert best["job"] == scenario.spec["guilty"]
    assert 0 <= best["confidence"] <= 1
    assert best["volumes"] == scenario.spec["volume"]
    assert [c["confidence"] for c in answer["candidates"]] == sorted(
        (c["confidence"] for c in answer["candidates"]), reverse=True
    )
    human = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "explain", "--source", f"embedded:{scenario.store}",
         "--at", iso_local(scenario.spike_at + 0.3), "--window", "3s", "--history", "60s"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert human.stdout.startswith(f"{scenario.spec['guilty']} was processing 250K")
    assert "evidence" in human.stdout


def test_spikes_lists_the_spike_with_its_job(ran: list[Ran]) -> None:
    from jobcorr.analysis import survey

    scenario = next(r for r in ran if r.spec["guilty"] and r.spec["metric"] == "memory")
    timeline = EmbeddedTimeline(scenario.store)
    spikes = survey(timeline, scenario.started, scenario.started + scenario.spec["duration"])
    near = [s for s in spikes if abs(s.spike.peak_at - scenario.spike_at) < 2]
    assert near and near[0].top is not None and near[0].top.job == scenario.spec["guilty"]
