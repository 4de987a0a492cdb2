"""Runs in a pool's child processes, reported to the parent process that serves /metrics.

Process pools (Celery's prefork pool, RQ's work-horse) run one task at a time in a child
process, so `track()` in the child measures the task's CPU time and peak RSS exactly. The
child's metrics die with it, though. `ChildRuns` is made in the parent before it forks:

    runs = ChildRuns(registry)      # parent, before forking children
    runs.attach()                   # in each child, right after the fork
    runs.key = task_id              # child: what the runs it starts now belong to
    runs.end(task_id, "failure", "TimeLimitExceeded", "hard time limit (30 s)")  # parent
    runs.close()                    # parent, at shutdown

Every run start and end in an attached child goes to the parent as one datagram on a Unix
socket pair. The parent applies it to its own job metrics and hands it to its run listeners
(the recorder), so one /metrics counts every child's runs, and a child recycled after its
last task loses nothing: a datagram sent is already in the parent's socket buffer.

A child that dies during a run (a hard time limit, the OOM killer, a revocation) sends no
end. The runner's parent says why with `end(key, ...)`; failing that, a run whose process
is gone is ended as a failure after `DEATH_GRACE_SECONDS`. Meanwhile the parent reads each
running child's RSS and CPU time, so a killed run still reports the peak RSS and the CPU
time the parent saw.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import socket
import threading
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from jobcorr.metrics import JobMetrics, job_metrics
from jobcorr.processes import sample_children, usage
from jobcorr.tracking import (
    RunRecord,
    RunStart,
    Status,
    add_run_listener,
    add_run_start_listener,
    announce,
)

_log = logging.getLogger(__name__)

SWEEP_SECONDS = 0.25
"""How often the parent reads its running children's usage and checks they are alive."""
DEATH_GRACE_SECONDS = 5.0
"""How long a run whose process died waits for the runner's reason (Celery reports a hard
time limit or a lost worker within a second) before it ends as an unexplained failure."""
_MAX_DATAGRAM = 1 << 16  # a run record with a few volumes is a few hundred bytes


@dataclass(eq=False)  # hashed by identity: JobMetrics keeps active runs in a set
class _OpenRun:
    """A child's run in progress, as the parent sees it (a `jobcorr.metrics.ActiveRun`)."""

    start: RunStart
    key: str | None
    cpu_first: float | None = None
    cpu_last: float = 0.0
    rss_first: int = 0
    rss_last: int = 0
    peak_rss: int = 0
    dead_since: float | None = None

    @property
    def job(self) -> str:
        return self.start.job

    @property
    def run_id(self) -> str:
        return self.start.run_id

    @property
    def started_at(self) -> float:
        return self.start.started_at

    def cpu_so_far(self) -> float:
        """The child's CPU time since the parent first saw the run (read every sweep)."""
        return 0.0 if self.cpu_first is None else self.cpu_last - self.cpu_first


class ChildRuns:
    """The parent's view of runs in its children; see the module docstring."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._receiver, self._sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._metrics: JobMetrics = job_metrics(registry)
        self._parent = os.getpid()
        sample_children()  # the recorder, when started, samples each child's RSS and CPU
        self._lock = threading.Lock()
        self._open: dict[str, _OpenRun] = {}
        self._closed = threading.Event()
        self.key: str | None = None
        self.attached = False  # True in a child whose runs go to the parent
        self._thread = threading.Thread(target=self._loop, name="jobcorr-children", daemon=True)
        self._thread.start()

    # --- in a child ----------------------------------------------------------

    def attach(self) -> None:
        """Call in a child right after the fork: its runs now go to the parent."""
        if os.getpid() == self._parent:
            return  # a pool that runs tasks in the parent itself (Celery's solo pool)
        self.attached = True
        self._receiver.close()
        add_run_start_listener(self._send)
        add_run_listener(self._send)

    def _send(self, event: RunStart | RunRecord) -> None:
        key = self.key if isinstance(event, RunStart) else None
        self._sender.send(pickle.dumps((event, key)))

    # --- in the parent -------------------------------------------------------

    def end(self, key: str, status: Status, error_type: str, message: str) -> int:
        """End the open runs of `key` (a task whose process died); how many there were."""
        with self._lock:
            self._drain()  # an end the child sent before it died comes first
            ended = [run for run in self._open.values() if run.key == key]
            for run in ended:
                self._finish(run, status, error_type, message)
        return len(ended)

    def open_runs(self) -> list[RunStart]:
        """Runs started in children and not ended yet."""
        with self._lock:
            return [run.start for run in self._open.values()]

    def close(self) -> None:
        """Stop reading (parent); runs still open stay in progress."""
        self._closed.set()
        self._thread.join(SWEEP_SECONDS * 4)
        self._receiver.close()
        self._sender.close()

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                select.select([self._receiver], [], [], SWEEP_SECONDS)
                with self._lock:
                    self._drain()
                    self._sweep(time.time())
            except (OSError, ValueError):
                if not self._closed.is_set():
                    _log.exception("jobcorr stopped reading runs of child processes")
                return

    def _drain(self) -> None:
        while True:
            try:
                data = self._receiver.recv(_MAX_DATAGRAM, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            event, key = pickle.loads(data)
            if isinstance(event, RunStart):
                run = self._open[event.run_id] = _OpenRun(event, key)
                self._metrics.run_started(run)
            else:
                ended = self._open.pop(event.run_id, None)
                if ended is None:
                    continue  # ended by the parent already (`end`, or its process died)
                self._metrics.run_finished(
                    ended, event.duration, event.cpu_seconds, event.rss_at_start,
                    event.peak_rss_bytes, event.status,
                )  # fmt: skip
            announce(event)

    def _sweep(self, now: float) -> None:
        for run in list(self._open.values()):
            seen = usage(run.start.pid)
            if seen is not None:
                if run.cpu_first is None:
                    run.cpu_first, run.rss_first = seen.cpu_seconds, seen.rss_bytes
                run.cpu_last, run.rss_last = seen.cpu_seconds, seen.rss_bytes
                run.peak_rss = max(run.peak_rss, seen.rss_bytes)
            elif run.dead_since is None:
                run.dead_since = now
            elif now - run.dead_since >= DEATH_GRACE_SECONDS:
                message = f"the process running it (pid {run.start.pid}) died"
                self._finish(run, "failure", "ProcessDied", message)

    def _finish(self, run: _OpenRun, status: Status, error_type: str, message: str) -> None:
        del self._open[run.start.run_id]
        start = run.start
        ended_at = time.time()
        cpu = run.cpu_so_far()
        duration = max(0.0, ended_at - start.started_at)
        self._metrics.run_finished(run, duration, cpu, run.rss_first, run.peak_rss, status)
        announce(
            RunRecord(
                start.run_id, start.job, start.started_at, start.started_at + duration,
                status, error_type, message, cpu, run.peak_rss, run.rss_first, run.rss_last, {},
                start.pid,
            )
        )  # fmt: skip
