"""Other processes' memory and CPU, from /proc: a pool's children, read by their parent.

In process pools (Celery's prefork pool, RQ's work-horse) a task owns its whole process, so
the parent can measure each child exactly. Linux only: elsewhere every reader returns None
or nothing, and only the parent process itself is measured.

    >>> import os
    >>> usage(os.getpid()).rss_bytes > 0
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

_PROC = Path("/proc")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Fields of /proc/PID/stat after the ")" that ends the command name (proc(5), from 0):
_STATE, _PPID, _UTIME, _STIME = 0, 1, 11, 12
_GONE = frozenset(b"ZX")  # zombie, dead: the process no longer runs

CHILD_MEMORY = "jobcorr_child_resident_memory_bytes"
"""Recorder series of one child's resident memory (label `pid`)."""
CHILD_CPU = "jobcorr_child_cpu_seconds_total"
"""Recorder series of one child's CPU time (label `pid`); a new pid starts a new series."""


_pool_parent = 0  # the pid that runs a pool (set by `sample_children`); 0: none


def sample_children() -> None:
    """Have the recorder sample this process's children: it runs a pool (Celery's prefork,
    RQ's work-horse) whose children run the jobs. Other processes' children (a Prometheus a
    test started, a browser) are not the service's and are left out."""
    global _pool_parent
    _pool_parent = os.getpid()


def child_samples() -> list[tuple[str, dict[str, str], str, float]]:
    """The recorder's rows for a pool's children, (series, labels, kind, value); none unless
    this process called `sample_children`."""
    rows: list[tuple[str, dict[str, str], str, float]] = []
    if _pool_parent != os.getpid():
        return rows
    for child in children():
        labels = {"pid": str(child.pid)}
        rows.append((CHILD_MEMORY, labels, "gauge", float(child.rss_bytes)))
        rows.append((CHILD_CPU, labels, "counter", child.cpu_seconds))
    return rows


class Usage(NamedTuple):
    pid: int
    ppid: int
    rss_bytes: int
    cpu_seconds: float


def usage(pid: int) -> Usage | None:
    """Resident memory and CPU time (user + system) of `pid`; None if it is gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_bytes()
        statm = (_PROC / str(pid) / "statm").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[_STATE][0] in _GONE:
        return None
    cpu = (int(fields[_UTIME]) + int(fields[_STIME])) / _CLOCK_TICKS
    return Usage(pid, int(fields[_PPID]), int(statm.split()[1]) * _PAGE_SIZE, cpu)


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie does not)."""
    if _PROC.is_dir():
        return usage(pid) is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def children(parent: int | None = None) -> list[Usage]:
    """Usage of every running child of `parent` (default: this process), by pid."""
    parent = os.getpid() if parent is None else parent
    found = []
    for pid in _child_pids(parent):
        child = usage(pid)
        if child is not None and child.ppid == parent:
            found.append(child)
    return sorted(found)


def _child_pids(parent: int) -> list[int]:
    """The kernel's list of children where it keeps one, else a scan of /proc."""
    pids: list[int] = []
    try:
        for task in (_PROC / str(parent) / "task").iterdir():
            pids.extend(int(pid) for pid in (task / "children").read_text().split())
        return pids
    except (OSError, ValueError):
        pass
    try:
        return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []
