"""One rule per kind of value typed on a command line or in the environment (`jobcorr.params`)."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobcorr.params import MAX_PORT, flag_type, parse_port


@given(st.integers(min_value=1, max_value=MAX_PORT))
def test_every_port_reads_as_itself(port: int) -> None:
    assert parse_port(str(port)) == port
    assert parse_port(str(port), zero_for_any=True) == port


@given(st.text(max_size=8))
def test_a_port_is_ascii_digits_in_range_and_nothing_else(text: str) -> None:
    looks_like_one = text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_PORT
    if looks_like_one:
        assert parse_port(text) == int(text)
    else:
        with pytest.raises(ValueError, match="must be a port number from 1 to 65535"):
            parse_port(text)


@pytest.mark.parametrize("text", ["\u0668\u0660\u0668\u0660", "+8080", " 8080", "80_80", "-1",
                                  "65536", "8080.0", ""])  # fmt: skip
def test_what_int_would_take_is_not_a_port(text: str) -> None:
    with pytest.raises(ValueError, match="must be a port number"):
        parse_port(text, zero_for_any=True)


def test_zero_is_any_free_port_only_where_asked_for() -> None:
    assert parse_port("0", zero_for_any=True) == 0
    with pytest.raises(ValueError, match=r"from 1 to 65535$"):
        parse_port("0")
    with pytest.raises(ValueError, match=r"from 0 to 65535 \(0: any free port\)"):
        parse_port("99999", zero_for_any=True)


def test_flag_type_gives_argparse_the_reason_or_a_plain_refusal() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="'99999' must be a port number"):
        flag_type(parse_port)("99999")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^'x' is not a valid value$"):
        flag_type(float)("x")  # Python's "could not convert ..." is not for users
    assert flag_type(parse_port)("8080") == 8080
