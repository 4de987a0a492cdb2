"""`jobcorr check URL`, run as a real command against real endpoints on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

import jobcorr
from jobcorr import contract
from support import free_port


def jobcorr_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_correct_endpoint_passes(registry) -> None:
    server = jobcorr.serve_metrics(port=0, registry=registry)
    try:
        with jobcorr.track("clickhouse_sync", registry=registry):
            pass
        result = jobcorr_check(server.url, "--require-job", "clickhouse_sync")
        assert result.returncode == 0, result.stdout + result.stderr
        families = len(contract.CONTRACT)
        assert f"{families} of {families} families as the contract says" in result.stdout
        missing_job = jobcorr_check(server.url, "--require-job", "ranking_calc")
        assert missing_job.returncode == 1
        assert "no series for job ranking_calc" in missing_job.stdout
    finally:
        server.stop()


def test_wrong_types_labels_and_missing_families_are_reported_family_by_family() -> None:
    registry = CollectorRegistry()
    # What a hand-rolled exporter, or a relabelled scrape, might expose instead.
    Counter("bg_job_in_progress", "wrong type", ["job"], registry=registry).labels("a").inc()
    Counter("bg_job_executions", "relabelled", ["exported_job"], registry=registry).labels(
        "a"
    ).inc()
    httpd, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{httpd.server_port}/metrics"
        result = jobcorr_check(url, "--json")
        assert result.returncode == 1
        verdicts = {r["family"]: r for r in json.loads(result.stdout)}
        assert verdicts["bg_job_in_progress"]["verdict"] == "wrong_type"
        assert "type is counter, expected gauge" in verdicts["bg_job_in_progress"]["detail"]
        assert verdicts["bg_job_executions_total"]["verdict"] == "wrong_labels"
        assert "exported_job" in verdicts["bg_job_executions_total"]["detail"]
        assert verdicts["bg_job_peak_rss_bytes"]["verdict"] == "missing"
        human = jobcorr_check(url)
        assert human.returncode == 1
        assert "wrong_type" in human.stdout and "missing" in human.stdout
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_unreachable_endpoint_exits_2_with_the_reason() -> None:
    result = jobcorr_check(f"http://127.0.0.1:{free_port()}/metrics", "--timeout", "2")
    assert result.returncode == 2
    assert "cannot fetch" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, b"not here", "answered HTTP 404"),
        (200, b"<html>a login page</html>\n", "not a valid exposition"),
    ],
)
def test_an_endpoint_that_is_not_metrics_exits_2(status: int, body: bytes, message: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        result = jobcorr_check(f"http://127.0.0.1:{httpd.server_port}/metrics")
        assert result.returncode == 2
        assert message in result.stderr
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_help_explains_the_exit_codes() -> None:
    result = jobcorr_check("--help")
    assert result.returncode == 0
    assert "Exit status" in result.stdout and "--require-job" in result.stdout
