"""Recent answers, shared: pages that ask the same question within a moment get one answer.

Eight pages on the same 24-hour view each ask for its panels every 15 seconds. Computed
afresh, each answer costs ~150 ms of CPU, taken from the machine whose jobs the page
explains. Kept for as long as one pixel of the view, the answer is computed once and sent
again as stored bytes; a page that asks while it is being computed waits for it.

    answers = RecentAnswers()
    body = answers.get(("panels", 1400), start, end, lambda: render(start, end))
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

RESOLUTION = 1000
"""An answer about a range stays fresh for 1/1000 of its span, about one pixel of a wide
chart: newer data would move nothing the page can draw by more than a pixel."""
MIN_FRESH_SECONDS = 1.0
"""...and at least a second: the recorder writes once a second, so nothing is newer sooner."""
CAPACITY = 16
"""Answers kept at most (a 24-hour panel answer is ~1 MB): views in use at once, with room."""


class _Answer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.body: bytes | None = None
        self.stale_at = math.inf


class RecentAnswers:
    """Answers about a range by key, each kept for 1/1000 of the range (at least a second)
    after it was computed; the oldest is dropped past `capacity` (0 keeps none: every answer
    is computed afresh). Thread-safe; a failed computation keeps nothing."""

    def __init__(
        self, capacity: int = CAPACITY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._capacity = capacity
        self._clock = clock
        self._answers: OrderedDict[Hashable, _Answer] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, key: tuple[Hashable, ...], start: float, end: float, compute: Callable[[], bytes]
    ) -> bytes:
        """The kept answer about [start, end] for `key`, or `compute()`'s. Ranges whose ends
        fall in the same steps of their freshness share an answer: the same "last 24 hours",
        asked a second apart, is one question."""
        fresh = max(MIN_FRESH_SECONDS, (end - start) / RESOLUTION)
        answer = self._entry((*key, math.floor(start / fresh), math.floor(end / fresh)))
        with answer.lock:
            if answer.body is None:
                answer.body = compute()
                answer.stale_at = self._clock() + fresh
            return answer.body

    def _entry(self, key: Hashable) -> _Answer:
        with self._lock:
            answer = self._answers.get(key)
            if answer is None or self._clock() >= answer.stale_at:
                answer = self._answers[key] = _Answer()
            self._answers.move_to_end(key)
            while len(self._answers) > self._capacity:
                self._answers.popitem(last=False)
            return answer
