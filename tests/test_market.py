"""The whole shipped market (``data/nepse/market/``): stored once, loaded in one call as it is,
its bad cells reported once each, and every backend, the stream and the engines equal TA-Lib
on it, its short histories included (``data/nepse/SOURCE.md``, section 3)."""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from conftest import assert_matches_talib, talib_reference

from nepse_perf import compute_indicators
from nepse_perf.cli import main
from nepse_perf.data import (
    MARKET_DIR,
    PRICE_COLUMNS,
    SAMPLE_DIR,
    DataError,
    check_prices,
    load_prices,
    market_path,
)
from nepse_perf.engines import run_pipeline
from nepse_perf.engines.pool import compute_indicators_parallel
from nepse_perf.indicators import OUTPUT_COLUMNS, IndicatorParams
from nepse_perf.indicators.stream import IndicatorStream
from nepse_perf.pipeline import available_backends

pytestmark = pytest.mark.filterwarnings("error")

ALL = sorted(available_backends())  # gpu only with CUDA: tests/test_gpu.py covers it
PRICES = ("open", "high", "low", "close")

#: The market's cells of 0.0 (SOURCE.md section 3, quirk 1): (symbol, date, column, line).
ZERO_CELLS = [
    ("GMFIL", "2013-10-22", "high", 17),
    ("GMFIL", "2013-10-22", "low", 17),
    ("HLBSL", "2015-11-26", "open", 2),
    ("KRBL", "2024-12-01", "low", 2542),
    ("MERO", "2016-09-05", "open", 2),
    ("NICL", "2015-08-16", "high", 366),
    ("NICL", "2015-08-16", "low", 366),
    ("NLG", "2013-07-17", "open", 2),
    ("PFL", "2014-02-23", "high", 40),
    ("PFL", "2014-02-23", "low", 40),
    ("RSDC", "2017-02-08", "open", 2),
    ("SLBBL", "2013-06-19", "open", 2),
]


def csv_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.csv"))


def raw_rows(path: Path) -> list[dict[str, str]]:
    """A file's data rows as text, read with the csv module (independent of the loader)."""
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def raw() -> dict[str, list[dict[str, str]]]:
    return {p.stem: raw_rows(p) for p in csv_files(MARKET_DIR)}


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return load_prices(market_path())


@pytest.fixture(scope="module")
def reference(market: pd.DataFrame) -> pd.DataFrame:
    return talib_on_slices(market)


def talib_on_slices(market: pd.DataFrame) -> pd.DataFrame:
    """TA-Lib called directly on each symbol's slice of the (sorted) market frame.

    What ``conftest.talib_reference`` computes, without its per-group pandas indexing (a
    tenth of the time on 387 symbols); the market has no NaN high, low or close to skip.
    """
    assert market[["high", "low", "close"]].notna().all().all()
    p = IndicatorParams()
    codes = market["symbol"].cat.codes.to_numpy()
    bounds = [0, *(np.flatnonzero(np.diff(codes)) + 1), len(codes)]
    c, h, lo = (market[k].to_numpy() for k in ("close", "high", "low"))
    out = np.empty((len(market), len(OUTPUT_COLUMNS)))
    for a, b in itertools.pairwise(bounds):
        x = c[a:b]
        cols = [
            talib.SMA(x, p.sma_period),
            talib.EMA(x, p.ema_period),
            talib.RSI(x, p.rsi_period),
            *talib.MACD(x, p.macd_fast, p.macd_slow, p.macd_signal),
            *talib.BBANDS(x, p.bb_period, p.bb_nbdev, p.bb_nbdev, 0),
            talib.ATR(h[a:b], lo[a:b], x, p.atr_period),
        ]
        out[a:b] = np.column_stack(cols)
    return pd.DataFrame(out, index=market.index, columns=list(OUTPUT_COLUMNS))


@pytest.fixture(scope="module")
def alone(short_dir: Path) -> dict[str, pd.DataFrame]:
    """Each file of :func:`short_dir` loaded on its own."""
    return {p.stem: load_prices(p) for p in csv_files(short_dir)}


@pytest.fixture(scope="module")
def short_dir(tmp_path_factory: pytest.TempPathFactory, raw: dict) -> Path:
    """The files shorter than MACD's warm-up (34 bars) plus those with a zero price, linked."""
    d = tmp_path_factory.mktemp("short")
    zero = {s for s, *_ in ZERO_CELLS}
    for p in csv_files(MARKET_DIR):
        if len(raw[p.stem]) < 35 or p.stem in zero:
            (d / p.name).symlink_to(p.resolve())
    return d


# --------------------------------------------------------------------------- the files


def test_market_is_stored_once_beside_the_sample() -> None:
    files = csv_files(MARKET_DIR)
    assert len(files) == 387 and (MARKET_DIR / "LICENSE").exists()
    links = [p for p in MARKET_DIR.iterdir() if p.is_symlink()]
    sample = {p.name for p in csv_files(SAMPLE_DIR)} | {"LICENSE"}
    assert {p.name for p in links} == sample  # the sample's 25 files and its licence
    for p in links:
        assert os.readlink(p) == f"../nepal-market-data/{p.name}"  # relative: works anywhere
        assert p.resolve() == (SAMPLE_DIR / p.name).resolve()
    digest = {hashlib.sha256(p.read_bytes()).hexdigest() for p in csv_files(SAMPLE_DIR)}
    own = [p for p in files if not p.is_symlink()]
    assert len(own) == 362
    assert not [p.name for p in own if hashlib.sha256(p.read_bytes()).hexdigest() in digest]


def test_market_loads_in_one_call(market: pd.DataFrame, raw: dict) -> None:
    assert tuple(market.columns) == PRICE_COLUMNS
    assert list(market["symbol"].cat.categories) == sorted(raw)  # every file, NEPSE_INDEX once
    assert sum(len(rows) for rows in raw.values()) == 447_164
    assert len(market) == 447_164 - 4  # the four bars without a published high or low
    counts = market.groupby("symbol", observed=True).size()
    dropped = {"GMFIL": 1, "KRBL": 1, "NICL": 1, "PFL": 1}
    assert {s: len(rows) - dropped.get(s, 0) for s, rows in raw.items()} == counts.to_dict()
    assert market.attrs["formats"] == ["nepal-market-data"]
    assert market.attrs["dropped_duplicates"] == 0
    codes, dates = market["symbol"].cat.codes.to_numpy(), market["date"].to_numpy()
    same = codes[1:] == codes[:-1]
    assert (np.diff(codes) >= 0).all() and (dates[1:][same] > dates[:-1][same]).all()
    pd.testing.assert_frame_equal(
        load_prices(MARKET_DIR).astype({"symbol": str}), market.astype({"symbol": str})
    )


def test_every_bad_cell_is_reported_once(market: pd.DataFrame, raw: dict) -> None:
    # Every open/high/low/close cell of the files that is not a positive number.
    found = [
        (symbol, row["published_date"], col, line)
        for symbol, rows in raw.items()
        for line, row in enumerate(rows, start=2)
        for col in PRICES
        if not row[col].strip() or float(row[col]) <= 0
    ]
    assert sorted(found) == ZERO_CELLS  # 12 cells in 9 files, as SOURCE.md says
    records = market.attrs["bad_prices"]
    assert [(r["symbol"], r["date"], r["column"], r["line"]) for r in records] == ZERO_CELLS
    assert all(
        r["value"] == 0.0 and r["file"] == str(MARKET_DIR / f"{r['symbol']}.csv") for r in records
    )
    actions = {(r["symbol"], r["column"]): r["action"] for r in records}
    assert {k for k, a in actions.items() if a == "open set to NaN"} == {
        (s, "open") for s in ("HLBSL", "MERO", "NLG", "RSDC", "SLBBL")
    }
    assert {a for k, a in actions.items() if k[1] != "open"} == {"dropped bar"}
    assert "12 price cell(s) not published" in market.attrs["load_notes"][-1]
    # No zero or negative price reaches the frame; the dropped bars are gone, the rest kept.
    assert not (market[list(PRICES)] <= 0).any().any()
    assert market[["high", "low", "close"]].notna().all().all()
    assert market["open"].isna().sum() == 5
    bad = market[market["symbol"].isin({r["symbol"] for r in records})]
    keys = set(zip(bad["symbol"].astype(str), bad["date"].dt.strftime("%Y-%m-%d"), strict=True))
    for r in records:
        assert ((r["symbol"], r["date"]) in keys) == (r["action"] == "open set to NaN")


def test_check_prices_lists_the_bad_cells_and_high_below_low(market: pd.DataFrame) -> None:
    report = check_prices(market)
    counts = report["kind"].value_counts().to_dict()
    assert counts["bad_price"] == 12 and counts["high_below_low"] == 98  # SOURCE.md section 3
    bad = report[report["kind"] == "bad_price"]
    assert bad["detail"].iloc[0] == "high 0.00 not published: dropped bar (GMFIL.csv, line 17)"
    assert report["symbol"].dtype == market["symbol"].dtype


def test_strict_names_the_first_bad_file_and_line() -> None:
    where = MARKET_DIR / "GMFIL.csv"
    with pytest.raises(DataError, match=f"^{where}, line 17: non-positive price high 0.0"):
        load_prices(MARKET_DIR, strict=True)


def test_each_file_alone_equals_its_rows_in_the_market(
    market: pd.DataFrame, raw: dict, alone: dict[str, pd.DataFrame]
) -> None:
    """The market is read as a batch; every file read on its own gives the same rows."""
    others = {s: load_prices(MARKET_DIR / f"{s}.csv") for s in sorted(raw)[::25]}
    codes = market["symbol"].cat.codes.to_numpy()
    bounds = np.searchsorted(codes, np.arange(len(raw) + 1))
    position = {s: k for k, s in enumerate(market["symbol"].cat.categories)}
    for symbol, frame in {**alone, **others}.items():
        k = position[symbol]
        part = market.iloc[bounds[k] : bounds[k + 1]].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            frame.astype({"symbol": str}), part.astype({"symbol": str}), check_exact=True
        )
        mine = [r for r in market.attrs["bad_prices"] if r["symbol"] == symbol]
        assert [{**r, "file": Path(r["file"]).name} for r in frame.attrs["bad_prices"]] == [
            {**r, "file": Path(r["file"]).name} for r in mine
        ]


# --------------------------------------------------------------------------- indicators


@pytest.mark.parametrize("backend", ALL)
def test_every_backend_equals_talib_on_the_market(
    backend: str, market: pd.DataFrame, reference: pd.DataFrame
) -> None:
    assert_matches_talib(compute_indicators(market, backend), reference)


def test_no_bad_bar_poisons_a_symbol(market: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Past its warm-up, every indicator of a symbol with a dropped bar stays finite."""
    lookback = IndicatorParams().lookbacks()
    for symbol in ("GMFIL", "KRBL", "NICL", "PFL", "HLBSL"):
        rows = reference[market["symbol"] == symbol]
        for col in OUTPUT_COLUMNS:
            assert np.isfinite(rows[col].to_numpy()[lookback[col] :]).all(), (symbol, col)


def _check_warmups(prices: pd.DataFrame, got: pd.DataFrame) -> None:
    """All-NaN where a symbol is shorter than a lookback; NaN then finite otherwise."""
    lookback = IndicatorParams().lookbacks()
    for _, rows in got.groupby(prices["symbol"], observed=True):
        for col in OUTPUT_COLUMNS:
            v = rows[col].to_numpy()
            assert np.isnan(v[: lookback[col]]).all() and np.isfinite(v[lookback[col] :]).all()


@pytest.mark.parametrize("backend", ALL)
def test_short_files_alone_and_together(
    backend: str, short_dir: Path, raw: dict, alone: dict[str, pd.DataFrame]
) -> None:
    together = load_prices(short_dir)
    assert together["symbol"].nunique() == len(csv_files(short_dir)) == 63
    got = compute_indicators(together, backend)
    assert_matches_talib(got, talib_reference(together))
    _check_warmups(together, got)
    singles = [s for s, rows in raw.items() if len(rows) == 1]
    assert len(singles) == 16  # SOURCE.md says "one has a single row": 16 do here
    codes = together["symbol"].cat.codes.to_numpy()
    bounds = np.searchsorted(codes, np.arange(len(alone) + 1))
    for k, symbol in enumerate(together["symbol"].cat.categories):  # each on its own
        ind = compute_indicators(alone[symbol], backend)
        mine = got.iloc[bounds[k] : bounds[k + 1]].to_numpy()
        np.testing.assert_allclose(ind.to_numpy(), mine, rtol=1e-12, err_msg=symbol)
        if symbol in singles:
            assert len(ind) == 1 and ind.isna().all().all()


def test_short_histories_reach_only_the_lookbacks(market: pd.DataFrame, reference) -> None:
    n = market.groupby("symbol", observed=True).size()
    assert (n < 35).sum() == 54 and (n < 300).sum() == 109 and n.min() == 1
    _check_warmups(market, reference)


def test_stream_equals_the_whole_market(market: pd.DataFrame) -> None:
    by_date = market.sort_values(["date", "symbol"], kind="stable")  # symbols interleaved
    stream = IndicatorStream()
    size = 50_000
    parts = [stream.update(by_date.iloc[i : i + size]) for i in range(0, len(by_date), size)]
    got = pd.concat(parts).sort_index()
    whole = compute_indicators(market, "numba")
    np.testing.assert_array_equal(got.to_numpy(), whole.to_numpy())
    assert stream.bars_seen("BOKD86") == 1 and len(stream.symbols) == 387


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_pool_engines_on_short_histories(short_dir: Path, executor: str) -> None:
    prices = load_prices(short_dir)
    got = compute_indicators_parallel(prices, "numba_parallel", workers=2, executor=executor)
    assert got.ok
    pd.testing.assert_frame_equal(got.indicators, compute_indicators(prices, "numba_parallel"))


def test_dask_engine_on_short_histories(short_dir: Path) -> None:
    import dask

    prices = load_prices(short_dir)
    with dask.config.set(scheduler="sync"):
        got = run_pipeline(short_dir, "numba_parallel")
    pd.testing.assert_frame_equal(got, compute_indicators(prices, "numba_parallel"))


def test_dask_keeps_the_report_of_bad_cells(tmp_path: Path) -> None:
    import dask

    from nepse_perf.engines.dask import bad_prices_dask, read_prices_dask

    for symbol in sorted({cell[0] for cell in ZERO_CELLS}):
        (tmp_path / f"{symbol}.csv").symlink_to(MARKET_DIR / f"{symbol}.csv")
    expected = load_prices(tmp_path).attrs["bad_prices"]
    assert len(expected) == len(ZERO_CELLS)
    with dask.config.set(scheduler="sync"):
        got = run_pipeline(tmp_path, "numba_parallel")
        lazy = bad_prices_dask(read_prices_dask(tmp_path)).compute()
    assert got.attrs["bad_prices"] == expected
    assert len(lazy) == len(ZERO_CELLS)
    assert sorted(zip(lazy["symbol"], lazy["column"], lazy["line"], strict=True)) == sorted(
        (s, c, line) for s, _, c, line in ZERO_CELLS
    )


# --------------------------------------------------------------------------- command line


def test_cli_indicators_on_the_market(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], market: pd.DataFrame, reference
) -> None:
    out = tmp_path / "market.parquet"
    assert main(["indicators", str(MARKET_DIR), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "447,160 rows, 387 symbols" in captured.out
    assert "note:" in captured.err and "12 price cell(s) not published" in captured.err
    table = pd.read_parquet(out)
    assert list(table.columns) == [*PRICE_COLUMNS, *OUTPUT_COLUMNS] and len(table) == len(market)
    assert_matches_talib(table[list(OUTPUT_COLUMNS)], reference)


def test_bench_reports_the_load_time(tmp_path: Path, short_dir: Path) -> None:
    out = tmp_path / "bench"
    argv = ["bench", "--input", str(short_dir), "--backends", "talib", "--repeat", "1",
            "--out", str(out), "--quiet", "--bandwidth-mib", "2"]  # fmt: skip
    assert main(argv) == 0
    line = next(x for x in (out / "bench.md").read_text().splitlines() if "load: " in x)
    assert f"load_prices({short_dir}) median" in line and "63 symbols" in line
