"""End to end with a real Prometheus (Debian's package) scraping a running bf42-stats.

Two Prometheus servers scrape the service every second: one with the generated scrape
config (honor_labels: true) and one with Prometheus's default (honor_labels: false), so
the test can show the seed's `{job="..."}` defect and its fix side by side.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bf42stats.deploy import DESCRIPTION
from jobcorr.artifacts.grafana import correlation_dashboard, expressions, runtime_dashboard
from jobcorr.artifacts.kubernetes import scrape_config
from jobcorr.artifacts.rules import rule_groups
from support import RESTORE_JOB, bf42_stats, free_port, require_tool

JOBS = {"stats_collection", "clickhouse_sync", "ranking_calc", "gamification"}
SHOW_UP = 180.0
"""Seconds for the demo to start (chdb, three Prometheus servers) and run every job once,
on a 2-core machine running two test suites (90 s was too short beside them)."""
SEED = yaml.safe_load((Path(__file__).parent / "fixtures/seed_queries.yml").read_text())
LOCAL = DESCRIPTION.plain()


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{expr!r}: {body.get('error')}"
        return list(body["data"]["result"])


def start_prometheus(
    tmp: Path, scrape: dict, rules: dict | None = None
) -> tuple[subprocess.Popen[str], Prometheus]:
    tmp.mkdir()
    port = free_port()
    config: dict = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{**scrape, "scrape_interval": "1s"}],
    }
    if rules:
        (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
        config["rule_files"] = [str(tmp / "rules.yml")]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [require_tool("prometheus", "prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    return process, Prometheus(f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Prometheus, Prometheus, Prometheus]]:
    """(Prometheus with the generated scrape config, one with default labels, one with
    default labels and the README's relabelling)."""
    tmp = tmp_path_factory.mktemp("e2e")
    app_port = free_port()
    service = bf42_stats(
        "serve", "--demo", "--speed", "60", "--port", str(app_port), "--data-dir", str(tmp / "data")
    )
    generated = scrape_config(LOCAL, [f"127.0.0.1:{app_port}"])["scrape_configs"][0]
    honoring, prom = start_prometheus(tmp / "honor", generated, rule_groups(LOCAL))
    defaulting, plain = start_prometheus(tmp / "default", {**generated, "honor_labels": False})
    relabelling, relabelled = start_prometheus(
        tmp / "relabel",
        {**generated, "honor_labels": False, "metric_relabel_configs": RESTORE_JOB},
    )
    try:
        deadline = time.monotonic() + SHOW_UP
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                seen = prom.query("bg_job_executions_total > 0")
                rounds = prom.query('bg_clickhouse_records_synced_total{operation="rounds"} > 0')
            except (httpx.HTTPError, json.JSONDecodeError):
                continue
            if {s["metric"]["job"] for s in seen} == JOBS and rounds:
                time.sleep(5)  # a few more scrapes, so that every rate() has samples
                break
        else:
            shown = sorted({s["metric"]["job"] for s in seen})
            pytest.fail(f"of the jobs {sorted(JOBS)}, only {shown} showed up in Prometheus "
                        f"within {SHOW_UP:.0f} s")  # fmt: skip
        yield prom, plain, relabelled
    finally:
        for process in (honoring, defaulting, relabelling, service):
            process.send_signal(signal.SIGTERM)
        honoring.wait(timeout=30)
        defaulting.wait(timeout=30)
        relabelling.wait(timeout=30)
        service.communicate(timeout=60)


@pytest.fixture(scope="module")
def prometheus(servers: tuple[Prometheus, Prometheus]) -> Prometheus:
    return servers[0]


def jobs_in(result: list[dict]) -> set[str]:
    return {series["metric"].get("job", "") for series in result}


@pytest.mark.parametrize("entry", SEED, ids=[e["seed"].split("\n")[0][:60] for e in SEED])
def test_every_seed_query_evaluates_and_answers(prometheus: Prometheus, entry: dict) -> None:
    seed = prometheus.query(entry["seed"])  # must not error, even where it is empty
    answer = prometheus.query(entry["repaired"]) if "repaired" in entry else seed
    if "may_be_empty" not in entry:
        assert answer, entry
    if entry.get("per_job"):
        assert jobs_in(answer) >= JOBS, entry
    if "defect" in entry:
        assert seed == [] and prometheus.query(entry["defect"]) == [], entry


def grafana_to_promql(expr: str) -> str:
    for variable in ("$namespace", "$pod", "$instance"):
        expr = expr.replace(variable, ".*")
    return expr.replace("$__rate_interval", "1m")  # scrapes come late on a busy machine


def dashboard_expressions() -> list[str]:
    return [
        *expressions(correlation_dashboard(LOCAL)),
        *expressions(runtime_dashboard(LOCAL)),
    ]


@pytest.mark.parametrize("expr", dashboard_expressions())
def test_every_dashboard_expression_returns_data(prometheus: Prometheus, expr: str) -> None:
    result = prometheus.query(grafana_to_promql(expr))
    assert result, expr
    if "by (job" in expr:
        assert jobs_in(result) >= JOBS, expr


@pytest.mark.parametrize(
    "rule", rule_groups(LOCAL)["groups"][0]["rules"], ids=lambda rule: rule["alert"]
)
def test_every_rule_expression_evaluates(prometheus: Prometheus, rule: dict) -> None:
    prometheus.query(rule["expr"])
    alerts = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()
    [group] = alerts["data"]["groups"]
    [loaded] = [r for r in group["rules"] if r["name"] == rule["alert"]]
    assert loaded["health"] == "ok", loaded.get("lastError")


def test_without_honor_labels_the_seeds_job_selector_returns_nothing(servers) -> None:
    honoring, plain, _ = servers
    selector = 'rate(bg_job_executions_total{job="clickhouse_sync"}[1m])'
    assert honoring.query(selector)
    assert plain.query("bg_job_executions_total")  # scraped, but ...
    assert plain.query(selector) == []  # ... the seed's selector finds nothing
    renamed = plain.query('bg_job_executions_total{exported_job="clickhouse_sync"}')
    assert renamed and {s["metric"]["job"] for s in renamed} == {DESCRIPTION.service}


def test_where_honor_labels_is_overridden_the_readmes_relabelling_restores_job(servers) -> None:
    _, _, relabelled = servers
    selector = 'rate(bg_job_executions_total{job="clickhouse_sync"}[1m])'
    assert relabelled.query(selector)
    assert relabelled.query('{exported_job!=""}') == []
    assert {s["metric"]["job"] for s in relabelled.query("process_resident_memory_bytes")} == {
        DESCRIPTION.service
    }
