"""/metrics with 10 000 distinct job names: the default cap (100 names, the rest counted as
`over_limit`) against no cap, side by side in one process; prints sizes, render times and
their ratio.

    python benchmarks/bench_cardinality.py [--names 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from prometheus_client import CollectorRegistry, generate_latest

import jobcorr


def registry_with(names: int, max_jobs: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    jobcorr.register_runtime_metrics(registry)
    jobcorr.set_limits(max_jobs=max_jobs, registry=registry)
    for index in range(names):
        with jobcorr.track(f"job_{index}", registry=registry):
            pass
    return registry


def render(registry: CollectorRegistry) -> tuple[float, float, int]:
    """Wall time, this thread's CPU time (what the load of the machine does not inflate)
    and size of one scrape."""
    wall, cpu = time.perf_counter(), time.thread_time()
    text = generate_latest(registry)
    return time.perf_counter() - wall, time.thread_time() - cpu, len(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    capped = registry_with(args.names, jobcorr.metrics.MAX_JOBS)
    uncapped = registry_with(args.names, args.names + 1)
    walls: dict[str, list[float]] = {"capped": [], "uncapped": []}
    cpus: dict[str, list[float]] = {"capped": [], "uncapped": []}
    sizes: dict[str, int] = {}
    for _ in range(args.rounds):  # interleaved: load on the machine hits both alike
        for name, registry in (("capped", capped), ("uncapped", uncapped)):
            wall, cpu, sizes[name] = render(registry)
            walls[name].append(wall)
            cpus[name].append(cpu)
    for name in ("capped", "uncapped"):
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"{name:9s} /metrics {sizes[name] / 1e6:6.2f} MB, render {wall * 1000:8.1f} ms "
              f"wall, {cpu * 1000:8.1f} ms CPU")  # fmt: skip
    ratio = statistics.median(cpus["capped"]) / statistics.median(cpus["uncapped"])
    print(f"ratio capped/uncapped render CPU time: {ratio:.3f} (target: capped < 50 ms, < 1 MB)")


if __name__ == "__main__":
    main()
