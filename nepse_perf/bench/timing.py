"""Honest wall-clock timing: a warm-up call kept apart, then repeats with the GC switched off.

``measure(fn)`` is what the notebooks' timing cells and the benchmark use. Every number is
in seconds, measured with :func:`time.perf_counter`.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from nepse_perf._infra.checks import non_negative_int, positive_int

__all__ = [
    "Timing",
    "format_seconds",
    "measure",
    "measure_interleaved",
    "speedup_table",
    "timed_call",
]


@dataclass(frozen=True)
class Timing:
    """Result of :func:`measure`: every timed call's duration and the warm-up call's, in seconds.

    ``times`` are the timed repeats in call order (warm-up excluded); ``median`` and ``best``
    (the minimum) summarise them; ``first`` is the duration of the first warm-up call (for a
    JIT-compiled function: compile plus first run), or ``None`` when ``warmup=0``.
    """

    times: tuple[float, ...]
    first: float | None = None

    @property
    def median(self) -> float:
        """Median of the timed repeats, in seconds."""
        return float(statistics.median(self.times))

    @property
    def best(self) -> float:
        """Fastest timed repeat, in seconds."""
        return float(min(self.times))

    @property
    def mean(self) -> float:
        """Mean of the timed repeats, in seconds."""
        return float(statistics.fmean(self.times))

    @property
    def worst(self) -> float:
        """Slowest timed repeat, in seconds."""
        return float(max(self.times))

    @property
    def quartiles(self) -> tuple[float, float]:
        """First and third quartile of the timed repeats (seconds; both the value for 1 run)."""
        if len(self.times) < 2:
            return (self.times[0], self.times[0])
        q = statistics.quantiles(self.times, n=4, method="inclusive")
        return (float(q[0]), float(q[2]))

    @property
    def iqr(self) -> float:
        """Interquartile range of the timed repeats, in seconds (the spread to report)."""
        q1, q3 = self.quartiles
        return q3 - q1

    @property
    def repeat(self) -> int:
        """Number of timed repeats."""
        return len(self.times)

    def __str__(self) -> str:
        first = "" if self.first is None else f"; first call {format_seconds(self.first)}"
        return (
            f"median {format_seconds(self.median)} (best {format_seconds(self.best)}, "
            f"{self.repeat} runs{first})"
        )


def format_seconds(seconds: float) -> str:
    """A duration in seconds as a short human string: ``'812 us'``, ``'21.4 ms'``, ``'1.73 s'``."""
    if seconds != seconds:  # NaN
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def timed_call(fn: Callable[[], Any], *, disable_gc: bool = True) -> tuple[float, Any]:
    """Call ``fn()`` once and return ``(seconds, result)``, with the GC off during the call.

    The result is returned (not dropped inside the timed region) so that freeing a large
    output is not counted; the garbage collector is re-enabled afterwards only if it was on.
    """
    was_enabled = gc.isenabled()
    if disable_gc:
        gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
    finally:
        if disable_gc and was_enabled:
            gc.enable()
    return elapsed, result


def measure(
    fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1, disable_gc: bool = True
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed-for-the-median calls, then ``repeat`` timed calls.

    Each call runs with the garbage collector disabled (``disable_gc=True``) and is timed
    with :func:`time.perf_counter`; results are discarded outside the timed region. The
    first warm-up call's duration is kept as ``Timing.first`` (compile time for a JIT
    function), the median and best of the repeats are the figures to report. All values
    are seconds. ``repeat`` must be >= 1 and ``warmup`` >= 0 (ValueError otherwise).
    """
    repeat = positive_int(repeat, "repeat")
    warmup = non_negative_int(warmup, "warmup")
    gc.collect()
    first: float | None = None
    for i in range(warmup):
        elapsed, result = timed_call(fn, disable_gc=disable_gc)
        del result
        if i == 0:
            first = elapsed
    times = []
    for _ in range(repeat):
        elapsed, result = timed_call(fn, disable_gc=disable_gc)
        del result
        times.append(elapsed)
    return Timing(tuple(times), first)


def measure_interleaved(
    fns: Mapping[str, Callable[[], object]], *, rounds: int = 5, warmup: int = 1
) -> dict[str, Timing]:
    """Time several functions in alternation: round after round, each function called once.

    On a machine that also runs other work, the second core comes and goes; timing one
    variant after another lets a busy spell hit only some of them and skews every speed-up.
    Interleaving spreads it over all of them alike. Each call is timed like
    :func:`measure` (GC off, ``perf_counter``); ``warmup`` untimed rounds come first
    (the first warm-up call of each function is kept as ``Timing.first``). Returns
    name -> :class:`Timing`, in seconds.
    """
    rounds = positive_int(rounds, "rounds")
    warmup = non_negative_int(warmup, "warmup")
    first: dict[str, float] = {}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(warmup + rounds):
        for name, fn in fns.items():
            elapsed, result = timed_call(fn)
            del result
            if r < warmup:
                first.setdefault(name, elapsed)
            else:
                times[name].append(elapsed)
    return {name: Timing(tuple(times[name]), first.get(name)) for name in fns}


def speedup_table(runs: Mapping[object, Timing], base: object) -> pd.DataFrame:
    """Median, IQR and best time (ms) of each run, its run count and both speed-ups vs ``base``.

    ``runs`` is what :func:`measure_interleaved` returns; the IQR (interquartile range, ms)
    shows the spread of the repeats. The table is rounded to 2 decimals, one row per run in
    the given order.
    """
    table = pd.DataFrame(
        {
            "median (ms)": [t.median * 1e3 for t in runs.values()],
            "IQR (ms)": [t.iqr * 1e3 for t in runs.values()],
            "best (ms)": [t.best * 1e3 for t in runs.values()],
            "runs": [t.repeat for t in runs.values()],
        },
        index=list(runs),
    )
    table["speed-up (median)"] = table.loc[base, "median (ms)"] / table["median (ms)"]
    table["speed-up (best)"] = table.loc[base, "best (ms)"] / table["best (ms)"]
    return table.round(2)
