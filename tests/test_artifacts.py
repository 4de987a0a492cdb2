"""Generated artifacts: up to date, valid, and the rules proven by promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as operator
from grafana_foundation_sdk.models.dashboard import Dashboard

from bf42stats.deploy import DESCRIPTION
from jobcorr.artifacts import MemorySource, write_all
from jobcorr.artifacts.export import stale
from jobcorr.artifacts.grafana import expressions
from jobcorr.artifacts.rules import alerts, unit_test_cases

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool comes with Debian's prometheus package (.ci/run installs it)"
)


def load_yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_deploy_is_what_the_code_generates() -> None:
    assert stale(DESCRIPTION, DEPLOY) == [], "run: jobcorr export all --out deploy/"
    result = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "export", "all", "--out", str(DEPLOY), "--check"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout


def test_export_check_names_what_is_out_of_date(tmp_path: Path) -> None:
    write_all(DESCRIPTION, tmp_path)
    (tmp_path / "prometheus/rules.yml").write_text("groups: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "export", "all", "--out", str(tmp_path), "--check"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "prometheus/rules.yml" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "export", "all", "--out", str(tmp_path),
         "--description", "bf42stats.deploy:NOPE"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "cannot load description" in bad.stdout


@needs_promtool
@pytest.mark.parametrize("memory", ["kubernetes", "process"])
def test_promtool_checks_and_unit_tests_the_rules(tmp_path: Path, memory: str) -> None:
    if memory == "kubernetes":
        directory = DEPLOY / "prometheus"
    else:
        write_all(DESCRIPTION.with_memory(MemorySource.process()), tmp_path, ["rules"])
        directory = tmp_path / "prometheus"
    check = subprocess.run([PROMTOOL, "check", "rules", "rules.yml"], cwd=directory,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    test = subprocess.run([PROMTOOL, "test", "rules", "rules.test.yml"], cwd=directory,
                          capture_output=True, text=True)  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_must_not() -> None:
    cases = unit_test_cases(DESCRIPTION)
    for alert in alerts(DESCRIPTION):
        mine = [case for case in cases if case.alert == alert.name]
        assert any(case.expected for case in mine), alert.name
        assert any(not case.expected for case in mine), alert.name


def test_the_seeds_alerts_are_repaired() -> None:
    rules = {r["alert"]: r for r in load_yaml_documents(DEPLOY / "prometheus/rules.yml")[0]
             ["groups"][0]["rules"]}  # fmt: skip
    memory_and_sync = rules["HighMemoryDuringClickHouseSync"]["expr"]
    assert "and on(namespace, pod)" in memory_and_sync
    assert "[1m]" not in memory_and_sync  # four 30 s scrapes at least
    for rule in rules.values():
        for window in re.findall(r"\[(\d+)([smh])\]", rule["expr"]):
            seconds = int(window[0]) * {"s": 1, "m": 60, "h": 3600}[window[1]]
            assert seconds >= 4 * DESCRIPTION.scrape_interval_seconds, rule["alert"]
        annotations = rule["annotations"]["description"] + rule["annotations"]["summary"]
        names_a_job = ".Labels.job" in annotations or "$labels.job" in annotations
        assert names_a_job or any(job in annotations for job in DESCRIPTION.jobs), rule["alert"]


def correlation_dashboard() -> dict:
    return json.loads((DEPLOY / "grafana/background-job-correlation.json").read_text())


def test_the_dashboard_loads_back_through_the_sdk_models_with_the_seeds_panels_first() -> None:
    for name in ("background-job-correlation.json", "python-runtime.json"):
        data = json.loads((DEPLOY / "grafana" / name).read_text())
        Dashboard.from_json(data)
    data = correlation_dashboard()
    titles = [panel["title"] for panel in data["panels"]]
    assert titles[:4] == ["Memory", "Active Background Jobs", "Job Volume", "GC Activity"]
    for title in ("CPU", "Log volume by job", "p95 duration by job", "Last duration", "Failures",
                  "Which job runs most frequently?", "Which job takes longest?",
                  "ClickHouse sync volume over time", "Memory vs active players"):  # fmt: skip
        assert title in titles
    assert data["graphTooltip"] == 1
    positions = [(p["gridPos"]["y"], p["gridPos"]["x"]) for p in data["panels"]]
    assert positions[:4] == sorted(positions[:4]) and len({y for y, _ in positions[:4]}) == 4
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "pod"} <= set(variables)
    assert all(p["datasource"]["uid"] == "${datasource}" for p in data["panels"])
    assert any("bg_job_in_progress" in a.get("expr", "") for a in data["annotations"]["list"])


def grafana_to_promql(expr: str) -> str:
    """What Grafana sends: variables substituted."""
    return expr.replace("$__rate_interval", "1m").replace("$namespace", ".*").replace("$pod", ".*")


@needs_promtool
def test_every_dashboard_expression_parses_and_rates_use_rate_interval(tmp_path: Path) -> None:
    exprs = [
        expr
        for name in ("background-job-correlation.json", "python-runtime.json")
        for expr in expressions(json.loads((DEPLOY / "grafana" / name).read_text()))
    ]
    assert len(exprs) > 20
    for expr in exprs:
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", expr
    rules = {"groups": [{"name": "parse", "rules": [
        {"record": f"dashboard:expr{i}", "expr": grafana_to_promql(e)} for i, e in enumerate(exprs)
    ]}]}  # fmt: skip
    (tmp_path / "exprs.yml").write_text(yaml.safe_dump(rules))
    check = subprocess.run([PROMTOOL, "check", "rules", "exprs.yml"], cwd=tmp_path,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_kubernetes_manifests_validate_offline() -> None:
    deployment, service = load_yaml_documents(DEPLOY / "kubernetes/deployment.yaml")
    for manifest in (deployment, service):
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    [monitor] = load_yaml_documents(DEPLOY / "kubernetes/servicemonitor.yaml")
    parsed = operator.ServiceMonitor.model_validate(monitor)
    [endpoint] = parsed.spec.endpoints
    assert endpoint.honor_labels is True  # the key we rely on, checked by name
    assert endpoint.interval == "30s" and endpoint.path == "/metrics"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True

    [rule] = load_yaml_documents(DEPLOY / "kubernetes/prometheusrule.yaml")
    parsed_rule = operator.PrometheusRule.model_validate(rule)
    assert [r.alert for r in parsed_rule.spec.groups[0].rules] == [
        a.name for a in alerts(DESCRIPTION)
    ]
    plain_rules = load_yaml_documents(DEPLOY / "prometheus/rules.yml")[0]
    assert rule["spec"] == plain_rules

    [scrape] = load_yaml_documents(DEPLOY / "prometheus/scrape-config.yml")
    assert scrape["scrape_configs"][0]["honor_labels"] is True
