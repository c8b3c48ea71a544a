"""Chunked indicators with carried state equal the whole-series result bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.indicators.params import OUTPUT_COLUMNS
from nepse_perf.indicators.stream import IndicatorStream, indicators_from_csv, read_price_chunks


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return a.index.equals(b.index) and np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True)


def chunked(prices: pd.DataFrame, size: int, **params: float) -> pd.DataFrame:
    stream = IndicatorStream(**params)
    parts = [stream.update(prices.iloc[i : i + size]) for i in range(0, len(prices), size)]
    return pd.concat(parts)


@pytest.fixture(scope="module")
def one_symbol() -> tuple[pd.DataFrame, pd.DataFrame]:
    prices = synthetic_prices(1, 90, seed=11)
    return prices, compute_indicators(prices, "python")


def test_every_chunk_size_from_1_to_n(one_symbol: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    prices, whole = one_symbol
    n = len(prices)
    bad = [size for size in range(1, n + 1) if not same(chunked(prices, size), whole)]
    assert bad == [], f"chunk sizes that differ from the whole series: {bad}"


@pytest.mark.parametrize("column", ["ema", "rsi", "atr", "macd_signal", "bb_upper", "sma"])
def test_each_indicator_is_exact_for_every_chunk_size(
    one_symbol: tuple[pd.DataFrame, pd.DataFrame], column: str
) -> None:
    prices, whole = one_symbol
    for size in range(1, len(prices) + 1):
        got = chunked(prices, size)[column].to_numpy()
        np.testing.assert_array_equal(got, whole[column].to_numpy(), err_msg=f"size {size}")


def test_flat_stretches_every_chunk_size() -> None:
    """Runs of equal closes (illiquid stocks) take the bands' exact-zero branch."""
    prices = synthetic_prices(1, 80, seed=12)
    prices.loc[prices.index[10:45], "close"] = 500.0
    prices.loc[prices.index[60:70], "close"] = 510.0
    whole = compute_indicators(prices, "python")
    assert (whole["bb_upper"] == whole["bb_middle"]).sum() > 10
    bad = [size for size in range(1, len(prices) + 1) if not same(chunked(prices, size), whole)]
    assert bad == []


def test_equals_numba_and_python_backends_on_the_real_sample(sample_prices: pd.DataFrame) -> None:
    got = chunked(sample_prices, 4_999)
    assert same(got, compute_indicators(sample_prices, "numba"))
    assert same(got, compute_indicators(sample_prices, "numba_parallel"))


def test_date_major_interleaving_and_non_default_parameters() -> None:
    prices = synthetic_prices(6, 150, seed=4)
    params = dict(sma_period=7, ema_period=5, rsi_period=3, macd_fast=4, macd_slow=9,
                  macd_signal=3, bb_period=11, bb_nbdev=1.5, atr_period=6)  # fmt: skip
    daily = prices.sort_values(["date", "symbol"], kind="stable")
    got = chunked(daily, 37, **params).loc[prices.index]
    assert same(got, compute_indicators(prices, "python", **params))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=12), st.integers(0, 2**16))
def test_random_chunk_edges(sizes: list[int], seed: int) -> None:
    prices = synthetic_prices(3, 120, seed=seed).sample(frac=1.0, random_state=seed)
    prices = prices.sort_values("date", kind="stable")  # any symbol order, dates increasing
    stream = IndicatorStream()
    parts, start, i = [], 0, 0
    while start < len(prices):
        size = sizes[i % len(sizes)]
        parts.append(stream.update(prices.iloc[start : start + size]))
        start, i = start + size, i + 1
    assert same(pd.concat(parts), compute_indicators(prices, "numba"))


def test_short_series_and_leading_nan_rows() -> None:
    prices = synthetic_prices(3, 40, seed=2)
    first = prices.groupby("symbol", observed=True).head(3).index
    prices.loc[first[:2], "close"] = np.nan  # two leading incomplete rows of one symbol
    prices.loc[first[3], "high"] = np.nan  # one of another
    assert same(chunked(prices, 5), compute_indicators(prices, "python"))
    assert same(chunked(prices.iloc[:10], 3), compute_indicators(prices.iloc[:10], "python"))


def test_bad_chunks_raise_and_leave_the_state_alone() -> None:
    prices = synthetic_prices(2, 60, seed=9)
    whole = compute_indicators(prices, "numba")
    stream = IndicatorStream()
    a, b = prices.iloc[:50], prices.iloc[50:]
    got_a = stream.update(a)
    with pytest.raises(ValueError, match="date order"):
        stream.update(a.iloc[-5:])
    broken = b.copy()
    broken.loc[broken.index[3], "close"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        stream.update(broken)
    got_b = stream.update(b)
    assert same(pd.concat([got_a, got_b]), whole)
    with pytest.raises(ValueError, match="missing required"):
        stream.update(b.drop(columns="low"))


def test_rejected_chunk_with_a_new_symbol_leaves_no_trace() -> None:
    prices = synthetic_prices(3, 60, seed=4)
    known, newcomer = prices["symbol"].unique()[:2], prices["symbol"].unique()[2]
    first = prices[prices["symbol"].isin(known)]
    stream = IndicatorStream()
    stream.update(first.iloc[:70])
    before = (stream.symbols, stream.state_nbytes(), [stream.bars_seen(s) for s in known])
    # The new symbol's rows come first and are fine; a later row of a known symbol is bad.
    bad = pd.concat([prices[prices["symbol"] == newcomer].iloc[:30], first.iloc[70:]])
    bad.loc[bad.index[-1], "close"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        stream.update(bad)
    after = (stream.symbols, stream.state_nbytes(), [stream.bars_seen(s) for s in known])
    assert after == before
    assert newcomer not in stream.symbols and stream.bars_seen(newcomer) == 0
    # Resuming with the good rows gives exactly the whole-series result.
    rest = pd.concat([first.iloc[70:], prices[prices["symbol"] == newcomer]])
    got = stream.update(rest)
    whole = compute_indicators(prices, "numba").loc[rest.index]
    assert same(got, whole)


def test_state_is_small_and_counts_bars() -> None:
    prices = synthetic_prices(5, 100, seed=1)
    stream = IndicatorStream()
    stream.update(prices)
    assert len(stream.symbols) == 5
    assert stream.bars_seen(stream.symbols[0]) == 100 and stream.bars_seen("NOPE") == 0
    # Per symbol: the six step-function states (38 floats, parameters included), a ring of
    # max(sma_period, bb_period) + 1 = 21 closes, the bar count and the last date.
    assert stream.state_nbytes() == 5 * 8 * (38 + 21 + 2)


def test_processing_chunks_independently_is_wrong() -> None:
    """The chapter's chunking: each chunk on its own restarts every window at its edge."""
    prices = synthetic_prices(1, 400, seed=6)
    whole = compute_indicators(prices, "numba")
    naive = pd.concat(
        compute_indicators(prices.iloc[i : i + 100], "numba") for i in range(0, 400, 100)
    )
    for col in OUTPUT_COLUMNS:
        assert not np.array_equal(naive[col].to_numpy(), whole[col].to_numpy(), equal_nan=True)


def test_csv_in_chunks_equals_the_whole_file(tmp_path: Path) -> None:
    prices = synthetic_prices(4, 250, seed=8)
    path = tmp_path / "prices.csv"
    prices.to_csv(path, index=False)
    whole = pd.read_csv(path, parse_dates=["date"], dtype={"symbol": "category"})
    got = indicators_from_csv(path, chunksize=333)
    assert same(got, compute_indicators(whole, "numba"))
    chunk = next(iter(read_price_chunks(path, 10)))
    assert list(chunk.columns) == ["symbol", "date", "high", "low", "close"]
    assert isinstance(chunk["symbol"].dtype, pd.CategoricalDtype)


def _bar_arrays(prices: pd.DataFrame, day: pd.Timestamp) -> tuple[np.ndarray, ...]:
    """One session of every symbol, in the symbols' order: dates, close, high, low."""
    rows = prices[prices["date"] == day].sort_values("symbol")
    return (
        rows["date"].to_numpy(),
        rows["close"].to_numpy(),
        rows["high"].to_numpy(),
        rows["low"].to_numpy(),
    )


def test_update_arrays_bar_by_bar_equals_the_batch_kernel() -> None:
    """A live feed: every symbol registered once, then one bar each per call, as arrays."""
    prices = synthetic_prices(7, 90, seed=21)
    whole = compute_indicators(prices, "numba_parallel")
    stream = IndicatorStream()
    symbols = sorted(prices["symbol"].unique())
    codes = stream.register(symbols)
    assert list(stream.register(symbols[::-1])) == list(codes[::-1])  # codes are fixed
    out = np.empty((len(OUTPUT_COLUMNS), len(symbols)))
    for day in sorted(prices["date"].unique()):
        got = stream.update_arrays(codes, *_bar_arrays(prices, day), out=out)
        assert got is out
        want = whole.loc[prices.index[prices["date"] == day]]
        want = want.assign(symbol=prices["symbol"]).sort_values("symbol")[list(OUTPUT_COLUMNS)]
        np.testing.assert_array_equal(got.T, want.to_numpy())  # bit for bit
    assert all(stream.bars_seen(s) == 90 for s in symbols)


def test_update_arrays_refuses_bad_bars_and_keeps_its_state() -> None:
    prices = synthetic_prices(3, 40, seed=5)
    symbols = sorted(prices["symbol"].unique())
    stream = IndicatorStream()
    codes = stream.register(symbols)
    days = sorted(prices["date"].unique())
    for day in days[:30]:
        stream.update_arrays(codes, *_bar_arrays(prices, day))
    dates, close, high, low = _bar_arrays(prices, days[30])
    with pytest.raises(ValueError, match="date order"):
        stream.update_arrays(codes, *_bar_arrays(prices, days[29]))
    nan_close = close.copy()
    nan_close[2] = np.nan
    with pytest.raises(ValueError, match="row 2"):
        stream.update_arrays(codes, dates, nan_close, high, low)
    with pytest.raises(ValueError, match="register"):
        stream.update_arrays(codes + 10, dates, close, high, low)
    with pytest.raises(ValueError, match="one length"):
        stream.update_arrays(codes, dates[:2], close, high, low)
    assert all(stream.bars_seen(s) == 30 for s in symbols)
    for day in days[30:]:
        last = stream.update_arrays(codes, *_bar_arrays(prices, day))
    whole = compute_indicators(prices, "numba")
    want = whole.loc[prices.index[prices["date"] == days[-1]]]
    want = want.assign(symbol=prices["symbol"]).sort_values("symbol")[list(OUTPUT_COLUMNS)]
    np.testing.assert_array_equal(last.T, want.to_numpy())
