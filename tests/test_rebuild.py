"""Runs rebuilt from scrapes: every run between two scrapes is counted, with its time.

The scrapes here are what `JobMetrics` exposes for a list of runs, read at scrape times;
tests/test_sources_prometheus.py does the same through a real Prometheus scraping a real
process."""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobcorr.sources.rebuild import JobScrapes, from_zero, rebuild_runs, share_volumes
from jobcorr.timeline import Series


class Run(NamedTuple):
    start: float
    end: float
    failed: bool
    rss: tuple[float, float] = (0.0, 0.0)
    """Resident memory at the start and the peak, as the run read them."""


def scraped(runs: list[Run], times: list[float], render: float = 0.0) -> JobScrapes:
    """The job's contract series as a scrape at each of `times` reads them (`render` seconds
    after its timestamp: a scrape is stamped when it starts)."""
    rows = []
    for t in times:
        started = [r for r in runs if r.start <= t + render]
        done = sorted((r for r in runs if r.end <= t + render), key=lambda r: r.end)
        rows.append((
            max((r.start for r in started), default=0.0),
            done[-1].end - done[-1].start if done else 0.0,
            float(len(started) - len(done)),
            float(len(done)),
            sum(r.end - r.start for r in done),
            float(sum(r.failed for r in done)),
            max((r.end for r in done if not r.failed), default=0.0),
            *(done[-1].rss if done else (0.0, 0.0)),
        ))  # fmt: skip
    columns = np.array(rows, dtype=np.float64).T
    grid = np.array(times, dtype=np.float64)
    return JobScrapes(*(Series(grid, column) for column in columns))


def test_a_job_every_5_s_for_1_s_scraped_every_15_s_loses_no_run() -> None:
    truth = [Run(1000 + 5 * i + 0.3, 1000 + 5 * i + 1.3, failed=i == 7) for i in range(24)]
    rebuilt = rebuild_runs(scraped(truth, [990 + 15 * k for k in range(10)]))
    assert len(rebuilt) == len(truth)
    assert sum(r.failed for r in rebuilt) == 1
    exact = [r for r in rebuilt if not r.placed]
    assert exact and all(Run(r.start, r.end or 0, r.failed) in truth for r in exact)
    total = sum((r.end or 0) - r.start for r in rebuilt)
    assert total == pytest.approx(sum(r.end - r.start for r in truth))
    assert all(r.start >= 990 and (r.end or 0) <= 1120 for r in rebuilt)


def test_the_last_run_before_each_scrape_carries_its_memory_readings() -> None:
    truth = [Run(1000 + 5 * i, 1000 + 5 * i + 1, False, (100.0 + i, 200.0 + i)) for i in range(9)]
    rebuilt = rebuild_runs(scraped(truth, [998 + 15 * k for k in range(4)]))
    read = {r.start: r.rss for r in rebuilt if not r.placed}
    assert read == {t.start: t.rss for t in truth if t.start in read} and len(read) == 3
    assert all(r.rss is None for r in rebuilt if r.placed)
    unread = rebuild_runs(scraped([t._replace(rss=(0.0, 0.0)) for t in truth],
                                  [998 + 15 * k for k in range(4)]))  # fmt: skip
    assert all(r.rss is None for r in unread)  # a service that reads no memory


def test_a_run_that_ended_before_the_first_scrape_takes_no_run_of_the_first_interval() -> None:
    # The first scrape shows the start of a run it already counted: no rebuilt run has that
    # start, and none may be moved onto it (it was taken from the first interval).
    truth = [Run(1000 + 5 * i, 1000 + 5 * i + 1, failed=False) for i in range(12)]
    times = [1003.0 + 15 * k for k in range(5)]
    rebuilt = rebuild_runs(scraped(truth, times))
    for before, after in itertools.pairwise(times):
        ended = [r for r in rebuilt if before < (r.end or 0) <= after]
        assert len(ended) == sum(before < r.end <= after for r in truth), (before, rebuilt)
    assert all(r.start > times[0] for r in rebuilt)


def test_a_run_that_ended_while_the_first_scrape_rendered_is_before_it() -> None:
    # The run ending at 1031.0 is after the first scrape's stamp (1030.95) but in its count,
    # and so are its records: the rebuild starts after it, every record after it is shared.
    truth = [Run(1000 + 5 * i, 1000 + 5 * i + 1, failed=False) for i in range(12)]
    times, render = [1030.95 + 15 * k for k in range(3)], 0.1
    rebuilt = rebuild_runs(scraped(truth, times, render))
    counted = [r for r in truth if times[0] + render < r.end <= times[-1] + render]
    last = [max(r.start for r in truth if r.end <= t + render) for t in times[1:]]
    assert [r.start for r in rebuilt if not r.placed] == last
    assert len(rebuilt) == len(counted) and all(r.start > 1031.0 for r in rebuilt)
    rows = Series(np.array(times), np.array([100.0 * sum(r.end <= t + render for r in truth)
                                             for t in times]))  # fmt: skip
    shares = share_volumes({"job": rebuilt}, [("rows", rows)], 1070)["job"]
    assert sum(s["rows"] for s in shares) == pytest.approx(100.0 * len(counted))
    assert [s["rows"] for s in shares] == pytest.approx([100.0] * len(counted), rel=0.05)


def test_a_counter_first_scraped_after_the_service_began_at_zero() -> None:
    # The first scrape falls in the first run, before its records: the counter (created at
    # its first increment) is first scraped with three runs' records in it.
    truth = [Run(1000 + 5 * i, 1000 + 5 * i + 1, failed=False) for i in range(12)]
    times = np.array([1000.5 + 15 * k for k in range(5)])
    rebuilt = rebuild_runs(scraped(truth, list(times)))
    seen = times[1:]
    rows = Series(seen, np.array([100.0 * sum(r.end <= t for r in truth) for t in seen]))
    shares = share_volumes({"job": rebuilt}, [("rows", from_zero(rows, times))], 1070)["job"]
    assert len(rebuilt) == len(truth)
    assert sum(s["rows"] for s in shares) == pytest.approx(100.0 * len(truth))
    assert from_zero(rows, seen) is rows  # scraped from the service's first scrape on


def test_a_run_still_going_at_the_last_scrape_is_open() -> None:
    truth = [Run(1000.0, 1010.0, False), Run(1020.0, 1100.0, False)]
    rebuilt = rebuild_runs(scraped(truth, [995, 1005, 1015, 1025, 1035]))
    assert [(r.start, r.end) for r in rebuilt] == [(1000.0, 1010.0), (1020.0, None)]
    assert not any(r.placed for r in rebuilt)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[Run], list[float]]:
    gaps = draw(st.lists(st.floats(0.05, 40), min_size=1, max_size=30))
    lengths = draw(st.lists(st.floats(0.01, 40), min_size=len(gaps), max_size=len(gaps)))
    failed = draw(st.lists(st.booleans(), min_size=len(gaps), max_size=len(gaps)))
    runs, cursor = [], 1000.0
    for gap, length, fails in zip(gaps, lengths, failed, strict=True):
        runs.append(Run(cursor + gap, cursor + gap + length, fails))
        cursor += gap + length
    interval = draw(st.sampled_from([1.0, 5.0, 15.0, 30.0, 60.0]))
    # the first scrape anywhere: before the first run, or later (a window's first scrape,
    # a process scraped only after some runs)
    first = draw(st.floats(990.0, max(990.0, cursor - interval)))
    times = list(np.arange(first, cursor + 2 * interval, interval))
    return runs, times


@settings(deadline=None)  # a loaded 2-core machine: no per-example time limit
@given(schedules())
def test_counts_durations_and_failures_are_exact_and_known_runs_are_true(
    schedule: tuple[list[Run], list[float]],
) -> None:
    runs, times = schedule
    truth = [r for r in runs if r.end > times[0]]  # those ended by the first scrape are before it
    rebuilt = rebuild_runs(scraped(runs, times))
    assert len(rebuilt) == len(truth)
    assert all(r.end is None or r.end >= times[0] for r in rebuilt)  # counted after it
    assert sum(r.failed for r in rebuilt) == sum(r.failed for r in truth)
    total = sum((r.end or 0) - r.start for r in rebuilt)
    assert total == pytest.approx(sum(r.end - r.start for r in truth), abs=1e-6)
    for run in rebuilt:
        if not run.placed:
            assert any(abs(run.start - t.start) < 1e-6 and abs((run.end or 0) - t.end) < 1e-6
                       for t in truth)  # fmt: skip


def test_what_runs_processed_is_shared_by_their_time_between_scrapes() -> None:
    truth = [Run(1000 + 5 * i + 0.3, 1000 + 5 * i + 1.3, failed=False) for i in range(24)]
    times = [990 + 15 * k for k in range(10)]
    rebuilt = rebuild_runs(scraped(truth, times))
    done = [sum(100.0 for r in truth if r.end <= t) for t in times]
    shares = share_volumes(
        {"export": rebuilt}, [("rows", Series(np.array(times, float), np.array(done)))], 1200
    )["export"]
    assert sum(share.get("rows", 0) for share in shares) == pytest.approx(100 * len(truth))
    assert all(share["rows"] == pytest.approx(100) for share in shares)


@pytest.mark.parametrize("first", [999.5, 1002.0])  # before the runs; while the first goes
def test_overlapping_runs_of_one_job_keep_the_starts_the_scrapes_saw(first: float) -> None:
    truth = [Run(1000.0, 1010.0, False), Run(1005.0, 1012.0, False), Run(1020.0, 1021.0, False)]
    rebuilt = rebuild_runs(scraped(truth, [first + 0.5 * k for k in range(60)]))
    assert [(r.start, r.end) for r in rebuilt] == [(r.start, r.end) for r in truth]


def test_a_counter_goes_to_the_job_seen_processing_it_alone() -> None:
    # export processes 100 rows per run, alone at first; then digest's runs overlap its
    # next runs. The rows counter is export's: digest gets none of it.
    export = [Run(1000 + 10 * i, 1000 + 10 * i + 4, False) for i in range(6)]
    digest = [Run(1032 + 10 * i, 1032 + 10 * i + 4, False) for i in range(3)]
    times = [998 + 2.0 * k for k in range(35)]
    rows = Series(
        np.array(times), np.array([100.0 * sum(r.end <= t for r in export) for t in times])
    )
    runs = {"export": rebuild_runs(scraped(export, times)),
            "digest": rebuild_runs(scraped(digest, times))}  # fmt: skip
    shares = share_volumes(runs, [("rows", rows)], 1070)
    assert [s.get("rows", 0) for s in shares["export"]] == pytest.approx([100.0] * 6)
    assert all("rows" not in s for s in shares["digest"])
    unknown = share_volumes({"digest": runs["digest"]}, [("rows", rows)], 1070)
    assert sum(s.get("rows", 0) for s in unknown["digest"]) > 0  # no owner seen: it may be


def test_a_counter_never_grown_alone_goes_to_the_job_going_every_time_it_grew() -> None:
    # export's rows are counted as each run begins, and another job's run always overlaps
    # those moments (digest's, then report's at the last), so no job is ever seen alone
    # while rows grew; export alone went every time. The rows are export's.
    export = [Run(1000 + 30 * i, 1000 + 30 * i + 12, False) for i in range(5)]
    digest = [Run(998 + 30 * i, 998 + 30 * i + 6, False) for i in range(4)]
    report = [Run(1118, 1124, False)]
    times = [996 + 5.0 * k for k in range(32)]
    rows = Series(
        np.array(times), np.array([100.0 * sum(r.start + 1 <= t for r in export) for t in times])
    )
    runs = {
        job: rebuild_runs(scraped(truth, times))
        for job, truth in (("export", export), ("digest", digest), ("report", report))
    }
    shares = share_volumes(runs, [("rows", rows)], 1160)
    assert [s.get("rows", 0) for s in shares["export"]] == pytest.approx([100.0] * 5)
    assert all("rows" not in s for job in ("digest", "report") for s in shares[job])
