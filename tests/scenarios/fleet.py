"""The ground-truth scenarios on the fleet path: real engines scraping the scenarios live.

At a 15 or 30 s scrape the catalog's scenarios (time compressed tenfold, sampled at 10 Hz)
are over before the second scrape, so each is stretched by one rule, `scaled`: every time
in it is multiplied by `SCALE`, and the recorder samples at production's 1 Hz. Every
scenario then runs at once, side by side, each serving /metrics on a free loopback port
and recording its embedded store, so both answers come from the same run. One engine per
scrape interval scrapes them all, each target labelled with its scenario, and a
`{scenario="..."}` matcher selects one scenario's series.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scenarios.harness import Launched, Ran, launch
from support import free_port, wait_ready

SCALE = 50.0
"""Live seconds per catalog second. A spike is detected when it is high for more than 1.5
sampling steps: at a 30 s scrape, two scrapes. The catalog's spikes (1.8-3 s) become
90-150 s, and its stacked steps (2-3 s apart) 100-150 s: three 30 s steps of flat time."""
SAMPLING = 1.0
"""The recorder's interval in production (the catalog's 0.1 s is its tenfold compression)."""
TIME_KEYS = frozenset({"start", "length", "spike_at", "duration"})
"""The catalog's fields that hold seconds; `scaled` stretches exactly these."""
STAGGER = 15.0
"""Seconds between consecutive scenarios' schedules. The CPU scenarios, one in five of the
schedule, spike 75 s apart, so at most two or three of their 150 s burners share the two
cores: 41 processes whose eight burners all spiked within two minutes got 0.2-0.4 of a
core each, under the detection's floor. A fleet's services do not share two cores."""
LEAD = 60.0
"""Seconds from launching the processes to the first schedule: ~40 interpreters start on
two busy cores, and the engines must be scraping before the first job runs."""
PORT_WAIT = 120.0
"""How long a process may take to start serving /metrics on a busy machine."""
TAIL = 300.0
"""Margin for the last process to finish after its schedule ends."""
ENGINES = (("prometheus", 15), ("prometheus", 30), ("victoria-metrics", 15))


def scaled(spec: dict[str, Any], factor: float = SCALE) -> dict[str, Any]:
    """A catalog scenario `factor` times slower, sampled at 1 Hz and serving /metrics."""

    def stretch(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: stretch(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [stretch(v) for v in value]
        return value * factor if key in TIME_KEYS else value

    return {**stretch(spec), "interval": SAMPLING, "serve": True}


def schedule(specs: list[dict[str, Any]], first: float) -> list[dict[str, Any]]:
    """Start times `STAGGER` apart, metrics interleaved so that alike spikes are spread out."""
    seen: Counter[str] = Counter()
    sizes = Counter(spec["metric"] for spec in specs)
    ranked = []
    for spec in specs:
        ranked.append((seen[spec["metric"]] / sizes[spec["metric"]], spec))
        seen[spec["metric"]] += 1
    ordered = [spec for _, spec in sorted(ranked, key=lambda pair: pair[0])]
    return [{**spec, "start_at": first + i * STAGGER} for i, spec in enumerate(ordered)]


@dataclass(frozen=True)
class Engine:
    name: str
    """"prometheus 15s", say."""
    url: str
    interval: int


@dataclass(frozen=True)
class Fleet:
    ran: list[Ran]
    engines: list[Engine]

    def __repr__(self) -> str:  # pytest prints it with every failure
        return f"Fleet({len(self.ran)} scenarios, {', '.join(e.name for e in self.engines)})"


def scrape_config(ports: dict[str, int], interval: int) -> dict[str, Any]:
    """One scrape job over every scenario, as our generated config does: honor_labels keeps
    the jobs' own `job` label; each target carries its `scenario`."""
    return {
        "global": {"scrape_interval": f"{interval}s", "scrape_timeout": f"{min(interval, 10)}s"},
        "scrape_configs": [
            {
                "job_name": "scenarios",
                "honor_labels": True,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"scenario": name}}
                    for name, port in sorted(ports.items())
                ],
            }
        ],
    }


def command(binary: str, directory: Path, port: int) -> list[str]:
    """The engine's command line, listening on loopback only."""
    if Path(binary).name == "victoria-metrics":
        return [binary, f"-promscrape.config={directory / 'scrape.yml'}",
                f"-storageDataPath={directory / 'data'}", f"-httpListenAddr=127.0.0.1:{port}",
                "-search.latencyOffset=0s", "-loggerLevel=ERROR"]  # fmt: skip
    return [binary, f"--config.file={directory / 'scrape.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"]  # fmt: skip


@contextmanager
def engine(binary: str, interval: int, ports: dict[str, int], directory: Path) -> Iterator[Engine]:
    directory.mkdir()
    (directory / "scrape.yml").write_text(yaml.safe_dump(scrape_config(ports, interval)))
    port = free_port()
    with (directory / "log").open("wb") as log:
        process = subprocess.Popen(command(binary, directory, port), stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/-/ready", timeout=PORT_WAIT)  # on failure, see `log` beside it
        yield Engine(f"{Path(binary).name} {interval}s", url, interval)
    finally:
        process.terminate()
        process.wait(timeout=60)


def wait_port(scenario: Launched) -> int:
    """The port the scenario serves /metrics on, once it does."""
    path = scenario.store.with_suffix(".port")
    deadline = time.monotonic() + PORT_WAIT
    while time.monotonic() < deadline and scenario.process.poll() is None:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.5)
    scenario.finish(timeout=1)  # raises with the process's error output if it died
    raise RuntimeError(f"scenario {scenario.spec['name']} did not serve /metrics in time")


def stop(launched: list[Launched]) -> None:
    for scenario in launched:
        if scenario.process.poll() is None:
            scenario.process.kill()
            scenario.process.wait()


@contextmanager
def live(specs: list[dict[str, Any]], directory: Path, binaries: dict[str, str]) -> Iterator[Fleet]:
    """Run the catalog `specs` scaled and side by side, scraped by every engine in ENGINES
    (`binaries` maps an engine to its executable); yields once every process has ended."""
    planned = schedule([scaled(spec) for spec in specs], time.time() + LEAD)
    with ExitStack() as stack:
        launched = [launch(spec, directory) for spec in planned]
        stack.callback(stop, launched)
        ports = {scenario.spec["name"]: wait_port(scenario) for scenario in launched}
        engines = [
            stack.enter_context(engine(binaries[name], interval, ports,
                                       directory / f"{name}-{interval}s"))
            for name, interval in ENGINES
        ]  # fmt: skip
        last = max(spec["start_at"] + spec["duration"] for spec in planned)
        ran = [s.finish(timeout=max(1.0, last + TAIL - time.time())) for s in launched]
        time.sleep(max(interval for _, interval in ENGINES))  # the last scrapes land
        yield Fleet(ran, engines)
