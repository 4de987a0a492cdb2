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

from jobcorr.analysis import explain, survey
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.times import iso_local
from scenarios.harness import Ran
from scenarios.scoring import ASKED_AFTER, WINDOW, judge, questions, reliability, report

RIGHT_SHARE = 0.95


def test_explain_names_the_guilty_job_or_nobody(ran: list[Ran]) -> None:
    assert len(ran) >= 40
    outcomes = [
        judge(scenario, question, EmbeddedTimeline(scenario.store))
        for scenario in ran
        for question in questions(scenario)
    ]
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
