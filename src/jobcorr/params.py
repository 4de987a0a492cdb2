"""Values people type on a command line or put in the environment, one rule for each kind:
`jobcorr`'s CLI and a service's settings read ports by `parse_port`, and turn any such
parser into an argparse type with `flag_type`.

    >>> parse_port("8080")
    8080
    >>> parse_port("0", zero_for_any=True)
    0
    >>> parse_port("+8080")
    Traceback (most recent call last):
    ...
    ValueError: must be a port number from 1 to 65535
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

MAX_PORT = 65535
"""TCP's largest port: the field is 16 bits."""

T = TypeVar("T")


def parse_port(text: str, *, zero_for_any: bool = False) -> int:
    """The port `text` names: ASCII digits only (no sign, space, `_` or other scripts'
    digits, which `int()` would take), from 1 to MAX_PORT, or 0 ("any free port") when
    `zero_for_any`. Raises ValueError whose message, starting with "must", gives the range.
    """
    lowest = 0 if zero_for_any else 1
    if not text.isascii() or not text.isdigit() or not lowest <= int(text) <= MAX_PORT:
        free = " (0: any free port)" if zero_for_any else ""
        raise ValueError(f"must be a port number from {lowest} to {MAX_PORT}{free}")
    return int(text)


def flag_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """`parse` as an argparse type: a ValueError becomes argparse's one-line usage error
    (`'99999' must be a port number ...`, exit 2), never a traceback. A reason that does not
    start with "must" (Python's own "invalid literal ...") is put as "is not a valid value".
    """

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r} {reason(error)}") from None

    return convert


def reason(error: ValueError) -> str:
    """What a parser's ValueError says about the value, fit to follow it in a message."""
    return str(error) if str(error).startswith("must") else "is not a valid value"
