"""A Celery app for the worker process that tests/test_celery.py starts.

Configured from the environment: JOBCORR_TEST_BROKER (Redis URL), JOBCORR_TEST_METRICS_PORT,
JOBCORR_TEST_STORE (the recorder's store).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery

from jobcorr.integrations.celery import instrument

MIB = 1 << 20

app = Celery("runners", broker=os.environ["JOBCORR_TEST_BROKER"])
app.conf.update(
    result_backend=os.environ["JOBCORR_TEST_BROKER"],
    worker_prefetch_multiplier=1,  # each child takes one task at a time: tasks overlap
    task_acks_late=True,
    broker_connection_retry_on_startup=True,
)
instrument(
    app,
    metrics_port=int(os.environ["JOBCORR_TEST_METRICS_PORT"]),
    record_to=os.environ["JOBCORR_TEST_STORE"],
)


@app.task
def noop() -> int:
    return os.getpid()


@app.task(jobcorr_name="Nightly.Report")
def renamed() -> int:
    return os.getpid()


@app.task
def boom() -> None:
    raise ValueError("the PDF template is missing")


@app.task
def hungry(mib: int, hold: float) -> tuple[int, float, float]:
    """Allocate and touch `mib` MiB, hold it, free it; (pid, start, end)."""
    start = time.time()
    block = bytearray(mib * MIB)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    time.sleep(hold)
    del block
    return os.getpid(), start, time.time()


@app.task
def innocent(hold: float) -> tuple[int, float, float]:
    start = time.time()
    time.sleep(hold)
    return os.getpid(), start, time.time()


@app.task(time_limit=2)
def overrun(pid_file: str) -> None:
    """Runs past its hard time limit: the pool kills its child."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)


@app.task
def stuck(pid_file: str) -> None:
    """Writes its pid and waits to be killed by the test."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)


@app.task(bind=True, max_retries=1, default_retry_delay=0)
def flaky(self) -> None:  # type: ignore[no-untyped-def]
    raise self.retry(exc=ConnectionError("the SMTP server hung up"))
