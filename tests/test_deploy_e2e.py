"""The plain set of deploy/ as an operator deploys it, on Prometheus and on VictoriaMetrics
with vmalert, scraping a running bf42-stats.

Both engines load deploy/prometheus/scrape-config.yml (the target adapted to the test's
service, the interval to SCRAPE seconds so rates fill in quickly) and deploy/prometheus/rules.yml,
plus HighMemoryUsage generated with a limit below the service's RSS: it must fire, and not
before its `for`. Every expression of the plain dashboards in deploy/grafana/ and every
input of every rule must return data. A `jobcorr dashboard` over the same Prometheus
answers the URL of Grafana's "Explain this moment" link.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import httpx
import pytest
import yaml

from bf42stats.deploy import DESCRIPTION
from jobcorr import contract
from jobcorr.artifacts.grafana import expressions
from jobcorr.artifacts.rules import rule_groups
from jobcorr.times import parse_duration
from support import bf42_stats, free_port, require_tool, wait_ready

pytestmark = pytest.mark.slow

DEPLOY = Path(__file__).parent.parent / "deploy"
JOBS = {"stats_collection", "clickhouse_sync", "ranking_calc", "gamification"}
WAIT = 180.0  # seconds any step may take on a busy 2-core machine
FORCED_LIMIT = 1e6  # bytes: far below any Python process's RSS
FOR = parse_duration(DESCRIPTION.thresholds.alert_for)
SCRAPE = "5s"  # shorter than the deployed 30 s, long enough for /metrics on a loaded machine


@dataclass
class Engine:
    name: str
    query_url: str
    alerts_url: str

    def query(self, expr: str) -> list[dict]:
        response = httpx.get(f"{self.query_url}/api/v1/query", params={"query": expr}, timeout=30)
        body = response.json()
        assert body["status"] == "success", f"{self.name}: {expr!r}: {body.get('error')}"
        return list(body["data"]["result"])

    def alerts(self) -> list[dict]:
        body = httpx.get(f"{self.alerts_url}/api/v1/alerts", timeout=30).json()
        return list(body["data"]["alerts"])


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def scrape_config(app_port: int) -> dict:
    """deploy/prometheus/scrape-config.yml, its target adapted."""
    [job] = load(DEPLOY / "prometheus/scrape-config.yml")["scrape_configs"]
    return {
        "scrape_configs": [
            {
                **job,
                "scrape_interval": SCRAPE,
                "scrape_timeout": SCRAPE,
                "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}],
            }
        ]
    }


def forced_rules() -> dict:
    """HighMemoryUsage as generated, with a limit below the service's RSS."""
    forced = replace(
        DESCRIPTION.plain(), thresholds=replace(DESCRIPTION.thresholds, memory_bytes=FORCED_LIMIT)
    )
    [group] = rule_groups(forced)["groups"]
    rules = [r for r in group["rules"] if r["alert"] == "HighMemoryUsage"]
    return {"groups": [{"name": "forced", "rules": rules}]}


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=out)


@dataclass
class Fleet:
    engines: dict[str, Engine]
    started: float
    app_port: int
    dashboard_url: str


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    prometheus = require_tool("prometheus", "prometheus")
    victoria = require_tool("victoria-metrics", "victoria-metrics")
    vmalert = require_tool("vmalert", "victoria-metrics")
    tmp = tmp_path_factory.mktemp("deploy-e2e")
    app_port = free_port()
    (tmp / "scrape.yml").write_text(yaml.safe_dump(scrape_config(app_port)))
    rule_files = [str(DEPLOY / "prometheus/rules.yml"), str(tmp / "forced.yml")]
    (tmp / "forced.yml").write_text(yaml.safe_dump(forced_rules()))
    config = {
        **load(tmp / "scrape.yml"),
        "rule_files": rule_files,
        "global": {"scrape_interval": SCRAPE, "evaluation_interval": "1s"},
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    ports = {name: free_port() for name in ("prometheus", "victoria", "vmalert", "dashboard")}
    service = bf42_stats(
        "serve",
        "--demo",
        "--speed",
        "60",
        "--port",
        str(app_port),
        "--data-dir",
        str(tmp / "data"),
        env={"BF42_INCIDENT": ""},
    )
    processes = [
        start(
            [
                prometheus,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            tmp / "prometheus.log",
        ),
        start(
            [
                victoria,
                f"-promscrape.config={tmp / 'scrape.yml'}",
                f"-storageDataPath={tmp / 'vm'}",
                f"-httpListenAddr=127.0.0.1:{ports['victoria']}",
                "-search.latencyOffset=0s",
                "-loggerLevel=ERROR",
            ],
            tmp / "victoria.log",
        ),
    ]
    prom_url = f"http://127.0.0.1:{ports['prometheus']}"
    vm_url = f"http://127.0.0.1:{ports['victoria']}"
    try:
        wait_ready(f"{vm_url}/health")
        processes.append(
            start(
                [
                    vmalert,
                    f"-datasource.url={vm_url}",
                    *(f"-rule={f}" for f in rule_files),
                    "-evaluationInterval=1s",
                    f"-httpListenAddr=127.0.0.1:{ports['vmalert']}",
                    f"-notifier.url=http://127.0.0.1:{free_port()}",
                    "-loggerLevel=ERROR",
                ],
                tmp / "vmalert.log",
            )
        )
        processes.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "jobcorr.cli",
                    "dashboard",
                    "--source",
                    f"prometheus:{prom_url}",
                    "--match",
                    f'instance="127.0.0.1:{app_port}"',
                    "--port",
                    str(ports["dashboard"]),
                ],
                tmp / "dashboard.log",
            )
        )
        wait_ready(f"{prom_url}/-/ready")
        started = time.time()
        wait_ready(f"http://127.0.0.1:{ports['vmalert']}/health")
        engines = {
            "prometheus": Engine("prometheus", prom_url, prom_url),
            "victoria-metrics": Engine(
                "victoria-metrics", vm_url, f"http://127.0.0.1:{ports['vmalert']}"
            ),
        }
        wait_for_jobs(engines.values())
        yield Fleet(engines, started, app_port, f"http://127.0.0.1:{ports['dashboard']}")
    finally:
        for process in processes:
            process.terminate()
        service.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        service.communicate(timeout=60)


def wait_for_jobs(engines: Any) -> None:
    """Until every job has run and synced rounds, as each engine sees it."""
    deadline = time.monotonic() + WAIT
    pending = list(engines)
    while pending and time.monotonic() < deadline:
        time.sleep(1)
        for engine in list(pending):
            try:
                seen = {s["metric"]["job"] for s in engine.query("bg_job_executions_total > 0")}
                rounds = engine.query('bg_clickhouse_records_synced_total{operation="rounds"} > 0')
            except (httpx.HTTPError, json.JSONDecodeError, AssertionError):
                continue
            if seen >= JOBS and rounds:
                pending.remove(engine)
    if pending:
        pytest.fail(f"not every job showed up within {WAIT:.0f} s in {[e.name for e in pending]}")
    time.sleep(15)  # a few more scrapes, so that every rate() has samples


ENGINES = ["prometheus", "victoria-metrics"]


def grafana_to_promql(expr: str) -> str:
    for variable in ("$namespace", "$pod", "$instance"):
        expr = expr.replace(variable, ".*")
    return expr.replace("$__rate_interval", "1m")  # scrapes come late on a busy machine


PLAIN_EXPRESSIONS = [
    expr
    for name in ("background-job-correlation.json", "python-runtime.json")
    for expr in expressions(json.loads((DEPLOY / "grafana" / name).read_text()))
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("expr", PLAIN_EXPRESSIONS)
def test_every_plain_dashboard_expression_returns_data(fleet: Fleet, engine: str, expr: str):
    result = fleet.engines[engine].query(grafana_to_promql(expr))
    assert result, expr
    # a job with no run in the window has no quantile: NaN in Prometheus, absent in VictoriaMetrics
    if "by (job" in expr and "histogram_quantile" not in expr:
        assert {s["metric"].get("job") for s in result} >= JOBS, expr


PLAIN_RULES = load(DEPLOY / "prometheus/rules.yml")["groups"][0]["rules"]
SELECTOR = re.compile(r"\b((?:bg|process|python|container)_[a-z0-9_]+)(\{[^}]*\})?")


def rule_inputs(expr: str) -> list[str]:
    """Every series selector a rule reads."""
    return sorted({name + (matchers or "") for name, matchers in SELECTOR.findall(expr)})


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("rule", PLAIN_RULES, ids=lambda rule: rule["alert"])
def test_every_rule_input_returns_data(fleet: Fleet, engine: str, rule: dict) -> None:
    inputs = rule_inputs(rule["expr"])
    assert inputs
    for selector in inputs:
        assert fleet.engines[engine].query(selector), f"{rule['alert']}: {selector}"
    assert contract.PROCESS_RESIDENT_MEMORY in json.dumps(PLAIN_RULES)


@pytest.mark.parametrize("engine", ENGINES)
def test_high_memory_usage_fires_within_its_for(fleet: Fleet, engine: str) -> None:
    deadline = fleet.started + FOR + WAIT
    while time.time() < deadline:
        alerts = [
            a
            for a in fleet.engines[engine].alerts()
            if a["labels"]["alertname"] == "HighMemoryUsage"
        ]
        firing = [a for a in alerts if a["state"] == "firing"]
        if firing:
            [alert] = firing
            active = datetime.fromisoformat(alert["activeAt"].replace("Z", "+00:00"))
            assert time.time() - active.timestamp() >= FOR - 1  # pending first, for its `for`
            assert alert["labels"]["instance"] == f"127.0.0.1:{fleet.app_port}"
            assert "Jobs running:" in alert["annotations"]["description"]
            return
        time.sleep(2)
    pytest.fail(f"HighMemoryUsage did not fire on {engine} within {FOR:.0f} s + {WAIT:.0f} s")


def test_grafanas_explain_link_opens_jobcorrs_answer(fleet: Fleet) -> None:
    dashboard = json.loads((DEPLOY / "grafana/background-job-correlation.json").read_text())
    [memory] = [p for p in dashboard["panels"] if p["title"] == "Memory Usage"]
    [link] = memory["fieldConfig"]["defaults"]["links"]
    clicked = int(time.time()) - 5
    url = (
        link["url"]
        .replace("${__value.time:date:seconds}", str(clicked))
        .replace("${__field.labels.instance}", f"127.0.0.1:{fleet.app_port}")
        .replace(DESCRIPTION.explain_url, fleet.dashboard_url)
    )
    page = httpx.get(url, timeout=60)
    assert page.status_code == 200 and "<html" in page.text.lower()
    params = dict(parse_qsl(urlparse(url).query))
    assert params["at"] == str(clicked) and params["metric"] == "memory"
    answer = httpx.get(
        f"{fleet.dashboard_url}/api/explain",
        params={"at": params["at"], "metric": params["metric"]},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    explanation = answer.json()
    assert explanation["conclusion"], explanation
