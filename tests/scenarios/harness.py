"""Run scenarios in child processes (several at once) and keep their stores."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent.parent


@dataclass(frozen=True)
class Ran:
    spec: dict[str, Any]
    store: Path
    started: float
    """Wall-clock time of the scenario's t=0."""
    openmetrics: Path
    """Every sample of the registry, for backfilling a Prometheus-compatible server."""

    @property
    def spike_at(self) -> float:
        return self.started + float(self.spec["spike_at"])


def run_one(spec: dict[str, Any], directory: Path) -> Ran:
    spec_file = directory / f"{spec['name']}.json"
    spec_file.write_text(json.dumps(spec))
    store = directory / f"{spec['name']}.sqlite3"
    subprocess.run(
        [sys.executable, "-m", "scenarios.run", str(spec_file), str(store)],
        cwd=TESTS, check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    started = float(store.with_suffix(".start").read_text())
    return Ran(spec, store, started, store.with_suffix(".om"))


def run_all(specs: list[dict[str, Any]], directory: Path, parallel: int = 6) -> list[Ran]:
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda spec: run_one(spec, directory), specs))
