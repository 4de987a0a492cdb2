"""Resident memory for runs: a background sampler, so the run's own path reads no /proc file.

How the peak is measured
------------------------
While at least one run is active, a daemon thread wakes every `interval` seconds (10 ms
by default). On Linux it reads the kernel's peak-RSS mark (`VmHWM` in /proc/self/status)
and then resets it by writing `5` to /proc/self/clear_refs, so each tick yields the true
peak since the previous tick, however briefly it lasted. Where clear_refs cannot be written
the sampler reads the current RSS from /proc/self/statm instead, and a spike shorter than
one interval can be missed. Elsewhere (no /proc) every figure is 0.

A run's peak is the largest tick peak seen while it was active, together with the readings
at its start and end. Overlapping runs share one process, so each sees the process peak
during its own lifetime: an innocent run that overlaps a hungry one reports the same peak.
Attribution across overlapping runs is the analysis's job, not this figure's.

Side effect: resetting the peak-RSS mark also resets what other tools read as `VmHWM`
for this process while runs are active.

Start and end readings are the sampler's latest, at most one interval old; the sampler
keeps ticking for `linger` seconds after the last run so that back-to-back runs stay fresh.
The first run after a quiet spell reads its start directly (one pread of
/proc/self/statm), since the sampler's last reading is then stale.
"""

from __future__ import annotations

import os
import threading
import time

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Watch:
    """What the sampler fills in for one run: RSS at its start and the peak so far (bytes).

    `jobcorr.tracking.Run` is a Watch, so watching a run allocates nothing.
    """

    __slots__ = ("rss_peak", "rss_start")

    def __init__(self) -> None:
        self.rss_start: int | None = None
        self.rss_peak = 0


class _ProcReader:
    """Reads (current RSS, peak RSS since the previous read) for this process."""

    def __init__(self) -> None:
        self._status = self._statm = self._clear_refs = -1
        try:
            self._statm = os.open("/proc/self/statm", os.O_RDONLY)
            self._status = os.open("/proc/self/status", os.O_RDONLY)
            self._clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY)
        except OSError:
            pass

    @property
    def method(self) -> str:
        if self._clear_refs >= 0:
            return "hwm"
        return "statm" if self._statm >= 0 else "none"

    def current(self) -> int | None:
        """Resident memory now, from /proc/self/statm (one small pread), if there is one."""
        if self._statm < 0:
            return None
        return int(os.pread(self._statm, 128, 0).split()[1]) * _PAGE_SIZE

    def read(self) -> tuple[int, int]:
        if self._clear_refs >= 0:
            status = os.pread(self._status, 8192, 0)
            rss = _status_kib(status, b"VmRSS:") * 1024
            peak = _status_kib(status, b"VmHWM:") * 1024
            try:
                os.write(self._clear_refs, b"5")
            except OSError:
                os.close(self._clear_refs)
                self._clear_refs = -1
            return rss, max(rss, peak)
        rss = self.current() or 0
        return rss, rss


def _status_kib(status: bytes, key: bytes) -> int:
    start = status.find(key)
    if start < 0:
        return 0
    end = status.find(b"kB", start)
    return int(status[start + len(key) : end])


class RssSampler:
    """Samples this process's RSS while runs are active; see the module docstring.

        >>> sampler = RssSampler()
        >>> watch = Watch()
        >>> sampler.begin(watch)
        >>> data = bytearray(50_000_000)
        >>> start, peak, end = sampler.end(watch)
        >>> peak >= start
        True

    `begin` and `end` take no lock on the common path: adding to and discarding from a
    set are atomic in CPython, and the sampler thread reads a copy of the set.
    """

    def __init__(self, interval: float = 0.01, linger: float = 1.0) -> None:
        self.interval = interval
        self._linger_ticks = max(1, round(linger / interval))
        self._init_state()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._init_state)

    def _init_state(self) -> None:
        # Also runs in a forked child: the parent's thread, lock holder and fds are not ours.
        self._lock = threading.Lock()
        self._watches: set[Watch] = set()
        self._latest = 0
        self._idle = True
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: _ProcReader | None = None

    @property
    def method(self) -> str:
        """'hwm' (exact peaks), 'statm' (sampled RSS) or 'none' (no /proc)."""
        return self._ensure_reader().method

    def _ensure_reader(self) -> _ProcReader:
        if self._reader is None:
            self._reader = _ProcReader()
        return self._reader

    def begin(self, watch: Watch) -> None:
        """Start watching `watch` for one run."""
        if self._idle:
            # The latest reading is old: read the start now (the first run after a quiet
            # spell pays one small /proc read; runs in a busy period pay none).
            start = self._ensure_reader().current()
            watch.rss_start = start
            watch.rss_peak = start if start is not None else self._latest
        else:
            watch.rss_start = watch.rss_peak = self._latest
        self._watches.add(watch)
        if self._idle:  # read after the add: see _go_idle_unless_watched
            self._wake_up()

    def end(self, watch: Watch) -> tuple[int, int, int]:
        """Stop watching; return (rss at start, peak, rss at end) in bytes."""
        self._watches.discard(watch)
        latest = self._latest
        start = latest if watch.rss_start is None else watch.rss_start
        return start, max(watch.rss_peak, start, latest), latest

    def _wake_up(self) -> None:
        with self._lock:
            if self._thread is None:
                self._latest = self._ensure_reader().read()[0]
                self._thread = threading.Thread(target=self._loop, name="jobcorr-rss", daemon=True)
                self._thread.start()
            if self._idle:
                self._idle = False
                self._wake.set()

    def _go_idle_unless_watched(self) -> None:
        # `begin` adds its watch and then reads `_idle`; here `_idle` is set and then the
        # watches are read. Either the new watch is seen here, or `begin` sees `_idle`.
        with self._lock:
            self._idle = True
            self._wake.clear()
            if self._watches:
                self._idle = False
                self._wake.set()

    def _loop(self) -> None:
        reader = self._ensure_reader()
        quiet_ticks = 0
        while True:
            self._wake.wait()
            rss, peak = reader.read()
            self._latest = rss
            watches = list(self._watches)
            for watch in watches:
                if watch.rss_start is None:
                    watch.rss_start = rss
                if peak > watch.rss_peak:
                    watch.rss_peak = peak
            quiet_ticks = 0 if watches else quiet_ticks + 1
            if quiet_ticks > self._linger_ticks:
                self._go_idle_unless_watched()
                quiet_ticks = 0
            time.sleep(self.interval)
