"""One run's life: `track()` and `@job`, the run handle, run records and their listeners.

    >>> import jobcorr
    >>> with jobcorr.track("clickhouse_sync") as run:
    ...     run.add("player_metrics", 50_000)

    >>> @jobcorr.job("ranking_calc")
    ... def recalculate() -> None:
    ...     ...

Each run updates the contract's job families (see `jobcorr.contract`) and, when it ends,
hands a `RunRecord` to every listener added with `add_run_listener`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Literal, NamedTuple, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry

from jobcorr.metrics import JobMetrics, job_metrics
from jobcorr.names import check_name
from jobcorr.rss import RssSampler, Watch

Status = Literal["success", "failure", "cancelled"]

_log = logging.getLogger(__name__)
_sampler = RssSampler()
_current: ContextVar[Run | None] = ContextVar("jobcorr_current_run", default=None)
_listeners: list[Callable[[RunRecord], None]] = []
_start_listeners: list[Callable[[RunStart], None]] = []
_listeners_lock = threading.Lock()


class Cancelled(Exception):
    """Raise inside a run to end it as `cancelled` (shutdown), not as a failure."""


_CANCELLED = (Cancelled, asyncio.CancelledError, KeyboardInterrupt, SystemExit)


def _new_prefix() -> str:
    return os.urandom(6).hex()


class _ThisProcess:
    """What runs read of the process they run in, renewed in a forked child: the source of
    short, process-unique run ids (`<random prefix>-<counter in hex>`; cheaper than uuid4),
    the pid, and each thread's CPU clock.

    A run takes the prefix and the next count when it starts and formats its id when it is
    first read (a run nobody listens to never formats one). A thread's CPU clock is looked up
    once per thread, not per run; a forked child's threads have other ids.
    """

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.prefix = _new_prefix() + "-"
        self.counter = itertools.count(1)
        self.pid = os.getpid()
        self.thread = _ThreadClock()


class _ThreadClock(threading.local):
    """`clock`: the calling thread's CPU clock, readable from other threads (None off POSIX)."""

    def __init__(self) -> None:  # runs once in each thread that reads `clock`
        try:
            self.clock: int | None = time.pthread_getcpuclockid(threading.get_ident())
        except (AttributeError, OSError):
            self.clock = None


_this_process = _ThisProcess()


class RunStart(NamedTuple):
    """A run that has just begun (for stores that must know about runs still going)."""

    run_id: str
    job: str
    started_at: float
    pid: int = 0


class RunRecord(NamedTuple):
    """What one finished run did. Times are unix seconds; memory is in bytes; `pid` is the
    process that ran it (a pool's child, for runs its parent reports)."""

    run_id: str
    job: str
    started_at: float
    ended_at: float
    status: Status
    error_type: str | None
    error_message: str | None
    cpu_seconds: float
    peak_rss_bytes: int
    rss_at_start: int
    rss_at_end: int
    volumes: dict[str, float]
    pid: int = 0

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at


class Run(Watch):
    """A run in progress: the handle `track()` gives to the job.

    `run.add(name, amount)` says what the run processed; the figures end up in its
    `RunRecord.volumes`. Use it as a context manager (`with track(...) as run`); a Run
    is entered once.

    CPU time is the thread CPU time of the thread that entered the run, between enter and
    exit; `cpu_so_far()` reads it from any thread while the run is going (the thread's CPU
    clock, taken at enter). For a run in a coroutine that is the event loop's thread, so it
    includes whatever else the loop ran while the job was awaiting: an upper bound for async
    jobs. Nested runs on one thread each count the thread's CPU.
    Peak memory: see `jobcorr.rss`.
    """

    __slots__ = (
        "_count",
        "_cpu_clock",
        "_cpu_start",
        "_id_prefix",
        "_metrics",
        "_perf_start",
        "_run_id",
        "_token",
        "job",
        "started_at",
        "volumes",
    )

    def __init__(self, job: str, metrics: JobMetrics) -> None:
        # The remaining slots are set by __enter__: a Run is built on every job's path.
        self.job = job
        self._count = 0  # 0 until entered
        self._run_id = ""
        self.volumes: dict[str, float] = {}
        self._metrics = metrics

    @property
    def run_id(self) -> str:
        """Unique among this process's runs (and its forks'); "" before the run starts."""
        if not self._run_id and self._count:
            self._run_id = f"{self._id_prefix}{self._count:x}"
        return self._run_id

    def add(self, name: str, amount: float = 1) -> None:
        """Record that this run processed `amount` more of `name` (e.g. records, servers)."""
        volumes = self.volumes
        if name in volumes:
            volumes[name] += amount
        else:
            name = self._metrics.admit_volume(self.job, check_name("volume", name))
            volumes[name] = volumes.get(name, 0) + amount

    def __enter__(self) -> Run:
        if self._count:
            raise RuntimeError(f"run {self.run_id} of job {self.job!r} was already entered")
        ids = _this_process
        self._id_prefix, self._count = ids.prefix, next(ids.counter)
        # Wall and monotonic clocks read back to back: end = start + monotonic duration, so
        # nested runs end in the order they really ended.
        self.started_at = time.time()
        self._perf_start = time.perf_counter()
        self._cpu_clock = ids.thread.clock
        self._cpu_start = time.thread_time()
        self._metrics.run_started(self)
        _sampler.begin(self)
        self._token: Token[Run | None] = _current.set(self)
        if _start_listeners:
            start = RunStart(self.run_id, self.job, self.started_at, _this_process.pid)
            _notify(_start_listeners, start)
        return self

    def cpu_so_far(self) -> float:
        """CPU seconds of the run's thread since the run began (0 where unreadable)."""
        if self._cpu_clock is None:
            return 0.0
        try:
            return max(0.0, time.clock_gettime(self._cpu_clock) - self._cpu_start)
        except OSError:  # the thread is gone without ending the run
            return 0.0

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        duration = time.perf_counter() - self._perf_start
        cpu_seconds = time.thread_time() - self._cpu_start
        _current.reset(self._token)
        rss_start, peak, rss_end = _sampler.end(self)
        status: Status
        if exc is None:
            status = "success"
        elif isinstance(exc, _CANCELLED):
            status = "cancelled"
        else:
            status = "failure"
        self._metrics.run_finished(self, duration, cpu_seconds, rss_start, peak, status)
        if _listeners:
            _notify(
                _listeners,
                RunRecord(
                    self.run_id,
                    self.job,
                    self.started_at,
                    self.started_at + duration,
                    status,
                    None if exc_type is None else exc_type.__qualname__,
                    None if exc is None else str(exc),
                    cpu_seconds,
                    peak,
                    rss_start,
                    rss_end,
                    self.volumes,
                    _this_process.pid,
                ),
            )


def track(job: str, *, registry: CollectorRegistry | None = None) -> Run:
    """Track one run of `job`; use as `with jobcorr.track("clickhouse_sync") as run:`.

    The exception of a failing body propagates unchanged after the run is recorded.
    `registry` defaults to prometheus_client's default registry.
    """
    metrics = job_metrics(registry)
    return Run(metrics.admit(job), metrics)


P = ParamSpec("P")
R = TypeVar("R")


def job(
    name: str, *, registry: CollectorRegistry | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function (sync or async) so that every call is a tracked run of `name`.

    >>> @job("gamification")
    ... async def award() -> None:
    ...     ...
    """
    check_name("job", name)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with track(name, registry=registry):
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run_sync(*args: P.args, **kwargs: P.kwargs) -> R:
            with track(name, registry=registry):
                return fn(*args, **kwargs)

        return run_sync

    return decorate


def current_run() -> Run | None:
    """The run active in this context (thread or task), if any."""
    return _current.get()


def add_volume(name: str, amount: float = 1) -> None:
    """`run.add(name, amount)` on the run active in this context; nothing outside runs.

    For code deep inside a job (a scheduler integration started the run) that should not
    have to pass the run handle around.
    """
    run = _current.get()
    if run is not None:
        run.add(name, amount)
    else:
        check_name("volume", name)


def record_skipped(job: str, *, registry: CollectorRegistry | None = None) -> None:
    """Count a scheduler tick skipped because the previous run of `job` was still going."""
    metrics = job_metrics(registry)
    metrics.run_skipped(metrics.admit(job))


def take_memory_peak() -> tuple[int, float]:
    """The highest resident memory (bytes) read while runs were going since the previous
    call, and when (unix time); (0, 0.0) when none was. The embedded recorder's, each tick."""
    return _sampler.take_peak()


def announce(event: RunStart | RunRecord) -> None:
    """Hand a run that another process tracked (a pool's child) to this process's listeners."""
    listeners = _start_listeners if isinstance(event, RunStart) else _listeners
    if listeners:
        _notify(listeners, event)


def add_run_listener(listener: Callable[[RunRecord], None]) -> Callable[[], None]:
    """Call `listener(record)` after every finished run, in the run's thread; returns a remover.

    Keep listeners fast (queue the record, write elsewhere): they run on the job's path.
    A listener that raises is logged and never fails the run.
    """
    return _add(_listeners, listener)


def add_run_start_listener(listener: Callable[[RunStart], None]) -> Callable[[], None]:
    """Call `listener(start)` when a run begins, in the run's thread; returns a remover."""
    return _add(_start_listeners, listener)


L = TypeVar("L")


def _add(listeners: list[L], listener: L) -> Callable[[], None]:
    with _listeners_lock:
        listeners.append(listener)

    def remove() -> None:
        with _listeners_lock:
            if listener in listeners:
                listeners.remove(listener)

    return remove


def _notify(listeners: list[Callable[[Any], None]], event: RunRecord | RunStart) -> None:
    for listener in tuple(listeners):
        try:
            listener(event)
        except Exception:
            _log.exception("run listener %r failed for run %s", listener, event.run_id)
