"""Generated artifacts: up to date, valid, and the rules proven by promtool."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as operator
from grafana_foundation_sdk.models.dashboard import Dashboard

from bf42stats.deploy import DESCRIPTION
from jobcorr import contract
from jobcorr.artifacts import kubernetes, render_all, write_all
from jobcorr.artifacts.export import stale
from jobcorr.artifacts.grafana import expressions
from jobcorr.artifacts.rules import alerts, unit_test_cases
from support import free_port, require_tool, wait_ready

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool", "prometheus")


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
    assert bad.returncode == 2 and "cannot load description" in bad.stderr


@pytest.mark.parametrize("directory", ["kubernetes", "prometheus"])
def test_promtool_checks_and_unit_tests_the_rules(directory: str, promtool: str) -> None:
    check = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=DEPLOY / directory,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    test = subprocess.run([promtool, "test", "rules", "rules.test.yml"], cwd=DEPLOY / directory,
                          capture_output=True, text=True)  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_must_not() -> None:
    cases = unit_test_cases(DESCRIPTION)
    for alert in alerts(DESCRIPTION):
        mine = [case for case in cases if case.alert == alert.name]
        assert any(case.expected for case in mine), alert.name
        assert any(not case.expected for case in mine), alert.name


@pytest.mark.parametrize(("directory", "on"), [("kubernetes", "namespace, pod"),
                                               ("prometheus", "instance")])  # fmt: skip
def test_the_seeds_alerts_are_repaired(directory: str, on: str) -> None:
    rules = {r["alert"]: r for r in load_yaml_documents(DEPLOY / directory / "rules.yml")[0]
             ["groups"][0]["rules"]}  # fmt: skip
    memory_and_sync = rules["HighMemoryDuringClickHouseSync"]["expr"]
    assert f"and on({on})" in memory_and_sync
    assert "[1m]" not in memory_and_sync  # four 30 s scrapes at least
    for rule in rules.values():
        for window in re.findall(r"\[(\d+)([smh])\]", rule["expr"]):
            seconds = int(window[0]) * {"s": 1, "m": 60, "h": 3600}[window[1]]
            assert seconds >= 4 * DESCRIPTION.scrape_interval_seconds, rule["alert"]
        annotations = rule["annotations"]["description"] + rule["annotations"]["summary"]
        names_a_job = ".Labels.job" in annotations or "$labels.job" in annotations
        assert names_a_job or any(job in annotations for job in DESCRIPTION.jobs), rule["alert"]


DASHBOARDS = ("grafana", "kubernetes/grafana")


def correlation_dashboard(directory: str = "grafana") -> dict:
    return json.loads((DEPLOY / directory / "background-job-correlation.json").read_text())


@pytest.mark.parametrize("directory", DASHBOARDS)
def test_the_dashboard_loads_back_through_the_sdk_models_with_the_seeds_panels_first(
    directory: str,
) -> None:
    for name in ("background-job-correlation.json", "python-runtime.json"):
        data = json.loads((DEPLOY / directory / name).read_text())
        Dashboard.from_json(data)
    data = correlation_dashboard(directory)
    titles = [panel["title"] for panel in data["panels"]]
    assert titles[:4] == ["Memory Usage", "Active Background Jobs", "Job Volume", "GC Activity"]
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
    assert all(p["datasource"]["uid"] == "${datasource}" for p in data["panels"])
    [runs] = [a for a in data["annotations"]["list"] if "expr" in a]
    assert "bg_job_last_start_timestamp_seconds" in runs["expr"] and runs["useValueForTime"]


def test_each_set_selects_its_own_memory_and_process_labels() -> None:
    plain, kube = correlation_dashboard("grafana"), correlation_dashboard("kubernetes/grafana")
    assert [v["name"] for v in plain["templating"]["list"]] == ["datasource", "instance"]
    assert [v["name"] for v in kube["templating"]["list"]] == ["datasource", "namespace", "pod"]
    plain_text, kube_text = json.dumps(plain), json.dumps(kube)
    assert "process_resident_memory_bytes" in plain_text and "container_" not in plain_text
    assert "container_memory_working_set_bytes" in kube_text
    assert "process_resident_memory_bytes" not in kube_text
    plain_rules = (DEPLOY / "prometheus/rules.yml").read_text()
    assert "process_resident_memory_bytes" in plain_rules and "container_" not in plain_rules
    assert "container_memory_working_set_bytes" in (DEPLOY / "kubernetes/rules.yml").read_text()


@pytest.mark.parametrize("directory", DASHBOARDS)
def test_panels_keep_their_ids_and_variables_carry_none(directory: str) -> None:
    for name in ("background-job-correlation.json", "python-runtime.json"):
        data = json.loads((DEPLOY / directory / name).read_text())
        ids = [panel["id"] for panel in data["panels"]]
        assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)
        assert all("id" not in variable for variable in data["templating"]["list"])
    # a link to a panel must survive regeneration: the seed's panels keep these ids
    by_title = {p["title"]: p["id"] for p in correlation_dashboard(directory)["panels"]}
    assert [by_title[t] for t in ("Memory Usage", "Active Background Jobs", "Job Volume",
                                  "GC Activity", "CPU")] == [1, 2, 3, 4, 5]  # fmt: skip


def explain_links(dashboard: dict) -> dict[str, str]:
    return {
        panel["title"]: link["url"]
        for panel in dashboard["panels"]
        for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
        if link["title"] == "Explain this moment"
    }


def test_memory_and_cpu_panels_link_to_the_answer_with_time_and_process() -> None:
    plain = explain_links(correlation_dashboard("grafana"))
    assert set(plain) == {"Memory Usage", "CPU"}
    assert plain["Memory Usage"] == (
        "http://127.0.0.1:8090/?at=${__value.time:date:seconds}"
        "&metric=memory&instance=${__field.labels.instance}"
    )
    assert plain["CPU"].startswith("http://127.0.0.1:8090/?at=") and "&metric=cpu&" in plain["CPU"]
    kube = explain_links(correlation_dashboard("kubernetes/grafana"))
    assert kube["Memory Usage"].endswith(
        "&namespace=${__field.labels.namespace}&pod=${__field.labels.pod}"
    )


def test_export_options_set_the_link_and_the_monitor_labels(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobcorr.cli", "export", "all", "--out", str(tmp_path),
         "--explain-url", "https://jobcorr.example/", "--monitor-label", "release=prom",
         "--monitor-label", "team=games"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "grafana/background-job-correlation.json").read_text())
    assert explain_links(data)["CPU"].startswith("https://jobcorr.example/?at=")
    for name in ("servicemonitor.yaml", "prometheusrule.yaml"):
        [document] = load_yaml_documents(tmp_path / "kubernetes" / name)
        assert document["metadata"]["labels"] == {
            "app.kubernetes.io/name": "bf42-stats",
            "release": "prom",
            "team": "games",
        }
    for bad, says in ((["--monitor-label", "release"], "is not KEY=VALUE"),
                      (["--explain-url", "jobcorr:8090"], "is not an http://")):  # fmt: skip
        refused = subprocess.run(
            [sys.executable, "-m", "jobcorr.cli", "export", "all", "--out", str(tmp_path), *bad],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr


BG_NAME = re.compile(r"\bbg_[a-z0-9_]+")


def test_every_bg_name_in_the_export_is_in_a_contract() -> None:
    """The library's names come from jobcorr.contract; the service's volume names from its
    Description, and those must be families the service registers."""
    from prometheus_client import CollectorRegistry

    from bf42stats.metrics import service_metrics

    library = {n for family in contract.CONTRACT for n in contract.sample_names(family)}
    declared = {v.metric for v in DESCRIPTION.volumes}
    declared |= {DESCRIPTION.sync_volume.metric} if DESCRIPTION.sync_volume else set()
    registry = CollectorRegistry()
    service_metrics(registry)
    registered = {s.name for m in registry.collect() for s in m.samples}
    assert declared <= registered
    found = {name for text in render_all(DESCRIPTION).values() for name in BG_NAME.findall(text)}
    assert found - library - declared == set()
    assert {"bg_job_in_progress", "bg_job_last_start_timestamp_seconds",
            "bg_active_players"} <= found  # fmt: skip


def test_the_library_names_no_service() -> None:
    words = ("ClickHouse", "clickhouse", "player", "operation", "bf42", "Battlefield")
    for path in (ROOT / "src/jobcorr/artifacts").glob("*.py"):
        text = path.read_text()
        assert not [w for w in words if w in text], path


def grafana_to_promql(expr: str) -> str:
    """What Grafana sends: variables substituted."""
    for variable in ("$namespace", "$pod", "$instance"):
        expr = expr.replace(variable, ".*")
    return expr.replace("$__rate_interval", "1m")


def test_every_dashboard_expression_parses_and_rates_use_rate_interval(
    tmp_path: Path, promtool: str
) -> None:
    exprs = [
        expr
        for directory in DASHBOARDS
        for name in ("background-job-correlation.json", "python-runtime.json")
        for expr in expressions(json.loads((DEPLOY / directory / name).read_text()))
    ]
    assert len(exprs) > 20
    for expr in exprs:
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", expr
    rules = {"groups": [{"name": "parse", "rules": [
        {"record": f"dashboard:expr{i}", "expr": grafana_to_promql(e)} for i, e in enumerate(exprs)
    ]}]}  # fmt: skip
    (tmp_path / "exprs.yml").write_text(yaml.safe_dump(rules))
    check = subprocess.run([promtool, "check", "rules", "exprs.yml"], cwd=tmp_path,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_kubernetes_manifests_validate_offline() -> None:
    statefulset, service = load_yaml_documents(DEPLOY / "kubernetes/statefulset.yaml")
    for manifest in (statefulset, service):
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    spec = statefulset["spec"]
    assert statefulset["kind"] == "StatefulSet" and spec["replicas"] == 1
    assert "One replica, on purpose" in (DEPLOY / "kubernetes/statefulset.yaml").read_text()
    [claim] = spec["volumeClaimTemplates"]
    container = spec["template"]["spec"]["containers"][0]
    [data] = [m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert data["mountPath"] == "/data" and "--data-dir" in container["args"]
    assert all(v["name"] != "data" for v in spec["template"]["spec"]["volumes"])  # no emptyDir
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
    assert rule["spec"] == load_yaml_documents(DEPLOY / "kubernetes/rules.yml")[0]
    for selected in (monitor, rule):  # kube-prometheus-stack selects by its release label
        assert selected["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    [scrape] = load_yaml_documents(DEPLOY / "prometheus/scrape-config.yml")
    assert scrape["scrape_configs"][0]["honor_labels"] is True


def test_the_pod_declares_its_dashboard_port_and_the_monitor_does_not_scrape_it() -> None:
    statefulset, service = load_yaml_documents(DEPLOY / "kubernetes/statefulset.yaml")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    declared = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert declared == {"http": DESCRIPTION.port, "dashboard": DESCRIPTION.dashboard_port}
    args = container["args"]
    assert args[args.index("--dashboard-port") + 1] == str(declared["dashboard"])
    assert args[args.index("--host") + 1] == "0.0.0.0"  # the manifest's choice, not a default
    exposed = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert exposed == {name: (number, name) for name, number in declared.items()}
    [monitor] = load_yaml_documents(DEPLOY / "kubernetes/servicemonitor.yaml")
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["http"]


def test_a_pod_without_a_dashboard_declares_none() -> None:
    plain = replace(DESCRIPTION, dashboard_port=None)
    container = kubernetes.statefulset(plain)["spec"]["template"]["spec"]["containers"][0]
    assert [port["name"] for port in container["ports"]] == ["http"]
    assert "--dashboard-port" not in container["args"]
    assert [port["name"] for port in kubernetes.service(plain)["spec"]["ports"]] == ["http"]


def test_the_containers_args_serve_metrics_and_the_dashboard_on_the_declared_ports(
    tmp_path: Path,
) -> None:
    """The StatefulSet's args run as they are, on loopback, with free ports and a temporary
    data directory in place of the pod's: /healthz on `http`, and any other path there
    redirected to the dashboard on `dashboard`."""
    [statefulset, _] = load_yaml_documents(DEPLOY / "kubernetes/statefulset.yaml")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    ports = {str(port["containerPort"]): str(free_port()) for port in container["ports"]}
    moved = {"0.0.0.0": "127.0.0.1", "/data": str(tmp_path), **ports}
    program, *args = [moved.get(arg, arg) for arg in container["args"]]
    assert program == "bf42-stats"
    service = subprocess.Popen(
        [sys.executable, "-m", "bf42stats.cli", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    http, dashboard = (ports[str(p["containerPort"])] for p in container["ports"])
    try:
        wait_ready(f"http://127.0.0.1:{http}/healthz", 120)
        redirect = httpx.get(f"http://127.0.0.1:{http}/api/openapi.json", timeout=30)
        assert redirect.status_code == 307
        assert redirect.headers["location"] == f"http://127.0.0.1:{dashboard}/api/openapi.json"
        wait_ready(redirect.headers["location"], 120)  # the dashboard on its declared port
    finally:
        service.terminate()
        service.wait(120)
