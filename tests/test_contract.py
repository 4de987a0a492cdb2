"""The metric contract over real HTTP: run jobs, scrape /metrics, parse, check every family."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

import jobcorr
from jobcorr import contract
from jobcorr.check import check_exposition
from jobcorr.web.server import BackgroundServer


@pytest.fixture
def server(registry) -> Iterator[jobcorr.MetricsServer]:
    served = jobcorr.serve_metrics(port=0, registry=registry)
    yield served
    served.stop()


def run_the_workload(registry) -> None:
    with jobcorr.track("clickhouse_sync", registry=registry) as run:
        run.add("player_metrics", 50_000)
        logging.getLogger("test.sync").warning("big batch")
    with pytest.raises(ZeroDivisionError), jobcorr.track("ranking_calc", registry=registry):
        logging.getLogger("test.ranking").error("about to fail")
        1 / 0  # noqa: B018

    @jobcorr.job("gamification", registry=registry)
    async def award() -> None:
        await asyncio.sleep(0.001)

    asyncio.run(award())
    with (
        jobcorr.track("stats_collection", registry=registry),
        jobcorr.track("ranking_calc", registry=registry),
    ):
        pass

    def worker() -> None:
        for _ in range(50):
            with jobcorr.track("stats_collection", registry=registry):
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    jobcorr.record_skipped("clickhouse_sync", registry=registry)
    logging.getLogger("test").info("outside any job")


def samples(families, name: str) -> dict[str, float]:
    """{job label: value} for one sample name."""
    return {
        s.labels.get("job", ""): s.value
        for f in families
        for s in f.samples
        if s.name == name and "le" not in s.labels
    }


def test_every_family_has_its_type_labels_and_values(server, registry) -> None:
    logging.getLogger().setLevel(logging.INFO)
    run_the_workload(registry)
    response = httpx.get(server.url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = list(parse_text(response.text))
    by_name = {f.name: f for f in families}

    for spec in contract.CONTRACT:
        family = by_name[spec.name]
        assert family.type == spec.type, spec.name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(spec.labels), (spec.name, sample.labels)
    assert all(r.ok for r in check_exposition(response.text)), check_exposition(response.text)

    jobs = {"clickhouse_sync", "ranking_calc", "gamification", "stats_collection"}
    executions = samples(families, "bg_job_executions_total")
    assert executions == {
        "clickhouse_sync": 1,
        "ranking_calc": 2,
        "gamification": 1,
        "stats_collection": 401,
    }
    assert samples(families, "bg_job_failures_total") == {
        "clickhouse_sync": 0,
        "ranking_calc": 1,
        "gamification": 0,
        "stats_collection": 0,
    }
    assert samples(families, "bg_job_skipped_total")["clickhouse_sync"] == 1
    assert samples(families, "bg_job_in_progress") == dict.fromkeys(jobs, 0)
    assert samples(families, "bg_job_duration_seconds_count") == executions
    inf_buckets = {
        s.labels["job"]: s.value
        for s in by_name["bg_job_duration_seconds"].samples
        if s.labels.get("le") == "+Inf"
    }
    assert inf_buckets == executions
    assert set(samples(families, "bg_job_duration_seconds_sum")) == jobs
    starts = samples(families, "bg_job_last_start_timestamp_seconds")
    successes = samples(families, "bg_job_last_success_timestamp_seconds")
    assert all(starts[job] > 1.7e9 for job in jobs)
    assert successes["clickhouse_sync"] >= starts["clickhouse_sync"]
    assert successes["gamification"] > 0
    assert all(v >= 0 for v in samples(families, "bg_job_last_duration_seconds").values())
    assert all(v >= 0 for v in samples(families, "bg_job_cpu_seconds_total").values())
    assert all(v > 0 for v in samples(families, "bg_job_peak_rss_bytes").values())

    logs = {
        (s.labels["job"], s.labels["level"]): s.value
        for s in by_name["bg_log_records"].samples
        if s.name == "bg_log_records_total"
    }
    assert logs[("clickhouse_sync", "warning")] == 1
    assert logs[("ranking_calc", "error")] == 1
    assert logs[("", "info")] >= 1
    assert "process_resident_memory_bytes" in by_name
    assert "python_gc_collections" in by_name


def test_in_progress_shows_a_run_while_it_runs(server, registry) -> None:
    started, release = threading.Event(), threading.Event()

    def long_job() -> None:
        with jobcorr.track("ranking_calc", registry=registry):
            started.set()
            release.wait(5)

    thread = threading.Thread(target=long_job)
    thread.start()
    started.wait(5)
    during = samples(parse_text(httpx.get(server.url).text), "bg_job_in_progress")
    release.set()
    thread.join()
    after = samples(parse_text(httpx.get(server.url).text), "bg_job_in_progress")
    assert during == {"ranking_calc": 1}
    assert after == {"ranking_calc": 0}


def test_openmetrics_is_negotiated_and_carries_run_id_exemplars(server, registry) -> None:
    with jobcorr.track("clickhouse_sync", registry=registry) as run:
        pass
    response = httpx.get(server.url, headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    [histogram] = [f for f in parse_om(response.text) if f.name == "bg_job_duration_seconds"]
    exemplars = [s.exemplar for s in histogram.samples if s.exemplar is not None]
    assert [e.labels for e in exemplars] == [{"run_id": run.run_id}]
    plain = httpx.get(server.url).text
    assert run.run_id not in plain


def test_families_are_listed_before_any_job_runs(server) -> None:
    reports = check_exposition(httpx.get(server.url).text)
    assert all(r.ok for r in reports)
    assert {r.detail for r in reports if r.spec in contract.JOB_FAMILIES} == {
        "no series yet (no job has run)"
    }


def test_serve_metrics_binds_to_loopback_and_stops(registry) -> None:
    served = jobcorr.serve_metrics(port=0, registry=registry)
    assert served.host == "127.0.0.1"
    assert httpx.get(served.url).status_code == 200
    served.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(served.url, timeout=2)


def test_the_asgi_app_serves_the_same_contract(registry) -> None:
    with jobcorr.track("clickhouse_sync", registry=registry):
        pass
    server = BackgroundServer(jobcorr.metrics_app(registry)).start()
    try:
        url = f"{server.url}/"
        text = httpx.get(url).text
        assert all(r.ok for r in check_exposition(text, require_jobs=["clickhouse_sync"]))
        om = httpx.get(url, headers={"Accept": "application/openmetrics-text"})
        assert om.headers["content-type"].startswith("application/openmetrics-text")
    finally:
        server.stop()
