"""A bounded, thread-safe backlog that drops its oldest items when full, and counts them.

The recorder queues samples and runs here until its store takes them. While the store
cannot write (a full disk), the backlog keeps the newest `capacity` units and counts
what it dropped, so a stuck store costs bounded memory and the loss is known exactly.

    backlog = Backlog(capacity=3)
    backlog.put("a"); backlog.put("b"); backlog.put("c"); backlog.put("d")
    batch = backlog.take()           # b, c, d (backlog.dropped == 1); the backlog is empty
    ...write batch.items()...
    backlog.give_back(batch)         # only if the write failed: ahead of what came since
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Batch(Generic[T]):
    """What `Backlog.take` took: items with their weights, oldest first."""

    def __init__(self, entries: list[tuple[T, int]]) -> None:
        self.entries = entries

    def items(self) -> list[T]:
        return [item for item, _ in self.entries]


class Backlog(Generic[T]):
    """Items with a weight (a tick's rows count as many units); `capacity` units at most."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a backlog needs a capacity of at least 1, not {capacity}")
        self.capacity = capacity
        self.dropped = 0  # units dropped since creation
        self._items: deque[tuple[T, int]] = deque()  # (item, weight), oldest first
        self._weight = 0
        self._lock = threading.Lock()

    def put(self, item: T, weight: int = 1) -> None:
        """Queue `item`, dropping the oldest items while the backlog is over capacity."""
        with self._lock:
            self._items.append((item, weight))
            self._weight += weight
            self._trim()

    def take(self) -> Batch[T]:
        """Everything queued, oldest first; the backlog is left empty."""
        with self._lock:
            batch = Batch(list(self._items))
            self._items.clear()
            self._weight = 0
            return batch

    def give_back(self, batch: Batch[T]) -> None:
        """Requeue a batch that could not be written ahead of newer items, within capacity."""
        with self._lock:
            self._items.extendleft(reversed(batch.entries))
            self._weight += sum(weight for _, weight in batch.entries)
            self._trim()

    def _trim(self) -> None:
        while self._weight > self.capacity:
            _, weight = self._items.popleft()
            self._weight -= weight
            self.dropped += weight

    def __len__(self) -> int:
        with self._lock:
            return self._weight
