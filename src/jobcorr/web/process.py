"""The dashboard in a process of its own, so that looking at a chart never delays a job
or moves the memory being explained.

    dashboard = DashboardProcess("embedded:data/jobcorr.sqlite3").start()
    dashboard.url          # http://127.0.0.1:<a free port>
    dashboard.stop()

The child is `jobcorr dashboard`: it reads the store, runs every analysis, and inherits
the credentials (JOBCORR_DASHBOARD_*) from the environment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

NICENESS = 10
"""The dashboard runs at a lower CPU priority: on a busy machine, the jobs it watches go
first, and a heavy chart waits instead of delaying a run."""
STOP_TIMEOUT_SECONDS = 10.0
"""How long the child gets to finish its requests after SIGTERM before it is killed."""


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

    def start(self) -> DashboardProcess:
        if self.port == 0:
            self.port = _free_port(self.host)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "jobcorr.cli", "dashboard", "--source", self.source,
             "--host", self.host, "--port", str(self.port)],
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
