from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings
from prometheus_client import CollectorRegistry

import jobcorr
from support import RedisServer, require_tool

# Property tests take no per-example deadline: on a loaded 2-core machine an example that
# usually takes 70 ms can take 300, and hypothesis would call the test flaky.
settings.register_profile("loaded_machine", deadline=None)
settings.load_profile("loaded_machine")

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright. Per module, not per session: while
    Playwright's sync API is open its event loop counts as running in the main thread, and
    every later `asyncio.run()` (test_tracking's async jobs) would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=require_tool("chromium", "chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"],
        )  # fmt: skip
        yield launched
        launched.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def records() -> Iterator[list[jobcorr.RunRecord]]:
    """Every RunRecord finished while the test runs."""
    collected: list[jobcorr.RunRecord] = []
    remove = jobcorr.add_run_listener(collected.append)
    yield collected
    remove()


@pytest.fixture(autouse=True)
def _restore_logging_and_gc_hooks() -> Iterator[None]:
    """Tests register runtime metrics on fresh registries; undo their global hooks after each."""
    import gc
    import logging

    root = logging.getLogger()
    handlers, level, callbacks = list(root.handlers), root.level, list(gc.callbacks)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    gc.callbacks[:] = callbacks


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session's runner tests (Celery, RQ)."""
    server = RedisServer(str(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def ran(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Every ground-truth scenario, run once per session (tests/scenarios)."""
    from scenarios.catalog import SCENARIOS
    from scenarios.harness import run_all

    return run_all(SCENARIOS, tmp_path_factory.mktemp("scenarios"))
