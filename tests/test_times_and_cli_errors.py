"""Times as people type them, and clear errors for what cannot be read."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest

from jobcorr.analysis.narrative import count, quantity
from jobcorr.times import AT_FORMS, TimeParseError, format_local, parse_at, parse_duration

NOW = datetime(2026, 11, 28, 15, 0, 0).astimezone().timestamp()


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10), ("5m", 300), ("1h", 3600), ("2d", 172800), ("250ms", 0.25)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "five minutes", "-5m", "0s", "5w"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(TimeParseError, match="like 10s, 5m, 1h or 2d"):
        parse_duration(text)


def test_the_forms_of_at() -> None:
    assert parse_at("-15m", now=NOW) == NOW - 900
    assert (
        parse_at("2026-11-28T14:23:05+00:00", now=NOW)
        == datetime.fromisoformat("2026-11-28T14:23:05+00:00").timestamp()
    )
    assert parse_at("2026-11-28T14:23:05Z", now=NOW) == parse_at(
        "2026-11-28T14:23:05+00:00", now=NOW
    )
    local = datetime(2026, 11, 28, 14, 23).astimezone().timestamp()
    assert parse_at("2026-11-28 14:23", now=NOW) == local
    assert parse_at("14:23", now=NOW) == local


def test_a_clock_time_later_than_now_means_yesterday() -> None:
    assert parse_at("16:00", now=NOW) == datetime(2026, 11, 27, 16, 0).astimezone().timestamp()


@pytest.mark.parametrize("text", ["yesterday", "14h23", "2026-13-01 10:00", "-5x", "25:00"])
def test_bad_times_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(TimeParseError) as error:
        parse_at(text, now=NOW)
    assert AT_FORMS in str(error.value)


def test_local_times_print_with_their_offset() -> None:
    text = format_local(NOW)
    assert text.startswith("2026-11-28 15:00:00 ")
    assert text[-6] in "+-" and text[-3] == ":"


@pytest.mark.parametrize(
    ("value", "text"), [(50_000, "50K"), (1_250_000, "1.2M"), (12, "12"), (2_500, "2.5K")]
)
def test_counts_read_like_the_seed(value: float, text: str) -> None:
    assert count(value) == text


def test_quantities() -> None:
    assert quantity("memory", 2.3e9) == "2.3 GB"
    assert quantity("memory", 150e6) == "150.0 MB"
    assert quantity("cpu", 0.9) == "0.90 cores"
    assert quantity("logs", 1500) == "1.5K log records/s"


def jobcorr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobcorr.cli", *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_explain_refuses_an_unparseable_at(tmp_path) -> None:
    result = jobcorr("explain", "--at", "teatime", "--source", f"embedded:{tmp_path}/x.sqlite3")
    assert result.returncode == 2
    assert "is not a time" in result.stderr and "-15m" in result.stderr
    assert "Traceback" not in result.stderr


def test_explain_says_when_there_is_no_store(tmp_path) -> None:
    result = jobcorr("explain", "--at", "-5m", "--source", f"embedded:{tmp_path}/missing.sqlite3")
    assert result.returncode == 2
    assert "no jobcorr store at" in result.stderr


def test_explain_refuses_an_unknown_source_kind() -> None:
    result = jobcorr("explain", "--at", "-5m", "--source", "influx:http://x")
    assert result.returncode == 2
    assert "embedded:PATH" in result.stderr and "prometheus:URL" in result.stderr


def test_spikes_refuses_a_bad_since(tmp_path) -> None:
    result = jobcorr("spikes", "--since", "a while", "--source", f"embedded:{tmp_path}/x.sqlite3")
    assert result.returncode == 2
    assert "is not a duration" in result.stderr
