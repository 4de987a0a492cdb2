"""Optional features and the extra that installs each.

`pip install jobcorr` brings prometheus-client alone; a feature that needs more calls
`require(extra, module, ...)` before importing it, so a missing package is one line that
names the extra to install instead of a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib.util

from jobcorr.errors import JobcorrError


class MissingExtra(JobcorrError, ImportError):
    """A feature's optional dependency is not installed; the message names the extra."""


def require(extra: str, *modules: str) -> None:
    """Raise `MissingExtra` unless every top-level `modules` can be imported."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(f"this needs {', '.join(missing)}: pip install 'jobcorr[{extra}]'")
