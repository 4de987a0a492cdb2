"""Numbers and sentences for people: 50K, 2.3 GB, 0.9 cores, and the conclusion."""

from __future__ import annotations

from dataclasses import dataclass

from jobcorr.contract import Metric


def count(value: float) -> str:
    """50_000 -> '50K', 1_250_000 -> '1.2M', 12 -> '12'."""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if magnitude >= limit:
            scaled = value / limit
            return f"{scaled:.0f}{suffix}" if abs(scaled) >= 10 else f"{scaled:.1f}{suffix}"
    return f"{value:.0f}" if float(value).is_integer() or magnitude >= 10 else f"{value:.2g}"


def quantity(metric: Metric, value: float) -> str:
    if metric == "memory":
        for limit, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(value) >= limit:
                return f"{value / limit:.1f} {unit}"
        return f"{value:.0f} B"
    if metric == "cpu":
        return f"{value:.2f} cores"
    if metric == "gc":
        return f"{count(value)} GC collections/s"
    return f"{count(value)} log records/s"


METRIC_WORDS: dict[Metric, str] = {
    "memory": "memory",
    "cpu": "CPU",
    "logs": "log volume",
    "gc": "GC activity",
}


VERDICT_WORDS = {
    "blamed": "",
    "inseparable": "can't separate two jobs",
    "abstained": "no job with confidence",
    "not_a_job": "outside every job",
    "no_job_running": "no job running",
    "calm": "",
}
"""Short words for a spike's verdict where no single job is named (tables)."""


def volumes_text(volumes: dict[str, float], limit: int = 3) -> str:
    top = sorted(volumes.items(), key=lambda item: -item[1])[:limit]
    return ", ".join(f"{count(amount)} {name}" for name, amount in top)


@dataclass(frozen=True)
class Moment:
    metric: Metric
    value: float
    when: str
    spiked: bool
    """A spike (the real peak of its climb), or just the highest value near a calm moment."""

    def __str__(self) -> str:
        moving = "spiked to" if self.spiked else "peaked at"
        value = quantity(self.metric, self.value)
        return f"{METRIC_WORDS[self.metric]} {moving} {value} at {self.when}"


def conclusion(
    moment: Moment,
    verdict: str,
    jobs: list[str],
    volumes: dict[str, float],
    gauges: dict[str, float],
    owned: float | None,
) -> str:
    """The seed's conclusion, in words; `jobs` are the blamed job(s) for "blamed" and
    "inseparable", and the jobs running at the time otherwise.

    "clickhouse_sync was processing 50K player_metrics when memory spiked to 2.3 GB at
    2026-11-28 14:23:05 +01:00; bg_active_players was 200."
    """
    ran = ", ".join(jobs)
    if verdict == "blamed":
        doing = f"was processing {volumes_text(volumes)}" if volumes else "was running"
        sentence = f"{jobs[0]} {doing} when {moment}"
    elif verdict == "inseparable":
        sentence = (f"{jobs[0]} and {jobs[1]} were both running when {moment}, and the "
                    "evidence cannot tell which of them caused it")  # fmt: skip
    elif verdict == "not_a_job" and owned is not None:
        sentence = (f"No background job caused this: {moment}, and the jobs running then "
                    f"({ran}) owned only {owned:.0%} of the rise")  # fmt: skip
    elif verdict == "not_a_job":
        sentence = (f"No background job caused this: {moment}; {ran} ran during the climb, "
                    f"but {METRIC_WORDS[moment.metric]} did not rise while it ran (its own "
                    "readings)")  # fmt: skip
    elif verdict == "abstained":
        sentence = (f"No job can be blamed with confidence for {moment}; running at the "
                    f"time: {ran}")  # fmt: skip
    elif jobs:
        sentence = (
            f"{str(moment)[0].upper()}{str(moment)[1:]}, with no spike nearby; running: {ran}"
        )
    else:
        sentence = f"No background job was running when {moment}"
    context = "; ".join(f"{name} was {count(v)}" for name, v in list(gauges.items())[:3])
    return f"{sentence}; {context}." if context else f"{sentence}."
