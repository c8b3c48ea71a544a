"""Helpers the notebooks share: data size from the environment, checksums, comparisons.

Notebooks print numbers that nbval compares between runs and machines, so everything
here prints deterministic, rounded text: checksums to 8 significant digits and
differences as an order of magnitude (bucket).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from nepse_perf.bench.report import diff_bucket as diff_bucket  # the notebooks import it here
from nepse_perf.data import synthetic_prices
from nepse_perf.data.synthetic import SIZES

#: Environment variable that scales the synthetic data in timing cells.
SIZE_VARIABLE = "NEPSE_PERF_SIZE"

#: Default notebook size (symbols, days): small enough for ~2 minutes per notebook on 2 cores.
NOTEBOOK_DEFAULT = "small"


def notebook_size() -> tuple[str, int, int]:
    """``(name, n_symbols, n_days)`` from ``NEPSE_PERF_SIZE`` (small, medium or large).

    Unset means ``small`` (50 symbols x 2,500 sessions); any other value raises
    ``ValueError`` naming the variable and the valid sizes.
    """
    name = os.environ.get(SIZE_VARIABLE, NOTEBOOK_DEFAULT).strip().lower() or NOTEBOOK_DEFAULT
    if name not in SIZES:
        raise ValueError(f"{SIZE_VARIABLE}={name!r} is not one of {sorted(SIZES)}")
    return (name, *SIZES[name])


def synthetic_for_notebook(seed: int = 0) -> pd.DataFrame:
    """The synthetic panel of the size ``NEPSE_PERF_SIZE`` selects (see ``notebook_size``)."""
    _, n_symbols, n_days = notebook_size()
    return synthetic_prices(n_symbols, n_days, seed=seed)


def checksums(indicators: pd.DataFrame) -> pd.DataFrame:
    """Per output column: the count of non-NaN values and their sum to 8 significant digits.

    Backends that agree to rtol 1e-9 print identical checksums, so a notebook can show
    that its technique reproduces notebook 00's numbers.
    """
    rows = []
    for col in indicators.columns:
        values = indicators[col].to_numpy(dtype=np.float64)
        ok = ~np.isnan(values)
        rows.append((col, int(ok.sum()), f"{math.fsum(values[ok]):.8g}"))
    return pd.DataFrame(rows, columns=["column", "values", "sum"]).set_index("column")


def max_abs_diff(got: pd.DataFrame | np.ndarray, ref: pd.DataFrame | np.ndarray) -> float:
    """Largest |got - ref| over all cells; ``inf`` if the NaN patterns differ."""
    a = np.asarray(got, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return math.inf
    ok = ~np.isnan(a)
    return float(np.max(np.abs(a[ok] - b[ok]))) if ok.any() else 0.0


def agrees(got: pd.DataFrame | np.ndarray, ref: pd.DataFrame | np.ndarray) -> bool:
    """True when NaNs match and ``assert_allclose(rtol=1e-9, atol=1e-9)`` holds."""
    try:
        np.testing.assert_allclose(
            np.asarray(got, dtype=np.float64),
            np.asarray(ref, dtype=np.float64),
            rtol=1e-9,
            atol=1e-9,
        )
    except AssertionError:
        return False
    return True


#: Packages whose versions the first cell of every notebook prints (beside the core ones).
EXTRA_PACKAGES: tuple[str, ...] = (
    "scikit-learn",
    "lightgbm",
    "onnxruntime",
    "torch",
    "fastapi",
    "uvicorn",
    "ray",
    "pyspark",
    "dask",
)


def environment_report(extra: tuple[str, ...] = ()) -> str:
    """The machine and the software behind a notebook's numbers, as a few printable lines.

    CPU model, logical/usable cores, memory (GB = 1e9 bytes), OS, Python and the versions of
    NumPy, pandas, Numba and TA-Lib, plus any installed package named in ``extra`` (a
    distribution name such as ``"onnxruntime"``). The first cell of every notebook prints it
    under ``# NBVAL_IGNORE_OUTPUT``, so each stored number keeps its context.
    """
    from importlib import metadata

    from nepse_perf.bench.machine import machine_info

    info = machine_info()
    lines = [
        f"machine: {info['cpu_model']}, {info['logical_cores']} logical cores "
        f"({info['usable_cores']} usable), {info['memory_total_gb']:.1f} GB memory",
        f"os: {info['os']}",
        f"python {info['python']} | numpy {info['numpy']} | pandas {info['pandas']} | "
        f"numba {info['numba']} | TA-Lib {info['talib']}",
    ]
    versions = []
    for dist in extra:
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} not installed")
    if versions:
        lines.append(" | ".join(versions))
    lines.append(f"run at: {info['datetime']}")
    return "\n".join(lines)


def _canonical(value: object, digits: int) -> str:
    """A text form of ``value`` that equal answers share: floats to ``digits`` significant
    digits, containers element by element (sets and dict keys sorted), frames with their
    index and columns."""
    if isinstance(value, pd.DataFrame):
        return (
            f"DataFrame{value.shape}|{_canonical(list(value.columns), digits)}|"
            f"{_canonical(list(value.index), digits)}|{_canonical(value.to_numpy(), digits)}"
        )
    if isinstance(value, pd.Series):
        return (
            f"Series|{_canonical(list(value.index), digits)}|{_canonical(value.to_numpy(), digits)}"
        )
    if isinstance(value, np.ndarray):
        flat = [_canonical(v, digits) for v in value.ravel().tolist()]
        return f"array{value.shape}[{','.join(flat)}]"
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "nan" if math.isnan(v) else f"{v:.{digits}g}"
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dict):
        items = sorted((str(k), _canonical(v, digits)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if isinstance(value, (set, frozenset)):
        return "{" + ",".join(sorted(_canonical(v, digits) for v in value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical(v, digits) for v in value) + "]"
    return str(value)


def answer_digest(value: object, digits: int = 6) -> str:
    """A fingerprint of an exercise's answer: 16 hex digits of SHA-256 of its canonical form.

    Floats count to ``digits`` significant digits (NaN equals NaN); lists, tuples, dicts,
    sets, NumPy arrays and pandas objects are compared element by element, with shape,
    index and columns. An instructor stores the digest next to the exercise; the digest
    does not reveal the answer. :func:`check_answer` compares a learner's value with it.
    """
    import hashlib

    return hashlib.sha256(_canonical(value, digits).encode()).hexdigest()[:16]


def check_answer(value: object, digest: str, digits: int = 6) -> bool:
    """Tell a learner whether ``value`` is the exercise's answer, without showing the answer.

    Prints one line, ``correct`` or ``not yet`` with what kind of value was given (type and,
    for arrays and frames, shape), and returns the verdict. ``digest`` comes from
    :func:`answer_digest` with the same ``digits``.
    """
    ok = answer_digest(value, digits) == digest
    if ok:
        print(f"correct: your {type(value).__name__} is the expected answer")
    else:
        shape = getattr(value, "shape", None)
        kind = type(value).__name__ + (f" of shape {shape}" if shape is not None else "")
        print(f"not yet: your {kind} is not the expected answer (compared to {digits} digits)")
    return ok


def spread(timing: object, digits: int = 3) -> str:
    """The spread of a timing for a summary table: its interquartile range as ``'q1 - q3'``.

    ``timing`` is a :class:`nepse_perf.bench.timing.Timing` (several timed repeats): the first
    and third quartile in seconds, to ``digits`` significant digits. A single measurement (a
    Timing of one repeat, or a plain number, e.g. from ``timed_call``) gives ``'1 run'``;
    ``None`` or NaN (a row that is not a time) gives ``'n/a'``. :func:`runs` gives the
    matching number of repeats.
    """
    from nepse_perf.bench.timing import Timing

    if isinstance(timing, Timing) and timing.repeat > 1:
        q1, q3 = timing.quartiles
        return f"{q1:.{digits}g} - {q3:.{digits}g}"
    if timing is None or (isinstance(timing, float) and math.isnan(timing)):
        return "n/a"
    return "1 run"


def runs(timing: object) -> int | str:
    """How many timed repeats a summary-table time rests on (the companion of :func:`spread`).

    A :class:`nepse_perf.bench.timing.Timing` gives its ``repeat`` count, a plain number (one
    measurement) gives ``1``, and ``None`` or NaN (not a time) gives ``'n/a'``.
    """
    from nepse_perf.bench.timing import Timing

    if isinstance(timing, Timing):
        return timing.repeat
    if timing is None or (isinstance(timing, float) and math.isnan(timing)):
        return "n/a"
    return 1


def median(timing: object) -> float:
    """The time a summary table shows, in seconds: a Timing's median, a plain number as is.

    ``None`` becomes NaN, so a row that is not a time stays empty in the table.
    """
    from nepse_perf.bench.timing import Timing

    if isinstance(timing, Timing):
        return timing.median
    return math.nan if timing is None else float(timing)  # type: ignore[arg-type]


def _median_and_range(timing: object) -> tuple[float, float, float]:
    from nepse_perf.bench.timing import Timing

    if isinstance(timing, Timing):
        q1, q3 = timing.quartiles if timing.repeat > 1 else (timing.median, timing.median)
        return timing.median, q1, q3
    value = float(timing)  # type: ignore[arg-type]
    return value, value, value


def compare_words(
    name_a: str, time_a: object, name_b: str, time_b: object, level_within: float = 0.10
) -> str:
    """A sentence comparing two measured times, its words chosen from the values.

    ``time_a`` and ``time_b`` are :class:`~nepse_perf.bench.timing.Timing` objects or seconds.
    The ratio of the medians decides the verb: within ``level_within`` (10 % by default), or
    when the interquartile ranges overlap, the two are called level; otherwise the sentence
    says which one is faster and by what factor. Notebooks print it instead of typing a
    conclusion into markdown, so the words follow the measurement on every machine.
    """
    a, a_lo, a_hi = _median_and_range(time_a)
    b, b_lo, b_hi = _median_and_range(time_b)
    ratio = b / a
    overlap = a_lo <= b_hi and b_lo <= a_hi
    if abs(ratio - 1.0) <= level_within or (overlap and abs(ratio - 1.0) <= 2 * level_within):
        return f"{name_a} and {name_b} are level ({ratio:.2f}x, within the run-to-run spread)"
    if ratio > 1.0:
        return f"{name_a} is {ratio:.1f}x faster than {name_b}"
    return f"{name_a} is {1.0 / ratio:.1f}x slower than {name_b}"


def rank_words(times: dict[str, object], unit: str = "ms", scale: float = 1e3) -> str:
    """One line naming the fastest and the slowest of several measured times, from the values.

    ``times`` maps a label to a :class:`~nepse_perf.bench.timing.Timing` or seconds; the line
    gives the fastest and slowest median in ``unit`` (seconds times ``scale``) and their ratio.
    """
    medians = {name: _median_and_range(t)[0] for name, t in times.items()}
    fast = min(medians, key=medians.__getitem__)
    slow = max(medians, key=medians.__getitem__)
    return (
        f"fastest: {fast} ({medians[fast] * scale:.3g} {unit}); slowest: {slow} "
        f"({medians[slow] * scale:.3g} {unit}), {medians[slow] / medians[fast]:.1f}x the fastest"
    )
