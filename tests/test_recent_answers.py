"""Recent answers: the same question about the same range, asked within its freshness, is
computed once (also when asked from many threads at once); later, or failed, it is not kept."""

from __future__ import annotations

import threading
import time

import pytest

from jobcorr.web.answers import CAPACITY, RecentAnswers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Computations:
    """compute() functions that count their calls and answer with the count."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
            return str(self.calls).encode()


DAY = 86400.0
START = 1_700_000_000.0  # 19 675 925.93 steps of a day's freshness: +1 s is the same step


def test_a_range_asked_again_within_its_freshness_is_computed_once() -> None:
    clock, compute = Clock(), Computations()
    answers = RecentAnswers(clock=clock)
    assert answers.get(("panels",), START, START + DAY, compute) == b"1"
    clock.now += 86.0  # a day's answer stays fresh for 86.4 s
    assert answers.get(("panels",), START + 1, START + DAY + 1, compute) == b"1"
    clock.now += 1.0
    assert answers.get(("panels",), START + 1, START + DAY + 1, compute) == b"2"
    assert compute.calls == 2


def test_short_ranges_stay_fresh_a_second_and_keys_and_ranges_are_apart() -> None:
    clock, compute = Clock(), Computations()
    answers = RecentAnswers(clock=clock)
    minute = (START, START + 60)
    assert answers.get(("panels", 800), *minute, compute) == b"1"
    assert answers.get(("panels", 1400), *minute, compute) == b"2"
    assert answers.get(("spikes", "memory"), *minute, compute) == b"3"
    assert answers.get(("panels", 800), START - 300, START + 60, compute) == b"4"
    assert answers.get(("panels", 800), *minute, compute) == b"1"
    clock.now += 0.99
    assert answers.get(("panels", 800), *minute, compute) == b"1"
    clock.now += 0.02
    assert answers.get(("panels", 800), *minute, compute) == b"5"


def test_many_threads_asking_at_once_share_one_computation() -> None:
    answers, calls = RecentAnswers(), []
    started = threading.Barrier(8)

    def slow() -> bytes:
        calls.append(1)
        time.sleep(0.3)  # long enough for the other seven to ask meanwhile
        return b"answer"

    got: list[bytes] = []

    def ask() -> None:
        started.wait()
        got.append(answers.get(("panels",), START, START + DAY, slow))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == [b"answer"] * 8 and len(calls) == 1


def test_a_failed_computation_keeps_nothing() -> None:
    answers, compute = RecentAnswers(clock=Clock()), Computations()

    def fails() -> bytes:
        raise OSError("the store cannot be read")

    with pytest.raises(OSError, match="cannot be read"):
        answers.get(("panels",), START, START + DAY, fails)
    assert answers.get(("panels",), START, START + DAY, compute) == b"1"


def test_at_most_capacity_answers_are_kept_the_oldest_dropped_first() -> None:
    answers, compute = RecentAnswers(clock=Clock()), Computations()
    for width in range(CAPACITY + 1):
        answers.get(("panels", width), START, START + DAY, compute)
    newest = answers.get(("panels", CAPACITY), START, START + DAY, compute)
    oldest = answers.get(("panels", 0), START, START + DAY, compute)
    assert (newest, oldest) == (str(CAPACITY + 1).encode(), str(CAPACITY + 2).encode())


def test_capacity_zero_computes_every_answer_afresh() -> None:
    answers, compute = RecentAnswers(capacity=0, clock=Clock()), Computations()
    asked = [answers.get(("panels",), START, START + DAY, compute) for _ in range(3)]
    assert asked == [b"1", b"2", b"3"]
