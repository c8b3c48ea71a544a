"""synthetic_prices: schema, determinism, NEPSE-like constraints, argument checks."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nepse_perf.data import PRICE_COLUMNS, check_prices, corporate_action_gaps, synthetic_prices

pytestmark = pytest.mark.filterwarnings("error")

TICKER = re.compile(r"[A-Z]{4,5}")


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return synthetic_prices(60, 1_500, seed=3)


def assert_schema(df: pd.DataFrame, n_symbols: int, n_days: int) -> None:
    assert tuple(df.columns) == PRICE_COLUMNS
    assert len(df) == n_symbols * n_days
    assert df.index.equals(pd.RangeIndex(n_symbols * n_days))
    assert isinstance(df["symbol"].dtype, pd.CategoricalDtype)
    symbols = list(df["symbol"].cat.categories)
    assert symbols == sorted(symbols)
    assert len(symbols) == n_symbols
    assert all(TICKER.fullmatch(s) for s in symbols)
    assert df["date"].dtype == np.dtype("datetime64[ns]")
    for col in PRICE_COLUMNS[2:]:
        assert df[col].dtype == np.float64, col
    codes = df["symbol"].cat.codes.to_numpy()
    assert (codes == np.repeat(np.arange(n_symbols), n_days)).all()
    dates = df["date"].to_numpy().reshape(n_symbols, n_days)
    assert (dates == dates[0]).all()  # every symbol trades every session
    assert (np.diff(dates[0]) > np.timedelta64(0)).all()


def test_schema_and_sort(prices: pd.DataFrame) -> None:
    assert_schema(prices, 60, 1_500)


def test_deterministic_per_seed() -> None:
    a = synthetic_prices(5, 200, seed=11)
    b = synthetic_prices(5, 200, seed=11)
    pd.testing.assert_frame_equal(a, b)
    c = synthetic_prices(5, 200, seed=12)
    assert not np.array_equal(a["close"].to_numpy(), c["close"].to_numpy())
    assert list(a["symbol"].cat.categories) == list(c["symbol"].cat.categories)


def test_tickers_nest_as_the_universe_grows() -> None:
    small = set(synthetic_prices(10, 1)["symbol"].cat.categories)
    large = set(synthetic_prices(500, 1)["symbol"].cat.categories)
    assert small < large
    assert len(large) == 500


def test_sunday_to_thursday_sessions(prices: pd.DataFrame) -> None:
    days = set(prices["date"].dt.day_of_week)
    assert days == {6, 0, 1, 2, 3}
    first = synthetic_prices(1, 3, start="2026-08-21")["date"].tolist()  # a Friday
    assert first == [pd.Timestamp(d) for d in ("2026-08-23", "2026-08-24", "2026-08-25")]
    assert synthetic_prices(1, 1)["date"].iloc[0] == pd.Timestamp("2015-01-01")  # a Thursday


def test_daily_moves_within_band(prices: pd.DataFrame) -> None:
    close = prices["close"].to_numpy().reshape(60, -1)
    prev, cur = close[:, :-1], close[:, 1:]
    half_tick = 0.05
    assert (cur <= 1.10 * prev + half_tick * 2.1 + 1e-9).all()
    assert (cur >= 0.90 * prev - half_tick * 1.9 - 1e-9).all()
    assert (np.abs(cur / prev - 1) <= 0.1045).all()
    assert (np.abs(cur / prev - 1) > 0.095).any()  # limit moves do happen
    assert corporate_action_gaps(prices).empty
    assert check_prices(prices).empty


def test_tick_and_ohlc_consistency(prices: pd.DataFrame) -> None:
    for col in ("open", "high", "low", "close"):
        x = prices[col].to_numpy()
        np.testing.assert_allclose(np.round(x * 10), x * 10, rtol=0, atol=1e-6)
        assert (x >= 0.1).all()
    o, h, lo, c = (prices[k] for k in ("open", "high", "low", "close"))
    assert (lo <= o).all() and (o <= h).all()
    assert (lo <= c).all() and (c <= h).all()


def test_levels_volumes_turnover(prices: pd.DataFrame) -> None:
    level = prices.groupby("symbol", observed=True)["close"].median()
    assert 100 < level.median() < 900
    assert (level > 20).all() and (level < 20_000).all()
    volume = prices["volume"].to_numpy()
    assert (volume > 0).all()
    assert (volume == np.round(volume)).all()
    ratio = prices["turnover"] / (prices["volume"] * prices["close"])
    assert ratio.between(0.9, 1.1).all()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_symbols": 0, "n_days": 5}, "n_symbols"),
        ({"n_symbols": -3, "n_days": 5}, "n_symbols"),
        ({"n_symbols": 2.5, "n_days": 5}, "n_symbols"),
        ({"n_symbols": "3", "n_days": 5}, "n_symbols"),
        ({"n_symbols": True, "n_days": 5}, "n_symbols"),
        ({"n_symbols": 3, "n_days": 0}, "n_days"),
        ({"n_symbols": 3, "n_days": None}, "n_days"),
    ],
)
def test_arguments_validated(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        synthetic_prices(**kwargs)  # type: ignore[arg-type]


def test_numpy_integer_arguments() -> None:
    assert len(synthetic_prices(np.int64(2), np.int32(3))) == 6


@settings(max_examples=30, deadline=None)
@given(
    n_symbols=st.integers(1, 12),
    n_days=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_shapes_property(n_symbols: int, n_days: int, seed: int) -> None:
    df = synthetic_prices(n_symbols, n_days, seed=seed)
    assert_schema(df, n_symbols, n_days)
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
