"""How fast `explain` and `spikes` answer on a week of data, and what recording costs.

Builds a store holding 7 days at 1 s for 30 series (18 million samples) and about 20 000
runs of four jobs, where memory rises while clickhouse_sync runs in proportion to what
it syncs, with one large spike two hours before the end. Then measures, in this process:

- `explain` at the spike (window 5 min, history 24 h), against merely reading the
  window's raw memory samples out of SQLite;
- `spikes --since 7d` (the survey over one-minute rollups);
- the recorder at 1 Hz on a registry like bf42-stats's: CPU seconds per hour of recording,
  with a run of each job going (each tick reads their threads' CPU clocks) and with none.

    python benchmarks/bench_explain.py [--days 7]
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

import jobcorr
from jobcorr.analysis import explain, survey
from jobcorr.sources.embedded import EmbeddedTimeline
from jobcorr.store import Store
from jobcorr.tracking import RunRecord

JOBS = {"clickhouse_sync": (45, 8), "stats_collection": (120, 3), "ranking_calc": (3600, 60),
        "gamification": (300, 5)}  # name: (every seconds, duration seconds)  # fmt: skip
OVERHEAD_ROUNDS = 3
"""Recorder measurements with and without runs going, interleaved (30 s each)."""


def build(path: Path, days: float) -> tuple[float, float]:
    """Write the store; return (end time, spike time)."""
    rng = np.random.default_rng(1942)
    end = float(int(time.time()))
    start = end - days * 86400
    times = np.arange(start, end)
    n = len(times)
    store = Store(path, raw_retention=(days + 1) * 86400)
    planned: list[tuple[str, int, float, int]] = []  # (job, number, start, rows)
    running = {}
    spike_at = end - 7200
    for job, (every, length) in JOBS.items():
        active = np.zeros(n, dtype=bool)
        for index, begin in enumerate(
            np.arange(start + rng.uniform(0, every), end - length, every)
        ):
            rows = int(rng.integers(5_000, 30_000)) if job == "clickhouse_sync" else 100
            if job == "clickhouse_sync" and abs(begin - spike_at) < every / 2:
                rows = 400_000
            lo = math.ceil(begin - start)  # the first sample inside the run
            active[lo : lo + length] = True
            planned.append((job, index, float(begin), rows))
        running[job] = active
    memory = 300e6 + rng.normal(0, 3e6, n)
    for job, _, begin, rows in planned:
        if job == "clickhouse_sync":
            lo = math.ceil(begin - start)  # the first sample inside the run
            memory[lo : lo + 8] += rows * 2_000
    runs = [
        _record(job, number, begin, rows, memory, start) for job, number, begin, rows in planned
    ]
    series: dict[tuple[str, str, str], np.ndarray] = {
        ("process_resident_memory_bytes", "", "gauge"): memory,
        ("process_cpu_seconds_total", "", "counter"): np.cumsum(rng.uniform(0.01, 0.05, n)),
    }
    for job, active in running.items():
        series[("bg_job_in_progress", job, "gauge")] = active.astype(float)
        series[("bg_log_records_total", job, "counter")] = np.cumsum(active * 5.0)
    filler = 30 - len(series)
    for index in range(filler):
        series[(f"bg_volume_{index}_total", "", "counter")] = np.cumsum(rng.poisson(3, n))
    for (name, job, kind), values in series.items():
        sid = store.series_id(name, {"job": job} if job else {}, kind)
        ts = (times * 1000).astype(np.int64)
        for lo in range(0, n, 200_000):
            store.write(zip([sid] * len(ts[lo : lo + 200_000]), ts[lo : lo + 200_000].tolist(),
                            values[lo : lo + 200_000].tolist(), strict=True))  # fmt: skip
    store.write([], [], runs)
    store.compact(end)
    store.close()
    return end, spike_at


def _record(
    job: str, number: int, begin: float, rows: int, memory: np.ndarray, start: float
) -> RunRecord:
    """The run record the tracker would have written, with the RSS it would have read."""
    length = JOBS[job][1]
    lo = math.ceil(begin - start)  # the first sample inside the run
    during = memory[lo : lo + length + 1]
    return RunRecord(f"{job}-{number}", job, begin, begin + length, "success", None, None, 0.1,
                     int(during.max()), int(memory[max(0, lo - 1)]), int(during[-1]),
                     {"rows": rows})  # fmt: skip


def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def recorder_cpu_per_hour(running: int, seconds: float = 30.0, hz: float = 20.0) -> float:
    """CPU seconds the recorder spends per hour at 1 Hz (measured at `hz` and scaled), with
    `running` runs going all along, so every tick also reads their threads' CPU clocks."""
    from bf42stats.metrics import service_metrics

    registry = CollectorRegistry()
    jobcorr.register_runtime_metrics(registry)
    service_metrics(registry)
    for job in JOBS:
        with jobcorr.track(job, registry=registry):
            pass
    release = threading.Event()
    going = [threading.Thread(target=_run_until, args=(job, registry, release))
             for job in list(JOBS)[:running]]  # fmt: skip
    for thread in going:
        thread.start()
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_SELF)
        recorder = jobcorr.start_recorder(Path(tmp) / "r.sqlite3", 1 / hz, registry=registry)
        time.sleep(seconds)
        recorder.stop()
        after = resource.getrusage(resource.RUSAGE_SELF)
    release.set()
    for thread in going:
        thread.join()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    per_tick = cpu / (seconds * hz)
    return per_tick * 3600


def _run_until(job: str, registry: CollectorRegistry, release: threading.Event) -> None:
    """One run of `job` that waits (using no CPU) until `release` is set."""
    with jobcorr.track(job, registry=registry):
        release.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "week.sqlite3"
        started = time.perf_counter()
        end, spike_at = build(path, args.days)
        store = Store(path, readonly=True)
        samples = sum(len(store.samples(s.id, 0, 2e10)) for s in store.series()[:1]) * 30
        print(f"built {samples:,} samples, {len(store.runs(0, 2e10)):,} runs "
              f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
        memory_id = next(s.id for s in store.series() if s.name == "process_resident_memory_bytes")

        answer = explain(EmbeddedTimeline(path), spike_at + 30, window=300)
        print(f"answer: {answer.conclusion}")
        blamed = answer.blamed.job if answer.blamed else None
        if blamed != "clickhouse_sync":  # a speed figure for a wrong answer is not a result
            raise SystemExit(f"wrong answer: the planted spike is clickhouse_sync's, not {blamed}")
        explain_s = timed(lambda: explain(EmbeddedTimeline(path), spike_at + 30, window=300))
        read_s = timed(lambda: store.samples(memory_id, spike_at - 2100, spike_at + 330))
        survey_s = timed(lambda: survey(EmbeddedTimeline(path), end - args.days * 86400, end), 3)
        spikes = survey(EmbeddedTimeline(path), end - args.days * 86400, end)
        planted = [s for s in spikes if abs(s.spike.peak_at - spike_at) < 120]
        if not planted or planted[0].top is None or planted[0].top.job != "clickhouse_sync":
            raise SystemExit(f"spikes missed the planted spike or named another job: {planted}")
    idle, busy = [], []
    for _ in range(OVERHEAD_ROUNDS):  # interleaved: the machine's load drifts
        idle.append(recorder_cpu_per_hour(running=0))
        busy.append(recorder_cpu_per_hour(running=len(JOBS)))
    cpu_idle, cpu_hour = statistics.median(idle), statistics.median(busy)
    print(f"explain (5 min window, 24 h history):  {explain_s:7.3f} s   (target < 1 s)")
    print(
        f"read the window's raw memory samples:  {read_s:7.3f} s   "
        f"(explain / read = {explain_s / read_s:.0f}x)"
    )
    print(
        f"spikes --since 7d:                     {survey_s:7.3f} s   (target < 5 s; "
        f"{len(spikes)} spikes)"
    )
    print(
        f"recorder at 1 Hz, {len(JOBS)} runs going:        {cpu_hour:7.2f} CPU s per hour = "
        f"{cpu_hour / 36:.3f}% of one core   (target < 1%)"
    )
    print(
        f"recorder at 1 Hz, no run going:        {cpu_idle:7.2f} CPU s per hour   "
        f"(with / without runs = {cpu_hour / cpu_idle:.2f}; rounds: "
        f"{', '.join(f'{b / 36:.3f}%' for b in busy)})"
    )


if __name__ == "__main__":
    main()
