"""The dashboard's own process ends with its parent, however the parent ends, and only then:
`bf42-stats serve` killed with -9 or stopped with SIGTERM takes its dashboard with it, while
a dashboard started from a thread that ends stays up (Linux signals the death of that thread).
Real processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from jobcorr.errors import JobcorrError
from jobcorr.processes import alive, children
from jobcorr.store import Store
from jobcorr.web.process import DashboardProcess
from jobcorr.web.server import check_bindable
from support import bf42_stats, free_port, wait_for, wait_ready

SERVICE_START = 120.0
"""Seconds for the demo service and its dashboard to answer on a busy 2-core machine."""
ORPHAN_GONE = 30.0
"""Seconds for an orphaned dashboard to be gone and its port free: it takes well under one
on an idle machine (a 0.2 s poll of getppid()); the rest is a loaded machine's margin."""
OUTLIVES = 3.0
"""Seconds a dashboard must keep answering after the thread that started it has ended: a
dashboard bound to that thread (Linux's parent-death signal is) would be gone by then."""


def free(port: int) -> bool:
    try:
        check_bindable("127.0.0.1", port)
    except JobcorrError:
        return False
    return True


def dashboard_child(parent: int) -> int | None:
    """The pid of the `jobcorr dashboard` process whose parent is `parent`, if any."""
    for child in children(parent):
        try:
            command = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if b"dashboard" in command and b"--parent-pid" in command:
            return child.pid
    return None


def serve(tmp_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    """`bf42-stats serve --demo` with its dashboard answering: the service, the dashboard's
    pid and port."""
    port, dashboard_port = free_port(), free_port()
    service = bf42_stats(
        "serve", "--demo", "--speed", "10", "--servers", "4", "--incident", "",
        "--port", str(port), "--dashboard-port", str(dashboard_port),
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{dashboard_port}/api/openapi.json", SERVICE_START)
        child = wait_for(lambda: dashboard_child(service.pid), "the dashboard child", 10)
    except BaseException:
        service.kill()
        service.communicate(timeout=60)
        raise
    return service, child, dashboard_port


def test_kill_9_of_the_service_takes_its_dashboard_and_frees_the_port(tmp_path: Path) -> None:
    service, child, port = serve(tmp_path)
    command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
    assert command[command.index(b"--host") + 1] == b"127.0.0.1"  # loopback unless configured
    try:
        service.kill()
        service.wait(60)
        wait_for(lambda: not alive(child), "the orphaned dashboard to end", ORPHAN_GONE, 0.1)
        wait_for(lambda: free(port), "the dashboard's port to be free", ORPHAN_GONE, 0.1)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
        service.communicate(timeout=60)  # the orphan held the service's stderr open too


def test_sigterm_stops_the_service_and_its_dashboard_cleanly(tmp_path: Path) -> None:
    service, child, port = serve(tmp_path)
    service.send_signal(signal.SIGTERM)
    _, err = service.communicate(timeout=120)
    assert service.returncode in (0, -signal.SIGTERM), err[-2000:]
    assert "Traceback" not in err
    # The service waits for its dashboard before it exits: both are gone now.
    assert not alive(child)  # a zombie (alive says no) holds no port
    assert free(port)


def test_a_dashboard_outlives_the_thread_that_started_it(tmp_path: Path) -> None:
    store = tmp_path / "jobcorr.sqlite3"
    Store(store).close()
    dashboard = DashboardProcess(f"embedded:{store}", port=free_port())

    def start() -> None:
        dashboard.start()
        wait_ready(f"{dashboard.url}/api/openapi.json", SERVICE_START)

    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
    try:
        assert dashboard.pid is not None
        time.sleep(OUTLIVES)
        assert alive(dashboard.pid)
        assert httpx.get(f"{dashboard.url}/api/openapi.json", timeout=30).status_code == 200
    finally:
        dashboard.stop()


def test_a_parent_pid_that_is_not_the_parent_is_refused_saying_what_to_pass(
    tmp_path: Path,
) -> None:
    store = tmp_path / "jobcorr.sqlite3"
    Store(store).close()
    not_the_parent = os.getppid()  # pytest's parent, the dashboard's grandparent
    result = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "dashboard", "--source", f"embedded:{store}",
         "--port", str(free_port()), "--parent-pid", str(not_the_parent)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"--parent-pid {not_the_parent} is not this process's parent" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
def test_a_parent_pid_that_is_no_pid_is_a_usage_error(value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "dashboard", "--source", "embedded:x",
         f"--parent-pid={value}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "is not a process id" in result.stderr
    assert "Traceback" not in result.stderr
