"""Property tests of `Series.rate`: rates that survive stalls, bursts and counter resets."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jobcorr.timeline import Series

CORES = 2.0
"""The most a counter of CPU seconds can grow per second in these tests."""

gaps = st.lists(
    st.one_of(
        st.floats(0.9, 1.1),  # ticks on time
        st.floats(0.0005, 0.05),  # missed ticks fired back to back after a stall
        st.floats(2.0, 30.0),  # the stall itself
    ),
    min_size=2,
    max_size=60,
)


def _counter(gap_list: list[float], rates: list[float], start: float = 100.0) -> Series:
    """A counter sampled after each gap, growing at rates[i] during gap i."""
    times = np.concatenate(([1000.0], 1000.0 + np.cumsum(gap_list)))
    values = start + np.concatenate(([0.0], np.cumsum(np.array(gap_list) * np.array(rates))))
    return Series(times, values)


@st.composite
def counters(draw: st.DrawFn) -> Series:
    gap_list = draw(gaps)
    rates = draw(st.lists(st.floats(0, CORES), min_size=len(gap_list), max_size=len(gap_list)))
    return _counter(gap_list, rates)


@settings(deadline=None)  # a loaded 2-core machine: no per-example time limit
@given(counters())
def test_a_rate_never_reads_above_the_fastest_growth(series: Series) -> None:
    rate = series.rate()
    assert (rate.values >= 0).all()
    assert (rate.values <= CORES * (1 + 1e-9)).all()


TICK = 0.01
"""/proc reports CPU time in clock ticks of 10 ms: a counter read there is floored to them."""


@settings(deadline=None)  # a loaded 2-core machine: no per-example time limit
@given(counters())
def test_a_counter_read_in_clock_ticks_stays_within_one_tick_per_half_interval(
    series: Series,
) -> None:
    floored = Series(series.times, np.floor(series.values / TICK) * TICK)
    interval = float(np.median(np.diff(series.times)))
    assert (floored.rate().values <= CORES + TICK / (interval / 2) + 1e-9).all()


@settings(deadline=None)  # a loaded 2-core machine: no per-example time limit
@given(counters())
def test_no_rate_spans_less_than_half_the_sampling_interval(series: Series) -> None:
    rate = series.rate()
    interval = float(np.median(np.diff(series.times)))
    spans = np.diff(np.concatenate((series.times[:1], rate.times)))
    assert (spans >= interval / 2 - 1e-9).all()


@settings(deadline=None)  # a loaded 2-core machine: no per-example time limit
@given(counters(), st.floats(0.1, 5.0))
def test_an_explicit_interval_sets_the_shortest_span(series: Series, interval: float) -> None:
    rate = series.rate(interval)
    spans = np.diff(np.concatenate((series.times[:1], rate.times)))
    assert (spans >= interval / 2 - 1e-9).all()


@settings(deadline=None)  # a loaded 2-core machine: no per-example time limit
@given(counters(), st.integers(1, 59))
def test_rates_add_up_to_the_increase_a_reset_counted_from_zero(series: Series, reset: int) -> None:
    values = series.values.copy()
    increase = values[-1] - values[0]
    if reset < len(values):  # the process restarted just after sample `reset - 1`
        values[reset:] -= values[reset - 1]
    restarted = Series(series.times, values)
    rate = restarted.rate()
    if not len(rate):
        return
    spans = np.diff(np.concatenate((series.times[:1], rate.times)))
    last = int(np.searchsorted(series.times, rate.times[-1]))
    expected = increase - (series.values[-1] - series.values[last])
    assert np.isclose(float(np.sum(rate.values * spans)), expected, rtol=1e-9, atol=1e-6)


def test_a_burst_after_a_stall_is_folded_into_the_next_rate() -> None:
    # 1 core for 10 s, sampled on time, then a 5 s stall whose missed ticks fire 1 ms apart.
    gap_list = [1.0] * 5 + [5.0] + [0.001] * 4 + [1.0] * 3
    series = _counter(gap_list, [1.0] * len(gap_list))
    rate = series.rate()
    assert np.allclose(rate.values, 1.0)
    assert len(rate) == len(gap_list) - 4
