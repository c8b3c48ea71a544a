"""Every backend equals TA-Lib, called directly per symbol, on synthetic, real and edge data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import assert_matches_talib, make_prices, talib_reference

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.indicators.panel import panel_from_frame
from nepse_perf.pipeline import available_backends

# gpu runs here only with a CUDA GPU; tests/test_gpu.py covers it in the CUDA simulator.
ALL = sorted(available_backends())


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return synthetic_prices(12, 700, seed=7)


@pytest.mark.parametrize("backend", ALL)
def test_synthetic_panel(backend: str, synthetic: pd.DataFrame) -> None:
    assert_matches_talib(compute_indicators(synthetic, backend), talib_reference(synthetic))


@pytest.mark.parametrize("backend", ALL)
def test_real_sample(backend: str, sample_prices: pd.DataFrame) -> None:
    assert_matches_talib(compute_indicators(sample_prices, backend), talib_reference(sample_prices))


@pytest.mark.parametrize("backend", ALL)
def test_real_index_history(backend: str, capstone_index: pd.DataFrame) -> None:
    got = compute_indicators(capstone_index, backend)
    assert_matches_talib(got, talib_reference(capstone_index))


@pytest.mark.parametrize("backend", ALL)
def test_every_length_around_the_windows(backend: str) -> None:
    """Series of 1..40 bars: shorter than, exactly, and just past every lookback."""
    rng = np.random.default_rng(1)
    closes = {
        f"L{n:02d}": np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n))), 1)
        for n in range(1, 41)
    }
    prices = make_prices(closes)
    assert_matches_talib(compute_indicators(prices, backend), talib_reference(prices))


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("level", [1.0, 123.4, 2345.6, 46612.3])
def test_constant_prices(backend: str, level: float) -> None:
    """No movement: RSI 0, ATR 0 and zero band width, as TA-Lib defines them."""
    prices = make_prices({"FLAT": np.full(80, level)}, spread=0.0)
    got = compute_indicators(prices, backend)
    assert_matches_talib(got, talib_reference(prices))
    assert (got["rsi"].dropna() == 0.0).all()
    assert (got["bb_upper"].dropna() == got["bb_middle"].dropna()).all()


@pytest.mark.parametrize("backend", ALL)
def test_single_symbol_and_flat_then_moving(backend: str) -> None:
    c = np.concatenate([np.full(30, 250.0), 250 + np.cumsum(np.tile([1.0, -0.5, 0.3], 30))])
    prices = make_prices({"ONE": c})
    assert_matches_talib(compute_indicators(prices, backend), talib_reference(prices))


@pytest.mark.parametrize("backend", ALL)
def test_leading_nans_are_skipped_like_talib(backend: str) -> None:
    rng = np.random.default_rng(2)
    c = np.round(300 * np.exp(np.cumsum(rng.normal(0, 0.02, 120))), 1)
    c[:7] = np.nan
    prices = make_prices({"LATE": c, "FULL": c[7:] * 1.5, "ALLNA": np.full(5, np.nan)})
    assert_matches_talib(compute_indicators(prices, backend), talib_reference(prices))


@pytest.mark.parametrize("backend", ALL)
def test_custom_parameters(backend: str, synthetic: pd.DataFrame) -> None:
    params = dict(
        sma_period=5,
        ema_period=9,
        rsi_period=3,
        macd_fast=5,
        macd_slow=35,
        macd_signal=4,
        bb_period=10,
        bb_nbdev=1.5,
        atr_period=2,
    )
    assert_matches_talib(
        compute_indicators(synthetic, backend, **params), talib_reference(synthetic, **params)
    )


@pytest.mark.parametrize("backend", ALL)
def test_unsorted_input_keeps_its_index(backend: str, synthetic: pd.DataFrame) -> None:
    """A shuffled frame with a non-default index gets each row's own values back."""
    shuffled = synthetic.sample(frac=1.0, random_state=3)
    shuffled.index = shuffled.index * 10 + 5
    got = compute_indicators(shuffled, backend)
    assert_matches_talib(got, talib_reference(shuffled))


def test_all_backends_agree_bit_for_bit_where_they_share_arithmetic(
    sample_prices: pd.DataFrame,
) -> None:
    """python, numba and numba_parallel run the same operations in the same order."""
    python = compute_indicators(sample_prices, "python")
    for backend in ("numba", "numba_parallel"):
        pd.testing.assert_frame_equal(compute_indicators(sample_prices, backend), python)


class TestBadInput:
    def test_unknown_backend(self, synthetic: pd.DataFrame) -> None:
        with pytest.raises(ValueError, match=r"unknown backend 'cuda'.*numba_parallel"):
            compute_indicators(synthetic, "cuda")

    def test_missing_column(self, synthetic: pd.DataFrame) -> None:
        with pytest.raises(ValueError, match=r"missing required column.*'high'"):
            compute_indicators(synthetic.drop(columns="high"))

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"sma_period": 1}, r"sma_period must be >= 2"),
            ({"rsi_period": 0}, r"rsi_period must be >= 2"),
            ({"atr_period": 14.5}, r"atr_period must be an integer"),
            ({"macd_fast": 26, "macd_slow": 12}, r"macd_fast must be < macd_slow"),
            ({"macd_fast": 12, "macd_slow": 12}, r"macd_fast must be < macd_slow"),
            ({"bb_nbdev": -1.0}, r"bb_nbdev must be finite and > 0"),
            ({"window": 20}, r"unknown indicator parameter\(s\) \['window'\]"),
        ],
    )
    def test_bad_parameters(self, synthetic: pd.DataFrame, params: dict, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            compute_indicators(synthetic, **params)

    def test_wrong_dtype(self, synthetic: pd.DataFrame) -> None:
        bad = synthetic.assign(close=synthetic["close"].astype(str))
        with pytest.raises(ValueError, match=r"column 'close' must be numeric"):
            compute_indicators(bad)

    def test_nan_inside_a_series(self, synthetic: pd.DataFrame) -> None:
        bad = synthetic.copy()
        bad.loc[100, "close"] = np.nan
        sym = bad.loc[100, "symbol"]
        with pytest.raises(ValueError, match=rf"symbol '{sym}' has a NaN close/high/low"):
            compute_indicators(bad)

    def test_duplicate_date(self, synthetic: pd.DataFrame) -> None:
        bad = pd.concat([synthetic, synthetic.iloc[[50]]], ignore_index=True)
        with pytest.raises(ValueError, match=r"has the date .* twice"):
            compute_indicators(bad)

    @pytest.mark.parametrize("kind", ["category", "object"])
    def test_missing_symbol(self, synthetic: pd.DataFrame, kind: str) -> None:
        bad = synthetic.astype({"symbol": object})
        bad.loc[70, "symbol"] = None
        with pytest.raises(ValueError, match=r"missing symbol at row 70"):
            compute_indicators(bad.astype({"symbol": kind}))

    def test_missing_date(self, synthetic: pd.DataFrame) -> None:
        bad = synthetic.copy()
        bad.loc[33, "date"] = pd.NaT
        with pytest.raises(ValueError, match=r"missing date at row 33"):
            compute_indicators(bad)

    def test_duplicate_date_in_a_sorted_frame_names_its_day(self, synthetic: pd.DataFrame) -> None:
        """A repeated date inside an otherwise sorted frame (found without sorting), with
        dates stored in microseconds: the message names the symbol and the right day."""
        bad = synthetic.copy()
        bad.loc[41, "date"] = bad.loc[40, "date"]
        bad["date"] = bad["date"].astype("datetime64[us]")
        sym, day = bad.loc[41, "symbol"], bad.loc[41, "date"].date()
        with pytest.raises(ValueError, match=rf"symbol '{sym}' has the date {day} twice"):
            compute_indicators(bad)

    def test_time_zone_aware_dates(self, synthetic: pd.DataFrame) -> None:
        """Dates with a time zone give the same results; a repeated one is named by its day."""
        aware = synthetic.assign(date=synthetic["date"].dt.tz_localize("Asia/Kathmandu"))
        pd.testing.assert_frame_equal(compute_indicators(aware), compute_indicators(synthetic))
        aware.loc[41, "date"] = aware.loc[40, "date"]
        day = aware.loc[41, "date"].date()
        with pytest.raises(ValueError, match=rf"has the date {day} twice"):
            compute_indicators(aware)

    def test_nan_in_a_shuffled_frame_names_the_frame_row(self, synthetic: pd.DataFrame) -> None:
        bad = synthetic.copy()
        bad.loc[100, "close"] = np.nan
        shuffled = bad.sample(frac=1.0, random_state=3)
        with pytest.raises(ValueError, match=r"\(row 100\) after its first complete row"):
            compute_indicators(shuffled)

    def test_categories_in_any_order(self, synthetic: pd.DataFrame) -> None:
        """The panel follows a categorical's own category order; results and symbol names
        match the sorted frame's, also when the categories object changes between calls."""
        expected = compute_indicators(synthetic)
        names = sorted(synthetic["symbol"].astype(str).unique())
        for categories in (names[::-1], names[1:] + names[:1]):
            frame = synthetic.assign(
                symbol=synthetic["symbol"].astype(str).astype(pd.CategoricalDtype(categories))
            )
            assert panel_from_frame(frame).symbols == tuple(
                c for c in categories if c in set(frame["symbol"].astype(str))
            )
            pd.testing.assert_frame_equal(compute_indicators(frame), expected)

    def test_not_a_frame(self) -> None:
        with pytest.raises(ValueError, match=r"must be a pandas DataFrame"):
            compute_indicators(np.zeros(5))  # type: ignore[arg-type]


def test_output_is_one_float64_block(synthetic: pd.DataFrame) -> None:
    got = compute_indicators(synthetic)
    assert got.index.equals(synthetic.index)
    assert got._mgr.nblocks == 1  # one contiguous float64 block, no per-column copies
