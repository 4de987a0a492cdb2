"""Text from data made safe for a terminal: control characters removed.

Label values, job and volume names and error messages come from data; an escape sequence
among them must not reach the terminal (it could move the cursor, retitle the window or
hide text). Newlines and tabs stay. The CLI's rich console also runs with markup off, so
`[/x]` in a label prints as itself.

    >>> printable("queue\\x1b[2J[/x]\\u202e")
    'queue[2J[/x]'
"""

from __future__ import annotations

import re

_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 (but tab and newline) and C1 controls, DEL
    "\u200b-\u200f\u202a-\u202e\u2066-\u2069]"  # zero-width marks and bidi overrides
)


def printable(text: object) -> str:
    """`str(text)` without control characters (see the module docstring)."""
    return _CONTROL.sub("", str(text))
