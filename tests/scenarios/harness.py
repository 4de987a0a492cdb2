"""Run scenarios in child processes (several at once) and keep their stores."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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


@dataclass(frozen=True)
class Launched:
    """A scenario process that is running."""

    spec: dict[str, Any]
    store: Path
    process: subprocess.Popen[bytes]

    def finish(self, timeout: float) -> Ran:
        """Wait for the process to end and read what it left."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        if self.process.returncode != 0:
            errors = self.store.with_suffix(".err").read_text(errors="replace")[-2000:]
            name, code = self.spec["name"], self.process.returncode
            raise RuntimeError(f"scenario {name} exited with {code}: {errors}")
        started = float(self.store.with_suffix(".start").read_text())
        return Ran(self.spec, self.store, started, self.store.with_suffix(".om"))


def launch(spec: dict[str, Any], directory: Path) -> Launched:
    """Start one scenario process; its files are named after the scenario in `directory`."""
    spec_file = directory / f"{spec['name']}.json"
    spec_file.write_text(json.dumps(spec))
    store = directory / f"{spec['name']}.sqlite3"
    with store.with_suffix(".err").open("wb") as errors:  # a file: a pipe could fill and block
        process = subprocess.Popen(
            [sys.executable, "-m", "scenarios.run", str(spec_file), str(store)],
            cwd=TESTS, stdout=subprocess.DEVNULL, stderr=errors,
        )  # fmt: skip
    return Launched(spec, store, process)


def run_one(spec: dict[str, Any], directory: Path) -> Ran:
    return launch(spec, directory).finish(timeout=120)


def run_all(specs: list[dict[str, Any]], directory: Path, parallel: int = 6) -> list[Ran]:
    """Every scenario, `parallel` at once. The first ones start a share of a scenario's
    duration apart, and each slot's next follows its last: the spikes (all at about the
    same point of their scenarios) stay spread out, not `parallel` CPU burners and
    allocations at once on two cores."""

    def staggered(index: int, spec: dict[str, Any]) -> Ran:
        if index < parallel:
            time.sleep(index * float(spec["duration"]) / parallel)
        return run_one(spec, directory)

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(staggered, range(len(specs)), specs))
