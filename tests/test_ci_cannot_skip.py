"""CI cannot pass by skipping: under CI=true a test whose tool is missing fails, and every
test that needs a tool asks through the one helper (`support.missing` / `require_tool`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
NEEDS_A_MISSING_TOOL = """
from support import require_tool

def test_needs_a_tool_that_is_not_installed():
    require_tool("jobcorr-no-such-tool", "no-such-package")
"""
GIVING_UP = re.compile(r"pytest\.skip\(|\bskipif\(|importorskip\(|pytest\.mark\.skip\b")


def run_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_needs_tool.py"
    test.write_text(NEEDS_A_MISSING_TOOL)
    shutil.copy(TESTS / "support.py", tmp_path / "support.py")  # the helper, as the suite has it
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:cloudcoil",
         "--rootdir", str(tmp_path), str(test)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip


def test_under_ci_a_missing_tool_fails_the_test(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "1 failed" in done.stdout and "CI=true and this test needs" in done.stdout


def test_elsewhere_a_missing_tool_skips_the_test(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout


@pytest.mark.parametrize(
    "path",
    sorted(p for p in TESTS.rglob("*.py") if p.name not in {"support.py", Path(__file__).name}),
)
def test_no_test_gives_up_except_through_the_helper(path: Path) -> None:
    found = [line for line in path.read_text().splitlines() if GIVING_UP.search(line)]
    assert not found, f"{path.name}: use support.missing() or require_tool() instead: {found}"
