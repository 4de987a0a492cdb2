"""Runner integrations and the lean core: what instrumenting costs, side by side.

1. Celery: no-op task throughput of a real prefork worker (2 children) with and without
   `jobcorr.integrations.celery.instrument`, rounds interleaved on one redis-server.
2. `track()` on runs spaced 50 ms apart against the bare prometheus_client equivalent, in
   two processes running at once, their runs interleaved 25 ms apart (see section 2): wall
   time on the run's path (ratio of the medians per round), and process CPU per run (the
   RSS sampler's thread included).
3. The lean core: site-packages size of `jobcorr`'s dependency closure against
   `jobcorr[all]` plus bf42stats (what `pip install jobcorr` pulled in before the split),
   and `import jobcorr` time against the commit before the split (`--before`).

    python benchmarks/bench_runners.py [--tasks 400] [--rounds 3] [--spaced 200] [--skip-celery]
    python benchmarks/bench_runners.py --control   # the spaced-run method, bare against bare
"""

from __future__ import annotations

import argparse
import json
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
WARM_UP_RUNS = 5
MIN_SLEEP_SECONDS = SPACING_SECONDS / 2  # a slot reached later than this is skipped
START_MARGIN_SECONDS = 1.0  # for both arms to read t0 on a busy machine
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


def spaced_arm(arm: str, runs: int) -> None:
    """One arm's process: print "ready", read its first slot (time.monotonic(), which all
    processes share) from stdin, then print {"walls": [...], "cpu": seconds per run}."""
    run = _tracked() if arm == "ours" else _bare()
    for _ in range(WARM_UP_RUNS):  # first-run costs: labels, the sampler's thread
        run()
    print("ready", flush=True)
    deadline = float(sys.stdin.readline())
    walls = []
    cpu = time.process_time()
    for _ in range(runs):
        wait = deadline - time.monotonic()
        deadline += SPACING_SECONDS
        if wait < MIN_SLEEP_SECONDS:  # late (descheduled): skip this slot, never run warm
            continue
        time.sleep(wait)
        start = time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu) / max(1, len(walls))
    print(json.dumps({"walls": walls, "cpu": cpu}), flush=True)


def _tracked() -> Callable[[], None]:
    registry = CollectorRegistry()

    def ours() -> None:
        with jobcorr.track("clickhouse_sync", registry=registry):
            pass

    return ours


def _bare() -> Callable[[], None]:
    """The bare prometheus_client equivalent of a run's path: in progress, duration, count."""
    registry = CollectorRegistry()
    gauge = Gauge("in_progress", "", ["job"], registry=registry).labels("clickhouse_sync")
    histogram = Histogram(
        "duration_seconds", "", ["job"], buckets=DURATION_BUCKETS, registry=registry
    ).labels("clickhouse_sync")
    counter = Counter("executions", "", ["job"], registry=registry).labels("clickhouse_sync")

    def bare() -> None:
        with gauge.track_inprogress(), histogram.time():
            pass
        counter.inc()

    return bare


def _start_arm(arm: str, runs: int) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, "--arm", arm, "--spaced", str(runs)]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def spaced_round(runs: int, first: str, control: bool) -> dict[str, dict[str, Any]]:
    """Both arms at once, `first` in the earlier slots: {arm: {"walls": ..., "cpu": ...}}.
    A control round runs the bare path in both (an A/A test of the method)."""
    arms = {arm: _start_arm("bare" if control else arm, runs) for arm in ("ours", "bare")}
    for process in arms.values():
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            sys.exit("a spaced-run arm did not start")
    t0 = time.monotonic() + START_MARGIN_SECONDS
    for arm, process in arms.items():
        assert process.stdin is not None
        process.stdin.write(f"{t0 + (0 if arm == first else SPACING_SECONDS / 2)!r}\n")
        process.stdin.close()
    results = {}
    for arm, process in arms.items():
        assert process.stdout is not None
        results[arm] = json.loads(process.stdout.read())
        if process.wait() != 0:
            sys.exit(f"the {arm} arm failed")
    return results


def bench_spaced(runs: int, rounds: int, control: bool = False) -> None:
    """`track()` against bare prometheus_client on runs 50 ms apart; per round, the ratio of
    the two arms' median wall time on the run's path.

    Each round starts two processes, one per arm, that run at the same time on one schedule:
    one arm runs every SPACING_SECONDS from t0, the other every SPACING_SECONDS from
    t0 + SPACING / 2, and the arms swap these slots from one round to the next. Each run
    follows its own sleep, so its caches are as cold as in a service whose jobs are 50 ms
    apart; the two arms' runs alternate 25 ms apart, so a change of load on the machine
    reaches both alike; and the bare arm's process has no RSS sampler at all, so nothing
    track() started (the sampler's ticks, its /proc reads) runs in it or is timed as part
    of a bare run. (Alternating the arms inside one process would put 100 ms between an
    arm's own runs, and keep the sampler ticking in the baseline's process.) A slot reached
    too late (the process was descheduled) is skipped rather than run after a short sleep.
    `control` runs the bare path in both processes: an A/A test of the method.
    """
    what = "bare (control, A/A)" if control else "track()"
    wall_ratios, cpu_ratios = [], []
    for index in range(rounds):
        done = spaced_round(runs, ("ours", "bare")[index % 2], control)
        ours, bare = done["ours"], done["bare"]
        ours_wall, bare_wall = statistics.median(ours["walls"]), statistics.median(bare["walls"])
        wall_ratios.append(ours_wall / bare_wall)
        cpu_ratios.append(ours["cpu"] / bare["cpu"])
        print(f"  round: {what} {ours_wall * 1e6:5.1f} us on the path, {ours['cpu'] * 1e6:4.0f} "
              f"us CPU/run ({len(ours['walls'])} runs); bare {bare_wall * 1e6:5.1f} us, "
              f"{bare['cpu'] * 1e6:4.0f} us ({len(bare['walls'])} runs)")  # fmt: skip
    print(f"{what} every {SPACING_SECONDS * 1000:.0f} ms vs bare prometheus_client, two processes "
          f"at once, {runs} slots x {rounds} rounds:")  # fmt: skip
    print(f"  wall on the run's path:     {_range(wall_ratios, '.2f')}  (target <= 1.5)")
    cpu_note = "" if control else "  (sampler thread included)"
    print(f"  process CPU per run:        {_range(cpu_ratios, '.2f')}{cpu_note}")


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
    parser.add_argument(
        "--control", action="store_true", help="spaced runs: bare against bare, then stop"
    )
    parser.add_argument("--arm", choices=("ours", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:  # one arm of bench_spaced, in a process of its own
        spaced_arm(args.arm, args.spaced)
        return
    bench_spaced(args.spaced, args.rounds, args.control)
    if args.control:
        return
    bench_lean_core()
    if not args.skip_celery:
        bench_celery(args.tasks, args.rounds)


if __name__ == "__main__":
    main()
