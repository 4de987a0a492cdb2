"""The scenarios: schedules of real jobs with a known answer, in families.

A spec is plain JSON (`run.py` plays it; the Prometheus and VictoriaMetrics suites reuse
it): `name`, `family`, `metric`, `interval`, `duration`, `spike_at`, `guilty` (None when
no job caused the spike), `volume` ({name: amount} the guilty run processed), `jobs`
[{name, kind, volume, mode ("sync" or "async"), runs [{start, length, units, fails?,
leaks?}]}], `noise` [{start, length, bytes, kind?, thread?}] (work outside every job;
`thread` "main" runs it on the main thread, "handler" in an HTTP request handler), and
`also`: further questions about the same run [{spike_at, guilty, volume}] (stacking).
Fields are only ever added.

In every family the guilty job's runs allocate memory (or burn CPU, or log) in proportion
to what they process, with one much bigger run at `spike_at`; innocent jobs overlap it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

NAMES = ("clickhouse_sync", "report_export", "image_resize", "cache_warm", "ranking_calc",
         "stats_collection", "email_digest", "search_reindex")  # fmt: skip
VOLUMES = ("rows", "images", "records", "documents")
INTERVAL = 0.1
DURATION = 18.0
SPIKE_UNITS = 250_000
"""What the guilty run processes: 250 MB of memory at 1 KiB per unit, a whole core of CPU,
3000 log records."""
STACKED_UNITS = (150_000, 100_000)
"""The two stacked runs: steps of about 150 MB and 100 MB."""
OUTSIDE_BYTES = 250 * 2**20
"""The spike made outside every job."""
SPIKE_LENGTH = 3.0
"""Seconds the spike runs hold their memory (or burn, or log): long enough that a recorder
stalled for a second or two on a loaded machine still samples the spike several times."""
OUTSIDE_LENGTH = 2.5
"""Seconds the outside-every-job work lasts."""

Spec = dict[str, Any]


def _repeating(rng: random.Random, first: float, clear: tuple[float, float]) -> list[Spec]:
    """Regular runs of 20K-60K units every 2.2-3 s, none inside `clear`."""
    runs, t = [], first
    while t < DURATION - 2:
        if t + 1.2 > clear[0] and t < clear[1]:
            t = clear[1]
            continue
        runs.append({"start": t, "length": 1.2, "units": rng.randint(20_000, 60_000)})
        t += rng.uniform(2.2, 3.0)
    return runs


def _overlaps(run: Spec, span: tuple[float, float]) -> bool:
    return bool(run["start"] + run["length"] >= span[0] and run["start"] <= span[1])


def _light(rng: random.Random) -> list[Spec]:
    runs, t = [], rng.uniform(0.0, 1.0)
    while t < DURATION - 1:
        runs.append({"start": t, "length": rng.uniform(0.4, 1.5), "units": rng.randint(1, 50)})
        t += rng.uniform(1.5, 3.5)
    return runs


def _base(index: int, family: str, kind: str, spike_at: float) -> tuple[Spec, random.Random]:
    rng = random.Random(f"{family}-{index}")
    names = rng.sample(NAMES, 4)
    volume = rng.choice(VOLUMES)
    spec: Spec = {
        "family": family, "metric": kind, "interval": INTERVAL, "duration": DURATION,
        "spike_at": spike_at, "jobs": [], "noise": [], "also": [],
        "names": names, "volume_name": volume,
    }  # fmt: skip
    spec["noise"] = [
        {"start": rng.uniform(1, DURATION - 2), "length": 0.8, "bytes": rng.randint(2, 8) * 2**20}
        for _ in range(6)
    ]
    return spec, rng


def _finish(spec: Spec, index: int) -> Spec:
    names = spec.pop("names")
    spec.pop("volume_name")
    label = spec["guilty"] or "no_job"
    spec["name"] = f"{index:02d}-{spec['family']}-{spec['metric']}-{label}"
    assert len(set(names)) == len(names)
    return spec


def guilty_with_overlap(
    index: int, kind: str, *, long_covers_all: bool = False, mode: str = "sync",
    fails: bool = False, leaks: bool = False, spike_at: float | None = None,
    family: str = "guilty_short",
) -> Spec:  # fmt: skip
    """The guilty job's big run, a long innocent run across it (or across everything), and
    short innocent runs that come and go."""
    rng = random.Random(f"{family}-{index}-at")
    at = spike_at if spike_at is not None else rng.uniform(11.0, 13.0)
    spec, rng = _base(index, family, kind, at)
    guilty, long_runner, *others = spec["names"]
    volume = spec["volume_name"]
    runs = _repeating(rng, rng.uniform(0.5, 1.5), (at - 0.8, at + SPIKE_LENGTH + 0.7))
    runs.append({"start": at - 0.3, "length": SPIKE_LENGTH, "units": SPIKE_UNITS, "fails": fails,
                 "leaks": leaks})  # fmt: skip
    spec["jobs"].append({"name": guilty, "kind": kind, "volume": volume, "mode": mode,
                         "runs": sorted(runs, key=lambda r: r["start"])})  # fmt: skip
    long_runs = (
        [{"start": 0.2, "length": DURATION - 0.7, "units": 10}]
        if long_covers_all
        else [{"start": 0.2, "length": 4.0, "units": 10},
              {"start": at - rng.uniform(2.0, 3.0), "length": 5.5, "units": 10}]
    )  # fmt: skip
    spec["jobs"].append({"name": long_runner, "kind": "light", "volume": "items", "mode": "sync",
                         "runs": long_runs})  # fmt: skip
    for name in others:
        spec["jobs"].append({"name": name, "kind": "light", "volume": "items", "mode": "sync",
                             "runs": _light(rng)})  # fmt: skip
    spec["guilty"], spec["volume"] = guilty, {volume: SPIKE_UNITS}
    return _finish(spec, index)


def outside_every_job(index: int, kind: str, thread: str) -> Spec:
    """The spike comes from the main thread or a request handler, while an innocent job
    runs across it; the job that moves the metric in its own runs is nowhere near."""
    family = f"no_job_{thread}"
    rng = random.Random(f"{family}-{index}-at")
    at = rng.uniform(11.0, 13.0)
    spec, rng = _base(index, family, kind, at)
    mover, long_runner, *others = spec["names"]
    quiet = (at - 1.5, at + OUTSIDE_LENGTH + 1.0)
    spec["jobs"].append({"name": mover, "kind": kind, "volume": spec["volume_name"],
                         "mode": "sync", "runs": _repeating(rng, rng.uniform(0.5, 1.5),
                                                            quiet)})  # fmt: skip
    spec["jobs"].append({"name": long_runner, "kind": "light", "volume": "items", "mode": "sync",
                         "runs": [{"start": 0.2, "length": 4.0, "units": 10},
                                  {"start": at - rng.uniform(2.0, 3.0), "length": 6.0,
                                   "units": 10}]})  # fmt: skip
    for name in others:
        runs = [
            r for r in _light(rng) if r["start"] + r["length"] < quiet[0] or r["start"] > quiet[1]
        ]
        spec["jobs"].append({"name": name, "kind": "light", "volume": "items", "mode": "sync",
                             "runs": runs})  # fmt: skip
    spec["noise"].append({"start": at - 0.3, "length": OUTSIDE_LENGTH, "bytes": OUTSIDE_BYTES,
                          "kind": kind, "thread": thread})  # fmt: skip
    spec["guilty"], spec["volume"] = None, {}
    return _finish(spec, index)


def stacking(index: int) -> Spec:
    """Two jobs that each add memory, a few seconds apart: two steps, two answers."""
    family = "stacking"
    rng = random.Random(f"{family}-{index}-at")
    at = rng.uniform(10.0, 11.0)
    second_at = at + rng.uniform(2.0, 3.0)
    spec, rng = _base(index, family, "memory", at)
    first, second, long_runner, other = spec["names"]
    other_volume = rng.choice([v for v in VOLUMES if v != spec["volume_name"]])
    clear = (at - 0.8, second_at + SPIKE_LENGTH + 2.0)
    for job, volume, units, start, length in (
        (first, spec["volume_name"], STACKED_UNITS[0], at - 0.3, second_at - at + 2.5),
        (second, other_volume, STACKED_UNITS[1], second_at - 0.3, SPIKE_LENGTH),
    ):
        runs = _repeating(rng, rng.uniform(0.5, 1.5), clear)
        runs.append({"start": start, "length": length, "units": units})
        spec["jobs"].append({"name": job, "kind": "memory", "volume": volume, "mode": "sync",
                             "runs": sorted(runs, key=lambda r: r["start"])})  # fmt: skip
    spec["jobs"].append({"name": long_runner, "kind": "light", "volume": "items", "mode": "sync",
                         "runs": [{"start": at - 2.0, "length": 8.0, "units": 10}]})  # fmt: skip
    spec["jobs"].append({"name": other, "kind": "light", "volume": "items", "mode": "sync",
                         "runs": _light(rng)})  # fmt: skip
    spec["guilty"], spec["volume"] = first, {spec["volume_name"]: STACKED_UNITS[0]}
    spec["also"] = [{"spike_at": second_at, "guilty": second,
                     "volume": {other_volume: STACKED_UNITS[1]}}]  # fmt: skip
    return _finish(spec, index)


def history_identifies(index: int) -> Spec:
    """An innocent job starts at the very moment the guilty one does: only the guilty
    job's history (its earlier runs' rise per unit) tells them apart."""
    spec = guilty_with_overlap(index, "memory", family="history")
    twin = next(job for job in spec["jobs"][2:] if job["kind"] == "light")
    at = spec["spike_at"]
    twin["runs"] = [
        r for r in twin["runs"] if r["start"] + r["length"] < at - 1 or r["start"] > at + 2
    ]
    twin["runs"].append({"start": at - 0.3, "length": SPIKE_LENGTH, "units": 40})
    twin["runs"].sort(key=lambda r: r["start"])
    return spec


FAMILIES: list[tuple[str, Callable[[int], Spec]]] = [
    *[("guilty_short", lambda i, k=k: guilty_with_overlap(i, k))
      for k in ("memory", "memory", "memory", "memory", "cpu", "cpu", "logs", "logs")],
    *[("guilty_long", lambda i, k=k: guilty_with_overlap(i, k, long_covers_all=True,
                                                         family="guilty_long"))
      for k in ("memory", "memory", "memory", "cpu", "logs")],
    *[("no_job_main", lambda i, k=k: outside_every_job(i, k, "main"))
      for k in ("memory", "memory", "cpu", "logs")],
    *[("no_job_handler", lambda i, k=k: outside_every_job(i, k, "handler"))
      for k in ("memory", "memory", "cpu", "logs")],
    *[("stacking", stacking)] * 4,
    *[("leak", lambda i: guilty_with_overlap(i, "memory", leaks=True, family="leak"))] * 3,
    *[("async", lambda i, k=k: guilty_with_overlap(i, k, mode="async", family="async"))
      for k in ("memory", "memory", "cpu")],
    *[("fails", lambda i, k=k: guilty_with_overlap(i, k, fails=True, family="fails"))
      for k in ("memory", "memory", "cpu")],
    *[("history", history_identifies)] * 3,
    *[("young", lambda i, k=k: guilty_with_overlap(i, k, spike_at=6.0, family="young"))
      for k in ("memory", "memory", "cpu", "logs")],
]  # fmt: skip
"""(family, build) per scenario: guilty with innocent overlap (short; a long run covering
everything), no job (main thread; a request handler) while a job runs across it, two jobs
stacking, a leak that outlives its run, an async job, a job that fails mid-spike, a
repeating job whose history identifies it, a spike in the process's first seconds."""

SCENARIOS = [build(index) for index, (_, build) in enumerate(FAMILIES)]
