"""Helpers shared by tests that run real processes on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bf42_stats(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`bf42-stats ARGS` as a child process with captured output."""
    return subprocess.Popen(
        [sys.executable, "-m", "bf42stats.cli", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
