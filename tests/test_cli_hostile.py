"""Hostile invocations of both command lines: exit 2, one line saying what to do, no
traceback, nothing from the input echoed raw to the terminal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

import jobcorr
from support import free_port

TIMEOUT = 120  # seconds for one command on a busy machine; every one here fails fast
SPIKE_BYTES = 200_000_000  # far above the recorder's baseline of a few tens of MB
ARABIC_8080 = "\u0668\u0660\u0668\u0660"  # digits int() reads as 8080; not a port as typed


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good store (with a hostile label value), the same store damaged, and a text file."""
    root = tmp_path_factory.mktemp("cli")
    good = root / "good.sqlite3"
    registry = CollectorRegistry()
    jobcorr.register_runtime_metrics(registry)
    Gauge("bg_queue", "", ["name"], registry=registry).labels("[/x]\x1b[2J\x07").set(1)
    recorder = jobcorr.start_recorder(good, interval=0.02, registry=registry)
    with jobcorr.track("clickhouse_sync", registry=registry):
        held = b"x" * SPIKE_BYTES  # a memory spike, so the answer quotes the gauge
        time.sleep(1.0)
        del held
    recorder.stop()
    damaged = root / "damaged.sqlite3"
    data = bytearray(good.read_bytes())
    quarter = len(data) // 4
    data[quarter : 3 * quarter] = os.urandom(2 * quarter)  # garbage in its middle
    damaged.write_bytes(bytes(data))
    text = root / "notes.txt"
    text.write_text("not a store\n" * 500)
    return {"good": good, "damaged": damaged, "text": text, "dir": root}


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def jobcorr_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobcorr.cli", *args], capture_output=True,
                          text=True, timeout=TIMEOUT, env={**os.environ, **env})  # fmt: skip


def bf42_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bf42stats.cli", *args], capture_output=True,
                          text=True, timeout=TIMEOUT)  # fmt: skip


def assert_refused(done: subprocess.CompletedProcess[str], says: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert "\x1b" not in output and "\x07" not in output
    assert says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()[-1]) < 600


JOBCORR_CASES = [
    (["export", "all", "--out", "/proc/forbidden"], "pass a writable --out"),
    (["export", "all", "--out", "/dev/null/deploy"], "pass a writable --out"),
    (["export", "everything", "--out", "{dir}/out"], "no artifact 'everything'"),
    (["export", "all", "--out", "{dir}/out", "--description", "nowhere:X"], "nowhere"),
    (["check", "--timeout", "-1", "http://127.0.0.1:9/metrics"], "not a positive number"),
    (["check", "--timeout", "nan", "http://127.0.0.1:9/metrics"], "not a positive number"),
    (["check", "--timeout", "0", "http://127.0.0.1:9/metrics"], "not a positive number"),
    (["check", "http://127.0.0.1:{free}/metrics"], "error"),
    (["check", "not a url"], "error"),
    (["dashboard", "--port", "99999", "--source", "embedded:{good}"],
     "'99999' must be a port number from 1 to 65535"),
    (["dashboard", "--port", "-1", "--source", "embedded:{good}"], "must be a port number"),
    (["dashboard", "--port", "0", "--source", "embedded:{good}"], "must be a port number"),
    (["dashboard", "--port", "80_80", "--source", "embedded:{good}"], "must be a port number"),
    (["dashboard", "--port", "\u00b2\u00b2", "--source", "embedded:{good}"], "must be a port"),
    (["dashboard", "--port", ARABIC_8080, "--source", "embedded:{good}"], "must be a port"),
    (["dashboard", "--port", "{busy}", "--source", "embedded:{good}"], "pick another --port"),
    (["dashboard", "--host", "no.such.host.invalid", "--source", "embedded:{good}"], "--host"),
    (["explain", "--at", "9999-12-31T23:59:59-14:00", "--source", "embedded:{good}"],
     "outside the times"),
    (["explain", "--at", "-99999999999999d", "--source", "embedded:{good}"], "outside the times"),
    (["explain", "--at", "\x1b[2J\x07", "--source", "embedded:{good}"], "is not a time"),
    (["explain", "--at", "-5m", "--window", "-5m", "--source", "embedded:{good}"],
     "is not a duration"),
    (["explain", "--at", "-5m", "--window", "0s", "--source", "embedded:{good}"],
     "is not a duration"),
    (["explain", "--at", "-5m", "--history", "-1h", "--source", "embedded:{good}"],
     "is not a duration"),
    (["explain", "--at", "-5m", "--source", "embedded:{damaged}"], "damaged"),
    (["explain", "--at", "-5m", "--source", "embedded:{text}"], "not a readable jobcorr store"),
    (["explain", "--at", "-5m", "--source", "embedded:{dir}"], "no jobcorr store"),
    (["explain", "--at", "-5m", "--source", "embedded:/proc/none.sqlite3"], "no jobcorr store"),
    (["explain", "--at", "-5m", "--source", "prometheus:http://127.0.0.1:{free}"],
     "cannot reach Prometheus"),
    (["explain", "--at", "-5m", "--source", "influx:x"], "embedded:PATH"),
    (["explain", "--at", "-1s", "--source", "embedded:{good}", "--png", "/no/such/dir/x.png"],
     "no directory"),
    (["spikes", "--since", "-1h", "--source", "embedded:{good}"], "is not a duration"),
    (["spikes", "--since", "0s", "--source", "embedded:{good}"], "is not a duration"),
    (["spikes", "--since", "1h", "--source", "embedded:{damaged}"], "damaged"),
    (["spikes", "--metric", "disk", "--source", "embedded:{good}"], "invalid choice"),
    (["nonsense"], "invalid choice"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "says"), JOBCORR_CASES)
def test_jobcorr_refuses_hostile_input_in_one_line(
    args: list[str], says: str, stores: dict[str, Path], busy_port: int
) -> None:
    values = {**{k: str(v) for k, v in stores.items()}, "free": str(free_port()),
              "busy": str(busy_port)}  # fmt: skip
    done = jobcorr_cli(*[arg.format(**values) for arg in args])
    assert_refused(done, says)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_png_that_chromium_fails_is_one_short_line(stores: dict[str, Path], tmp_path) -> None:
    done = jobcorr_cli("explain", "--at", "-1s", "--source", f"embedded:{stores['good']}",
                       "--png", str(tmp_path / "x.png"), JOBCORR_CHROMIUM="/bin/false")  # fmt: skip
    assert_refused(done, "Chromium could not write")
    assert len(done.stderr) < 400


def test_label_values_print_as_themselves_without_control_characters(stores) -> None:
    done = jobcorr_cli("explain", "--at", "-1s", "--window", "10m",
                       "--source", f"embedded:{stores['good']}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "\x1b" not in done.stdout
    assert "[/x][2J (bg_queue) was 1" in done.stdout  # quoted, not read as markup


BF42_CASES = [
    (["serve", "--port", "99999"], "--port='99999' must be a port number from 0 to 65535"),
    (["serve", "--port", ARABIC_8080], "must be a port number"),
    (["serve", "--dashboard-port", "+8090"], "--dashboard-port='+8090' must be a port number"),
    (["serve", "--data-dir", "/proc/forbidden"], "BF42_DATA_DIR"),
    (["serve", "--port", "{busy}"], "pick another"),
    (["serve", "--demo", "--servers", "-5"], "--servers"),
    (["serve", "--surge", "soon"], "--surge"),
    (["simulate-feed", "--port", "99999"], "'99999' must be a port number from 0 to 65535"),
    (["simulate-feed", "--port", "80_80"], "must be a port number"),
    (["simulate-feed", "--time-scale", "-1"], "--time-scale"),
    (["simulate-feed", "--servers", "0"], "--servers"),
    (["simulate-feed", "--port", "{busy}"], "pick another"),
]


@pytest.mark.parametrize(("args", "says"), BF42_CASES)
def test_bf42_stats_refuses_hostile_input(args: list[str], says: str, busy_port: int) -> None:
    assert_refused(bf42_cli(*[arg.format(busy=busy_port) for arg in args]), says)


def test_printable_strips_control_characters_and_keeps_the_rest() -> None:
    from jobcorr.terminal import printable

    assert printable("[/x] queue\x1b[2J\x07\u202eevil\tok\n") == "[/x] queue[2Jevil\tok\n"
