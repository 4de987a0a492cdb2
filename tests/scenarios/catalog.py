"""The scenarios: each a schedule of real jobs where one chosen job causes the spike.

Every scenario has a guilty job whose runs allocate memory (or burn CPU, or log heavily)
in proportion to what they process, with one much bigger run at `spike_at`; innocent
jobs overlap it (one runs long enough to cover every guilty run, others come and go);
a non-job thread adds background noise. In "none" scenarios the spike comes from outside
any job, while no job runs, and nobody may be blamed.
"""

from __future__ import annotations

import random
from typing import Any

NAMES = ("clickhouse_sync", "report_export", "image_resize", "cache_warm", "ranking_calc",
         "stats_collection", "email_digest", "search_reindex")  # fmt: skip
VOLUMES = ("rows", "images", "records", "documents")
INTERVAL = 0.1
DURATION = 18.0
KINDS = ["memory"] * 12 + ["cpu"] * 4 + ["logs"] * 4 + ["none"] * 4


def scenario(index: int) -> dict[str, Any]:
    rng = random.Random(index)
    kind = KINDS[index % len(KINDS)]
    names = rng.sample(NAMES, 4)
    guilty, long_runner, *others = names
    volume = rng.choice(VOLUMES)
    spike_at = rng.uniform(11.0, 13.0)
    metric = "memory" if kind == "none" else kind
    jobs: list[dict[str, Any]] = []

    guilty_runs = []
    t = rng.uniform(0.5, 1.5)
    while t < DURATION - 2:
        if t + 1.2 > spike_at - 0.8 and t < spike_at + 2.5:
            t = spike_at + 2.5  # keep the spike run alone
            continue
        guilty_runs.append({"start": t, "length": 1.2, "units": rng.randint(20_000, 60_000)})
        t += rng.uniform(2.2, 3.0)
    if kind != "none":
        guilty_runs.append({"start": spike_at - 0.3, "length": 1.8, "units": 250_000})
    jobs.append({"name": guilty, "kind": kind if kind != "none" else "memory", "volume": volume,
                 "runs": sorted(guilty_runs, key=lambda r: r["start"])})  # fmt: skip

    # A long innocent run covering the spike, and short innocent runs that come and go.
    long_runs = [{"start": 0.2, "length": 4.0, "units": 10}]
    long_runs.append({"start": spike_at - rng.uniform(2.0, 3.0), "length": 5.5, "units": 10})
    jobs.append({"name": long_runner, "kind": "light", "volume": "items", "runs": long_runs})
    for name in others:
        runs = []
        t = rng.uniform(0.0, 1.0)
        while t < DURATION - 1:
            runs.append({"start": t, "length": rng.uniform(0.4, 1.5), "units": rng.randint(1, 50)})
            t += rng.uniform(1.5, 3.5)
        jobs.append({"name": name, "kind": "light", "volume": "items", "runs": runs})

    noise = [
        {"start": rng.uniform(1, DURATION - 2), "length": 0.8, "bytes": rng.randint(2, 8) * 2**20}
        for _ in range(6)
    ]
    if kind == "none":
        # Clear every job away from the spike; the spike comes from outside any job.
        quiet = (spike_at - 1.5, spike_at + 2.5)
        for job in jobs:
            job["runs"] = [
                r
                for r in job["runs"]
                if r["start"] + r["length"] < quiet[0] or r["start"] > quiet[1]
            ]
        noise.append({"start": spike_at - 0.3, "length": 1.5, "bytes": 250 * 2**20})
    return {
        "name": f"{index:02d}-{kind}-{guilty if kind != 'none' else 'no_job'}",
        "metric": metric,
        "interval": INTERVAL,
        "duration": DURATION,
        "spike_at": spike_at,
        "guilty": None if kind == "none" else guilty,
        "volume": {volume: 250_000} if kind != "none" else {},
        "jobs": jobs,
        "noise": noise,
    }


SCENARIOS = [scenario(i) for i in range(24)]
