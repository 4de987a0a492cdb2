"""Dashboard credentials over real HTTP: every malformed or foreign header is a 401, never
a 500; schemes are case-insensitive; a user without a password is refused at start."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bf42stats.app import Service, create_app
from bf42stats.config import load_settings
from jobcorr.errors import InvalidSetting
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.web.app import dashboard_app
from jobcorr.web.auth import Credentials
from jobcorr.web.server import BackgroundServer
from support import bf42_stats, free_port, wait_for

SERVICE_START = 120.0  # seconds for the demo service and its dashboard on a busy machine
TOKEN = "t\u00f6k\u00e9n-\u2603"  # non-ASCII on purpose: compared as UTF-8 bytes
USER, PASSWORD = "ops", "p\u00e4ss:word"


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    missing_store = tmp_path_factory.mktemp("auth") / "none.sqlite3"  # 503 once let in
    app = dashboard_app(
        lambda: EmbeddedTimeline(missing_store), credentials=Credentials(USER, PASSWORD, TOKEN)
    )
    server = BackgroundServer(app).start()
    yield server.url
    server.stop()


def status(url: str, authorization: bytes | None) -> int:
    headers = {} if authorization is None else {"Authorization": authorization}
    return httpx.get(f"{url}/api/series", headers=headers, timeout=30).status_code


LET_IN = 503  # past the credentials: the (missing) store answers


@pytest.mark.parametrize(
    "header",
    [
        basic(USER, PASSWORD),
        b"basic " + basic(USER, PASSWORD)[6:],
        b"BASIC " + basic(USER, PASSWORD)[6:],
        b"Bearer " + TOKEN.encode(),
        b"bearer " + TOKEN.encode(),
        b"BeArEr " + TOKEN.encode(),
    ],
)
def test_the_right_credentials_in_any_scheme_case_are_let_in(url: str, header: bytes) -> None:
    assert status(url, header) == LET_IN


@pytest.mark.parametrize(
    "header",
    [
        None,
        b"",
        b"Basic",
        b"Bearer",
        basic(USER, "wrong"),
        basic("root", PASSWORD),
        basic(USER, ""),
        b"Basic !!!not-base64!!!",
        b"Basic " + base64.b64encode(b"no colon at all"),
        b"Basic " + base64.b64encode(b"\xff\xfe\x00:\x80"),
        b"Bearer " + TOKEN.encode()[:-1],  # cut inside a UTF-8 sequence
        b"Bearer t\xf6k\xe9n",  # latin-1 bytes, not the token's UTF-8
        b"Bearer \xc3\x28",  # invalid UTF-8
        "Bearer \u00e9".encode(),
        b"Digest username=ops",
        b"Negotiate YIIB",
        b"Bearer " + TOKEN.encode() + b"x",
        b"x" * 8000,
    ],
)
def test_anything_else_is_a_401_never_a_500(url: str, header: bytes | None) -> None:
    assert status(url, header) == 401


def test_the_basic_challenge_is_sent(url: str) -> None:
    response = httpx.get(f"{url}/", timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="jobcorr"'


def test_a_user_without_a_password_is_refused_when_configured() -> None:
    with pytest.raises(InvalidSetting, match="without a password"):
        Credentials(username="ops")
    with pytest.raises(InvalidSetting, match="without JOBCORR_DASHBOARD_USER"):
        Credentials(password="pw")


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "jobcorr.cli", "dashboard", "--source", "embedded:/nonexistent"],
        [sys.executable, "-m", "bf42stats.cli", "serve"],
    ],
)
def test_both_commands_refuse_a_user_without_a_password(command: list[str], tmp_path: Path) -> None:
    env = {"JOBCORR_DASHBOARD_USER": "ops", "BF42_DATA_DIR": str(tmp_path), "PATH": "/usr/bin"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    output = done.stdout + done.stderr
    assert "without a password" in output and "Traceback" not in output


def test_metrics_and_healthz_stay_open_and_the_dashboard_asks(tmp_path: Path) -> None:
    """The real service: /metrics and /healthz answer anyone; the dashboard (its own
    process, where the service redirects) asks for the credentials it inherited."""
    port = free_port()
    token = {"JOBCORR_DASHBOARD_TOKEN": TOKEN}
    service = bf42_stats("serve", "--demo", "--speed", "10", "--port", str(port),
                         "--data-dir", str(tmp_path), env=token)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(f"{url}/healthz") == 200, "the service", SERVICE_START, 0.5)
        assert httpx.get(f"{url}/metrics", timeout=30).status_code == 200
        dashboard = httpx.get(f"{url}/api/series", timeout=30).headers["location"]
        wait_for(lambda: _status(dashboard) == 401, "the dashboard to ask", SERVICE_START, 0.5)
        bearer = {"Authorization": b"Bearer " + TOKEN.encode()}
        assert httpx.get(dashboard, headers=bearer, timeout=30).status_code == 200
    finally:
        service.send_signal(signal.SIGTERM)
        service.communicate(timeout=60)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_metrics_can_be_protected_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBCORR_DASHBOARD_TOKEN", TOKEN)
    settings = load_settings(None, {"BF42_DATA_DIR": str(tmp_path), "BF42_PROTECT_METRICS": "true"})
    server = BackgroundServer(create_app(Service(settings, registry=CollectorRegistry()))).start()
    try:
        assert httpx.get(f"{server.url}/metrics", timeout=30).status_code == 401
        bearer = {"Authorization": b"Bearer " + TOKEN.encode()}
        assert httpx.get(f"{server.url}/metrics", headers=bearer, timeout=30).status_code == 200
        assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 503  # open: stopped
    finally:
        server.stop()
    monkeypatch.delenv("JOBCORR_DASHBOARD_TOKEN")
    with pytest.raises(InvalidSetting, match="BF42_PROTECT_METRICS needs credentials"):
        create_app(Service(settings, registry=CollectorRegistry()))
