"""The dashboard API's parameters: each parsed into a bounded value, or a `BadRequest` that
names the parameter that was sent (or the required one that was not).

    start, end = time_range(request.query_params)
    width = width_px(request.query_params)
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from jobcorr.contract import METRICS, Metric
from jobcorr.names import NAME_RULE
from jobcorr.times import EARLIEST, TimeParseError, iso_local, parse_at, parse_duration

Query = Mapping[str, str]

DEFAULT_RANGE_SECONDS = 3600.0
"""Without `from`, a view shows the hour before `to`: the dashboard's default."""
MAX_RANGE_SECONDS = 31 * 86400
"""A month of one-minute rollups is ~45 000 points a series: still quick to read."""
WIDTH_PX = (100, 4000)
"""Chart widths from a phone to a wall display; two points per pixel stay small."""
MAX_WINDOW_SECONDS = 86400.0
"""An explanation looks at most a day around its moment."""
MAX_TEXT = 200
"""No valid value of any parameter is longer (an ISO time is ~32 characters)."""
_ASCII_DIGITS = re.compile(r"[0-9]{1,4}", re.ASCII)
_NAME = re.compile(NAME_RULE, re.ASCII)


class BadRequest(Exception):
    """A parameter is unusable: `parameter` names it, the message says what works."""

    def __init__(self, parameter: str, message: str, status: int = 400) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.status = status


def text(query: Query, name: str, default: str | None = None) -> str:
    """The raw value of `name`, bounded in length; required unless a default is given."""
    value = query.get(name, default)
    if value is None:
        raise BadRequest(name, "missing; it is required here")
    if len(value) > MAX_TEXT:
        raise BadRequest(name, f"too long ({len(value)} characters; at most {MAX_TEXT})")
    return value


def moment(query: Query, name: str, default: str | None = None) -> float:
    """A time from 1970 to 9998 (see `jobcorr.times.AT_FORMS`)."""
    try:
        return parse_at(text(query, name, default), now=time.time())
    except TimeParseError as error:
        raise BadRequest(name, str(error)) from None


def time_range(query: Query) -> tuple[float, float]:
    """`from` and `to`; `to` defaults to now and `from` to an hour before `to`."""
    end = moment(query, "to", "now")
    if "from" in query:
        start = moment(query, "from")
        if start >= end:
            raise BadRequest("from", f"{iso_local(start)} must be before to ({iso_local(end)})")
    else:
        start = max(EARLIEST, end - DEFAULT_RANGE_SECONDS)
        if start >= end:
            raise BadRequest("to", f"{iso_local(end)} leaves no time before it to show")
    if end - start > MAX_RANGE_SECONDS:
        raise BadRequest(
            "from", f"the range is {(end - start) / 86400:.0f} days long; at most 31 days"
        )
    return start, end


def metric(query: Query) -> Metric:
    value = text(query, "metric", "memory")
    for known in METRICS:
        if value == known:
            return known
    raise BadRequest("metric", f"{value!r} is not one of {', '.join(METRICS)}")


def width_px(query: Query) -> int:
    value = text(query, "width", "1200")
    low, high = WIDTH_PX
    if not _ASCII_DIGITS.fullmatch(value) or not low <= int(value) <= high:
        raise BadRequest("width", f"{value!r} is not a whole number of pixels from {low} to {high}")
    return int(value)


def window(query: Query) -> float:
    try:
        seconds = parse_duration(text(query, "window", "5m"))
    except TimeParseError as error:
        raise BadRequest("window", str(error)) from None
    if seconds > MAX_WINDOW_SECONDS:
        raise BadRequest("window", "at most 1d")
    return seconds


def job(query: Query) -> str | None:
    """An optional job name (by the name rule)."""
    if "job" not in query:
        return None
    value = text(query, "job")
    if not _NAME.fullmatch(value):
        raise BadRequest("job", f"{value!r} is not a job name (they match {NAME_RULE})")
    return value
