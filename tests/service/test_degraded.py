"""bf42-stats on a data disk that fills up: /healthz says degraded, then ok again."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from support import bf42_stats, fill, free_port, tmpfs

DATA_DISK = "256m"  # the demo's SQLite, chdb and recorder store, with room to spare
PATIENCE = 120.0  # a flush (5 s) plus the longest retry backoff (30 s), on a busy machine


def health(port: int) -> dict[str, str]:
    try:
        answer: dict[str, str] = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
    except httpx.HTTPError:
        return {"status": "unreachable"}
    return answer


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"waited {PATIENCE}s for {what}"
        time.sleep(0.5)


def test_healthz_says_degraded_with_the_reason_while_the_store_cannot_write(
    tmp_path: Path,
) -> None:
    port = free_port()
    with tmpfs(tmp_path / "data", DATA_DISK) as data:
        process = bf42_stats("serve", "--demo", "--speed", "60", "--port", str(port),
                             "--data-dir", str(data))  # fmt: skip
        try:
            wait_for(lambda: health(port)["status"] == "ok", "the service to start")
            filler = fill(data)
            wait_for(lambda: health(port)["status"] == "degraded", "/healthz to say degraded")
            assert "database or disk is full" in health(port)["reason"]
            filler.unlink()
            wait_for(lambda: health(port) == {"status": "ok"}, "/healthz to say ok again")
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=60)
    assert "the jobcorr recorder writes to" in err and " again; dropped meanwhile" in err
