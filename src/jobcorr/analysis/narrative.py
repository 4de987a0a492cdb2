"""Numbers and sentences for people: 50K, 2.3 GB, 0.9 cores, and the conclusion."""

from __future__ import annotations

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


def volumes_text(volumes: dict[str, float], limit: int = 3) -> str:
    top = sorted(volumes.items(), key=lambda item: -item[1])[:limit]
    return ", ".join(f"{count(amount)} {name}" for name, amount in top)


def conclusion(
    job: str | None,
    volumes: dict[str, float],
    metric: Metric,
    value: float,
    when: str,
    gauges: dict[str, float],
    *,
    spiked: bool,
    sure: bool,
) -> str:
    """The seed's conclusion, in words.

    "clickhouse_sync was processing 50K player_metrics when memory spiked to 2.3 GB at
    2026-11-28 14:23:05 +01:00; bg_active_players was 200."
    """
    moving = "spiked to" if spiked else "peaked at"
    moment = f"{METRIC_WORDS[metric]} {moving} {quantity(metric, value)} at {when}"
    if job is None:
        sentence = f"No background job was running when {moment}"
    else:
        doing = f"was processing {volumes_text(volumes)}" if volumes else "was running"
        hedge = "" if sure else "probably "
        sentence = f"{job} {hedge}{doing} when {moment}"
    context = "; ".join(f"{name} was {count(v)}" for name, v in list(gauges.items())[:3])
    return f"{sentence}; {context}." if context else f"{sentence}."
