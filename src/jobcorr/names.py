"""Validation of the names that become label values: job names and volume names.

Label values must stay bounded, so a name is accepted only if it looks like an
identifier chosen in code, never like data (a URL, a user id, a server name).

Integrations (APScheduler, Celery, RQ) name jobs by one rule, `job_name`: lower-case, every
character outside [a-z0-9_] becomes `_`, a name that does not start with a letter gets a
`job_` prefix, and a name longer than the rule's 63 characters keeps its end (the function,
the most specific part) from its first letter on.

    >>> job_name("reports.build_pdf")
    'reports_build_pdf'

    >>> check_name("job", "clickhouse_sync")
    'clickhouse_sync'
    >>> check_name("job", "ClickHouse Sync")
    Traceback (most recent call last):
    ...
    ValueError: job name 'ClickHouse Sync' is invalid: it must match ^[a-z][a-z0-9_]{0,62}$ ...
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

NAME_RULE = r"^[a-z][a-z0-9_]{0,62}$"
_NAME = re.compile(NAME_RULE)
_MAX_LENGTH = 63  # the rule's 1 + 62 characters
_OUTSIDE = re.compile(r"[^a-z0-9_]")
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


def job_name(text: str) -> str:
    """The one naming rule of the integrations: make `text` (a task or function path) a job
    name; see the module docstring. Raises ValueError for an empty text."""
    if not text:
        raise ValueError("a job needs a name: got an empty one")
    name = _OUTSIDE.sub("_", text.lower())
    if not name[0].isalpha():  # after the substitution, [a-z] is the only alphabet left
        name = "job_" + name
    if len(name) > _MAX_LENGTH:
        name = name[-_MAX_LENGTH:].lstrip("0123456789_") or "job"
    return name


def function_job_name(func: Callable[..., Any]) -> str:
    """`module_function` by the rule: `myapp.reports.build_pdf` -> `myapp_reports_build_pdf`."""
    target = getattr(func, "func", func)  # functools.partial: its function
    module = getattr(target, "__module__", None) or ""
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    qualname = qualname.replace(".<locals>", "")  # a nested function: its outer and own name
    return job_name(f"{module}.{qualname}" if module else qualname)
