"""Jobs and the worker class for the `rq worker` process that tests/test_rq.py starts.

Configured from the environment: JOBCORR_TEST_METRICS_PORT, JOBCORR_TEST_STORE.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from jobcorr.integrations.rq import JobcorrWorker

MIB = 1 << 20


class Worker(JobcorrWorker):
    metrics_port = int(os.environ["JOBCORR_TEST_METRICS_PORT"])
    record_to = os.environ["JOBCORR_TEST_STORE"]


def noop() -> int:
    return os.getpid()


def boom() -> None:
    raise ValueError("the CSV export is empty")


def hungry(mib: int, hold: float) -> int:
    block = bytearray(mib * MIB)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    time.sleep(hold)
    return os.getpid()


def stuck(pid_file: str, seconds: float = 60) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
