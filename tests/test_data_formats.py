"""load_prices on the formats users have: the long format (CSV, Parquet file and directory),
generic per-symbol OHLCV files, an explicit column mapping; and the CLI on each of them."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nepse_perf.cli import main
from nepse_perf.data import PRICE_COLUMNS, DataError, load_prices, synthetic_prices
from nepse_perf.data.formats import parse_column_mapping
from nepse_perf.engines import write_parquet_by_symbol
from nepse_perf.indicators import OUTPUT_COLUMNS
from nepse_perf.pipeline import compute_indicators

pytestmark = pytest.mark.filterwarnings("error")

LONG = ("symbol", "date", "open", "high", "low", "close", "volume", "turnover")
OHLCV = ("Date", "Open", "High", "Low", "Close", "Volume", "Turnover")

#: Good rows: date, open, high, low, close, volume, turnover.
GOOD = [
    ("2020-01-01", "100.0", "110.0", "95.0", "105.0", "1000.0", "105000.0"),
    ("2020-01-02", "105.0", "108.0", "101.0", "107.0", "2000.0", "214000.0"),
    ("2020-01-05", "107", "109", "104.5", "106", "1500", "159000"),
]

#: The four new containers x layouts the bad-input cases run on.
KINDS = ["long-csv", "ohlcv-csv", "long-parquet", "ohlcv-parquet"]


def load_error(path: Path, message: str, **options: object) -> DataError:
    """``load_prices(path, **options)`` raises a DataError whose message holds ``message``."""
    with pytest.raises(DataError, match=re.escape(message)) as err:
        load_prices(path, **options)
    return err.value


def header_of(kind: str) -> tuple[str, ...]:
    return LONG if kind.startswith("long") else OHLCV


def col(kind: str, out: str) -> str:
    """The source column name of output column ``out`` in ``kind``'s header."""
    return dict(zip(LONG[1:], header_of(kind)[-7:], strict=True))[out]


def typed_frame(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> pd.DataFrame:
    """Rows of text as a frame a user would write to Parquet: numbers and dates typed where
    every value parses, text otherwise (so a bad value stays visible as text)."""
    frame = pd.DataFrame([list(r) for r in rows], columns=list(header), dtype=object)
    out = {}
    for name in header:
        values = frame[name].where(frame[name] != "", None)
        if name.lower() == "symbol":
            out[name] = values.astype("str")
            continue
        try:
            if name.lower() == "date":
                out[name] = pd.to_datetime(values, format="%Y-%m-%d").astype("datetime64[ns]")
            else:
                out[name] = pd.to_numeric(values).astype(np.float64)
        except (ValueError, TypeError):
            out[name] = values.astype("str")
    return pd.DataFrame(out)


def write_kind(
    tmp_path: Path,
    kind: str,
    rows: list[tuple[str, ...]],
    *,
    name: str = "AAA",
    header: tuple[str, ...] | None = None,
) -> Path:
    """Write GOOD-style rows (date first) as ``kind``; long rows get symbol ``name``."""
    header = header or header_of(kind)
    full = [(name, *r) if kind.startswith("long") else r for r in rows]
    if kind.endswith("csv"):
        path = tmp_path / f"{name}.csv"
        text = "\n".join([",".join(header), *(",".join(r) for r in full)]) + "\n"
        path.write_text(text, encoding="utf-8")
    else:
        path = tmp_path / f"{name}.parquet"
        typed_frame(header, full).to_parquet(path, index=False)
    return path


def at(kind: str, i: int) -> str:
    """Where data row i (0-based) is reported: CSV file line, or Parquet data row."""
    return f"line {i + 2}" if kind.endswith("csv") else f"row {i + 1}"


def with_value(field: str, value: str, i: int) -> list[tuple[str, ...]]:
    rows = [list(r) for r in GOOD]
    rows[i][["date", *LONG[2:]].index(field)] = value
    return [tuple(r) for r in rows]


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return synthetic_prices(12, 260, seed=7)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("index", [False, True])
@pytest.mark.parametrize("which", ["sample", "synthetic"])
def test_round_trip_csv(tmp_path, which, index, sample_prices, synthetic) -> None:
    prices = sample_prices if which == "sample" else synthetic
    path = tmp_path / "prices.csv"
    prices.to_csv(path, index=index)  # index=True writes pandas' unnamed index column too
    back = load_prices(path)
    pd.testing.assert_frame_equal(back, prices, check_exact=True)
    assert back.attrs["formats"] == ["long"]
    assert back.attrs["columns_ignored"] == ([""] if index else [])


@pytest.mark.parametrize("which", ["sample", "synthetic"])
def test_round_trip_parquet_file(tmp_path, which, sample_prices, synthetic) -> None:
    prices = sample_prices if which == "sample" else synthetic
    prices.to_parquet(tmp_path / "prices.parquet")
    pd.testing.assert_frame_equal(load_prices(tmp_path / "prices.parquet"), prices)
    # Found by its magic bytes, whatever the name says.
    prices.to_parquet(tmp_path / "prices.dat", index=False)
    pd.testing.assert_frame_equal(load_prices(tmp_path / "prices.dat"), prices)


def test_round_trip_parquet_directory(tmp_path, sample_prices, synthetic) -> None:
    # What the Dask lessons write: files of whole symbols.
    files = write_parquet_by_symbol(sample_prices, tmp_path / "dask", symbols_per_file=4)
    assert len(files) == 7
    back = load_prices(tmp_path / "dask")
    pd.testing.assert_frame_equal(back, sample_prices, check_exact=True)
    # A symbol split across files (row chunks of an unsorted frame), plus a .pq file.
    shuffled = synthetic.sample(frac=1.0, random_state=1)
    directory = tmp_path / "chunks"
    directory.mkdir()
    for i, start in enumerate(range(0, len(shuffled), 1100)):
        part = shuffled.iloc[start : start + 1100]
        part.to_parquet(directory / f"part.{i}.{'pq' if i == 2 else 'parquet'}")
    (directory / "_common_metadata").write_bytes(b"PAR1 ignored")
    (directory / "_SUCCESS").write_text("")
    pd.testing.assert_frame_equal(load_prices(directory), synthetic, check_exact=True)


def test_round_trip_csv_directory_and_mixed(tmp_path, synthetic, sample_prices) -> None:
    symbols = list(synthetic["symbol"].cat.categories)
    first = synthetic[synthetic["symbol"].isin(symbols[:5])]
    second = synthetic[synthetic["symbol"].isin(symbols[5:])]
    first.to_csv(tmp_path / "first.csv", index=False)
    second.to_parquet(tmp_path / "second.parquet")
    pd.testing.assert_frame_equal(load_prices(tmp_path), synthetic, check_exact=True)
    # Beside a per-symbol source file: symbols from columns and from file stems together.
    nabil = sample_prices[sample_prices["symbol"] == "NABIL"]
    source = Path(__file__).parents[1] / "data" / "nepse" / "nepal-market-data" / "NABIL.csv"
    (tmp_path / "NABIL.csv").write_bytes(source.read_bytes())
    both = load_prices(tmp_path)
    assert both.attrs["formats"] == ["long", "nepal-market-data"]
    assert both.attrs["columns_used"]["symbol"] == ["<file stem>", "symbol"]
    assert len(both) == len(synthetic) + len(nabil)
    assert both["symbol"].cat.categories.tolist() == sorted([*symbols, "NABIL"])


def test_long_format_unsorted_with_duplicates(tmp_path) -> None:
    rows = [
        "symbol,date,open,high,low,close,volume,turnover",
        "BBB,2020-01-02,10,11,9,10.5,5,52.5",
        "AAA,2020-01-02,105,108,101,107,2000,214000",
        "AAA,2020-01-01,100,110,95,105,1000,105000",
        "BBB,2020-01-02,10,11,9,10.5,5,52.5",  # exact repeat: dropped, counted
        "BBB,2020-01-01,10,10,10,10,,",  # no volume, no turnover
    ]
    path = tmp_path / "long.csv"
    path.write_text("\n".join(rows) + "\n")
    prices = load_prices(path)
    assert prices["symbol"].tolist() == ["AAA", "AAA", "BBB", "BBB"]
    assert prices["date"].dt.day.tolist() == [1, 2, 1, 2]
    assert prices["close"].tolist() == [105.0, 107.0, 10.0, 10.5]
    assert np.isnan(prices.loc[2, "volume"]) and np.isnan(prices.loc[2, "turnover"])
    assert prices.attrs["dropped_duplicates_by_symbol"] == {"AAA": 0, "BBB": 1}


def test_long_format_symbols_are_text_as_written(tmp_path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        "date,SYMBOL,close,open,high,low,volume\n"  # any order and case; no turnover
        "2020-01-01,NA,10,10,10,10,1\n2020-01-01,0012,20,20,20,20,1\n"
    )
    prices = load_prices(path)
    assert prices["symbol"].cat.categories.tolist() == ["0012", "NA"]
    assert prices.attrs["columns_used"]["turnover"] == ["<absent>"]
    assert prices["turnover"].isna().all()


# --------------------------------------------------------------------------- generic OHLCV


def ohlcv_directory(directory: Path, sample: pd.DataFrame, header: list[str]) -> None:
    """One generic OHLCV CSV per symbol of ``sample`` (a learner's own export)."""
    directory.mkdir()
    for symbol, group in sample.groupby("symbol", observed=True):
        frame = pd.DataFrame(
            {
                header[0]: group["date"].dt.strftime("%Y-%m-%d"),
                header[1]: group["open"],
                header[2]: group["high"],
                header[3]: group["low"],
                header[4]: group["close"],
                "Adj Close": group["close"] * 0.5,  # never taken as the close silently
                header[5]: group["volume"],
            }
        )
        frame.to_csv(directory / f"{symbol}.csv", index=False)


def test_ohlcv_directory_from_sample_gives_same_indicators(tmp_path, sample_prices) -> None:
    ohlcv_directory(
        tmp_path / "mine", sample_prices, ["Date", "Open", "High", "Low", "Close", "Volume"]
    )
    mine = load_prices(tmp_path / "mine")
    assert mine.attrs["formats"] == ["ohlcv"]
    assert mine.attrs["columns_used"]["close"] == ["Close"]
    assert mine.attrs["columns_ignored"] == ["Adj Close"]
    (note,) = mine.attrs["load_notes"]
    assert "close is 'Close'; 'Adj Close' is not used" in note and "22 more file(s)" in note
    pd.testing.assert_frame_equal(
        mine.drop(columns="turnover"), sample_prices.drop(columns="turnover"), check_exact=True
    )
    assert mine["turnover"].isna().all()  # no turnover column: NaN, reported as absent
    got = compute_indicators(mine, "talib")
    pd.testing.assert_frame_equal(got, compute_indicators(sample_prices, "talib"), check_exact=True)
    np.testing.assert_allclose(compute_indicators(mine, "numpy"), got, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "header",
    [
        "date,open,high,low,close,volume",
        "DATE,OPEN,HIGH,LOW,CLOSE,VOLUME",
        "timestamp,Open,High,Low,Close,Volume",
        "Datetime,Close,Low,High,Open,Volume",
        '"Date","Open","High","Low","Close","Volume"',
        " Date , Open , High , Low , Close , Volume ",
    ],
)
def test_ohlcv_header_spellings(tmp_path, header) -> None:
    names = [h.strip().strip('"').lower() for h in header.split(",")]
    names = ["date" if n in ("timestamp", "datetime") else n for n in names]
    values = {"date": "2024-03-10", "open": "412", "high": "420", "low": "405", "close": "418"}
    values["volume"] = "12000"
    row = ",".join(values[n] for n in names)
    path = tmp_path / "ZZQX.csv"
    path.write_text(f"{header}\n{row}\n")
    prices = load_prices(path)
    assert prices["symbol"].tolist() == ["ZZQX"]
    assert prices.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [
        412.0,
        420.0,
        405.0,
        418.0,
        12000.0,
    ]


def test_ohlcv_without_volume_and_as_parquet(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-03-11", "2024-03-10"]).tz_localize("Asia/Kathmandu"),
            "open": [1.0, 2.0],
            "high": [3.0, 4.0],
            "low": [0.5, 1.0],
            "close": [2.0, 3.0],
        }
    )
    frame.to_parquet(tmp_path / "IDX.parquet")
    prices = load_prices(tmp_path / "IDX.parquet")
    assert prices["date"].tolist() == [pd.Timestamp("2024-03-10"), pd.Timestamp("2024-03-11")]
    assert prices["close"].tolist() == [3.0, 2.0]
    assert prices["volume"].isna().all()
    assert prices.attrs["columns_used"]["volume"] == ["<absent>"]
    # A Parquet date32 column (datetime.date values) and text dates in Parquet read too.
    table = pa.table(
        {
            "Date": pa.array([date(2024, 3, 10), date(2024, 3, 11)], pa.date32()),
            "Open": [1.0, 2.0],
            "High": [3.0, 4.0],
            "Low": [0.5, 1.0],
            "Close": [3.0, 2.0],
        }
    )
    pq.write_table(table, tmp_path / "D32.parquet")
    pq.write_table(
        table.set_column(0, "Date", pa.array(["2024-03-10", "2024-03-11"])),
        tmp_path / "TXT.parquet",
    )
    for name in ("D32", "TXT"):
        got = load_prices(tmp_path / f"{name}.parquet")
        assert got["date"].tolist() == prices["date"].tolist(), name
        assert got["close"].tolist() == prices["close"].tolist(), name


def test_adjusted_close_alone_is_refused(tmp_path) -> None:
    path = tmp_path / "ADJ.csv"
    path.write_text("Date,Open,High,Low,Adj Close,Volume\n2024-01-02,10,11,9,9.5,100\n")
    err = load_error(path, f"{path}, line 1: missing required column(s) 'close'")
    assert "columns={'close': 'Adj Close'}" in str(err)
    prices = load_prices(path, columns={"close": "Adj Close"})
    assert prices["close"].tolist() == [9.5]
    assert prices.attrs["columns_used"]["close"] == ["Adj Close"]
    assert prices.attrs["load_notes"] == []


@pytest.mark.parametrize(
    ("header", "names"),
    [
        ("Date,timestamp,Open,High,Low,Close", "'Date' and 'timestamp'"),
        ("Date,Open,High,Low,Close,close", "'Close' and 'close'"),
        ("symbol,Symbol,date,open,high,low,close", "'symbol' and 'Symbol'"),
    ],
)
def test_ambiguous_header(tmp_path, header, names) -> None:
    path = tmp_path / "amb.csv"
    path.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    err = load_error(path, f"{path}, line 1: ambiguous header")
    assert names in str(err) and "columns={" in str(err)


@pytest.mark.parametrize("container", ["csv", "parquet"])
def test_unknown_format_lists_formats_and_mapping(tmp_path, container) -> None:
    frame = pd.DataFrame({"When": ["2020-01-01"], "LTP": [1.0]})
    path = tmp_path / f"x.{container}"
    if container == "csv":
        frame.to_csv(path, index=False)
        prefix = f"{path}, line 1: unknown format: header 'When,LTP'"
    else:
        frame.to_parquet(path, index=False)
        prefix = f"{path}: unknown format: columns ['When', 'LTP']"
    err = load_error(path, prefix)
    for known in ("nepal-market-data:", "capstone2020:", "long:", "ohlcv:", "--columns"):
        assert known in str(err)


# --------------------------------------------------------------------------- mapping


def test_explicit_mapping_and_date_format(tmp_path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Day,Scrip,Opening,Max,Min,LTP,Qty,Remarks\n"
        "15/01/2024,NABIL,500,510,495,505,100,x\n"
        "14/01/2024,NABIL,490,502,488,500,200,y\n"
        "15/01/2024,ADBL,300,303,298,301,50,\n"
    )
    columns = {"date": "Day", "symbol": "Scrip", "open": "Opening", "high": "Max"}
    columns |= {"low": "Min", "close": "LTP", "volume": "Qty"}
    prices = load_prices(path, columns=columns, date_format="%d/%m/%Y")
    assert prices["symbol"].tolist() == ["ADBL", "NABIL", "NABIL"]
    assert prices["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-15",
        "2024-01-14",
        "2024-01-15",
    ]
    assert prices["close"].tolist() == [301.0, 500.0, 505.0]
    assert prices["turnover"].isna().all()
    assert prices.attrs["columns_ignored"] == ["Remarks"]
    # Without the date format the dates are refused, naming the expected layout.
    load_error(
        path,
        f"{path}, line 2: unparseable date '15/01/2024' (expected YYYY-MM-DD)",
        columns=columns,
    )


def test_partial_mapping_rest_by_usual_names(tmp_path) -> None:
    path = tmp_path / "LTPX.csv"
    path.write_text("date,open,high,low,ltp,volume\n2024-01-02,10,11,9,10.5,100\n")
    with pytest.raises(DataError, match="missing required column"):
        load_prices(path)
    prices = load_prices(path, columns={"close": "LTP"})  # case-insensitive when unique
    assert prices["close"].tolist() == [10.5]
    assert prices.attrs["columns_used"]["close"] == ["ltp"]


def test_mapping_applies_to_source_files_too(tmp_path) -> None:
    source = Path(__file__).parents[1] / "data" / "nepse" / "nepal-market-data" / "NABIL.csv"
    path = tmp_path / "NABIL.csv"
    path.write_bytes(source.read_bytes())
    columns = {"date": "published_date", "volume": "traded_quantity", "turnover": "traded_amount"}
    pd.testing.assert_frame_equal(load_prices(path, columns=columns), load_prices(path))


def test_mapping_errors(tmp_path) -> None:
    path = write_kind(tmp_path, "ohlcv-csv", GOOD)
    load_error(
        path,
        f"{path}, line 1: column 'LTP' given for 'close' is not in the header",
        columns={"close": "LTP"},
    )
    with pytest.raises(ValueError, match="unknown output column 'clse'"):
        load_prices(path, columns={"clse": "Close"})
    with pytest.raises(ValueError, match="non-empty"):
        load_prices(path, columns={"close": " "})
    with pytest.raises(ValueError, match="date_format"):
        load_prices(path, date_format="")


def test_parse_column_mapping() -> None:
    assert parse_column_mapping(" close = Adj Close ,date=Day") == {
        "close": "Adj Close",
        "date": "Day",
    }
    for bad, message in [
        ("", "OUT=SOURCE"),
        ("close", "'close'"),
        ("close=", "'close='"),
        ("=LTP", "'=LTP'"),
        ("clse=LTP", "'clse'"),
        ("close=a,close=b", "given twice"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_column_mapping(bad)


def test_date_format_with_time_of_day(tmp_path) -> None:
    path = tmp_path / "T.csv"
    path.write_text(
        "Date,Open,High,Low,Close\n2024-01-02 00:00,1,1,1,1\n2024-01-03 15:30,1,1,1,1\n"
    )
    load_error(
        path,
        f"{path}, line 3: date '2024-01-03 15:30' has a time of day",
        date_format="%Y-%m-%d %H:%M",
    )
    typed = pd.DataFrame(
        {"date": pd.to_datetime(["2024-01-02", "2024-01-03 09:15"], format="ISO8601")}
    )
    typed[["open", "high", "low", "close"]] = 1.0
    typed.to_parquet(tmp_path / "T.parquet")
    load_error(tmp_path / "T.parquet", f"{tmp_path / 'T.parquet'}, row 2: date")
    # Integers are not dates.
    typed["date"] = [20240102, 20240103]
    typed.to_parquet(tmp_path / "T.parquet")
    with pytest.raises(DataError, match="column 'date' holds int64 values, not dates"):
        load_prices(tmp_path / "T.parquet")


# --------------------------------------------------------------------------- bad input, every new format


#: (field, value, 0-based row, message, strict): a blank or non-positive price is an error
#: only with ``strict=True``; by default it is not published (test_unpublished_prices).
BAD_VALUES = [
    ("date", "2020-13-45", 1, "unparseable date '2020-13-45'", False),
    ("date", "02/01/2020", 1, "unparseable date '02/01/2020'", False),
    ("date", "", 2, "missing date", False),
    ("close", "abc", 1, "non-numeric {close} 'abc'", False),
    ("high", "1O8.0", 0, "non-numeric {high} '1O8.0'", False),
    ("open", "", 1, "missing {open}", True),
    ("low", "0.0", 1, "non-positive price {low} 0.0", True),
    ("close", "-107", 2, "non-positive price {close} -107.0", True),
    ("high", "inf", 1, "non-finite {high} inf", False),
    ("volume", "-5.0", 1, "negative {volume} -5.0", False),
    ("turnover", "-1", 1, "negative {turnover} -1.0", False),
    ("volume", "lots", 1, "non-numeric {volume} 'lots'", False),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("field", "value", "row", "message", "strict"), BAD_VALUES)
def test_bad_value(tmp_path, kind, field, value, row, message, strict) -> None:
    path = write_kind(tmp_path, kind, with_value(field, value, row))
    names = {out: col(kind, out) for out in LONG[1:]}
    expected = f"{path}, {at(kind, row)}: {message.format(**names)}"
    load_error(path, expected, strict=strict)


@pytest.mark.parametrize("kind", KINDS)
def test_first_bad_row_reported_with_count(tmp_path, kind) -> None:
    rows = with_value("open", "0", 1)
    rows = [*rows, ("2020-01-06", "x", "1", "1", "1", "1", "1"), ("bad", *GOOD[0][1:])]
    path = write_kind(tmp_path, kind, rows)
    err = load_error(path, f"{path}, {at(kind, 1)}: non-positive", strict=True)
    assert "2 more invalid rows" in str(err)
    # By default the open of row 1 is not published: the first error is row 2's text open.
    err = load_error(path, f"{path}, {at(kind, 3)}: non-numeric {col(kind, 'open')} 'x'")
    assert "1 more invalid row in this file" in str(err)


@pytest.mark.parametrize("kind", KINDS)
def test_unpublished_prices(tmp_path, kind) -> None:
    """Every layout: a 0, negative or blank price is reported once, with its file and row."""
    rows = [
        *GOOD,
        ("2020-01-06", "0", "110", "100", "105", "10", "1050"),  # open only: bar kept
        ("2020-01-07", "105", "", "-1", "106", "10", "1060"),  # high and low: bar dropped
    ]
    path = write_kind(tmp_path, kind, rows)
    prices = load_prices(path)
    assert prices["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2020-01-01",
        "2020-01-02",
        "2020-01-05",
        "2020-01-06",
    ]
    assert np.isnan(prices["open"].iloc[3]) and prices["close"].iloc[3] == 105.0
    got = [
        (r["column"], r["value"], r["action"], r["file"], f"{at(kind, 0).split()[0]} {r['line']}")
        for r in prices.attrs["bad_prices"]
    ]
    assert [g[:3] for g in got[:1]] == [("open", 0.0, "open set to NaN")]
    assert got[1][0] == "high" and np.isnan(got[1][1]) and got[1][2] == "dropped bar"
    assert got[2][:3] == ("low", -1.0, "dropped bar")
    assert [g[3] for g in got] == [str(path)] * 3
    assert [g[4] for g in got] == [at(kind, 3), at(kind, 4), at(kind, 4)]
    assert {r["symbol"] for r in prices.attrs["bad_prices"]} == {"AAA"}


@pytest.mark.parametrize("kind", KINDS)
def test_missing_column(tmp_path, kind) -> None:
    close = col(kind, "close")
    header = tuple(h for h in header_of(kind) if h != close)
    rows = [
        tuple(v for v, h in zip(r, header_of(kind)[-7:], strict=True) if h != close) for r in GOOD
    ]
    path = write_kind(tmp_path, kind, rows, header=header)
    where = f"{path}, line 1" if kind.endswith("csv") else str(path)
    load_error(path, f"{where}: missing required column(s) 'close'")


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_date_with_different_values(tmp_path, kind) -> None:
    changed = (GOOD[1][0], *GOOD[1][1:4], "107.5", *GOOD[1][5:])
    path = write_kind(tmp_path, kind, [*GOOD, changed])
    of = " of AAA" if kind.startswith("long") else ""
    unit = "line" if kind.endswith("csv") else "row"
    later, earlier = at(kind, 3).split()[1], at(kind, 1).split()[1]
    expected = (
        f"{path}, {unit} {later}: date 2020-01-02{of} repeats {unit} {earlier} with different "
        f"values ({col(kind, 'close')} 107.5 vs 107)"
    )
    load_error(path, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_exact_duplicates_dropped_and_counted(tmp_path, kind) -> None:
    path = write_kind(tmp_path, kind, [GOOD[0], GOOD[1], GOOD[1], GOOD[2], GOOD[1]])
    prices = load_prices(path)
    assert len(prices) == 3
    assert prices.attrs["dropped_duplicates"] == 2
    assert prices.attrs["dropped_duplicates_by_symbol"] == {"AAA": 2}


@pytest.mark.parametrize("kind", KINDS)
def test_strict_applies(tmp_path, kind) -> None:
    jump = ("2020-01-06", "150", "160", "140", "150", "10", "1500")  # +41 %: a band breach
    path = write_kind(tmp_path, kind, [*GOOD, jump])
    assert len(load_prices(path)) == 4
    load_error(
        path, f"{path}: 1 price anomalies (strict=True): AAA 2020-01-06 band_breach", strict=True
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_empty_file(tmp_path, suffix) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    load_error(path, f"{path}: empty file")


@pytest.mark.parametrize("kind", KINDS)
def test_no_data_rows(tmp_path, kind) -> None:
    path = write_kind(tmp_path, kind, GOOD)
    if kind.endswith("csv"):
        path.write_text(path.read_text().splitlines()[0] + "\n")
        message = "header only, no data rows"
    else:
        pd.read_parquet(path).iloc[:0].to_parquet(path)
        message = "no data rows"
    load_error(path, f"{path}: {message}")


def test_missing_symbol(tmp_path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        "symbol,date,open,high,low,close,volume\nAAA,2020-01-01,1,1,1,1,1\n,2020-01-02,1,1,1,1,1\n"
    )
    load_error(path, f"{path}, line 3: missing symbol ('symbol' is blank)")


def test_not_parquet_and_corrupt_parquet(tmp_path) -> None:
    text = tmp_path / "text.parquet"
    text.write_text("Date,Open\n")
    load_error(text, f"{text}: not a Parquet file")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\x00" * 20 + b"PAR1")
    load_error(broken, f"{broken}: unreadable Parquet file")


def test_error_in_directory_names_the_file(tmp_path) -> None:
    write_kind(tmp_path, "long-parquet", GOOD, name="AAA")
    path = write_kind(tmp_path, "long-parquet", with_value("close", "zz", 1), name="BBB")
    load_error(tmp_path, f"{path}, row 2: non-numeric close 'zz'")


def test_same_date_in_two_long_files(tmp_path) -> None:
    # Symbol "p1" is in both files (the symbol comes from the rows, not the file name).
    first = write_kind(tmp_path, "long-csv", GOOD[:2], name="p1")
    second = write_kind(tmp_path, "long-parquet", GOOD[1:], name="p2")
    pd.read_parquet(second).assign(symbol="p1").to_parquet(second)
    expected = f"{second}, row 1: date 2020-01-02 of p1 is also in {first}, line 3"
    load_error(tmp_path, expected)


def test_same_symbol_from_two_files(tmp_path) -> None:
    write_kind(tmp_path, "ohlcv-csv", GOOD, name="AAA")
    write_kind(tmp_path, "ohlcv-parquet", GOOD, name="AAA")
    load_error(tmp_path, f"{tmp_path}: files AAA.csv and AAA.parquet give the same symbol 'AAA'")


def test_directory_without_data_files(tmp_path) -> None:
    (tmp_path / "LICENSE").write_text("MIT\n")
    with pytest.raises(DataError, match=r"no \.csv files and no \.parquet/\.pq files"):
        load_prices(tmp_path)


# --------------------------------------------------------------------------- the CLI


def _inputs(tmp_path: Path, prices: pd.DataFrame) -> dict[str, tuple[Path, list[str]]]:
    """Each format of ``prices`` on disk, with the extra CLI arguments it needs."""
    long_csv = tmp_path / "long.csv"
    prices.to_csv(long_csv, index=False)
    long_parquet = tmp_path / "long.parquet"
    prices.to_parquet(long_parquet)
    parquet_dir = tmp_path / "parts"
    write_parquet_by_symbol(prices, parquet_dir, symbols_per_file=2)
    ohlcv_dir = tmp_path / "ohlcv"
    ohlcv_directory(ohlcv_dir, prices, ["timestamp", "open", "high", "low", "close", "volume"])
    mapped = tmp_path / "mapped.csv"
    pd.DataFrame(
        {
            "Scrip": prices["symbol"],
            "Day": prices["date"].dt.strftime("%d/%m/%Y"),
            "O": prices["open"],
            "H": prices["high"],
            "L": prices["low"],
            "LTP": prices["close"],
            "Qty": prices["volume"],
            "Amount": prices["turnover"],
        }
    ).to_csv(mapped, index=False)
    mapping = "symbol=Scrip,date=Day,open=O,high=H,low=L,close=LTP,volume=Qty,turnover=Amount"
    return {
        "long-csv": (long_csv, []),
        "long-parquet": (long_parquet, []),
        "parquet-dir": (parquet_dir, []),
        "ohlcv-dir": (ohlcv_dir, []),
        "mapped": (mapped, ["--columns", mapping, "--date-format", "%d/%m/%Y"]),
    }


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory, synthetic) -> dict[str, tuple[Path, list[str]]]:
    return _inputs(tmp_path_factory.mktemp("cli"), synthetic)


CLI_KINDS = ["long-csv", "long-parquet", "parquet-dir", "ohlcv-dir", "mapped"]


@pytest.mark.parametrize("kind", CLI_KINDS)
def test_cli_indicators_on_each_format(tmp_path, capsys, kind, cli_inputs, synthetic) -> None:
    path, extra = cli_inputs[kind]
    out = tmp_path / "ind.parquet"
    rc = main(["indicators", str(path), "--backend", "talib", "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{len(synthetic):,} rows" in captured.out
    if kind == "ohlcv-dir":
        assert "note:" in captured.err and "'Adj Close' is not used" in captured.err
    else:
        assert "note:" not in captured.err
    table = pd.read_parquet(out)
    assert list(table.columns) == [*PRICE_COLUMNS, *OUTPUT_COLUMNS]
    expected = compute_indicators(synthetic, "talib")
    pd.testing.assert_frame_equal(table[list(OUTPUT_COLUMNS)], expected, check_exact=True)
    # What the command writes reads back as prices (indicator columns ignored, reported).
    back = load_prices(out)
    assert back.attrs["columns_ignored"] == sorted(OUTPUT_COLUMNS)
    pd.testing.assert_frame_equal(back, table[list(PRICE_COLUMNS)], check_exact=True)


@pytest.mark.parametrize("kind", CLI_KINDS)
def test_cli_bench_input_on_each_format(tmp_path, capsys, kind, cli_inputs, synthetic) -> None:
    path, extra = cli_inputs[kind]
    out = tmp_path / "b"
    argv = ["bench", "--input", str(path), *extra, "--backends", "talib,numpy", "--repeat", "1",
            "--out", str(out), "--quiet", "--bandwidth-mib", "2"]  # fmt: skip
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads((out / "bench.json").read_text())
    assert doc["n_rows"] == len(synthetic) and doc["n_symbols"] == synthetic["symbol"].nunique()
    assert "note:" not in captured.err  # --quiet


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--columns", "close=LTP", "--size", "small"], "need --input"),
        (["indicators", "IN", "--out", "OUT", "--columns", "clse=LTP"], "unknown output column"),
        (["indicators", "IN", "--out", "OUT", "--columns", "close"], "OUT=SOURCE"),
        (["indicators", "IN", "--out", "OUT", "--columns", "close=LTP"], "'LTP' given for"),
        (["indicators", "IN", "--out", "OUT", "--date-format", "%d/%m/%Y"], "unparseable date"),
    ],
)
def test_cli_format_errors_exit_2(tmp_path, capsys, argv, message, cli_inputs) -> None:
    path, _ = cli_inputs["long-csv"]
    argv = [a.replace("IN", str(path)).replace("OUT", str(tmp_path / "x.csv")) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "x.csv").exists()
