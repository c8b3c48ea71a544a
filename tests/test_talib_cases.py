"""TA-Lib's own test cases for the six indicators, adapted to ``nepse_perf.indicators``.

ta-lib-python's suite (``tests/test_func.py``, ``test_abstract.py``, ``test_pandas.py``,
``test_polars.py``) asserts, for SMA, EMA, RSI, MACD, BBANDS and ATR: exact equality of
SMA results (``assert_array_equal``: ``test_SMA``, ``test_MAVP``,
``test_call_doesnt_cache_parameters``, ``test_abstract::test_pandas``), an EMA ramp and an
EMA of an EMA, Bollinger bands around an EMA middle (``matype=MA_Type.EMA``), RSI at tiny
prices and scaled up, all-NaN and leading-NaN inputs, unequal lengths, and pandas and
polars Series in and out. Each test below names the case it adapts; it is written for this
package's API (lower-case names, our data) and compares against the real TA-Lib at test
time rather than against typed-in numbers. Where ours differs on purpose (integer input
is converted, not refused), the test says so. TA-Lib's unstable-period and Metastock
compatibility settings have no counterpart here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import talib
from numpy.testing import assert_allclose, assert_array_almost_equal, assert_array_equal

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.indicators import atr, bbands, ema, macd, rsi, sma
from nepse_perf.indicators.params import OUTPUT_COLUMNS

#: The outputs that equal TA-Lib's bit for bit (the others agree to rtol 1e-9).
EXACT_COLUMNS = ("sma", "ema", "macd", "macd_signal", "macd_hist", "bb_middle")

SMALL = np.array([1.0, 5, 3, 4, 7, 3, 8, 1, 4, 6])  # small integers: quotients round exactly once


def _walk(n: int, seed: int, level: float = 300.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(level * np.exp(np.cumsum(rng.normal(0, 0.02, n))), 1)


@pytest.fixture(scope="module")
def real(sample_prices: pd.DataFrame) -> dict[str, np.ndarray]:
    """One real NEPSE stock's close, high and low (the sample's longest history)."""
    sym = sample_prices["symbol"].value_counts().index[0]
    g = sample_prices[sample_prices["symbol"] == sym].sort_values("date")
    return {k: g[k].to_numpy(np.float64) for k in ("close", "high", "low", "open")}


@pytest.mark.parametrize("n", [2, 3, 4])
def test_sma_of_small_integers_is_talibs_exactly(n: int) -> None:
    """test_MAVP: the SMA parts of MAVP are compared with ``assert_array_equal``."""
    assert_array_equal(sma(SMALL, n), talib.SMA(SMALL, n))
    assert sma(SMALL, 3)[5] == 14.0 / 3.0  # (3 + 7 + 4) / 3, one rounding (not 14 * (1/3))


def test_repeated_calls_keep_no_parameters(real: dict[str, np.ndarray]) -> None:
    """test_call_doesnt_cache_parameters and test_SMA: each call's own period and price."""
    for price, n in (("open", 20), ("close", 20), ("close", 10), ("open", 10)):
        assert_array_equal(sma(real[price], n), talib.SMA(real[price], n))


def test_pandas_in_pandas_out_with_the_index(real: dict[str, np.ndarray]) -> None:
    """test_abstract::test_pandas and test_pandas::test_MAVP: a Series keeps its index."""
    close = pd.Series(real["close"], index=range(10, 10 + len(real["close"])))
    got = sma(close, 10)
    assert isinstance(got, pd.Series)
    assert_array_equal(got.index, close.index)
    assert_array_equal(got.to_numpy(), talib.SMA(real["close"], 10))
    upper, middle, lower = bbands(close, 20, 2.0)
    assert all(isinstance(b, pd.Series) for b in (upper, middle, lower))


def test_polars_in_polars_out(real: dict[str, np.ndarray]) -> None:
    """test_polars::test_MOM/test_MAVP/test_AVR: polars Series in, polars Series out."""
    c = pl.Series("close", real["close"])
    h, lo = pl.Series("high", real["high"]), pl.Series("low", real["low"])
    got = sma(c, 10)
    assert isinstance(got, pl.Series) and got.name == "close" and got.dtype == pl.Float64
    assert_array_equal(got.to_numpy(), talib.SMA(real["close"], 10))
    assert_array_equal(ema(c, 20).to_numpy(), talib.EMA(real["close"], 20))
    for ours, theirs in zip(macd(c), talib.MACD(real["close"], 12, 26, 9), strict=True):
        assert isinstance(ours, pl.Series)
        assert_array_equal(ours.to_numpy(), theirs)
    bands = bbands(c, 20, 2.0)
    assert all(isinstance(b, pl.Series) for b in bands)
    assert_array_equal(bands[1].to_numpy(), talib.BBANDS(real["close"], 20, 2.0, 2.0)[1])
    assert isinstance(rsi(c, 14), pl.Series)
    assert_allclose(
        atr(h, lo, c, 14).to_numpy(),
        talib.ATR(h.to_numpy(), lo.to_numpy(), c.to_numpy(), 14),
        rtol=1e-9,
    )


def test_polars_float32_columns_give_float64_atr() -> None:
    """test_polars::test_AVR: float32 polars columns (TA-Lib converts them to double)."""
    rng = np.random.default_rng(0)
    cols = {k: rng.uniform(1.0, 100.0, 50).astype("float32") for k in ("high", "low", "close")}
    cols["high"] = np.maximum.reduce([cols["high"], cols["low"], cols["close"]])
    df = pl.DataFrame(cols)
    got = atr(df["high"], df["low"], df["close"], 14)
    assert isinstance(got, pl.Series) and len(got) == 50 and got.dtype == pl.Float64
    want = talib.ATR(*(cols[k].astype(np.float64) for k in ("high", "low", "close")), 14)
    assert_allclose(got.to_numpy(), want, rtol=1e-9)


def test_bbands_around_an_ema(real: dict[str, np.ndarray]) -> None:
    """test_BBANDS: ``matype=MA_Type.EMA``; the middle band is the EMA, bit for bit."""
    c = real["close"]
    upper, middle, lower = bbands(c, 20, 2.0, matype=talib.MA_Type.EMA)
    t_upper, t_middle, t_lower = talib.BBANDS(c, 20, 2.0, 2.0, matype=talib.MA_Type.EMA)
    assert_array_equal(middle, t_middle)
    assert_array_equal(middle, ema(c, 20))
    assert_allclose(upper, t_upper, rtol=1e-9)
    assert_allclose(lower, t_lower, rtol=1e-9)
    first = np.flatnonzero(~np.isnan(upper))[0]
    assert first == np.flatnonzero(~np.isnan(t_upper))[0] == 19
    assert_array_equal(bbands(c, 20, 2.0, matype="sma")[1], talib.BBANDS(c, 20, 2.0, 2.0)[1])
    with pytest.raises(ValueError, match=r"matype must be 0 \(SMA\) or 1 \(EMA\)"):
        bbands(c, 20, 2.0, matype=talib.MA_Type.WMA)


def test_ema_of_a_ramp() -> None:
    """test_unstable_period / test_compatibility (their default settings): a ramp's EMA."""
    a = np.arange(10, dtype=float)
    assert_array_equal(ema(a, 3), [np.nan, np.nan, 1, 2, 3, 4, 5, 6, 7, 8])
    assert_array_equal(ema(a, 3), talib.EMA(a, 3))


def test_ema_of_an_ema(real: dict[str, np.ndarray]) -> None:
    """test_EMAEMA: the second EMA skips the first one's leading NaN."""
    twice = ema(ema(real["close"], 2), 2)
    assert np.flatnonzero(~np.isnan(twice))[0] == 2
    assert_array_equal(twice, talib.EMA(talib.EMA(real["close"], 2), 2))


def test_rsi_at_tiny_prices_and_scaled() -> None:
    """test_RSI: prices of 2.3e-7 and 2.4e-7 give TA-Lib's RSI, and so do they times 1e5."""
    a = np.where(
        np.array([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1]), 23e-8, 24e-8
    )
    for scale in (1.0, 1e5):
        assert_array_almost_equal(rsi(a * scale, 10), talib.RSI(a * scale, 10))
    assert_allclose(rsi(a, 10), rsi(a * 1e5, 10), rtol=1e-9)


def test_all_nan_input_gives_all_nan() -> None:
    """test_input_allnans: every indicator of an all-NaN series is NaN, as TA-Lib's RSI."""
    a = np.full(40, np.nan)
    assert np.isnan(talib.RSI(a)).all()
    outputs = [sma(a), ema(a), rsi(a), *macd(a), *bbands(a), atr(a, a, a)]
    assert all(np.isnan(o).all() and len(o) == 40 for o in outputs)


def test_leading_nans_in_one_input(real: dict[str, np.ndarray]) -> None:
    """test_input_nans: a leading NaN in any input starts every input later, as TA-Lib does."""
    h, lo, c = real["high"][:60].copy(), real["low"][:60], real["close"][:60]
    h[:2] = np.nan
    got, want = atr(h, lo, c, 14), talib.ATR(h, lo, c, 14)
    assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.flatnonzero(~np.isnan(got))[0] == 2 + 14
    assert_allclose(got, want, rtol=1e-9)


def test_unequal_lengths_raise() -> None:
    """test_input_lengths: inputs of different lengths are refused."""
    a, b = np.arange(10, dtype=float) + 1, np.arange(11, dtype=float) + 1
    with pytest.raises(ValueError, match="differ in length"):
        atr(b, a, a)
    with pytest.raises(ValueError, match="differ in length"):
        atr(a, a, b)


def test_integer_input_is_converted_not_refused() -> None:
    """test_input_wrong_type: TA-Lib refuses int64 arrays; ours converts them (on purpose)."""
    ints = np.arange(1, 41)
    assert_array_equal(sma(ints, 5), talib.SMA(ints.astype(float), 5))
    with pytest.raises(ValueError, match="close must be numeric"):
        sma(np.array(["a", "b", "c"]), 2)


@pytest.mark.parametrize("n", [2, 5, 9, 14, 20, 30, 50])
def test_moving_averages_are_talibs_bit_for_bit(n: int, sample_prices: pd.DataFrame) -> None:
    """SMA, EMA and both Bollinger middles equal TA-Lib's exactly, on every real series."""
    for _, g in sample_prices.groupby("symbol", observed=True):
        c = g.sort_values("date")["close"].dropna().to_numpy(np.float64)
        assert_array_equal(sma(c, n), talib.SMA(c, n))
        assert_array_equal(ema(c, n), talib.EMA(c, n))
        assert_array_equal(bbands(c, n)[1], talib.BBANDS(c, n, 2.0, 2.0, 0)[1])
        assert_array_equal(bbands(c, n, matype=1)[1], talib.BBANDS(c, n, 2.0, 2.0, 1)[1])


@pytest.mark.parametrize("fast, slow, signal", [(12, 26, 9), (3, 10, 16), (5, 35, 5)])
def test_macd_is_talibs_bit_for_bit(fast: int, slow: int, signal: int) -> None:
    """MACD's two EMAs and its signal EMA round as TA-Lib's do (one FMA each)."""
    for seed in range(5):
        c = _walk(700, seed, level=10.0 ** (seed - 1))
        for ours, theirs in zip(
            macd(c, fast, slow, signal), talib.MACD(c, fast, slow, signal), strict=True
        ):
            assert_array_equal(ours, theirs)


@pytest.mark.parametrize("backend", ["python", "numba", "numba_parallel"])
def test_panel_backends_are_talibs_bit_for_bit(backend: str, sample_prices: pd.DataFrame) -> None:
    """The step-function backends give TA-Lib's bits for the exact columns, on real data."""
    from conftest import talib_reference

    prices = sample_prices if backend != "python" else synthetic_prices(4, 300, seed=2)
    got, ref = compute_indicators(prices, backend), talib_reference(prices)
    for col in OUTPUT_COLUMNS:
        if col in EXACT_COLUMNS:
            assert_array_equal(got[col].to_numpy(), ref[col].to_numpy(), err_msg=col)
        else:
            assert_allclose(got[col].to_numpy(), ref[col].to_numpy(), rtol=1e-9, atol=1e-9)
