"""The optional GPU extras: a clear error without cuDF/CuPy, and the logic right on the CPU."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.indicators.backends.numpy import rolling_mean
from nepse_perf.lessons.gpu_extras import (
    GPUExtraUnavailableError,
    cudf_sma,
    cupy_sma,
    rolling_mean_time_major,
)
from nepse_perf.lessons.workbook import agrees


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    """Unsorted multi-symbol frame with a short symbol and leading NaNs."""
    prices = synthetic_prices(4, 120, seed=7)
    short = synthetic_prices(1, 12, seed=8).assign(symbol="SHORT")
    late = synthetic_prices(1, 60, seed=9).assign(symbol="LATE")
    late.loc[late.index[:5], ["close", "high", "low"]] = np.nan
    frame = pd.concat([prices, short, late], ignore_index=True)
    return frame.sample(frac=1.0, random_state=3)


@pytest.mark.parametrize("name", ["cudf", "cupy"])
def test_absent_library_gives_a_clear_error(monkeypatch, name) -> None:
    monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    fn = cudf_sma if name == "cudf" else cupy_sma
    with pytest.raises(GPUExtraUnavailableError, match=rf"'{name}'.*requirements-gpu\.txt"):
        fn(synthetic_prices(2, 30))


def test_absent_library_is_caught_as_an_import_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)
    try:  # what a caller that falls back on ImportError writes
        cupy_sma(synthetic_prices(2, 30), 5)
    except ImportError as exc:
        caught = exc
    assert type(caught) is GPUExtraUnavailableError and "cupy" in str(caught)


@pytest.mark.parametrize("window", [2, 5, 20])
def test_cpu_run_of_the_same_code_matches_talib(messy, window) -> None:
    ref = compute_indicators(messy, "talib", sma_period=window)["sma"]
    for got in (cudf_sma(messy, window, lib=pd), cupy_sma(messy, window, xp=np)):
        assert got.index.equals(messy.index) and got.name == "sma"
        assert agrees(got, ref)


def test_rolling_mean_time_major_equals_numpy_backend() -> None:
    grid = np.random.default_rng(1).normal(100, 5, (50, 3))
    np.testing.assert_allclose(rolling_mean_time_major(grid, 7), rolling_mean(grid, 7), rtol=1e-12)
    assert np.isnan(rolling_mean_time_major(grid[:4], 7)).all()


def test_bad_window() -> None:
    with pytest.raises(ValueError, match="window"):
        cudf_sma(synthetic_prices(2, 30), 0, lib=pd)
