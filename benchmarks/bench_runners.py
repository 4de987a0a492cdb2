"""Runner integrations and the lean core: what instrumenting costs, side by side.

1. Celery: no-op task throughput of a real prefork worker (2 children) with and without
   `jobcorr.integrations.celery.instrument`, rounds interleaved on one redis-server.
2. `track()` on runs spaced 50 ms apart against the bare prometheus_client equivalent:
   wall time on the run's path, and process CPU per run (the RSS sampler's thread included).
3. The lean core: site-packages size of `jobcorr`'s dependency closure against
   `jobcorr[all]` plus bf42stats (what `pip install jobcorr` pulled in before the split),
   and `import jobcorr` time against the commit before the split (`--before`).

    python benchmarks/bench_runners.py [--tasks 400] [--rounds 3] [--spaced 200]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import jobcorr
from jobcorr.contract import DURATION_BUCKETS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BEFORE_SPLIT = "fe5f801"  # the last commit whose `jobcorr` required every dependency
SPACING_SECONDS = 0.05
READY_SECONDS = 120  # a cold worker on a busy 2-core machine
IMPORT_REPEATS = 7
QUEUES = ("bare", "instrumented")


# --- 1. Celery ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("needs redis-server (Debian's redis-server package)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
         "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("redis-server did not start")
            time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}/0"


def start_worker(broker: str, queue: str, instrumented: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BENCH_BROKER": broker,
        "BENCH_INSTRUMENT": "1" if instrumented else "",
        "BENCH_METRICS_PORT": str(free_port()),
        "PYTHONPATH": str(HERE),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_noop", "worker", "--pool=prefork",
         "--concurrency=2", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-Q", queue, "-n", f"{queue}@%h"],
        cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def celery_round(tasks: int) -> dict[str, float]:
    """Tasks per second of each worker, both fed at once so that both see the same load."""
    import celery_noop

    start = time.perf_counter()
    sent: dict[str, list[Any]] = {queue: [] for queue in QUEUES}
    for _ in range(tasks):
        for queue in QUEUES:
            sent[queue].append(celery_noop.noop.apply_async(queue=queue))
    rates = {}
    pending = {queue: list(results) for queue, results in sent.items()}
    while pending:
        for queue in list(pending):
            results = pending[queue]
            while results and results[0].ready():
                results.pop(0)
            if not results:
                rates[queue] = tasks / (time.perf_counter() - start)
                del pending[queue]
        time.sleep(0.005)
    return rates


def bench_celery(tasks: int, rounds: int) -> None:
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory() as directory:
        redis, url = start_redis(directory)
        os.environ["BENCH_BROKER"] = url
        workers = [start_worker(url, queue, queue == "instrumented") for queue in QUEUES]
        try:
            import celery_noop

            for queue in QUEUES:  # both workers are up
                celery_noop.noop.apply_async(queue=queue).get(timeout=READY_SECONDS)
            rounds_done = [celery_round(tasks) for _ in range(rounds)]
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(60)
            redis.terminate()
            redis.wait()
    bare = [done["bare"] for done in rounds_done]
    ours = [done["instrumented"] for done in rounds_done]
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    print(f"celery no-op task, two prefork workers (2 children each) fed at once, {tasks} tasks "
          f"each x {rounds} rounds:")  # fmt: skip
    print(f"  uninstrumented:             {_range(bare, '.0f')} tasks/s")
    print(f"  instrument():               {_range(ours, '.0f')} tasks/s")
    print(f"  ratio per round:            {_range(ratios, '.2f')}  (target >= 0.9)")


# --- 2. track() on spaced runs -----------------------------------------------------------


def spaced(run: Callable[[], None], runs: int) -> tuple[float, float]:
    """(median wall seconds on the run's path, process CPU seconds per run)."""
    walls = []
    cpu = time.process_time()
    for _ in range(runs):
        time.sleep(SPACING_SECONDS)
        start = time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), (time.process_time() - cpu) / runs


def bench_spaced(runs: int, rounds: int) -> None:
    registry = CollectorRegistry()

    def ours() -> None:
        with jobcorr.track("clickhouse_sync", registry=registry):
            pass

    bare_registry = CollectorRegistry()
    gauge = Gauge("in_progress", "", ["job"], registry=bare_registry).labels("clickhouse_sync")
    histogram = Histogram(
        "duration_seconds", "", ["job"], buckets=DURATION_BUCKETS, registry=bare_registry
    ).labels("clickhouse_sync")
    counter = Counter("executions", "", ["job"], registry=bare_registry).labels("clickhouse_sync")

    def bare() -> None:
        with gauge.track_inprogress(), histogram.time():
            pass
        counter.inc()

    wall_ratios, cpu_ratios = [], []
    for _ in range(rounds):
        (ours_wall, ours_cpu), (bare_wall, bare_cpu) = spaced(ours, runs), spaced(bare, runs)
        wall_ratios.append(ours_wall / bare_wall)
        cpu_ratios.append(ours_cpu / bare_cpu)
        print(f"  round: track() {ours_wall * 1e6:5.1f} us on the path, {ours_cpu * 1e6:4.0f} us "
              f"CPU/run; bare {bare_wall * 1e6:5.1f} us, {bare_cpu * 1e6:4.0f} us")  # fmt: skip
    print(f"track() every {SPACING_SECONDS * 1000:.0f} ms vs bare prometheus_client, {runs} runs x "
          f"{rounds} rounds:")  # fmt: skip
    print(f"  wall on the run's path:     {_range(wall_ratios, '.2f')}  (target <= 1.5)")
    print(f"  process CPU per run:        {_range(cpu_ratios, '.2f')}  (sampler thread included)")


# --- 3. the lean core --------------------------------------------------------------------


def closure(requirement: str, seen: set[str] | None = None) -> set[str]:
    """Installed distributions `requirement` needs (extras followed), itself included."""
    seen = set() if seen is None else seen
    match = re.match(r"([A-Za-z0-9_.-]+)(?:\[([^\]]*)\])?", requirement)
    if match is None:
        return seen
    name, extras = match.group(1), {e.strip() for e in (match.group(2) or "").split(",") if e}
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return seen
    key = dist.metadata["Name"].lower().replace("_", "-")
    first_visit = key not in seen
    seen.add(key)
    for line in dist.requires or []:
        spec, _, marker = line.partition(";")
        wanted = re.findall(r'extra\s*==\s*"([^"]+)"', marker)
        if wanted and not set(wanted) & extras:
            continue
        if not wanted and not first_visit:
            continue
        closure(spec.strip(), seen)
    return seen


def installed_bytes(names: set[str]) -> int:
    total = 0
    for name in names:
        dist = metadata.distribution(name)
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if path.is_file():
                total += path.stat().st_size
    return total


def import_seconds(pythonpath: str) -> float:
    """`import jobcorr`'s own time (cumulative, from `python -X importtime`): the
    interpreter's start-up, which dwarfs it on a busy machine, is left out."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import jobcorr"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    line = next(ln for ln in done.stderr.splitlines() if ln.rstrip().endswith("| jobcorr"))
    return int(line.split("|")[1]) / 1e6


def bench_lean_core() -> None:
    lean = closure("jobcorr")
    full = closure("jobcorr[all]") | closure("bf42stats")
    mib = 1 << 20
    print("installed (site-packages; jobcorr itself is an editable install, not counted):")
    print(f"  jobcorr alone:              {len(lean)} distributions, "
          f"{installed_bytes(lean) / mib:.1f} MiB")  # fmt: skip
    print(f"  jobcorr[all] + bf42stats:   {len(full)} distributions, "
          f"{installed_bytes(full) / mib:.1f} MiB")  # fmt: skip
    print("  (the second is what `pip install jobcorr` installed before the split)")
    with tempfile.TemporaryDirectory() as directory:
        before = Path(directory) / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(before),
                        BEFORE_SPLIT], check=True)  # fmt: skip
        try:
            now, then = [], []
            for _ in range(IMPORT_REPEATS):  # interleaved: both see the same load
                now.append(import_seconds(str(REPO / "src")))
                then.append(import_seconds(str(before / "src")))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)],
                           check=True)  # fmt: skip
    print(f"`import jobcorr` (python -X importtime, cumulative; {IMPORT_REPEATS} runs each):")
    print(f"  lean core now:              {_range(now, '.3f')} s")
    print(f"  before the split ({BEFORE_SPLIT}): {_range(then, '.3f')} s")
    ratios = [n / t for n, t in zip(now, then, strict=True)]
    print(f"  ratio now/before per run:   {_range(ratios, '.2f')}")


def _range(values: list[float], spec: str) -> str:
    low, high = min(values), max(values)
    return f"{low:{spec}}-{high:{spec}} (median {statistics.median(values):{spec}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spaced", type=int, default=200, help="spaced runs per round")
    parser.add_argument("--skip-celery", action="store_true")
    args = parser.parse_args()
    bench_spaced(args.spaced, args.rounds)
    bench_lean_core()
    if not args.skip_celery:
        bench_celery(args.tasks, args.rounds)


if __name__ == "__main__":
    main()
