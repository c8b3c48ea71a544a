"""Summary-table spread helpers: IQR text and run counts from Timings, one-offs and non-times."""

from __future__ import annotations

import math

from nepse_perf.bench.timing import Timing
from nepse_perf.lessons.workbook import median, runs, spread


def test_timing_gives_quartiles_and_repeat_count() -> None:
    t = Timing(times=(1.0, 2.0, 3.0, 4.0, 5.0))
    assert t.quartiles == (2.0, 4.0)
    assert spread(t) == "2 - 4"
    assert runs(t) == 5
    assert median(t) == 3.0


def test_digits_control_the_precision() -> None:
    t = Timing(times=(0.0123456, 0.0123456))
    assert spread(t, digits=2) == "0.012 - 0.012"


def test_single_measurement_and_non_time_say_so() -> None:
    assert (spread(0.5), runs(0.5), median(0.5)) == ("1 run", 1, 0.5)
    assert (spread(Timing(times=(0.5,))), runs(Timing(times=(0.5,)))) == ("1 run", 1)
    assert (spread(None), runs(None)) == ("n/a", "n/a")
    assert (spread(math.nan), runs(math.nan)) == ("n/a", "n/a")
    assert math.isnan(median(None))
