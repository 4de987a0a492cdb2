"""Helpers shared by tests that run real processes on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI") == "true"


def missing(what: str) -> NoReturn:
    """The one way a test gives up for want of a component: a skip on a developer's machine,
    a failure under CI=true (CI must not pass by skipping)."""
    if IN_CI:
        pytest.fail(f"CI=true and this test needs {what}", pytrace=False)
    pytest.skip(f"needs {what}")


def require_tool(name: str, package: str) -> str:
    """The path of executable `name`, or `missing` naming the package that provides it."""
    path = shutil.which(name)
    if path is None:
        missing(f"`{name}` (Debian's {package} package; .ci/run installs it)")
    return path


def require_root(purpose: str) -> None:
    """Tests that mount filesystems run as root (as .ci/run does)."""
    if os.geteuid() != 0:
        missing(f"root to {purpose}")


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
