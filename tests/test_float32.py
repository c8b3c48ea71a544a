"""The float32 path: what it stores, and the error bounds notebook 07 states for the sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.indicators.params import OUTPUT_COLUMNS
from nepse_perf.lessons.float32 import float32_errors, float32_prices, indicators_float32

LEVEL = ["sma", "ema", "bb_upper", "bb_middle", "bb_lower"]  # live at the price's scale
DIFFERENCE = ["rsi", "macd", "macd_signal", "macd_hist", "atr"]  # built from price differences


@pytest.fixture(scope="module")
def errors(sample_prices: pd.DataFrame) -> pd.DataFrame:
    return float32_errors(sample_prices)


def test_table_shape(errors: pd.DataFrame) -> None:
    assert list(errors.index) == list(OUTPUT_COLUMNS)
    assert list(errors.columns) == [
        "typical",
        "float64",
        "float32 prices",
        "float32 in+out",
        "relative",
    ]
    assert np.isfinite(errors.to_numpy()).all(), "float32 must not change any NaN pattern"


def test_float64_baseline_agrees_with_talib(errors: pd.DataFrame) -> None:
    assert (errors["float64"] < 1e-8).all()


def test_price_rounding_bounds(errors: pd.DataFrame, sample_prices: pd.DataFrame) -> None:
    top = float(sample_prices["close"].max())  # 55,000 NPR (UNL)
    half_ulp = float(np.spacing(np.float32(top))) / 2  # 0.00195 NPR
    # A mean of prices each rounded by at most half an ulp moves by at most half an ulp...
    assert 0 < errors.loc["sma", "float32 prices"] <= half_ulp
    # ...and storing the mean in float32 adds at most another half ulp.
    assert errors.loc["sma", "float32 in+out"] <= 2 * half_ulp
    assert (errors.loc[LEVEL, "float32 in+out"] < 3e-3).all()
    # Every indicator moves, none by more than a few thousandths of its unit.
    assert (errors["float32 prices"] > 1e-6).all()
    assert (errors["float32 in+out"] < 3e-3).all()
    assert errors.loc["rsi", "float32 in+out"] < 1e-4  # RSI points, on a 0-100 scale


def test_difference_indicators_lose_more_of_their_precision(errors: pd.DataFrame) -> None:
    rel = errors["relative"]
    assert (rel[LEVEL] < 5e-7).all()  # ~float32's 2**-24 = 6e-8, times a few roundings
    assert (rel[DIFFERENCE] > 1e-6).all() and (rel[DIFFERENCE] < 1e-5).all()
    assert rel[DIFFERENCE].min() > 3 * rel[LEVEL].max()


def test_output_is_float32_with_the_reference_nan_pattern() -> None:
    prices = synthetic_prices(3, 120, seed=4)
    got = indicators_float32(prices)
    ref = compute_indicators(prices, "talib")
    assert (got.dtypes == np.float32).all() and got.index.equals(prices.index)
    np.testing.assert_array_equal(np.isnan(got.to_numpy()), np.isnan(ref.to_numpy()))
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-5, atol=1e-3)
    shuffled = prices.sample(frac=1.0, random_state=1)
    assert got.loc[shuffled.index].equals(indicators_float32(shuffled))


def test_downcast_is_forced_not_what_pandas_does(sample_prices: pd.DataFrame) -> None:
    small = float32_prices(sample_prices)
    assert small["close"].dtype == np.float32 and small["volume"].dtype == np.float64
    # The chapter's pd.to_numeric(downcast="float") keeps prices float64: float32 would
    # change them (0.1 NPR ticks are not float32 numbers); integer volumes do fit.
    assert pd.to_numeric(sample_prices["close"], downcast="float").dtype == np.float64
    assert pd.to_numeric(sample_prices["volume"], downcast="float").dtype == np.float32
