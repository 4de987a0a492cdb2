"""Per-run cost of `jobcorr.track()` against the bare prometheus_client equivalent.

Both sides run in this process, interleaved in rounds, and the ratio of their medians is
printed: absolute times drift on shared machines, the ratio much less.

jobcorr's side does everything a real run does: every contract family, the peak-memory
watch and a RunRecord handed to a listener that queues it (as the embedded store does).
The baseline is what a careful user writes by hand with prometheus_client: an in-progress
gauge, `Histogram.time()` and `Counter.inc()`.

    python benchmarks/bench_tracking.py [--runs 200000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import jobcorr
from jobcorr.contract import DURATION_BUCKETS


def bench_jobcorr(runs: int) -> float:
    registry = CollectorRegistry()
    # Stands in for the embedded store's listener: a queue that its writer thread drains.
    records: deque[jobcorr.RunRecord] = deque(maxlen=4096)
    remove = jobcorr.add_run_listener(records.append)
    track = jobcorr.track
    start = time.perf_counter()
    for _ in range(runs):
        with track("clickhouse_sync", registry=registry):
            pass
    elapsed = time.perf_counter() - start
    remove()
    assert len(records) == min(runs, 4096) and records[-1].job == "clickhouse_sync"
    return elapsed / runs


def bench_bare(runs: int) -> float:
    registry = CollectorRegistry()
    in_progress = Gauge("bg_job_in_progress", "", ["job"], registry=registry)
    duration = Histogram(
        "bg_job_duration_seconds", "", ["job"], buckets=DURATION_BUCKETS, registry=registry
    )
    executions = Counter("bg_job_executions", "", ["job"], registry=registry)
    gauge = in_progress.labels("clickhouse_sync")
    histogram = duration.labels("clickhouse_sync")
    counter = executions.labels("clickhouse_sync")
    start = time.perf_counter()
    for _ in range(runs):
        with gauge.track_inprogress(), histogram.time():
            pass
        counter.inc()
    return (time.perf_counter() - start) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    ours, bare = [], []
    for _ in range(args.rounds):
        ours.append(bench_jobcorr(args.runs))
        bare.append(bench_bare(args.runs))
    ours_us = statistics.median(ours) * 1e6
    bare_us = statistics.median(bare) * 1e6
    print(f"jobcorr.track:            {ours_us:6.2f} us/run (median of {args.rounds} rounds)")
    print(f"bare prometheus_client:   {bare_us:6.2f} us/run")
    print(f"ratio:                    {ours_us / bare_us:6.2f}  (target <= 1.5; and < 15 us/run)")
    print(f"peak-RSS method:          {jobcorr.tracking._sampler.method}")


if __name__ == "__main__":
    main()
