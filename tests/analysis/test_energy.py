"""Energy over a window: counter deltas with resets, interpolation at the window's ends, power fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_dvfs.analysis.energy import COUNTER, INTEGRATED, NO_SENSOR, counter_energy, integrated_energy, unwrap_counter, \
    window_energy
from llm_dvfs.analysis.samples import Samples


def test_unwrap_counts_a_reset_as_the_reading_after_it():
    assert unwrap_counter([0, 10, 20, 5, 15]) == [0, 10, 20, 25, 35]


def test_counter_energy_interpolates_at_window_ends():
    assert counter_energy([0, 1, 2, 3], [0, 100, 200, 300], 0.5, 2.5) == pytest.approx(200)


def test_counter_energy_survives_a_reset_inside_the_window():
    # 100 W throughout; the counter restarts from 0 between t=2 and t=3 (reads 100 at t=3)
    assert counter_energy([0, 1, 2, 3, 4], [1000, 1100, 1200, 100, 200], 0, 4) == pytest.approx(400)


def test_counter_energy_skips_unread_cells_and_is_none_outside_the_recording():
    assert counter_energy([0, 1, 2, 3], [0, None, 200, 300], 0, 3) == pytest.approx(300)
    assert counter_energy([0, 1, 2], [0, 1, 2], 5, 6) is None


def test_integrated_energy_trapezoids_with_partial_edges():
    # power ramps 0 -> 100 W over 10 s: energy from 0 to 10 s is 500 J, from 5 to 10 s is 375 J
    times = [float(t) for t in range(11)]
    power = [10.0 * t for t in range(11)]
    assert integrated_energy(times, power, 0, 10) == pytest.approx(500)
    assert integrated_energy(times, power, 4.5, 10) == pytest.approx(500 - 4.5 * 45 / 2)


def _samples(energy: list, power: list) -> Samples:
    times = [float(t) for t in range(len(power))]
    return Samples(Path("x.csv"), times, {(0, "energy_j"): energy, (0, "power"): power})


def test_window_energy_prefers_the_counter():
    e = window_energy(_samples([0, 150, 300, 450], [200, 200, 200, 200]), 0, 0, 3)
    assert (e.joules, e.source) == (pytest.approx(450), COUNTER)


def test_window_energy_falls_back_to_power_and_says_so():
    e = window_energy(_samples([None] * 4, [200, 200, 200, 200]), 0, 0, 3)
    assert (e.joules, e.source) == (pytest.approx(600), INTEGRATED)


def test_window_energy_without_any_sensor_is_none_not_zero():
    e = window_energy(_samples([None] * 4, [None] * 4), 0, 0, 3)
    assert (e.joules, e.source) == (None, NO_SENSOR)
