"""Settings from CLI flags, then environment variables, then defaults; bad values refused.

Each setting has one environment variable and one flag. `load_settings` names the setting
in its error, so a typo in a deployment fails at start with the fix in the message.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bf42stats.incident import Incident
from bf42stats.jobs.clickhouse_sync import SYNC_STRATEGIES
from jobcorr.params import flag_type, parse_port, reason

DEMO_INCIDENT = "clickhouse-outage@+20s/115s"
"""During the demo's player surge, long enough for a backlog of tens of thousands of
player_metrics rows (~55k). It ends 135 s in, so that the catch-up (the sync tick at
138.5 s) falls between gamification's ticks (121.5 s, 151.5 s at --speed 10) rather than
on one: with two jobs starting together, explain rightly declines to pick one."""


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names the setting."""


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):  # also refuses nan
        raise ValueError("must be a positive number")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _port(text: str) -> int:
    return parse_port(text, zero_for_any=True)  # 0: the dashboard's, or a test's, free port


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _url_or_empty(text: str) -> str:
    if text and urlparse(text).scheme not in {"http", "https"}:
        raise ValueError("must be an http:// or https:// URL, or empty")
    return text.rstrip("/")


def _sync_strategy(text: str) -> str:
    if text not in SYNC_STRATEGIES:
        raise ValueError(f"must be one of {', '.join(SYNC_STRATEGIES)}")
    return text


def _incident(text: str) -> Incident | None:
    return Incident.parse(text) if text else None


def _text(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


POSITIVE_INT = flag_type(_positive_int)
POSITIVE_FLOAT = flag_type(_positive_float)
PORT = flag_type(_port)


@dataclass(frozen=True)
class Setting:
    field: str
    env: str
    flag: str
    parse: Callable[[str], Any]
    default: str
    help: str
    demo: str | None = None
    """The default under `--demo`, when it differs (the demo shows an incident)."""


SETTINGS: tuple[Setting, ...] = (
    Setting("stats_interval", "STATS_COLLECTION_INTERVAL_SECONDS", "--stats-interval",
            _positive_float, "30", "seconds between stats_collection runs"),
    Setting("sync_interval", "CLICKHOUSE_SYNC_INTERVAL_SECONDS", "--sync-interval",
            _positive_float, "60", "seconds between clickhouse_sync runs"),
    Setting("ranking_interval", "RANKING_INTERVAL_SECONDS", "--ranking-interval",
            _positive_float, "3600", "seconds between ranking_calc runs"),
    Setting("gamification_interval", "GAMIFICATION_INTERVAL_SECONDS", "--gamification-interval",
            _positive_float, "300", "seconds between gamification runs"),
    Setting("enable_gamification", "ENABLE_GAMIFICATION", "--enable-gamification",
            _boolean, "true", "run the gamification job (true/false)"),
    Setting("data_dir", "BF42_DATA_DIR", "--data-dir",
            _text, "./data", "directory for the SQLite store and embedded ClickHouse"),
    Setting("feed_url", "BF42_FEED_URL", "--feed-url",
            _url_or_empty, "https://api.bflist.io", "BFList v2 base URL (--demo: the simulator)"),
    Setting("clickhouse_url", "CLICKHOUSE_URL", "--clickhouse-url",
            _url_or_empty, "", "ClickHouse server URL; empty: embedded chdb under the data dir"),
    Setting("sync_batch_size", "CLICKHOUSE_SYNC_BATCH_SIZE", "--sync-batch-size",
            _positive_int, "2000", "rows per ClickHouse insert (batched): about one tick's "
            "sync, so a catch-up needs no more memory than a tick"),
    Setting("sync_strategy", "CLICKHOUSE_SYNC_STRATEGY", "--sync-strategy",
            _sync_strategy, "batched", "batched (bounded memory) or whole-backlog (the "
            "original: the backlog in one insert)", demo="whole-backlog"),
    Setting("incident", "BF42_INCIDENT", "--incident",
            _incident, "", "a scheduled incident, e.g. clickhouse-outage@+1m/90s; empty: none",
            demo=DEMO_INCIDENT),
    Setting("session_timeout", "SESSION_TIMEOUT_SECONDS", "--session-timeout",
            _positive_float, "300", "a player unseen this long has left (session closed)"),
    Setting("host", "BF42_HOST", "--host",
            _text, "127.0.0.1", "bind address for /metrics, /healthz and the dashboard"),
    Setting("port", "BF42_PORT", "--port", _port, "8080", "port to listen on"),
    Setting("dashboard_port", "BF42_DASHBOARD_PORT", "--dashboard-port", _port, "0",
            "port of the dashboard's own process (0: any free one); --port redirects there"),
    Setting("speed", "BF42_SPEED", "--speed",
            _positive_float, "1", "divide every interval by this (demos and tests)"),
    Setting("record", "JOBCORR_RECORD", "--record",
            _boolean, "true", "record metrics and runs for `jobcorr explain` (data dir)"),
    Setting("shutdown_timeout", "BF42_SHUTDOWN_TIMEOUT_SECONDS", "--shutdown-timeout",
            _positive_float, "30", "seconds in-flight runs get to finish on SIGTERM"),
    Setting("protect_metrics", "BF42_PROTECT_METRICS", "--protect-metrics",
            _boolean, "false", "ask for the dashboard's credentials on /metrics too"),
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    stats_interval: float
    sync_interval: float
    ranking_interval: float
    gamification_interval: float
    enable_gamification: bool
    data_dir: Path
    feed_url: str
    clickhouse_url: str
    sync_batch_size: int
    sync_strategy: str
    incident: Incident | None
    session_timeout: float
    host: str
    port: int
    dashboard_port: int
    speed: float
    record: bool
    shutdown_timeout: float
    protect_metrics: bool

    def interval(self, job: str) -> float:
        """The effective interval of a job in seconds, `--speed` applied."""
        base = {
            "stats_collection": self.stats_interval,
            "clickhouse_sync": self.sync_interval,
            "ranking_calc": self.ranking_interval,
            "gamification": self.gamification_interval,
        }[job]
        return base / self.speed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, its help naming the environment variable and the default."""
    for setting in SETTINGS:
        parser.add_argument(
            setting.flag,
            dest=setting.field,
            default=None,
            metavar=setting.env,
            help=f"{setting.help} (env {setting.env}, default {setting.default!r}"
            + (f", under --demo {setting.demo!r})" if setting.demo is not None else ")"),
        )


def load_settings(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    demo: bool = False,
) -> Settings:
    """Resolve every setting (flag, else environment, else the default, or the demo's
    default under `demo`); raise ConfigError."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        flag_value = getattr(args, setting.field, None) if args is not None else None
        if flag_value is not None:
            raw, origin = flag_value, setting.flag
        elif setting.env in env:
            raw, origin = env[setting.env], setting.env
        elif demo and setting.demo is not None:
            raw, origin = setting.demo, f"{setting.env} (--demo default)"
        else:
            raw, origin = setting.default, f"{setting.env} (default)"
        try:
            values[setting.field] = setting.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{origin}={raw!r} {reason(error)}") from None
    values["data_dir"] = Path(values["data_dir"])
    return Settings(**values)


def prepare_data_dir(settings: Settings) -> None:
    """Create the data directory and prove it writable, or raise ConfigError saying so."""
    probe = settings.data_dir / ".bf42stats-write-test"
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(
            f"BF42_DATA_DIR / --data-dir {str(settings.data_dir)!r} cannot be written "
            f"({error.strerror}): choose a writable directory"
        ) from None
