"""check_prices, corporate_action_gaps and adjust_for_gaps on the real sample and small frames."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nepse_perf.data import (
    DEFAULT_DATA_DIR,
    DEFAULT_INDEX_FILE,
    PRICE_COLUMNS,
    DataError,
    adjust_for_gaps,
    check_prices,
    corporate_action_gaps,
    load_prices,
)

pytestmark = pytest.mark.filterwarnings("error")


def frame(rows: list[tuple[str, str, float, float, float, float]]) -> pd.DataFrame:
    """A price frame from (symbol, date, open, high, low, close) rows (volume 100, turnover 0)."""
    df = pd.DataFrame(rows, columns=["symbol", "date", "open", "high", "low", "close"])
    df["symbol"] = pd.Categorical(df["symbol"])
    df["date"] = pd.to_datetime(df["date"]).astype("datetime64[ns]")
    df["volume"] = 100.0
    df["turnover"] = 0.0
    return df[list(PRICE_COLUMNS)]


# --------------------------------------------------------------------------- check_prices


def test_anomaly_report_shape(stocks: pd.DataFrame) -> None:
    report = check_prices(stocks)
    assert list(report.columns) == ["symbol", "date", "kind", "detail"]
    assert report.index.equals(pd.RangeIndex(len(report)))
    assert report["symbol"].dtype == stocks["symbol"].dtype
    assert report["date"].dtype == np.dtype("datetime64[ns]")
    keys = list(zip(report["symbol"].cat.codes, report["date"], report["kind"], strict=True))
    assert keys == sorted(keys)


def test_anomaly_counts_on_real_sample(stocks: pd.DataFrame, index: pd.DataFrame) -> None:
    # Observed on the bundled sample (real data, not cleaned): see SOURCE.md quirks 2, 3, 6.
    assert check_prices(stocks)["kind"].value_counts().to_dict() == {
        "band_breach": 180,
        "open_outside_range": 32,
        "close_outside_range": 17,
        "high_below_low": 9,
    }
    assert check_prices(index)["kind"].value_counts().to_dict() == {
        "open_outside_range": 17,
        "close_outside_range": 8,
        "band_breach": 5,
        "high_below_low": 2,
    }


def test_known_anomalies(stocks: pd.DataFrame) -> None:
    report = check_prices(stocks).set_index(["symbol", "date", "kind"])["detail"]
    assert report[("ADBL", pd.Timestamp("2016-09-26"), "band_breach")] == (
        "close 675.00 vs prev 995.00 (-32.16%)"
    )
    # The spurious ADBL close of 2011-11-29 shows up as a jump up and, next row, down.
    assert report[("ADBL", pd.Timestamp("2011-11-29"), "band_breach")].endswith("(+32.20%)")
    assert report[("BBC", pd.Timestamp("1998-03-03"), "high_below_low")] == (
        "high 950.00 < low 1950.00"
    )


def test_open_checked_only_from_march_2018(stocks: pd.DataFrame) -> None:
    old = stocks[stocks["date"] < "2018-03-01"]
    raw_violations = ((old["open"] < old["low"]) | (old["open"] > old["high"])).sum()
    assert raw_violations > 9_000  # open was the previous close (SOURCE.md quirk 2)
    report = check_prices(stocks)
    opens = report[report["kind"] == "open_outside_range"]
    assert (opens["date"] >= pd.Timestamp("2018-03-01")).all()


def test_each_kind_on_a_small_frame() -> None:
    prices = frame(
        [
            ("AAA", "2020-01-01", 100, 101, 99, 100),
            ("AAA", "2020-01-02", 100, 98, 99, 98.5),  # high < low
            ("AAA", "2020-01-05", 100, 101, 99, 102),  # close above high
            ("AAA", "2020-01-06", 97, 103, 99, 100),  # open below low
            ("AAA", "2020-01-07", 100, 112, 99, 111),  # +11 % close-to-close
            ("AAA", "2020-01-08", 111, 122.1, 110, 122.1),  # +10 % limit move, fine
            ("BBB", "2017-01-01", 50, 52, 49, 51),  # first row: no band check
            ("BBB", "2017-01-02", 10, 52, 49, 51),  # open before 2018: not checked
        ]
    )
    report = check_prices(prices)
    assert report[["kind", "detail"]].values.tolist() == [
        ["high_below_low", "high 98.00 < low 99.00"],
        ["close_outside_range", "close 102.00 outside [low 99.00, high 101.00]"],
        ["open_outside_range", "open 97.00 outside [low 99.00, high 103.00]"],
        ["band_breach", "close 111.00 vs prev 100.00 (+11.00%)"],
    ]
    assert report["symbol"].tolist() == ["AAA"] * 4


def test_unsorted_input_gives_the_same_report(stocks: pd.DataFrame) -> None:
    shuffled = stocks.sample(frac=1.0, random_state=7)
    pd.testing.assert_frame_equal(check_prices(shuffled), check_prices(stocks))


def test_clean_frame_has_no_anomalies() -> None:
    prices = frame(
        [("AAA", "2020-01-01", 100, 101, 99, 100), ("AAA", "2020-01-02", 100, 109, 99, 109)]
    )
    report = check_prices(prices)
    assert report.empty
    assert list(report.columns) == ["symbol", "date", "kind", "detail"]


def test_strict_raises_naming_count_examples_and_file() -> None:
    with pytest.raises(
        DataError,
        match=r"ADBL\.csv.*: 238 price anomalies \(strict=True\): ADBL 2011-11-29 band_breach",
    ):
        load_prices(DEFAULT_DATA_DIR, strict=True)
    with pytest.raises(DataError, match=re.escape(f"{DEFAULT_INDEX_FILE}: 32 price anomalies")):
        load_prices(DEFAULT_INDEX_FILE, strict=True)


def test_strict_accepts_clean_file(tmp_path: Path) -> None:
    path = tmp_path / "OK.csv"
    path.write_text(
        "published_date,open,high,low,close,per_change,traded_quantity,traded_amount,status\n"
        "2020-01-01,100,101,99,100,,10,1000,A\n2020-01-02,100,105,99,104,4,10,1040,A\n"
    )
    assert len(load_prices(path, strict=True)) == 2


# --------------------------------------------------------------------------- gaps


def test_gaps_on_real_sample(stocks: pd.DataFrame) -> None:
    gaps = corporate_action_gaps(stocks)
    assert list(gaps.columns) == ["symbol", "date", "ratio"]
    assert gaps.index.equals(pd.RangeIndex(len(gaps)))
    assert gaps["ratio"].dtype == np.float64
    assert len(gaps) == 180
    assert (np.abs(gaps["ratio"] - 1) > 0.25).sum() == 45
    adbl = gaps[(gaps["symbol"] == "ADBL") & (gaps["date"] == "2016-09-26")]
    assert adbl["ratio"].tolist() == pytest.approx([675 / 995])
    bands = check_prices(stocks)
    breaches = bands[bands["kind"] == "band_breach"].reset_index(drop=True)
    pd.testing.assert_frame_equal(gaps[["symbol", "date"]], breaches[["symbol", "date"]])


def test_gap_threshold_tolerates_limit_moves() -> None:
    prices = frame(
        [
            ("AAA", "2020-01-01", 100, 100, 100, 100.0),
            ("AAA", "2020-01-02", 100, 110, 100, 110.0),  # +10.0 %
            ("AAA", "2020-01-03", 110, 122, 110, 121.5),  # +10.45 %
            ("AAA", "2020-01-04", 121, 135, 121, 134.4),  # +10.6 %
            ("AAA", "2020-01-05", 121, 135, 120, 120.9),  # -10.04 %
        ]
    )
    gaps = corporate_action_gaps(prices)
    assert gaps["date"].tolist() == [pd.Timestamp("2020-01-04")]
    assert len(corporate_action_gaps(prices, band=0.10, tol=0.0)) == 4
    with pytest.raises(ValueError, match="band"):
        corporate_action_gaps(prices, band=0)


def test_adjust_removes_gaps_and_keeps_last_rows(stocks: pd.DataFrame) -> None:
    adjusted = load_prices(DEFAULT_DATA_DIR, adjust=True)
    assert corporate_action_gaps(adjusted).empty
    assert adjusted.attrs == stocks.attrs
    assert tuple(adjusted.columns) == PRICE_COLUMNS
    assert (adjusted.dtypes == stocks.dtypes).all()
    last = stocks.groupby("symbol", observed=True).tail(1).index
    pd.testing.assert_frame_equal(adjusted.loc[last], stocks.loc[last])
    pd.testing.assert_series_equal(adjusted["turnover"], stocks["turnover"])
    # Value traded at the close is invariant: price * factor, volume / factor.
    np.testing.assert_allclose(
        adjusted["close"] * adjusted["volume"], stocks["close"] * stocks["volume"], rtol=1e-12
    )
    adbl = adjusted[adjusted["symbol"] == "ADBL"].set_index("date")["close"]
    at = adbl.index.get_loc(pd.Timestamp("2016-09-26"))
    raw = stocks[stocks["symbol"] == "ADBL"]["close"].to_numpy()
    assert (raw[at - 1], raw[at]) == (995.0, 675.0)
    assert adbl.iloc[at - 1] == pytest.approx(adbl.iloc[at], rel=1e-12)
    pd.testing.assert_frame_equal(adjust_for_gaps(stocks), adjusted)


def test_adjust_small_frame_and_row_order() -> None:
    prices = frame(
        [
            ("AAA", "2020-01-01", 200, 210, 190, 200.0),
            ("AAA", "2020-01-02", 100, 105, 95, 100.0),  # 1:1 bonus, ratio 0.5
            ("AAA", "2020-01-03", 100, 105, 95, 102.0),
            ("AAA", "2020-01-05", 51, 52, 50, 51.0),  # another, ratio 0.5
            ("BBB", "2020-01-01", 10, 10, 10, 10.0),
        ]
    )
    adjusted = adjust_for_gaps(prices)
    assert adjusted["close"].tolist() == [50.0, 50.0, 51.0, 51.0, 10.0]
    assert adjusted["volume"].tolist() == [400.0, 200.0, 200.0, 100.0, 100.0]
    reversed_in = prices.iloc[::-1]
    reversed_out = adjust_for_gaps(reversed_in)
    assert reversed_out.index.tolist() == reversed_in.index.tolist()
    pd.testing.assert_frame_equal(reversed_out.sort_index(), adjusted)
    gaps = pd.DataFrame({"symbol": ["ZZZ"], "date": [pd.Timestamp("2020-01-02")], "ratio": [0.5]})
    with pytest.raises(ValueError, match="ZZZ"):
        adjust_for_gaps(prices, gaps)
    no_gaps = corporate_action_gaps(prices.iloc[:1])
    pd.testing.assert_frame_equal(adjust_for_gaps(prices, no_gaps), prices)
