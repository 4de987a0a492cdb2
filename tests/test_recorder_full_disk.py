"""The recorder on a disk that fills up: degraded, bounded, resumed, with the loss counted.

A small tmpfs is mounted under the store (the tests run as root), filled to the last byte,
held full while jobs keep running, then freed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import jobcorr
from jobcorr.recorder import Recorder
from jobcorr.store import Store
from support import fill, tmpfs, wait_for

TMPFS_SIZE = "4m"  # a few hundred flushes of this test's store before the disk is full
SAMPLE_BACKLOG = 40  # rows: 20 ticks of this registry's 2 series, a second at 20 Hz
RUN_BACKLOG = 300  # the job below finishes this many runs in well under a second
PATIENCE = 60.0  # seconds to wait for a state change on a busy 2-core machine


class TickCounter(Collector):
    """A gauge whose value is the number of the recorder's tick that read it: the ticks
    missing from the store are exactly the samples the recorder dropped."""

    def __init__(self) -> None:
        self.ticks = 0

    def collect(self) -> Iterator[Metric]:
        if threading.current_thread().name == "jobcorr-recorder":
            self.ticks += 1
        yield GaugeMetricFamily("test_tick", "The recorder's tick number.", value=self.ticks)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", TMPFS_SIZE) as mount:
        yield mount


class Jobs:
    """A job running back to back in a thread for the whole test, as a service's would."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.finished = 0
        self._registry = registry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            with jobcorr.track("busy", registry=self._registry) as run:
                run.add("items", 1)
            self.finished += 1
            time.sleep(0.001)

    def __enter__(self) -> Jobs:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_full_disk_degrades_the_recorder_which_resumes_losing_only_what_it_counted(
    small_disk: Path,
) -> None:
    registry = CollectorRegistry()
    ticks = TickCounter()
    registry.register(ticks)
    with jobcorr.track("busy", registry=registry):
        pass  # bg_job_in_progress{job="busy"} exists from the first tick: 2 rows every tick
    recorder = Recorder(
        small_disk / "jobcorr.sqlite3", registry=registry, interval=0.05, flush_every=2,
        sample_backlog=SAMPLE_BACKLOG, run_backlog=RUN_BACKLOG, retry_max=0.5,
    ).start()  # fmt: skip
    with Jobs(registry) as jobs:
        wait_for(lambda: recorder.last_write is not None, "a first write", PATIENCE)
        filler = fill(small_disk)
        wait_for(lambda: recorder.degraded is not None, "the recorder to report degraded", PATIENCE)
        assert "full" in str(recorder.degraded)
        assert registry.get_sample_value("jobcorr_recorder_up") == 0
        # Held full until both backlogs overflowed, with jobs running all along.
        runs_when_full = jobs.finished
        wait_for(
            lambda: recorder.samples.dropped > 0 and recorder.records.dropped > 0,
            "both backlogs to overflow",
            PATIENCE,
        )
        assert jobs.finished > runs_when_full  # the jobs kept running while the disk was full
        assert len(recorder.samples) <= SAMPLE_BACKLOG
        assert len(recorder.records) <= RUN_BACKLOG
        assert len(recorder.starts) <= RUN_BACKLOG
        filler.unlink()
        wait_for(lambda: recorder.degraded is None, "the recorder to write again", PATIENCE)
        assert registry.get_sample_value("jobcorr_recorder_up") == 1
        exposed = {
            kind: registry.get_sample_value("jobcorr_recorder_dropped_total", {"kind": kind})
            for kind in ("samples", "run_starts", "runs")
        }
    recorder.stop()
    dropped = {
        "samples": recorder.samples.dropped,
        "run_starts": recorder.starts.dropped,
        "runs": recorder.records.dropped,
    }
    assert exposed == dropped  # nothing was dropped after writing resumed

    with Store(small_disk / "jobcorr.sqlite3", readonly=True) as store:
        [tick_series] = [s for s in store.series() if s.name == "test_tick"]
        stored_ticks = {int(v) for _, v in store.samples(tick_series.id, 0, 2e9)}
        rows_per_tick = len(store.series())
        finished = [r for r in store.runs(0, 2e9) if r.status == "success"]
    missing_ticks = set(range(1, ticks.ticks + 1)) - stored_ticks
    assert missing_ticks, "the test must overflow the sample backlog"
    assert len(missing_ticks) * rows_per_tick == dropped["samples"]
    assert max(stored_ticks) == ticks.ticks  # what was queued at the end was written
    # The run before the recorder started was not recorded; every later one was, or counted.
    assert len(finished) + dropped["runs"] == jobs.finished
    assert all(run.volumes == {"items": 1} for run in finished)


def test_a_compaction_that_fails_on_a_full_disk_rolls_back_and_later_writes_work(
    small_disk: Path,
) -> None:
    with Store(small_disk / "s.sqlite3") as store:
        memory = store.series_id("process_resident_memory_bytes", {}, "gauge")
        start = 1_800_000_000.0
        store.write((memory, int((start + i) * 1000), float(i)) for i in range(3600))
        filler = fill(small_disk)
        with pytest.raises(sqlite3.OperationalError, match="full"):
            store.compact(start + 3600)  # an hour of rollups needs pages the disk lacks
        filler.unlink()
        store.write([(memory, int((start + 3600) * 1000), 1.0)])
        store.compact(start + 3660)
        assert len(store.rollups(memory, start, start + 3600, "max")) == 61
