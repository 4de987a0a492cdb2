"""The core runs with prometheus-client alone; every other feature names its extra.

Each test runs a real interpreter with `-S` (no site-packages) and a path holding only
`jobcorr` and `prometheus_client`, which is what `pip install jobcorr` leaves.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import prometheus_client
import pytest

import jobcorr
from jobcorr import contract

LEAN_PACKAGES = (Path(jobcorr.__file__).parent, Path(prometheus_client.__file__).parent)


@pytest.fixture(scope="module")
def lean_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lean")
    for package in LEAN_PACKAGES:
        (root / package.name).symlink_to(package)
    return root


def run_lean(lean_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", *args],
        env={"PYTHONPATH": str(lean_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_nothing_but_prometheus_client_is_importable(lean_path: Path) -> None:
    result = run_lean(lean_path, "-c", "import numpy")
    assert "No module named 'numpy'" in result.stderr


def test_track_job_serve_metrics_and_check_work_with_the_core_alone(lean_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, subprocess, sys
        import jobcorr

        with jobcorr.track("clickhouse_sync") as run:
            run.add("player_metrics", 3)

        @jobcorr.job("ranking_calc")
        async def rank():
            return 7

        assert asyncio.run(rank()) == 7
        jobcorr.register_runtime_metrics()
        server = jobcorr.serve_metrics(port=0)
        check = subprocess.run(
            [sys.executable, "-S", "-m", "jobcorr.cli", "check", server.url,
             "--require-job", "clickhouse_sync", "--require-job", "ranking_calc"],
            capture_output=True, text=True,
        )
        server.stop()
        print(check.returncode)
        print(check.stdout)
        print(check.stderr)
        """
    )
    result = run_lean(lean_path, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0\n"), result.stdout
    families = len(contract.CONTRACT)
    assert f"{families} of {families} families as the contract says" in result.stdout


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("jobcorr.analysis", "explain"),
        ("jobcorr.timeline", "explain"),
        ("jobcorr.sources.prometheus", "explain"),
        ("jobcorr.web", "dashboard"),
        ("jobcorr.artifacts", "artifacts"),
        ("jobcorr.integrations.apscheduler", "apscheduler"),
    ],
)
def test_a_feature_without_its_extra_names_the_extra(
    lean_path: Path, module: str, extra: str
) -> None:
    result = run_lean(lean_path, "-c", f"import {module}")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("jobcorr.extras.MissingExtra: this needs "), last
    assert f"pip install 'jobcorr[{extra}]'" in last


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["explain", "--at", "-5m"], "explain"),
        (["spikes"], "explain"),
        (["dashboard"], "dashboard"),
        (["export", "all", "--out", "deploy"], "artifacts"),
    ],
)
def test_a_command_without_its_extra_says_so_in_one_line(
    lean_path: Path, command: list[str], extra: str
) -> None:
    result = run_lean(lean_path, "-m", "jobcorr.cli", *command)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"pip install 'jobcorr[{extra}]'" in result.stderr
