"""Helpers shared by tests that run real processes on loopback."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pytest
from prometheus_client import CollectorRegistry

import jobcorr
from jobcorr.store import Store, StoredRun

T = TypeVar("T")

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

IN_CI = os.environ.get("CI") == "true"
RESTORE_JOB = [
    {"source_labels": ["exported_job"], "target_label": "job", "regex": "(.+)"},
    {"action": "labeldrop", "regex": "exported_job"},
]
"""The README's fix where `overrideHonorLabels: true` cannot be changed (as Prometheus
config; the ServiceMonitor's metricRelabelings say the same in camelCase)."""
PAGE_READY_MS = 60_000
"""How long the dashboard may take to draw and explain on a busy 2-core machine."""


def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """The dashboard at `url` once drawn (and its moment explained), with the console errors
    it logs from then on."""
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("body[data-ready]", timeout=PAGE_READY_MS)
    return page, errors


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


def wait_for(condition: Callable[[], T], what: str, timeout: float, poll: float = 0.05) -> T:
    """Poll `condition` until it holds and return what it gave; fail naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout}s for {what}")
        time.sleep(poll)
    return value


def job_sample(url: str, name: str, job: str) -> float | None:
    """The value of sample `name{job=...}` on the /metrics at `url` (0 if absent), or None
    while nothing answers there."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(url, timeout=10).text
    except httpx.TransportError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("job") == job:
                return sample.value
    return 0.0


def finished_runs(path: Path, job: str) -> list[StoredRun]:
    """The finished runs of `job` a recorder has written to the store at `path` so far."""
    if not path.exists():
        return []
    store = Store(path, readonly=True)
    try:
        return [run for run in store.runs(0, time.time() + 60, job) if run.status != "running"]
    finally:
        store.close()


@contextmanager
def running(job: str, registry: CollectorRegistry) -> Iterator[None]:
    """A run of `job` going on another thread for the duration of the block."""
    started, release = threading.Event(), threading.Event()

    def run() -> None:
        with jobcorr.track(job, registry=registry):
            started.set()
            release.wait()

    thread = threading.Thread(target=run)
    thread.start()
    started.wait()
    try:
        yield
    finally:
        release.set()
        thread.join()


def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Wait until GET `url` answers 200 (a server that just started)."""
    import httpx

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, f"{url} to answer 200", timeout, poll=0.2)


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


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's syntax, e.g. "4m") mounted at `mount` for the block."""
    require_root("mount a tmpfs")
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(directory: Path) -> Path:
    """Write a file in `directory` until its disk is full; returns the file."""
    filler = directory / "filler"
    chunk = b"\0" * 4096
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler


@contextmanager
def chdb_http_server(path: Path, port: int | None = None) -> Iterator[str]:
    """ClickHouse's HTTP interface served by chdb in a child process (tests/chdb_http.py):
    the URL, once it answers."""
    port = port or free_port()
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "chdb_http.py"), "--port", str(port),
         "--path", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            pytest.fail(f"the chdb HTTP fixture did not start: {server.communicate()[1]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.communicate(timeout=30)


REDIS_START_SECONDS = 30  # a cold start on a busy 2-core machine; redis needs ~0.1 s idle


class RedisServer:
    """Debian's redis-server on a free loopback port, no persistence; `stop()` ends it."""

    def __init__(self, directory: str) -> None:
        binary = require_tool("redis-server", "redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", directory, "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + REDIS_START_SECONDS
        while not self.ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}: see {directory}")
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
