"""The SMA kept in DuckDB (the chapter's materialised view) against TA-Lib."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import talib_reference

from nepse_perf import synthetic_prices
from nepse_perf.lessons.duckdb_view import (
    load_prices_table,
    materialise_sma,
    refresh_sma,
    sma_from_view,
    sma_sql,
)
from nepse_perf.lessons.workbook import agrees


@pytest.fixture(scope="module")
def sample_view(sample_prices: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    load_prices_table(con, sample_prices)
    materialise_sma(con)
    materialise_sma(con, view="chapter", masked=False)
    return con


def test_masked_view_equals_talib(sample_view, sample_prices: pd.DataFrame) -> None:
    ref = talib_reference(sample_prices)["sma"].to_numpy()
    got = sma_from_view(sample_view, sample_prices)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert agrees(got, ref)


def test_chapter_view_averages_partial_windows(sample_view, sample_prices: pd.DataFrame) -> None:
    ref = talib_reference(sample_prices)["sma"].to_numpy()
    raw = sma_from_view(sample_view, sample_prices, "chapter")
    warm = np.isnan(ref)
    lengths = sample_prices.groupby("symbol", observed=True).size()
    assert warm.sum() == np.minimum(lengths, 19).sum()  # 19 rows per symbol (fewer if short)
    assert not np.isnan(raw).any()
    assert agrees(raw[~warm], ref[~warm])
    # Where TA-Lib is NaN, the chapter's view holds the mean of the rows so far.
    expanding = sample_prices.groupby("symbol", observed=True)["close"].transform(
        lambda s: s.expanding().mean()
    )
    assert agrees(raw[warm], expanding.to_numpy()[warm])


def test_other_window_and_sql_text() -> None:
    prices = synthetic_prices(3, 60, seed=2)
    con = duckdb.connect()
    load_prices_table(con, prices)
    materialise_sma(con, n=7)
    got = sma_from_view(con, prices)
    ref = talib_reference(prices, sma_period=7)["sma"].to_numpy()
    assert agrees(got, ref)
    assert "ROWS BETWEEN 6 PRECEDING AND CURRENT ROW" in sma_sql(7)
    assert "COUNT(*) OVER w = 7" in sma_sql(7) and "COUNT" not in sma_sql(7, masked=False)


def test_incremental_refresh_equals_a_full_one(sample_prices: pd.DataFrame) -> None:
    new = sample_prices["date"] > "2026-06-01"
    con = duckdb.connect()
    load_prices_table(con, sample_prices[~new])
    materialise_sma(con)
    assert refresh_sma(con, sample_prices[new]) == int(new.sum())
    got = sma_from_view(con, sample_prices)
    ref = talib_reference(sample_prices)["sma"].to_numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert agrees(got, ref)
    with pytest.raises(ValueError, match="not after"):
        refresh_sma(con, sample_prices[new])  # the same rows again: refused, nothing changed
    assert np.array_equal(sma_from_view(con, sample_prices), got, equal_nan=True)


def test_refresh_with_a_new_symbol_and_short_history() -> None:
    prices = synthetic_prices(3, 50, seed=5)
    newcomer = prices["symbol"] == prices["symbol"].cat.categories[0]
    late = prices["date"] > prices["date"].iloc[45]
    con = duckdb.connect()
    load_prices_table(con, prices[~newcomer & ~late])
    materialise_sma(con, n=10)
    refresh_sma(con, prices[newcomer & ~late], n=10)  # a newly listed company
    refresh_sma(con, prices[late], n=10)
    assert agrees(sma_from_view(con, prices), talib_reference(prices, sma_period=10)["sma"])


def test_bad_input() -> None:
    prices = synthetic_prices(1, 30, seed=1)
    con = duckdb.connect()
    with pytest.raises(ValueError, match="identifier"):
        load_prices_table(con, prices, table="prices; DROP TABLE x")
    broken = prices.copy()
    broken.loc[broken.index[0], "close"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        load_prices_table(con, broken)
    with pytest.raises(ValueError, match="window"):
        sma_sql(1)
    load_prices_table(con, prices)
    materialise_sma(con)
    with pytest.raises(ValueError, match="not in the view"):
        sma_from_view(con, synthetic_prices(2, 30, seed=1))
