"""Runs rebuilt from scraped job metrics: every run, even those that began and ended
between two scrapes.

A scrape shows, per job, the start of the latest run (`bg_job_last_start_timestamp_seconds`),
the wall time of the latest finished one (`bg_job_last_duration_seconds`), the runs going
(`bg_job_in_progress`) and counters: finished runs, their total duration
(`bg_job_duration_seconds_sum`; without it the last duration stands in) and failures.
Between two scrapes the counters say how many runs ended and how long they took together;
the gauges pin down at most the last of them (and a run that was going at the earlier
scrape started at that scrape's last start). The others are placed evenly in the part of
the interval the known runs leave free, each with the mean duration of the unknown ones:
their count and total time are exact, their moments are not (`placed`).

Runs of one job are assumed not to overlap (a scheduler skips a tick while the previous
run goes); overlapping runs are still counted, and a start the scrapes saw that no rebuilt
run has is given to the nearest placed run, but their ends are coarser.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from jobcorr.timeline import FloatArray, Series

Key = TypeVar("Key", bound=Hashable)
"""What names a job's runs: its name, or all its series' labels."""

SAME_MOMENT = 0.001
"""Seconds: gauges carry unix times to the millisecond or better."""


@dataclass(frozen=True)
class JobScrapes:
    """One job's contract series as scraped (raw samples, one per scrape)."""

    last_start: Series
    last_duration: Series
    in_progress: Series
    executions: Series
    duration_sum: Series
    failures: Series
    last_success: Series
    start_rss: Series
    peak_rss: Series


@dataclass(frozen=True)
class Rebuilt:
    """One run: `end` None while it is still going; `placed` when only its count and
    duration are known, not its moment."""

    start: float
    end: float | None
    failed: bool
    placed: bool = False
    rss: tuple[float, float] | None = None
    """(at its start, peak while it ran) where the scrapes read them: the last run that
    ended before a scrape."""


def rebuild_runs(scrapes: JobScrapes) -> list[Rebuilt]:
    """Every run the scrapes show, by start time; see the module docstring."""
    grid = scrapes.executions.times
    if not len(grid):
        return []
    runs: list[Rebuilt] = []
    for before, after in itertools.pairwise(grid.tolist()):
        runs += _interval(scrapes, before, after)
    last = float(grid[-1])
    if (scrapes.in_progress.at(last) or 0) > 0:
        runs.append(Rebuilt(_value(scrapes.last_start, last), None, failed=False))
    first = float(grid[0])
    # With no run going at the first scrape, the start it shows is of a run it counted:
    # no interval rebuilds that run, so no placed run may take its start.
    counted = None if (scrapes.in_progress.at(first) or 0) > 0 else scrapes.last_start.at(first)
    return _snap(sorted(runs, key=lambda run: run.start), scrapes.last_start, counted)


def _snap(runs: list[Rebuilt], last_start: Series, counted: float | None) -> list[Rebuilt]:
    """Placed runs moved onto the starts the scrapes did see but no run has (runs of one job
    that overlapped): the nearest placed run takes such a start, keeping its duration.
    `counted` is the start of a run that ended before the first scrape: not one of them
    (taking it would move a run of the first interval to before that scrape)."""
    seen = {round(run.start, 6) for run in runs}
    if counted is not None:
        seen.add(round(counted, 6))
    starts = np.unique(last_start.values[last_start.values > 0])
    placed = [index for index, run in enumerate(runs) if run.placed and run.end is not None]
    for start in (float(t) for t in starts if round(float(t), 6) not in seen):
        if not placed:
            break
        nearest = min(placed, key=lambda index: abs(runs[index].start - start))
        placed.remove(nearest)
        run = runs[nearest]
        length = (run.end or run.start) - run.start
        runs[nearest] = Rebuilt(start, start + length, run.failed, placed=True)
    return sorted(runs, key=lambda run: run.start)


def _interval(s: JobScrapes, before: float, after: float) -> list[Rebuilt]:
    """The runs that ended in (before, after]."""
    ended = round(_increase(s.executions, before, after))
    if ended <= 0:
        return []
    start, going_before = _value(s.last_start, after), _value(s.last_start, before)
    was_going = (s.in_progress.at(before) or 0) > 0
    is_going = (s.in_progress.at(after) or 0) > 0
    duration = _value(s.last_duration, after)
    known: Rebuilt | None = None
    if not is_going and start > 0:
        known = Rebuilt(start, start + duration, failed=False)
    elif ended == 1 and was_going and abs(start - going_before) > SAME_MOMENT:
        known = Rebuilt(going_before, going_before + duration, failed=False)
    failures = round(_increase(s.failures, before, after))
    if known is not None and known.end is not None:
        success = _value(s.last_success, after)
        failed = failures > 0 and abs(success - known.end) > SAME_MOMENT
        known = Rebuilt(known.start, known.end, failed, rss=_rss(s, after))
        failures -= int(failed)
    unknown = ended - (known is not None)
    if len(s.duration_sum):
        total = _increase(s.duration_sum, before, after) - (duration if known else 0.0)
        mean = max(total, 0.0) / unknown if unknown else 0.0
    else:  # no histogram sum scraped: the last duration is the best guess
        mean = duration
    still_going = is_going and abs(start - going_before) <= SAME_MOMENT
    first_known = known is not None and abs(known.start - going_before) <= SAME_MOMENT
    first = going_before if was_going and not still_going and not first_known else None
    free_until = known.start if known is not None else (start if is_going else after)
    overlapped: list[Rebuilt] = []
    if still_going and known is None:
        # Another run of the job ended while the one going at `before` goes on: the runs
        # overlapped, and the one that ended last took `duration`. It ended in the interval
        # (placed at its middle); `_snap` gives it the start the scrapes saw, if any.
        middle = (before + after) / 2
        overlapped = [Rebuilt(middle - duration, middle, failed=False)]
        unknown -= 1
        if len(s.duration_sum) and unknown:
            mean = max(_increase(s.duration_sum, before, after) - duration, 0.0) / unknown
    placed = [*_place(unknown, mean, first, before, free_until), *overlapped]
    placed = [Rebuilt(r.start, r.end, failed=i < failures, placed=True)
              for i, r in enumerate(placed)]  # fmt: skip
    return [*placed, *([known] if known is not None else [])]


def _place(
    count: int, mean: float, first: float | None, free_from: float, until: float
) -> list[Rebuilt]:
    """`count` runs of `mean` seconds: the first at `first` when its start is known (it was
    going at the earlier scrape `free_from`, so it lasted at least until then; the others
    share what is left of the total), the rest spread evenly over the free time before
    `until`."""
    runs: list[Rebuilt] = []
    if count > 0 and first is not None:
        length = max(mean, free_from - first)
        runs.append(Rebuilt(first, first + length, failed=False))
        count, free_from = count - 1, first + length
        mean = max(mean * (count + 1) - length, 0.0) / count if count else mean
    free_from = min(free_from, until)
    slot = (until - free_from) / count if count > 0 else 0.0
    length = min(mean, slot)
    for index in range(count):
        begin = free_from + index * slot + (slot - length) / 2
        runs.append(Rebuilt(begin, begin + length, failed=False))
    return runs


def share_volumes(
    runs: Mapping[Key, list[Rebuilt]], counters: list[tuple[str, Series]], now: float
) -> dict[Key, list[dict[str, float]]]:
    """What each run processed, per job and run: each scrape interval's increase of a counter
    (volume name, raw scrapes) goes to each job going in that interval, shared among its
    runs by their time in it. A counter belongs to the jobs seen going alone while it grew,
    or, where none was ever alone, to the jobs going every time it grew: where one of them
    went, the other jobs get none of it (where none did, every job going may have processed
    it). A job's runs are by start and do not overlap, as `rebuild_runs` gives them; the
    increase while none ran is no run's."""
    spans = {job: _Spans(job_runs, now) for job, job_runs in runs.items()}
    shares: dict[Key, list[dict[str, float]]] = {job: [{} for _ in r] for job, r in runs.items()}
    for title, series in counters:
        steps = np.diff(series.values)
        grown = np.where(steps < 0, series.values[1:], steps)
        growing = np.flatnonzero(grown > 0)
        going = [_going(spans, series.times[i], series.times[i + 1]) for i in growing]
        owners = _owners([set(found) for found in going])
        for index, found in zip(growing, going, strict=True):
            mine = {job: o for job, o in found.items() if job in owners} or found
            for job, (first, seconds) in mine.items():
                total = float(seconds.sum())
                for offset in np.flatnonzero(seconds > 0):
                    share = shares[job][first + offset]
                    amount = float(grown[index] * seconds[offset] / total)
                    share[title] = share.get(title, 0.0) + amount
    return shares


def _owners(going: list[set[Key]]) -> set[Key]:
    """The jobs a counter belongs to, from who went in each interval it grew in."""
    alone = {next(iter(found)) for found in going if len(found) == 1}
    if alone or not going:
        return alone
    return set.intersection(*going)


class _Spans:
    """One job's runs as arrays, for their overlap with a scrape interval."""

    def __init__(self, runs: list[Rebuilt], now: float) -> None:
        self.starts = np.array([run.start for run in runs])
        self.ends = np.array([now if run.end is None else run.end for run in runs])

    def overlap(self, lo: float, hi: float) -> tuple[int, FloatArray]:
        """(index of the first run, seconds of each run from it in [lo, hi])."""
        first = int(np.searchsorted(self.ends, lo, side="right"))
        last = int(np.searchsorted(self.starts, hi, side="left"))
        seconds = np.minimum(self.ends[first:last], hi) - np.maximum(self.starts[first:last], lo)
        return first, np.clip(seconds, 0, None)


def _going(spans: dict[Key, _Spans], lo: float, hi: float) -> dict[Key, tuple[int, FloatArray]]:
    """The jobs with a run going in [lo, hi], with their runs' overlaps."""
    found = {job: job_spans.overlap(lo, hi) for job, job_spans in spans.items()}
    return {job: overlap for job, overlap in found.items() if overlap[1].sum() > 0}


def _rss(s: JobScrapes, after: float) -> tuple[float, float] | None:
    """The last finished run's memory readings at the scrape `after` (None when the
    service does not expose them, or read none)."""
    at_start, peak = _value(s.start_rss, after), _value(s.peak_rss, after)
    return (at_start, peak) if at_start > 0 and peak > 0 else None


def from_zero(counter: Series, scrapes: FloatArray) -> Series:
    """`counter` (raw samples) read as 0 at the last of the service's `scrapes` before its
    first sample: a counter first scraped after the service's first scrape began in between
    (prometheus_client creates a labelled counter at its first increment), so its first
    value was counted in that interval, by the runs going in it."""
    if not len(counter):
        return counter
    before = int(np.searchsorted(scrapes, counter.times[0], side="left")) - 1
    if before < 0:
        return counter
    return Series(
        np.concatenate(([scrapes[before]], counter.times)),
        np.concatenate(([0.0], counter.values)),
    )


def _value(series: Series, t: float) -> float:
    found = series.at(t)
    return 0.0 if found is None else found


def _increase(series: Series, before: float, after: float) -> float:
    """A counter's increase over (before, after]; a reset counts from zero."""
    window = series.between(before, after)
    if len(window) < 2:
        return 0.0
    steps = np.diff(window.values)
    return float(np.sum(np.where(steps < 0, window.values[1:], steps)))
