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
for this process while the sampler is awake.

What a run pays, and what the sampler costs
-------------------------------------------
A run that starts while other runs are active reads no /proc file and wakes no thread: its
start is the sampler's latest reading (one tick old). A run that starts a busy spell reads
its start directly (one pread of /proc/self/statm, parsed only when its text changed since
the previous read): memory that rose just before it, outside every job, must not count as its
own rise. The sampler ticks every `interval`; a tick reads
VmHWM (as above) only while a run is active. Between runs a tick reads nothing, except
every `refresh` seconds (50 ms), when it resets the peak mark: a run's first peak covers at
most that much time before it began. After `linger` seconds without runs the sampler
sleeps; the next run wakes it. A run's end is the last reading during it; a run shorter
than one tick ends at its start reading.

The recorder's peak
-------------------
The sampler also keeps the highest reading since `take_peak` was last called, and when it
was read. The embedded recorder takes it every tick, so a job's memory that rose and fell
between two of its samples (a 0.4 s catch-up, say) is still recorded, at its true height
and at the moment it was read.
"""

from __future__ import annotations

import os
import threading
import time

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM_BYTES = 128  # seven decimal page counts: far more than their longest text


class Watch:
    """What the sampler fills in for one run: RSS at its start, the latest reading and the
    peak so far (bytes). `jobcorr.tracking.Run` is a Watch, so watching a run allocates
    nothing."""

    __slots__ = ("rss_last", "rss_peak", "rss_start")

    def __init__(self) -> None:
        self.rss_start = self.rss_last = self.rss_peak = 0


class _ProcReader:
    """Reads (current RSS, peak RSS since the previous read) for this process."""

    def __init__(self) -> None:
        self._status = self._statm = self._clear_refs = -1
        self._statm_seen: tuple[bytes, int] = (b"", 0)  # the last statm text and its RSS
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

    def current(self) -> int:
        """Resident memory now, from /proc/self/statm (one small pread); 0 without it.

        The text is parsed only when it differs from the previous read's: on a run's cold
        path parsing costs about as much as the read, and between runs the text rarely
        changes. The text and its RSS are kept as one tuple, as two threads read here.
        """
        if self._statm < 0:
            return 0
        text = os.pread(self._statm, _STATM_BYTES, 0)
        seen_text, rss = self._statm_seen
        if text != seen_text:
            rss = int(text.split(None, 2)[1]) * _PAGE_SIZE
            self._statm_seen = (text, rss)
        return rss

    def reset(self) -> None:
        """Reset the kernel's peak mark, so the next `read` sees peaks from now on."""
        if self._clear_refs >= 0:
            try:
                os.write(self._clear_refs, b"5")
            except OSError:
                os.close(self._clear_refs)
                self._clear_refs = -1

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
        rss = self.current()
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

    def __init__(self, interval: float = 0.01, refresh: float = 0.05, linger: float = 60.0) -> None:
        self.interval = interval
        self._refresh_ticks = max(1, round(refresh / interval))
        self._linger_ticks = max(1, round(linger / interval))
        self._init_state()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._init_state)

    def _init_state(self) -> None:
        # Also runs in a forked child: the parent's thread, lock holder and fds are not ours.
        self._lock = threading.Lock()
        self._watches: set[Watch] = set()
        self._latest = 0
        self._untaken_peak = (0, 0.0)  # (bytes, unix time read)
        self._peak_lock = threading.Lock()  # the recorder's swap against the sampler's raise
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
        # Only while other runs are active is the latest reading fresh (one tick old); a run
        # that starts a busy spell reads its own start, or memory that rose just before it
        # (outside every job) would count as its own rise.
        watches = self._watches
        if watches and not self._idle:
            start = self._latest
        else:
            start = (self._reader or self._ensure_reader()).current()
        watch.rss_start = watch.rss_last = watch.rss_peak = start
        watches.add(watch)
        if self._idle:  # read after the add: see _go_idle_unless_watched
            self._wake_up()

    def end(self, watch: Watch) -> tuple[int, int, int]:
        """Stop watching; return (rss at start, peak, rss at end) in bytes."""
        self._watches.discard(watch)
        start, peak, last = watch.rss_start, watch.rss_peak, watch.rss_last
        # The peak starts at `start` and a tick raises it to at least `last`, but a tick may
        # be between the two writes. A comparison, not max(): cheaper on a cold path.
        if last > peak:
            peak = last
        return start, peak, last

    def take_peak(self) -> tuple[int, float]:
        """The highest reading since the previous call (bytes) and when it was read (unix
        time); (0, 0.0) when no run was going.

        For one consumer (the recorder): each call starts a new interval."""
        with self._peak_lock:
            peak, self._untaken_peak = self._untaken_peak, (0, 0.0)
        return peak

    def _wake_up(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="jobcorr-rss", daemon=True)
                self._thread.start()
            if self._idle:
                self._idle = False
                self._wake.set()

    def _go_idle_unless_watched(self) -> bool:
        # `begin` adds its watch and then reads `_idle`; here `_idle` is set and then the
        # watches are read. Either the new watch is seen here, or `begin` sees `_idle`.
        with self._lock:
            self._idle = True
            self._wake.clear()
            if self._watches:
                self._idle = False
                self._wake.set()
            return self._idle

    def _loop(self) -> None:
        reader = self._ensure_reader()
        while True:
            self._wake.wait()
            self._latest = reader.current()
            reader.reset()  # a busy spell begins: earlier peaks are not its runs'
            self._tick_until_quiet(reader)

    def _tick_until_quiet(self, reader: _ProcReader) -> None:
        quiet_ticks = 0
        while True:
            time.sleep(self.interval)
            watches = list(self._watches)
            if watches:
                rss, peak = reader.read()
                self._latest = rss
                with self._peak_lock:
                    if peak > self._untaken_peak[0]:
                        self._untaken_peak = (peak, time.time())
                for watch in watches:
                    watch.rss_last = rss
                    if peak > watch.rss_peak:
                        watch.rss_peak = peak
                quiet_ticks = 0
                continue
            quiet_ticks += 1  # a quiet tick reads nothing; every refresh_ticks-th resets the
            if quiet_ticks % self._refresh_ticks == 0:  # peak mark: the next run's first
                reader.reset()  # peak counts from at most `refresh` before it began
            if quiet_ticks > self._linger_ticks and self._go_idle_unless_watched():
                return
