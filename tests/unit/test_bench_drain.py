"""The drain-time arithmetic of `tools/bench run-size` (pure): how long a backlog takes in consecutive
runs of one size, from the measured seconds per run size and the gap between runs. The expected values
are worked by hand here, not by the code under test."""

from __future__ import annotations

import pytest

from tools.bench.cli import drain_seconds, run_seconds_at

MEASURED = {100: 40.0, 300: 130.0, 500: 250.0, 1000: 700.0}


def test_a_measured_size_is_its_own_figure():
    assert run_seconds_at(300, MEASURED) == 130.0


def test_between_two_sizes_the_line_through_them():
    assert run_seconds_at(200, MEASURED) == pytest.approx(85.0)  # halfway from 40 to 130
    assert run_seconds_at(750, MEASURED) == pytest.approx(475.0)  # halfway from 250 to 700


def test_below_the_smallest_size_the_line_through_the_two_smallest_never_below_zero():
    # 40 s at 100, 130 s at 300: 0.45 s per session, 40 - 0.45 * 50 = 17.5 s at 50 sessions
    assert run_seconds_at(50, MEASURED) == pytest.approx(17.5)
    assert run_seconds_at(1, {100: 10.0, 300: 100.0}) == 0.0


def test_one_measured_size_alone_is_proportional():
    assert run_seconds_at(50, {100: 40.0}) == pytest.approx(20.0)


def test_a_backlog_in_full_runs_pays_the_gap_between_them():
    # 1,000 in runs of 100: 10 runs of 40 s and 9 gaps of 15 s
    assert drain_seconds(1000, 100, MEASURED, gap=15.0) == (10, pytest.approx(10 * 40.0 + 9 * 15.0))
    # one run of 1,000: no gap
    assert drain_seconds(1000, 1000, MEASURED, gap=15.0) == (1, pytest.approx(700.0))


def test_the_last_partial_run_costs_what_a_run_of_its_size_does():
    # 1,000 in runs of 300: 3 runs of 130 s, then 100 sessions (40 s), 3 gaps
    assert drain_seconds(1000, 300, MEASURED, gap=15.0) == (4, pytest.approx(3 * 130.0 + 40.0 + 3 * 15.0))


def test_nothing_to_drain_costs_nothing():
    assert drain_seconds(0, 500, MEASURED, gap=15.0) == (0, 0.0)
