"""jobcorr.processes: a pool's children, read from /proc by their parent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobcorr import processes
from support import wait_for

MIB = 1 << 20
HOLD = "import time; b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)"


def test_the_recorder_samples_children_only_of_a_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_pool_parent", 0)
    child = subprocess.Popen([sys.executable, "-c", HOLD])
    try:
        wait_for(
            lambda: (seen := processes.usage(child.pid)) and seen.rss_bytes >= 80 * MIB,
            "the child to hold its memory",
            60,
        )
        assert processes.child_samples() == []  # a test's or a service's helper: not a pool's
        processes.sample_children()
        rows = {
            (name, labels["pid"]): value for name, labels, _, value in processes.child_samples()
        }
        assert rows[(processes.CHILD_MEMORY, str(child.pid))] >= 80 * MIB
        assert (processes.CHILD_CPU, str(child.pid)) in rows
    finally:
        child.kill()
        child.wait()
    assert not processes.alive(child.pid)
    assert str(child.pid) not in {labels["pid"] for _, labels, _, _ in processes.child_samples()}
