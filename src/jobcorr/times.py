"""Reading and printing times for people: `--at`, `--window`, and local times with offsets.

>>> parse_duration("5m")
300.0
>>> parse_at("-15m", now=1_800_000_000.0)
1799999100.0
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from jobcorr.errors import JobcorrError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$", re.ASCII)
_UNIX = re.compile(r"\d{1,12}(\.\d{1,9})?", re.ASCII)
EARLIEST = 0.0
"""Times before the Unix epoch are refused: nothing jobcorr records is older."""
LATEST = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
"""A year before datetime's end, so a local time with any offset can still be printed."""
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

AT_FORMS = (
    "an ISO 8601 time with seconds and an offset (2026-11-28T14:23:05+01:00), "
    "a local date and time (2026-11-28 14:23 or 2026-11-28 14:23:05), "
    "a local time today (14:23), a time ago (-15m, -2h, -90s), unix seconds, or now"
)


class TimeParseError(JobcorrError, ValueError):
    """The text is not a time or duration jobcorr reads; the message lists the forms."""


def parse_duration(text: str) -> float:
    """`10s`, `5m`, `1h`, `2d` (or `250ms`) -> seconds."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise TimeParseError(f"{text!r} is not a duration: use a positive number and a unit, "
                             "like 10s, 5m, 1h or 2d")  # fmt: skip
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_at(text: str, *, now: float) -> float:
    """A moment as unix seconds, from 1970 to 9998; see AT_FORMS. Times without an offset
    are local."""
    try:
        moment = _moment(text.strip(), now)
    except (ValueError, OverflowError, OSError):
        raise TimeParseError(f"{text!r} is not a time: use {AT_FORMS}") from None
    if not EARLIEST <= moment <= LATEST:
        raise TimeParseError(f"{text!r} is outside the times jobcorr reads (1970 to 9998)")
    return moment


def _moment(value: str, now: float) -> float:
    if value == "now":
        return now
    if _UNIX.fullmatch(value):
        return float(value)
    if value.startswith("-"):
        return now - parse_duration(value[1:])
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", value, re.ASCII):
        today = datetime.fromtimestamp(now).astimezone()
        parts = [int(p) for p in value.split(":")]
        seconds = parts[2] if len(parts) > 2 else 0
        moment = today.replace(hour=parts[0], minute=parts[1], second=seconds, microsecond=0)
        if moment.timestamp() > now + 60:  # "14:23" late in the evening means today's
            moment -= timedelta(days=1)
        return moment.timestamp()
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # local
    return parsed.timestamp()


def format_local(timestamp: float, *, seconds: bool = True) -> str:
    """`2026-11-28 14:23:05 +01:00`: local time with its offset."""
    moment = datetime.fromtimestamp(timestamp).astimezone()
    text = moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    offset = moment.strftime("%z")
    return f"{text} {offset[:3]}:{offset[3:]}"


def iso_local(timestamp: float) -> str:
    """`2026-11-28T14:23:05.123+01:00` for machines (JSON)."""
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="milliseconds")
