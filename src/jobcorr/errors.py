"""The root of jobcorr's exceptions: `except jobcorr.JobcorrError` catches every error
jobcorr raises on purpose (a store it cannot read, a source it cannot reach, a time it
cannot parse, a missing extra, a bad setting), each with a message that says what to do.

Specific ones live beside their code and subclass this one (and, where a caller would
expect it, the built-in they used to be: `TimeParseError` is a `ValueError`).
"""

from __future__ import annotations


class JobcorrError(Exception):
    """Something jobcorr cannot do; the message says why and what to do."""


class InvalidSetting(JobcorrError, ValueError):
    """A setting given in code or the environment is unusable (e.g. a user without a password)."""
