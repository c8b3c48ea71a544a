"""The notebooks' printed conclusions choose their words from the measured values."""

from __future__ import annotations

from nepse_perf.bench.timing import Timing
from nepse_perf.lessons.workbook import compare_words, rank_words


def test_a_clear_ratio_names_the_faster_one_and_the_factor() -> None:
    assert compare_words("numba", 0.01, "pandas", 0.032) == "numba is 3.2x faster than pandas"
    assert compare_words("pandas", 0.032, "numba", 0.01) == "pandas is 3.2x slower than numba"


def test_close_medians_or_overlapping_spreads_are_called_level() -> None:
    assert "are level" in compare_words("a", 1.00, "b", 1.05)
    a = Timing(times=(0.9, 1.0, 1.1, 1.3, 1.4))
    b = Timing(times=(1.0, 1.1, 1.15, 1.2, 1.5))
    assert "are level" in compare_words("a", a, "b", b)
    far = Timing(times=(2.0, 2.1, 2.2))
    assert "faster" in compare_words("a", a, "far", far)


def test_rank_names_fastest_and_slowest_with_their_ratio() -> None:
    line = rank_words({"one task": 0.0298, "50 tasks": 0.0404, "8 tasks": 0.0251})
    assert line.startswith("fastest: 8 tasks (25.1 ms); slowest: 50 tasks (40.4 ms)")
    assert line.endswith("1.6x the fastest")
