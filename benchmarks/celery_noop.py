"""The Celery app bench_runners.py runs a worker of: one no-op task, instrumented or not."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_BROKER"], backend=os.environ["BENCH_BROKER"])
app.conf.broker_connection_retry_on_startup = True
if os.environ.get("BENCH_INSTRUMENT"):
    from jobcorr.integrations.celery import instrument

    instrument(app, metrics_port=int(os.environ.get("BENCH_METRICS_PORT", "0")))


@app.task
def noop() -> None:
    return None
