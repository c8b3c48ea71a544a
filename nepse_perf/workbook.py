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

from .bench.runner import SIZES
from .data import synthetic_prices

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


def diff_bucket(diff: float) -> str:
    """An order-of-magnitude label for a difference: ``'0'``, ``'< 1e-11'``, ... ``'NaN mismatch'``.

    Exact last-bit differences can vary between CPUs; the bucket does not (except at a
    power of ten), so notebooks print the bucket where nbval compares.
    """
    if math.isinf(diff):
        return "NaN mismatch"
    if diff == 0.0:
        return "0"
    return f"< 1e{math.floor(math.log10(diff)) + 1}"


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
