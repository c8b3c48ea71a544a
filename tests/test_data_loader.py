"""load_prices on the bundled NEPSE sample and on small hand-written bad files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nepse_perf.data import (
    DEFAULT_DATA_DIR,
    DEFAULT_INDEX_FILE,
    MARKET_DIR,
    PRICE_COLUMNS,
    SAMPLE_DIR,
    DataError,
    check_prices,
    load_prices,
    market_path,
    sample_path,
)
from nepse_perf.data import paths as data_paths

pytestmark = pytest.mark.filterwarnings("error")

HEADER = "published_date,open,high,low,close,per_change,traded_quantity,traded_amount,status"
CAPSTONE_HEADER = "S.N,Date,Open,High,Low,Close,Absolute,Percentage,Volume,Trunover"
GOOD_ROWS = [
    "2020-01-01,100.0,110.0,95.0,105.0,,1000.0,105000.0,A",
    "2020-01-02,105.0,108.0,101.0,107.0,1.9,2000.0,214000.0,A",
    "2020-01-05,107,109,104.5,106,-0.93,1500,159000,A",
]


def write(tmp_path: Path, name: str, lines: list[str] | bytes, *, header: str = HEADER) -> Path:
    """Write a CSV (header + lines, LF endings, final newline) or raw bytes into tmp_path."""
    path = tmp_path / name
    if isinstance(lines, bytes):
        path.write_bytes(lines)
    else:
        path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def bad(tmp_path: Path, row: str, *, at: int = 1, name: str = "bad.csv") -> Path:
    """GOOD_ROWS with row ``at`` (0-based) replaced by ``row``; that row is on file line at+2."""
    rows = list(GOOD_ROWS)
    rows[at] = row
    return write(tmp_path, name, rows)


def data_lines(path: Path) -> tuple[int, int]:
    """(non-header lines, blank lines) of a text file with a final newline."""
    lines = path.read_text(encoding="utf-8").split("\n")[1:-1]
    return len(lines), sum(1 for line in lines if not line.strip())


# --------------------------------------------------------------------------- real sample


def test_sample_path_is_the_stock_directory() -> None:
    assert sample_path() == DEFAULT_DATA_DIR
    assert DEFAULT_DATA_DIR.is_dir()
    assert DEFAULT_INDEX_FILE.is_file()


def test_sample_path_missing_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(data_paths, "DEFAULT_DATA_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data_paths.sample_path()


@pytest.mark.parametrize("which", ["stocks", "index"])
def test_schema(which: str, request: pytest.FixtureRequest) -> None:
    prices = request.getfixturevalue(which)
    assert tuple(prices.columns) == PRICE_COLUMNS
    assert isinstance(prices["symbol"].dtype, pd.CategoricalDtype)
    categories = list(prices["symbol"].cat.categories)
    assert categories == sorted(categories)
    assert prices["date"].dtype == np.dtype("datetime64[ns]")
    for col in PRICE_COLUMNS[2:]:
        assert prices[col].dtype == np.float64, col
    assert isinstance(prices.index, pd.RangeIndex)
    assert prices.index.equals(pd.RangeIndex(len(prices)))
    codes = prices["symbol"].cat.codes.to_numpy()
    dates = prices["date"].to_numpy()
    assert (np.diff(codes) >= 0).all()
    same = codes[1:] == codes[:-1]
    assert (dates[1:][same] > dates[:-1][same]).all()  # ascending, dates unique per symbol
    assert prices[["open", "high", "low", "close"]].notna().all().all()
    assert (prices[["open", "high", "low", "close"]] > 0).all().all()


def test_stock_directory_symbols_and_row_counts(stocks: pd.DataFrame) -> None:
    files = sorted(DEFAULT_DATA_DIR.glob("*.csv"))
    assert len(files) == 25  # 24 stocks + NEPSE_INDEX; LICENSE is ignored
    assert list(stocks["symbol"].cat.categories) == [f.stem for f in files]
    counts = stocks.groupby("symbol", observed=True).size()
    by_symbol = stocks.attrs["dropped_duplicates_by_symbol"]
    for f in files:
        lines, blank = data_lines(f)
        assert counts[f.stem] == lines - blank - by_symbol[f.stem], f.name
    assert stocks.attrs["dropped_duplicates"] == 0
    assert set(by_symbol) == {f.stem for f in files}
    assert len(stocks) == 66_677


def test_capstone_index(index: pd.DataFrame) -> None:
    lines, blank = data_lines(DEFAULT_INDEX_FILE)
    assert (lines, blank) == (5_174, 1)  # line 2 of the file is blank
    assert len(index) == 5_173
    assert list(index["symbol"].cat.categories) == ["nepse_index"]
    assert index["date"].iloc[0] == pd.Timestamp("1997-07-20")
    assert index["date"].iloc[-1] == pd.Timestamp("2019-12-08")
    assert index["date"].is_monotonic_increasing
    last = index.iloc[-1]
    assert (last["open"], last["high"], last["low"], last["close"]) == (
        1131.92,
        1135.37,
        1125.81,
        1135.37,
    )
    assert (last["volume"], last["turnover"]) == (987_739.0, 287_527_825.0)
    assert index["turnover"].isna().sum() == 4_328  # literal `nan`
    assert index["volume"].notna().all()
    assert index.attrs["dropped_duplicates"] == 0


def test_capstone_nbsp_percentage_rows_parse(index: pd.DataFrame) -> None:
    text = DEFAULT_INDEX_FILE.read_text(encoding="utf-8")
    nbsp_rows = [line.split(",") for line in text.split("\n") if "\u00a0" in line]
    assert len(nbsp_rows) == 97
    closes = index.set_index("date")["close"]
    for fields in nbsp_rows:
        assert closes[pd.Timestamp(fields[1])] == float(fields[5])


def test_nepse_index_volume_is_blank(stocks: pd.DataFrame) -> None:
    nepse = stocks[stocks["symbol"] == "NEPSE_INDEX"]
    assert len(nepse) == 30
    assert nepse["volume"].isna().all()
    assert nepse["turnover"].notna().all()
    assert stocks["volume"].isna().sum() == 30  # no stock row lacks a quantity


def test_mixed_number_formats(stocks: pd.DataFrame) -> None:
    nabil = stocks[stocks["symbol"] == "NABIL"]
    first, last = nabil.iloc[0], nabil.iloc[-1]
    assert first["date"] == pd.Timestamp("2011-05-15")
    assert tuple(first[["open", "high", "low", "close", "volume", "turnover"]]) == (
        1091.0,
        1155.0,
        1112.0,
        1155.0,
        38.0,
        43057.0,
    )
    assert last["date"] == pd.Timestamp("2026-08-21")
    assert tuple(last[["open", "high", "low", "close", "volume", "turnover"]]) == (
        550.0,
        552.0,
        544.2,
        545.0,
        38251.0,
        20904592.3,
    )


def test_zero_turnover_kept(stocks: pd.DataFrame) -> None:
    zero = stocks[stocks["turnover"] == 0.0]
    assert len(zero) == 2_128  # SOURCE.md quirk 5: not recorded before about March 2011
    assert zero["date"].max() < pd.Timestamp("2011-04-01")
    # Quantity is present; the one zero-quantity row of the sample is BPCL 2008-01-09.
    assert zero["volume"].notna().all()
    assert zero.loc[zero["volume"] == 0, "date"].tolist() == [pd.Timestamp("2008-01-09")]


def test_identical_rows_on_different_dates_are_kept(stocks: pd.DataFrame) -> None:
    adbl = stocks[stocks["symbol"] == "ADBL"].set_index("date")
    a, b = adbl.loc["2011-06-19"], adbl.loc["2011-06-20"]
    assert a.drop("symbol").equals(b.drop("symbol"))


def test_weekend_and_friday_sessions_kept(stocks: pd.DataFrame) -> None:
    weekdays = set(stocks["date"].dt.day_of_week)
    assert weekdays == {0, 1, 2, 3, 4, 5, 6}  # Saturday rows and Mon-Fri weeks exist


def test_single_file_and_mixed_directory(tmp_path: Path, stocks: pd.DataFrame) -> None:
    adbl = load_prices(str(DEFAULT_DATA_DIR / "ADBL.csv"))
    expected = stocks[stocks["symbol"] == "ADBL"].reset_index(drop=True)
    assert adbl["symbol"].cat.categories.tolist() == ["ADBL"]
    pd.testing.assert_frame_equal(
        adbl.astype({"symbol": str}), expected.astype({"symbol": str}), check_like=False
    )
    # Both formats side by side, plus files that are not CSV data.
    shutil.copy(DEFAULT_DATA_DIR / "ADBL.csv", tmp_path / "ADBL.csv")
    shutil.copy(DEFAULT_INDEX_FILE, tmp_path / "nepse_index.csv")
    (tmp_path / "LICENSE").write_text("MIT\n")
    (tmp_path / "notes.txt").write_text("not data\n")
    (tmp_path / ".hidden.csv").write_text("junk\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "NABIL.csv").write_text("ignored: not recursive\n")
    both = load_prices(tmp_path)
    assert both["symbol"].cat.categories.tolist() == ["ADBL", "nepse_index"]
    assert len(both) == len(adbl) + 5_173


def test_other_symbol_file(tmp_path: Path) -> None:
    rows = [
        "2024-03-10,412.0,420.0,405.0,418.0,,12000.0,4996000.0,A",
        "2024-03-11,418.0,419.0,401.0,402.5,-3.71,,0.0,A",  # blank quantity, zero amount
        "2026-04-10,400,405,398.1,404,0.37,83780,33699999.9,A",  # Friday, integer format
    ]
    prices = load_prices(write(tmp_path, "ZZQX.csv", rows))
    assert prices["symbol"].cat.categories.tolist() == ["ZZQX"]
    assert prices["close"].tolist() == [418.0, 402.5, 404.0]
    assert np.isnan(prices["volume"].iloc[1])
    assert prices["turnover"].iloc[1] == 0.0
    assert prices.attrs["dropped_duplicates"] == 0


def test_descending_file_is_sorted(tmp_path: Path) -> None:
    prices = load_prices(write(tmp_path, "DESC.csv", GOOD_ROWS[::-1]))
    assert prices["date"].is_monotonic_increasing
    assert prices["close"].tolist() == [105.0, 107.0, 106.0]


def test_crlf_and_bom_accepted(tmp_path: Path) -> None:
    text = "\ufeff" + "\r\n".join([HEADER, *GOOD_ROWS]) + "\r\n"
    path = tmp_path / "CRLF.csv"
    path.write_bytes(text.encode("utf-8"))
    assert load_prices(path)["close"].tolist() == [105.0, 107.0, 106.0]


# --------------------------------------------------------------------------- duplicates


def test_exact_duplicates_dropped_and_counted(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1], GOOD_ROWS[2], GOOD_ROWS[1]]
    write(tmp_path, "AAA.csv", rows)
    write(tmp_path, "BBB.csv", [GOOD_ROWS[0], GOOD_ROWS[0].replace(",,", ",0.0,")])
    write(tmp_path, "CCC.csv", GOOD_ROWS)
    prices = load_prices(tmp_path)
    assert prices.attrs["dropped_duplicates"] == 3
    assert prices.attrs["dropped_duplicates_by_symbol"] == {"AAA": 2, "BBB": 1, "CCC": 0}
    assert prices.groupby("symbol", observed=True).size().to_dict() == {
        "AAA": 3,
        "BBB": 1,
        "CCC": 3,
    }


def test_exact_duplicates_in_number_formats(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[2], "2020-01-05,107.0,109.0,104.5,106.0,-0.93,1500.0,159000.0,A"]
    prices = load_prices(write(tmp_path, "FMT.csv", rows))
    assert len(prices) == 1
    assert prices.attrs["dropped_duplicates"] == 1


def test_duplicate_date_with_different_values(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS, "2020-01-02,105.0,108.0,101.0,107.5,1.9,2000.0,214000.0,A"]
    path = write(tmp_path, "DUP.csv", rows)
    with pytest.raises(
        DataError,
        match=re.escape(f"{path}, line 5: date 2020-01-02 repeats line 3 with different values")
        + r".*close 107\.5 vs 107",
    ):
        load_prices(path)


# --------------------------------------------------------------------------- prices not published


def session_rows(n: int, *, seed: int = 3) -> list[str]:
    """``n`` plausible sessions (open, high, low, close moving a little), 2020-01-01 on."""
    rng = np.random.default_rng(seed)
    close = np.round(200 * np.exp(np.cumsum(rng.normal(0, 0.015, n))), 1)
    days = pd.bdate_range("2020-01-01", periods=n)
    return [
        f"{d:%Y-%m-%d},{c - 0.5:.1f},{c + 2:.1f},{c - 2:.1f},{c:.1f},,1000.0,{c * 1000:.1f},A"
        for d, c in zip(days, close, strict=True)
    ]


def with_cells(rows: list[str], at: int, **cells: str) -> list[str]:
    """``rows`` with row ``at``'s named price fields replaced (open, high, low, close)."""
    fields = rows[at].split(",")
    for name, value in cells.items():
        fields[["open", "high", "low", "close"].index(name) + 1] = value
    return [*rows[:at], ",".join(fields), *rows[at + 1 :]]


#: Each kind of zero row of the market (SOURCE.md section 3), and the policy branch it takes.
ZERO_ROWS = {
    "open only": ({"open": "0.0"}, ["open"], "open set to NaN"),
    "high and low together": ({"high": "0.0", "low": "0.0"}, ["high", "low"], "dropped bar"),
    "a single low": ({"low": "0.0"}, ["low"], "dropped bar"),
    "a negative close": ({"close": "-3"}, ["close"], "dropped bar"),
    "a blank high": ({"high": ""}, ["high"], "dropped bar"),
    "open and close": ({"open": "0", "close": "0"}, ["open", "close"], "dropped bar"),
}


@pytest.mark.parametrize("kind", list(ZERO_ROWS))
def test_each_kind_of_zero_row(tmp_path: Path, kind: str) -> None:
    """One bad row between normal sessions: reported once, never an indicator input."""
    from conftest import assert_matches_talib, talib_reference

    from nepse_perf import compute_indicators
    from nepse_perf.indicators import IndicatorParams

    cells, columns, action = ZERO_ROWS[kind]
    good = session_rows(80)
    path = write(tmp_path, "ZERO.csv", with_cells(good, 50, **cells))
    prices = load_prices(path)
    records = prices.attrs["bad_prices"]
    assert [(r["column"], r["action"], r["line"], r["where"]) for r in records] == [
        (c, action, 52, "line 52") for c in columns
    ]
    assert {(r["symbol"], r["date"], r["file"]) for r in records} == {
        ("ZERO", good[50][:10], str(path))
    }
    (tmp_path / "ok").mkdir()
    reference = load_prices(write(tmp_path / "ok", "ZERO.csv", good))
    if action == "dropped bar":
        assert len(prices) == 79 and good[50][:10] not in set(prices["date"].astype(str))
        expected = reference.drop(index=50).reset_index(drop=True)
    else:
        assert len(prices) == 80 and np.isnan(prices["open"].iloc[50])
        expected = reference.assign(open=reference["open"].where(reference.index != 50))
    pd.testing.assert_frame_equal(prices, expected, check_exact=True)
    assert not (prices[["open", "high", "low", "close"]] <= 0).any().any()
    # The indicators on the bars kept are TA-Lib's on the same bars, and none stays NaN.
    got = compute_indicators(prices)
    assert_matches_talib(got, talib_reference(prices))
    assert np.isfinite(got["atr"].to_numpy()[IndicatorParams().lookbacks()["atr"] :]).all()
    report = check_prices(prices)
    listed = report[report["kind"] == "bad_price"]
    assert listed["detail"].str.endswith("(ZERO.csv, line 52)").all() and len(listed) == len(
        columns
    )
    with pytest.raises(DataError, match=re.escape(f"{path}, line 52: ")):
        load_prices(path, strict=True)


def test_zero_rows_of_every_kind_in_one_file(tmp_path: Path) -> None:
    rows = session_rows(40)
    rows = with_cells(rows, 0, open="0.0")  # a first row's open, as in the market
    rows = with_cells(rows, 10, high="0.0", low="0.0")
    rows = with_cells(rows, 20, low="0.0")
    rows = with_cells(rows, 30, open="", high="-1")
    prices = load_prices(write(tmp_path, "MIX.csv", rows))
    got = [(r["line"], r["column"], r["action"]) for r in prices.attrs["bad_prices"]]
    assert got == [
        (2, "open", "open set to NaN"),
        (12, "high", "dropped bar"),
        (12, "low", "dropped bar"),
        (22, "low", "dropped bar"),
        (32, "open", "dropped bar"),
        (32, "high", "dropped bar"),
    ]
    assert len(prices) == 37 and prices["open"].isna().sum() == 1
    (note,) = prices.attrs["load_notes"]
    assert "6 price cell(s) not published" in note and "3 bar(s) dropped, 1 open(s)" in note


def test_a_symbol_that_loses_every_bar(tmp_path: Path) -> None:
    write(tmp_path, "GONE.csv", ["2020-01-01,0.0,0.0,0.0,0.0,,10.0,0.0,A"])
    write(tmp_path, "KEPT.csv", GOOD_ROWS)
    prices = load_prices(tmp_path)
    assert prices["symbol"].cat.categories.tolist() == ["KEPT"] and len(prices) == 3
    assert {r["symbol"] for r in prices.attrs["bad_prices"]} == {"GONE"}
    report = check_prices(prices)
    assert report.loc[report["kind"] == "bad_price", "symbol"].astype(str).unique().tolist() == [
        "GONE"
    ]
    alone = load_prices(tmp_path / "GONE.csv")  # nothing left: an empty frame, still reported
    assert len(alone) == 0 and tuple(alone.columns) == PRICE_COLUMNS
    assert len(alone.attrs["bad_prices"]) == 4
    assert alone["date"].dtype == np.dtype("datetime64[ns]")


def test_market_and_sample_paths() -> None:
    assert SAMPLE_DIR == DEFAULT_DATA_DIR == sample_path()
    assert market_path() == MARKET_DIR == SAMPLE_DIR.parent / "market"
    assert (MARKET_DIR / "ADBL.csv").is_symlink()


def test_links_are_followed_and_a_broken_one_named(tmp_path: Path) -> None:
    (tmp_path / "ADBL.csv").symlink_to(DEFAULT_DATA_DIR / "ADBL.csv")
    (tmp_path / "LICENSE").symlink_to(DEFAULT_DATA_DIR / "LICENSE")
    pd.testing.assert_frame_equal(load_prices(tmp_path), load_prices(DEFAULT_DATA_DIR / "ADBL.csv"))
    (tmp_path / "GONE.csv").symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(
        DataError, match=re.escape(f"{tmp_path / 'GONE.csv'}: broken symbolic link")
    ):
        load_prices(tmp_path)


def test_files_read_together_or_alone_give_the_same_frame(tmp_path: Path) -> None:
    """A directory's files of one header are parsed as a batch; odd files on their own."""
    write(tmp_path, "AAA.csv", GOOD_ROWS)
    write(tmp_path, "BBB.csv", [*GOOD_ROWS[:2], ""])  # a blank last line
    (tmp_path / "CRLF.csv").write_bytes(("\r\n".join([HEADER, *GOOD_ROWS]) + "\r\n").encode())
    (tmp_path / "NOEOL.csv").write_text("\n".join([HEADER, *GOOD_ROWS]))  # no final newline
    quoted = [r.replace(",A", ',"A"') for r in GOOD_ROWS]
    write(tmp_path, "QUOTED.csv", quoted)  # quotes: read on its own
    write(tmp_path, "ZERO.csv", with_cells(GOOD_ROWS, 1, low="0"))
    together = load_prices(tmp_path)
    alone = pd.concat(
        [load_prices(p).astype({"symbol": str}) for p in sorted(tmp_path.glob("*.csv"))],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(together.astype({"symbol": str}), alone, check_exact=True)
    (record,) = together.attrs["bad_prices"]
    assert (record["file"], record["line"]) == (str(tmp_path / "ZERO.csv"), 3)
    # An error in any file of a batch still names that file and its own line.
    write(tmp_path, "CCC.csv", [GOOD_ROWS[0], "2020-01-02,1,2,1,x,,1,1,A"])
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'CCC.csv'}, line 3: non-numeric")):
        load_prices(tmp_path)


# --------------------------------------------------------------------------- bad input


#: Rows that are errors even by default; ``STRICT_ONLY`` are errors only with strict=True.
@pytest.mark.parametrize(
    ("row", "at", "message"),
    [
        (
            "2020-13-45,105.0,108.0,101.0,107.0,,2000.0,214000.0,A",
            1,
            "line 3: unparseable date '2020-13-45'",
        ),
        (
            "02/01/2020,105.0,108.0,101.0,107.0,,2000.0,214000.0,A",
            1,
            "line 3: unparseable date '02/01/2020'",
        ),
        (",105.0,108.0,101.0,107.0,,2000.0,214000.0,A", 2, "line 4: missing date"),
        (
            "2020-01-02,105.0,108.0,101.0,abc,,2000.0,214000.0,A",
            1,
            "line 3: non-numeric close 'abc'",
        ),
        (
            "2020-01-02,105.0,1O8.0,101.0,107.0,,2000.0,214000.0,A",
            0,
            "line 2: non-numeric high '1O8.0'",
        ),
        ("2020-01-02,105.0,inf,101.0,107.0,,2000.0,214000.0,A", 1, "line 3: non-finite high inf"),
        (
            "2020-01-02,105.0,108.0,101.0,107.0,,-5.0,214000.0,A",
            1,
            "line 3: negative traded_quantity -5.0",
        ),
        (
            "2020-01-02,105.0,108.0,101.0,107.0,,2000.0,-1,A",
            1,
            "line 3: negative traded_amount -1.0",
        ),
        (
            "2020-01-02,105.0,108.0,101.0,107.0,,lots,214000.0,A",
            1,
            "line 3: non-numeric traded_quantity 'lots'",
        ),
        (
            "2020-01-02,105.0,108.0,101.0,107.0,,2000.0,214000.0,A,extra",
            1,
            "line 3: malformed row: 10 fields",
        ),
        # A cut-off line is malformed, not a bar whose close was not published.
        ("2020-01-02,105.0,108.0,101.0", 1, "line 3: malformed row: 4 fields, the header has 9"),
    ],
)
def test_bad_row(tmp_path: Path, row: str, at: int, message: str) -> None:
    path = bad(tmp_path, row, at=at)
    with pytest.raises(DataError, match=re.escape(f"{path}, {message}")):
        load_prices(path)
    with pytest.raises(DataError, match=re.escape(f"{path}, {message}")):
        load_prices(path, strict=True)


STRICT_ONLY = [
    ("2020-01-02,,108.0,101.0,107.0,,2000.0,214000.0,A", 1, "line 3: missing open"),
    (
        "2020-01-02,105.0,108.0,0.0,107.0,,2000.0,214000.0,A",
        1,
        "line 3: non-positive price low 0.0",
    ),
    (
        "2020-01-02,105.0,108.0,101.0,-107,,2000.0,214000.0,A",
        2,
        "line 4: non-positive price close -107.0",
    ),
    ("2020-01-02,105.0,108.0,101.0,,,2000.0,214000.0,A", 1, "line 3: missing close"),
]


@pytest.mark.parametrize(("row", "at", "message"), STRICT_ONLY)
def test_unpublished_price_is_an_error_only_when_strict(
    tmp_path: Path, row: str, at: int, message: str
) -> None:
    path = bad(tmp_path, row, at=at)
    with pytest.raises(DataError, match=re.escape(f"{path}, {message}")):
        load_prices(path, strict=True)
    prices = load_prices(path)
    (record,) = prices.attrs["bad_prices"]
    assert (record["file"], record["line"]) == (str(path), at + 2)


def test_first_bad_line_reported_with_count(tmp_path: Path) -> None:
    rows = [
        GOOD_ROWS[0],
        "2020-01-02,0,1,1,1,,1,1,A",
        "2020-01-03,x,1,1,1,,1,1,A",
        "bad,1,1,1,1,,1,1,A",
    ]
    path = write(tmp_path, "MANY.csv", rows)
    with pytest.raises(
        DataError, match=re.escape(f"{path}, line 3: non-positive price open 0")
    ) as err:
        load_prices(path, strict=True)
    assert "2 more invalid rows" in str(err.value)
    with pytest.raises(DataError, match=re.escape(f"{path}, line 4: non-numeric open 'x'")) as err:
        load_prices(path)  # the open of line 3 is not published: not an error by default
    assert "1 more invalid row in this file" in str(err.value)


def test_capstone_line_numbers_count_the_blank_line(tmp_path: Path) -> None:
    lines = [
        "",
        "1,2019-12-08,1131.92,1135.37,1125.81,1135.37,3.45,0.31\u00a0\u00a0%,987739,287527825",
        "2,2019-12-45,1124.47,1134.93,1124.44,1131.92,7.45,0.66%,1095188,nan",
    ]
    path = write(tmp_path, "idx.csv", lines, header=CAPSTONE_HEADER)
    with pytest.raises(
        DataError, match=re.escape(f"{path}, line 4: unparseable date '2019-12-45'")
    ):
        load_prices(path)


def test_capstone_format_small(tmp_path: Path) -> None:
    lines = [
        "",
        "2,2019-12-08,1131.92,1135.37,1125.81,1135.37,3.45,0.31\u00a0\u00a0%,987739,287527825",
        "1,2019-12-05,1124.47,1134.93,1124.44,1131.92,7.45,-0.66%,0,nan",
    ]
    prices = load_prices(write(tmp_path, "my_index.csv", lines, header=CAPSTONE_HEADER))
    assert prices["symbol"].cat.categories.tolist() == ["my_index"]
    assert prices["close"].tolist() == [1131.92, 1135.37]
    assert prices["volume"].tolist() == [0.0, 987739.0]
    assert np.isnan(prices["turnover"].iloc[0])


def test_binary_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "bin.csv", (HEADER + "\n" + GOOD_ROWS[0] + "\n").encode() + b"\x00\x01\x02\xff"
    )
    with pytest.raises(DataError, match=re.escape(f"{path}, line 3: binary file")):
        load_prices(path)


def test_undecodable_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "latin.csv", (HEADER + "\n").encode() + b"2020-01-01,1\xe9,1,1,1,,1,1,A\n"
    )
    with pytest.raises(DataError, match=re.escape(f"{path}, line 2: not UTF-8 text")):
        load_prices(path)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "empty.csv", content)
    with pytest.raises(DataError, match=re.escape(f"{path}: empty file")):
        load_prices(path)


@pytest.mark.parametrize(
    "content", [HEADER.encode(), (HEADER + "\n").encode(), (HEADER + "\n\n\n").encode()]
)
def test_header_only(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "hdr.csv", content)
    with pytest.raises(DataError, match=re.escape(f"{path}: header only, no data rows")):
        load_prices(path)


def test_missing_column(tmp_path: Path) -> None:
    header = HEADER.replace(",close", "")
    rows = [",".join(r.split(",")[:4] + r.split(",")[5:]) for r in GOOD_ROWS]
    path = write(tmp_path, "nocl.csv", rows, header=header)
    with pytest.raises(
        DataError, match=re.escape(f"{path}, line 1: missing required column(s) 'close'")
    ):
        load_prices(path)


def test_missing_capstone_column(tmp_path: Path) -> None:
    path = write(
        tmp_path, "cap.csv", ["1,2019-12-08,1,1,1,1"], header="S.N,Date,Open,High,Low,Close"
    )
    with pytest.raises(
        DataError, match=r"line 1: missing required column\(s\) 'Volume', 'Trunover'"
    ):
        load_prices(path)


def test_unknown_format(tmp_path: Path) -> None:
    # Date,Open,High,Low,Close,Volume is the ohlcv format now (tests/test_data_formats.py).
    path = write(tmp_path, "ticks.csv", ["2020-01-01,1,10"], header="When,Price,Qty")
    with pytest.raises(DataError, match=re.escape(f"{path}, line 1: unknown format")) as err:
        load_prices(path)
    assert HEADER in str(err.value)
    assert CAPSTONE_HEADER in str(err.value)


def test_error_in_directory_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, "AAA.csv", GOOD_ROWS)
    path = bad(tmp_path, "2020-01-02,105.0,108.0,101.0,zz,,2000.0,214000.0,A", name="BBB.csv")
    with pytest.raises(DataError, match=re.escape(f"{path}, line 3: non-numeric close 'zz'")):
        load_prices(tmp_path)


def test_directory_without_csv(tmp_path: Path) -> None:
    (tmp_path / "LICENSE").write_text("MIT\n")
    with pytest.raises(DataError, match=r"no \.csv files"):
        load_prices(tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        load_prices(tmp_path / "nope.csv")


def test_data_error_is_caught_as_value_error_and_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("this is not a price file\n1,2\n")
    with pytest.raises(ValueError, match=r"bad\.csv") as info:  # callers may catch ValueError
        load_prices(bad)
    assert type(info.value) is DataError
