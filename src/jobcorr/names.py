"""Validation of the names that become label values: job names and volume names.

Label values must stay bounded, so a name is accepted only if it looks like an
identifier chosen in code, never like data (a URL, a user id, a server name).

    >>> check_name("job", "clickhouse_sync")
    'clickhouse_sync'
    >>> check_name("job", "ClickHouse Sync")
    Traceback (most recent call last):
    ...
    ValueError: job name 'ClickHouse Sync' is invalid: it must match ^[a-z][a-z0-9_]{0,62}$ ...
"""

from __future__ import annotations

import re

NAME_RULE = r"^[a-z][a-z0-9_]{0,62}$"
_NAME = re.compile(NAME_RULE)
_accepted: set[str] = set()


def check_name(kind: str, name: str) -> str:
    """Return `name` if it is a valid job or volume name, else raise ValueError quoting the rule."""
    if name in _accepted:
        return name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"{kind} name {name!r} is invalid: it must match {NAME_RULE} "
            "(lowercase letter first, then up to 62 lowercase letters, digits or '_'), "
            "because it becomes a Prometheus label value and must come from code, not data"
        )
    _accepted.add(name)
    return name
