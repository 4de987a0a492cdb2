"""Runs that fall between two scrapes, as Grafana's annotation and the alerts see them.

A real process runs a job every 5 s for 1 s; a real Prometheus scrapes it every 15 s, so
no scrape needs to fall inside a run. The dashboard's run annotation (its value is
`bg_job_last_start_timestamp_seconds`) must place a run at its own start in every scrape
interval that had runs, and the executions counter must account for every run. (Reading
`bg_job_in_progress` at scrape time, the old annotation, sees a 1 s run in a 15 s interval
only when a scrape happens to fall inside it.) The gauge keeps the last run only: of the
three runs in an interval, the annotation places the last at its start and the counter
counts all three.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import yaml

from bf42stats.deploy import DESCRIPTION
from jobcorr.artifacts.grafana import RUN_STARTS_MS, run_starts
from support import free_port, require_tool

pytestmark = pytest.mark.slow

SCRAPE = 15  # seconds: the fleet's usual interval, three runs per scrape
PERIOD = 5.0  # seconds between runs
LENGTH = 1.0  # seconds a run lasts
SCRAPES = 6  # intervals to watch
MARGIN = 60.0  # seconds for processes to start on a busy machine

JOB = textwrap.dedent("""
    import sys, time
    import jobcorr
    server = jobcorr.serve_metrics(port=int(sys.argv[1]))
    print("ready", flush=True)
    while True:
        with jobcorr.track("tick"):
            print(f"start {time.time():.3f}", flush=True)
            time.sleep(%r)
        time.sleep(%r)
""") % (LENGTH, PERIOD - LENGTH)


def range_query(url: str, expr: str, start: float, end: float) -> list[dict]:
    params = {"query": expr, "start": start, "end": end, "step": "1s"}
    body = httpx.get(f"{url}/api/v1/query_range", params=params, timeout=30).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_every_scrape_interval_with_runs_shows_a_run_at_its_start(tmp_path: Path) -> None:
    prometheus = require_tool("prometheus", "prometheus")
    job_port, prom_port = free_port(), free_port()
    job = subprocess.Popen(
        [sys.executable, "-c", JOB, str(job_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    config = {
        "global": {"scrape_interval": f"{SCRAPE}s"},
        "scrape_configs": [
            {
                "job_name": "ticks",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{job_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{prom_port}"
    try:
        assert job.stdout is not None and job.stdout.readline().strip() == "ready"
        begin = time.time()
        time.sleep(SCRAPES * SCRAPE + 2 * SCRAPE)
        end = time.time()
        scrapes = range_query(url, 'timestamp(up{job="ticks"})', begin, end)
        assert scrapes, "Prometheus never scraped the job"
        scraped_at = sorted({float(v) for _, v in scrapes[0]["values"]})
        assert len(scraped_at) >= SCRAPES, scraped_at
        expr = run_starts(DESCRIPTION.plain()).replace('instance=~"$instance"', "")
        shown = sorted(
            {
                float(v) / RUN_STARTS_MS
                for series in range_query(url, expr, begin, end)
                for _, v in series["values"]
            }
        )
        counted = range_query(url, 'bg_job_executions_total{job="tick"}', begin, end)
    finally:
        server.terminate()
        job.kill()
        server.wait(timeout=60)
        out, _ = job.communicate(timeout=30)
    starts = [float(line.split()[1]) for line in out.splitlines() if line.startswith("start ")]
    assert starts
    # every annotation sits at a real run's start (the gauge holds the start, to the ms)
    for moment in shown:
        assert min(abs(moment - s) for s in starts) < 0.05, (moment, starts)
    # every scrape interval that had a finished run shows one
    intervals = list(itertools.pairwise(scraped_at))
    with_runs = [(a, b) for a, b in intervals if any(a <= s + LENGTH < b for s in starts)]
    assert len(with_runs) >= SCRAPES - 1
    for a, b in with_runs:
        assert any(a - PERIOD <= moment < b for moment in shown), (a, b, shown)
    # the counter accounts for every run between the first and the last scrape
    values = [float(v) for _, v in counted[0]["values"]]
    finished = [s for s in starts if scraped_at[0] <= s + LENGTH < scraped_at[-1]]
    assert values[-1] - values[0] == pytest.approx(len(finished), abs=1)
