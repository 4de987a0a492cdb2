"""A PNG of the dashboard explaining a moment (`/?at=...`), taken by headless Chromium.

    render_report_png(app, {"at": "...", "window": "5m", "metric": "memory"}, Path("spike.png"))

Chromium is the browser the page is made for; it is found as `chromium`,
`chromium-browser` or `google-chrome`, or named by JOBCORR_CHROMIUM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette

from jobcorr.errors import JobcorrError
from jobcorr.web.server import BackgroundServer

RENDER_TIMEOUT = 180
"""Seconds for Chromium to start, load the page and draw it, on a busy machine."""
MAX_REASON = 160
"""Characters of Chromium's last stderr line quoted in an error: the reason, not a log."""


class RenderError(JobcorrError):
    """The PNG could not be made; the message says why and what to install."""


def find_chromium() -> str:
    named = os.environ.get("JOBCORR_CHROMIUM")
    for candidate in ([named] if named else []) + ["chromium", "chromium-browser", "google-chrome"]:
        found = shutil.which(candidate)
        if found:
            return found
    raise RenderError(
        "a PNG needs Chromium: install it (Debian: apt-get install chromium) "
        "or point JOBCORR_CHROMIUM at a Chromium or Chrome binary"
    )


def render_report_png(app: Starlette, query: dict[str, str], path: Path) -> Path:
    """Serve `app` on loopback for a moment and screenshot /?query (the page opened on that
    moment's explanation) into `path`."""
    chromium = find_chromium()
    if not path.resolve().parent.is_dir():
        raise RenderError(f"cannot write {path}: no directory {path.resolve().parent}")
    server = BackgroundServer(app).start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            result = _run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}", "--window-size=1340,1700",
                 "--virtual-time-budget=20000", f"--screenshot={path.resolve()}",
                 f"{server.url}/?{urlencode(query)}"]
            )  # fmt: skip
    finally:
        server.stop()
    if result.returncode != 0 or not path.is_file():
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        last = lines[-1][-MAX_REASON:] if lines else "no message"
        raise RenderError(
            f"Chromium could not write {path} (exit {result.returncode}: {last}); check that "
            "the file is writable and that Chromium starts (JOBCORR_CHROMIUM names another)"
        )
    return path


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=RENDER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RenderError(f"Chromium took over {RENDER_TIMEOUT} s to render the report") from None
    except OSError as error:
        raise RenderError(f"cannot start Chromium ({command[0]}): {error.strerror}") from None
