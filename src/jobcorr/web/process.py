"""The dashboard in a process of its own, so that looking at a chart never delays a job
or moves the memory being explained.

    dashboard = DashboardProcess("embedded:data/jobcorr.sqlite3").start()
    dashboard.url          # http://127.0.0.1:<a free port>
    dashboard.stop()

The child is `jobcorr dashboard --parent-pid <this process>`: it reads the store, runs
every analysis, inherits the credentials (JOBCORR_DASHBOARD_*) from the environment, and
ends when its parent does, however the parent ends (kill -9 included): `exit_with_parent`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

NICENESS = 10
"""The dashboard runs at a lower CPU priority: on a busy machine, the jobs it watches go
first, and a heavy chart waits instead of delaying a run."""
STOP_TIMEOUT_SECONDS = 10.0
"""How long the child gets to finish its requests after SIGTERM before it is killed."""
PARENT_POLL_SECONDS = 0.2
"""How often the child checks its parent: an orphan frees its port within a fraction of a
second, for five getppid() calls a second."""
ORPHAN_GRACE_SECONDS = 5.0
"""After its parent is gone the child stops as on SIGTERM; if requests in flight keep it
longer than this, it exits without them (nobody is left to serve)."""


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class DashboardProcess:
    """`jobcorr dashboard --source SOURCE` on `host:port` (port 0: a free one)."""

    def __init__(self, source: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.source = source
        self.host = host
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> DashboardProcess:
        if self.port == 0:
            self.port = _free_port(self.host)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "jobcorr.cli", "dashboard", "--source", self.source,
             "--host", self.host, "--port", str(self.port), "--parent-pid", str(os.getpid())],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        os.setpriority(os.PRIO_PROCESS, self._process.pid, NICENESS)
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


def exit_with_parent(parent_pid: int) -> bool:
    """From the child: stop this process (as on SIGTERM) when process `parent_pid` ends,
    however it ends (kill -9 included). False, having done nothing, when `parent_pid` is
    not this process's parent (it ended already, or the caller named another process).

    A thread polls getppid(), which changes when the parent ends and its orphan is
    adopted: portable, and blind to the end of the parent's other threads (Linux's
    parent-death signal is not: it fires when the thread that started the child ends)."""
    if os.getppid() != parent_pid:
        return False
    threading.Thread(
        target=_poll_parent, args=(parent_pid,), name="jobcorr-parent-watch", daemon=True
    ).start()
    return True


def _poll_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    _stop_orphan()


def _stop_orphan() -> None:
    """SIGTERM to this process (the server stops as it would for a supervisor), and a
    hard exit should that take longer than the grace."""
    deadline = threading.Timer(ORPHAN_GRACE_SECONDS, os._exit, args=(1,))
    deadline.daemon = True
    deadline.start()
    os.kill(os.getpid(), signal.SIGTERM)
