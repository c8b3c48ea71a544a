"""The TA-Lib-style per-indicator functions equal TA-Lib; lookbacks equal TA-Lib's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
import talib.abstract
from hypothesis import given, settings
from hypothesis import strategies as st

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.indicators import (
    IndicatorParams,
    atr,
    atr_lookback,
    bbands,
    bbands_lookback,
    ema,
    ema_lookback,
    macd,
    macd_lookback,
    rsi,
    rsi_lookback,
    sma,
    sma_lookback,
)
from nepse_perf.indicators.params import OUTPUT_COLUMNS
from nepse_perf.pipeline import available_backends


def close_series(n: int, seed: int = 0, level: float = 300.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(level * np.exp(np.cumsum(rng.normal(0, 0.02, n))), 1)


def hlc(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = close_series(n, seed)
    wiggle = np.abs(np.random.default_rng(seed + 1).normal(0, 0.01, n)) * c
    return c + wiggle, c - wiggle, c


def close_enough(got, ref, name: str = "") -> None:
    got, ref = np.asarray(got), np.asarray(ref)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=f"NaN pattern of {name}")
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9, err_msg=name)


def ours_and_talib(c, h, lo, n):
    """(name, ours, TA-Lib's) for every output, with the same periods."""
    m, g, hist = macd(c, 5, n + 6, 4)
    tm, tg, th = talib.MACD(c, 5, n + 6, 4)
    u, mid, low_band = bbands(c, n, 2.5)
    tu, tmid, tl = talib.BBANDS(c, n, 2.5, 2.5, 0)
    return [
        ("sma", sma(c, n), talib.SMA(c, n)),
        ("ema", ema(c, n), talib.EMA(c, n)),
        ("rsi", rsi(c, n), talib.RSI(c, n)),
        ("macd", m, tm),
        ("macd_signal", g, tg),
        ("macd_hist", hist, th),
        ("bb_upper", u, tu),
        ("bb_middle", mid, tmid),
        ("bb_lower", low_band, tl),
        ("atr", atr(h, lo, c, n), talib.ATR(h, lo, c, n)),
    ]


@pytest.mark.parametrize("n", [2, 5, 14, 20, 50])
@pytest.mark.parametrize("length", [1, 10, 60, 700])
def test_every_function_equals_talib(n: int, length: int) -> None:
    h, lo, c = hlc(length, seed=n + length)
    for name, got, ref in ours_and_talib(c, h, lo, n):
        close_enough(got, ref, name)


def test_leading_nans_are_skipped_like_talib() -> None:
    h, lo, c = hlc(200, seed=3)
    for a in (h, lo, c):
        a[:9] = np.nan
    for name, got, ref in ours_and_talib(c, h, lo, 10):
        close_enough(got, ref, name)


@pytest.mark.parametrize("level", [1.0, 46612.3])
def test_constant_prices(level: float) -> None:
    c = np.full(90, level)
    for name, got, ref in ours_and_talib(c, c, c, 14):
        close_enough(got, ref, name)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    length=st.integers(1, 300),
    n=st.integers(2, 40),
    level=st.sampled_from([5.0, 250.0, 46_000.0]),
)
def test_random_series_and_periods(seed: int, length: int, n: int, level: float) -> None:
    c = close_series(length, seed, level)
    h, lo = c * 1.01, c * 0.99
    for name, got, ref in ours_and_talib(c, h, lo, n):
        close_enough(got, ref, name)


def test_series_in_series_out() -> None:
    prices = synthetic_prices(1, 120, seed=5)
    close = prices.set_index("date")["close"]
    got = sma(close, 10)
    assert isinstance(got, pd.Series) and got.index.equals(close.index)
    upper, middle, lower = bbands(close)
    assert all(isinstance(x, pd.Series) for x in (upper, middle, lower))
    close_enough(got.to_numpy(), talib.SMA(close.to_numpy(), 10))


def test_same_values_as_the_pipeline() -> None:
    """The one-series functions and the panel backends share the step functions."""
    prices = synthetic_prices(1, 400, seed=9)
    panel = compute_indicators(prices, "numba")
    c, h, lo = (prices[k].to_numpy() for k in ("close", "high", "low"))
    m, g, hist = macd(c)
    u, mid, low_band = bbands(c)
    ours = [sma(c), ema(c), rsi(c), m, g, hist, u, mid, low_band, atr(h, lo, c)]
    for col, got in zip(OUTPUT_COLUMNS, ours, strict=True):
        np.testing.assert_array_equal(got, panel[col].to_numpy(), err_msg=col)


@pytest.mark.parametrize(
    ("ours", "name", "params"),
    [
        (sma_lookback, "SMA", {"timeperiod": 7}),
        (ema_lookback, "EMA", {"timeperiod": 30}),
        (rsi_lookback, "RSI", {"timeperiod": 9}),
        (macd_lookback, "MACD", {"fastperiod": 5, "slowperiod": 35, "signalperiod": 5}),
        (bbands_lookback, "BBANDS", {"timeperiod": 20}),
        (atr_lookback, "ATR", {"timeperiod": 21}),
    ],
)
def test_lookbacks_equal_talibs(ours, name: str, params: dict) -> None:
    fn = talib.abstract.Function(name)
    fn.set_parameters(**params)
    assert ours(**params) == fn.lookback


@pytest.mark.parametrize("backend", sorted(available_backends()))
def test_warm_up_lengths_follow_the_lookbacks(backend: str) -> None:
    """Every backend's leading NaNs per symbol are exactly IndicatorParams.lookbacks()."""
    params = {"sma_period": 7, "rsi_period": 9, "macd_slow": 30, "bb_period": 11}
    prices = synthetic_prices(3, 80, seed=2)
    got = compute_indicators(prices, backend, **params)
    lookbacks = IndicatorParams(**params).lookbacks()
    for _sym, rows in got.groupby(prices["symbol"], observed=True):
        for col in OUTPUT_COLUMNS:
            values = rows[col].to_numpy()
            first = int(np.argmax(~np.isnan(values)))
            assert first == lookbacks[col], (backend, col)
            assert not np.isnan(values[first:]).any()


class TestBadInput:
    def test_period(self) -> None:
        with pytest.raises(ValueError, match="timeperiod must be an integer >= 2, got 1"):
            sma(close_series(30), 1)
        with pytest.raises(ValueError, match="timeperiod must be an integer"):
            rsi(close_series(30), 2.5)

    def test_macd_order(self) -> None:
        with pytest.raises(ValueError, match="fastperiod must be < slowperiod"):
            macd(close_series(30), 26, 12)

    def test_nbdev(self) -> None:
        with pytest.raises(ValueError, match="nbdev must be a number > 0"):
            bbands(close_series(30), 20, -1.0)

    def test_shape_and_lengths(self) -> None:
        with pytest.raises(ValueError, match="close must be one-dimensional"):
            sma(np.ones((3, 3)))
        with pytest.raises(ValueError, match="inputs differ in length"):
            atr(np.ones(5), np.ones(4), np.ones(5))

    def test_nan_inside(self) -> None:
        c = close_series(50)
        c[30] = np.nan
        with pytest.raises(ValueError, match="NaN or inf at position 30"):
            ema(c)

    def test_not_numeric(self) -> None:
        with pytest.raises(ValueError, match="close must be numeric"):
            sma(np.array(["a", "b"]))
