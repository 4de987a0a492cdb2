"""The Prometheus source against real engines: Prometheus (backfilled with promtool) and
VictoriaMetrics single-node, both from Debian. Their answers must agree with the
embedded store's on the ground-truth scenarios."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import bcrypt
import httpx
import pytest
import yaml

from jobcorr.analysis import explain
from jobcorr.sources import SourceError
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.sources.prometheus import PrometheusTimeline
from scenarios.harness import Ran
from support import free_port, require_tool, wait_ready

WINDOW, HISTORY = 3.0, 60.0


def labelled(ran: list[Ran]) -> Iterator[tuple[str, str, str]]:
    """(series with a `scenario` label, value, seconds) for every sample of every scenario."""
    for scenario in ran:
        tag = f'scenario="{scenario.spec["name"]}"'
        for line in scenario.openmetrics.read_text().splitlines():
            if not line or line.startswith("#"):
                continue
            series, value, seconds = line.rsplit(" ", 2)
            if series.endswith("}"):
                series = (
                    f"{series[:-1]},{tag}}}"
                    if not series.endswith("{}")
                    else f"{series[:-1]}{tag}}}"
                )
            else:
                series = f"{series}{{{tag}}}"
            yield series, value, seconds


@pytest.fixture(scope="module")
def prometheus_url(ran: list[Ran], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prometheus = require_tool("prometheus", "prometheus")
    promtool = require_tool("promtool", "prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    families: dict[str, tuple[str, list[str]]] = {}
    for scenario in ran:  # OpenMetrics wants each family once: merge the scenarios' files
        kind = ""
        for line in scenario.openmetrics.read_text().splitlines():
            if line.startswith("# TYPE"):
                _, _, family, kind = line.split()
                families.setdefault(family, (kind, []))
    for series, value, seconds in labelled(ran):
        family = next(f for f in sorted(families, key=len, reverse=True) if series.startswith(f))
        families[family][1].append(f"{series} {value} {seconds}")
    text = []
    for family, (kind, lines) in sorted(families.items()):
        text += [f"# TYPE {family} {kind}", *sorted(lines, key=lambda ln: ln.rsplit(" ", 2)[0])]
    (tmp / "backfill.om").write_text("\n".join([*text, "# EOF", ""]))
    backfill = [promtool, "tsdb", "create-blocks-from", "openmetrics", str(tmp / "backfill.om")]
    subprocess.run([*backfill, str(tmp / "data")], check=True, capture_output=True)
    users = {"jobcorr": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()}
    (tmp / "web.yml").write_text(yaml.safe_dump({"basic_auth_users": users}))
    (tmp / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    server = subprocess.Popen(
        [prometheus, f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={tmp / 'web.yml'}",
         "--storage.tsdb.retention.time=100y"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if (
                    httpx.get(f"{url}/-/ready", auth=("jobcorr", "s3cret"), timeout=2).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def victoria_url(ran: list[Ran], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    victoria = require_tool("victoria-metrics", "victoria-metrics")
    tmp = tmp_path_factory.mktemp("victoria")
    port = free_port()
    server = subprocess.Popen(
        [victoria, f"-storageDataPath={tmp}", f"-httpListenAddr=127.0.0.1:{port}",
         "-retentionPeriod=100y", "-search.latencyOffset=0s", "-loggerLevel=ERROR"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/health")
        body = "\n".join(f"{s} {v} {int(float(t) * 1000)}" for s, v, t in labelled(ran))
        httpx.post(f"{url}/api/v1/import/prometheus", content=body, timeout=60).raise_for_status()
        httpx.get(f"{url}/internal/force_flush", timeout=30)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


REMOTE_RIGHT = 0.6
"""Share of the scenarios the backfilled engines answer right (68-73% seen on a loaded
2-core machine, where the embedded store got 83%; the rest abstained, none blamed)."""
REMOTE_WRONG_AT_MOST = 1
"""Wrong blames one run of the suite may hold on the fleet path: the fleet's target is at
most 2% wrong, and one question in 41 is the least a single run can show. Seen over five
backfilled rounds of the memory scenarios on a loaded 2-core machine: 3 of 135 before the
runs' memory readings, counter owners and short-history baselines, 0 of 135 after."""


def answers(ran: list[Ran], timeline_for) -> dict[str, str | None]:
    result = {}
    for scenario in ran:
        explanation = explain(timeline_for(scenario), scenario.spike_at + 0.3, window=WINDOW,
                              metric=scenario.spec["metric"], history=HISTORY)  # fmt: skip
        blamed = explanation.blamed
        result[scenario.spec["name"]] = blamed.job if blamed else None
    return result


@pytest.mark.parametrize("engine", ["prometheus", "victoria"])
def test_a_prometheus_compatible_source_never_blames_more_than_the_truth(
    ran: list[Ran], engine: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{engine}_url")
    credentials = {"username": "jobcorr", "password": "s3cret"} if engine == "prometheus" else {}
    embedded = answers(ran, lambda s: EmbeddedTimeline(s.store))
    remote = answers(ran, lambda s: PrometheusTimeline(
        url, match=f'{{scenario="{s.spec["name"]}"}}', step=0.1, **credentials))  # fmt: skip
    truth = {s.spec["name"]: s.spec["guilty"] for s in ran}
    table = {n: (truth[n], embedded[n], remote[n]) for n in embedded}
    # The fleet path reads fewer runs' own memory and may abstain more; it must not blame
    # more: every job it names is the guilty one, but for REMOTE_WRONG_AT_MOST.
    wrong = {n: table[n] for n in remote if remote[n] not in (None, truth[n])}
    assert len(wrong) <= REMOTE_WRONG_AT_MOST, wrong
    right = sum(remote[n] == truth[n] for n in remote)
    assert right / len(remote) >= REMOTE_RIGHT, table


def test_runs_are_rebuilt_with_exact_starts_and_ends(ran: list[Ran], prometheus_url: str) -> None:
    scenario = next(s for s in ran if s.spec["guilty"])
    timeline = PrometheusTimeline(prometheus_url, match=f'{{scenario="{scenario.spec["name"]}"}}',
                                  step=0.1, username="jobcorr", password="s3cret")  # fmt: skip
    start, end = scenario.started, scenario.started + scenario.spec["duration"]
    rebuilt = {(r.job, round(r.start, 2)): r for r in timeline.runs(start, end)}
    recorded = EmbeddedTimeline(scenario.store).runs(start, end)
    for run in recorded:
        match = rebuilt.get((run.job, round(run.start, 2)))
        assert match is not None, run
        if run.end is not None and match.end is not None:
            assert abs(match.end - run.end) < 0.01
    assert len(rebuilt) >= 0.9 * len(recorded)


def test_long_ranges_are_chunked_under_the_points_limit(
    ran: list[Ran], prometheus_url: str
) -> None:
    scenario = ran[0]
    timeline = PrometheusTimeline(prometheus_url, match=f'{{scenario="{scenario.spec["name"]}"}}',
                                  step=0.1, username="jobcorr", password="s3cret")  # fmt: skip
    [(_, series)] = timeline.query_range(
        f'process_resident_memory_bytes{{scenario="{scenario.spec["name"]}"}}',
        scenario.started - 2000,
        scenario.started + 20,
        0.1,
    )  # 20 200 s at 0.1 s: 202 000 steps, 19 requests
    inside = series.between(scenario.started, scenario.started + 15)
    assert len(inside) >= 149


def test_errors_say_what_went_wrong(prometheus_url: str) -> None:
    closed = PrometheusTimeline(f"http://127.0.0.1:{free_port()}", step=1)
    with pytest.raises(SourceError, match="cannot reach Prometheus"):
        closed.metric("memory", 0, 100)
    wrong_password = PrometheusTimeline(prometheus_url, step=1, username="jobcorr", password="no")
    with pytest.raises(SourceError, match="refused the credentials"):
        wrong_password.metric("memory", 0, 100)
    good = PrometheusTimeline(prometheus_url, step=1, username="jobcorr", password="s3cret")
    with pytest.raises(SourceError, match="rejected"):
        good.query_range("sum(rate(x[5m]", 0, 100, 1)
