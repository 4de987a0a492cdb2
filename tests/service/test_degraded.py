"""bf42-stats on a data disk that fills up: /healthz says degraded, then ok again."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from support import bf42_stats, fill, free_port, tmpfs, wait_for

DATA_DISK = "256m"  # the demo's SQLite, chdb and recorder store, with room to spare
PATIENCE = 120.0  # a flush (5 s) plus the longest retry backoff (30 s), on a busy machine
POLL = 0.5  # seconds between looks at /healthz


def health(port: int) -> dict[str, str]:
    try:
        answer: dict[str, str] = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
    except httpx.HTTPError:
        return {"status": "unreachable"}
    return answer


def status(port: int) -> str:
    return health(port)["status"]


def test_healthz_says_degraded_with_the_reason_while_the_store_cannot_write(
    tmp_path: Path,
) -> None:
    port = free_port()
    with tmpfs(tmp_path / "data", DATA_DISK) as data:
        process = bf42_stats("serve", "--demo", "--speed", "60", "--port", str(port),
                             "--data-dir", str(data))  # fmt: skip
        try:
            wait_for(lambda: status(port) == "ok", "the service to start", PATIENCE, POLL)
            filler = fill(data)
            wait_for(lambda: status(port) == "degraded", "/healthz to say degraded", PATIENCE, POLL)
            assert "database or disk is full" in health(port)["reason"]
            filler.unlink()
            wait_for(lambda: health(port) == {"status": "ok"}, "ok again", PATIENCE, POLL)
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=60)
    assert "the jobcorr recorder writes to" in err and " again; dropped meanwhile" in err
