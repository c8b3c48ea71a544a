"""Shared fixtures and helpers: the TA-Lib reference, the real sample, small synthetic panels,
and the plumbing of the tests that start servers and clusters as separate processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from nepse_perf import compute_indicators
from nepse_perf._infra.ports import free_port  # noqa: F401 (the tests import it from here)
from nepse_perf.data import DEFAULT_DATA_DIR, DEFAULT_INDEX_FILE, load_prices
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams


def talib_reference(prices: pd.DataFrame, **params: float) -> pd.DataFrame:
    """TA-Lib called directly per symbol (sorted by date), aligned to ``prices``' index.

    Independent of the package's panel code: it groups with pandas, skips each symbol's
    leading rows with a NaN price and calls TA-Lib on the rest.
    """
    p = IndicatorParams.from_kwargs(**params)
    result = pd.DataFrame(np.nan, index=prices.index, columns=list(OUTPUT_COLUMNS))
    for _, group in prices.groupby("symbol", observed=True, sort=False):
        group = group.sort_values("date")
        ok = group[["close", "high", "low"]].notna().all(axis=1).to_numpy()
        if not ok.any():
            continue
        group = group.iloc[int(np.argmax(ok)) :]
        c, h, lo = (group[k].to_numpy(np.float64) for k in ("close", "high", "low"))
        macd = talib.MACD(c, p.macd_fast, p.macd_slow, p.macd_signal)
        bands = talib.BBANDS(c, p.bb_period, p.bb_nbdev, p.bb_nbdev, 0)
        cols = [
            talib.SMA(c, p.sma_period),
            talib.EMA(c, p.ema_period),
            talib.RSI(c, p.rsi_period),
            *macd,
            *bands,
            talib.ATR(h, lo, c, p.atr_period),
        ]
        result.loc[group.index, list(OUTPUT_COLUMNS)] = np.column_stack(cols)
    return result


def assert_matches_talib(got: pd.DataFrame, ref: pd.DataFrame, rtol: float = 1e-9) -> None:
    """Same index, same columns, NaNs in the same places, values within rtol/atol 1e-9."""
    assert list(got.columns) == list(OUTPUT_COLUMNS)
    assert got.index.equals(ref.index)
    assert (got.dtypes == np.float64).all()
    for col in OUTPUT_COLUMNS:
        g, r = got[col].to_numpy(), ref[col].to_numpy()
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r), err_msg=f"NaN pattern of {col}")
        np.testing.assert_allclose(g, r, rtol=rtol, atol=1e-9, err_msg=col)


def make_prices(closes: dict[str, np.ndarray], spread: float = 0.02, seed: int = 0) -> pd.DataFrame:
    """A long price frame from per-symbol close arrays, with high/low around the close."""
    rng = np.random.default_rng(seed)
    frames = []
    for sym, c in closes.items():
        c = np.asarray(c, dtype=np.float64)
        wiggle = np.abs(rng.normal(0, spread, c.shape)) * np.nan_to_num(c, nan=1.0)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "date": pd.bdate_range("2020-01-01", periods=len(c)),
                    "open": c,
                    "high": c + wiggle,
                    "low": c - wiggle * 0.9,
                    "close": c,
                    "volume": 1000.0,
                    "turnover": 1000.0 * np.nan_to_num(c),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["symbol"] = out["symbol"].astype("category")
    return out


def short_market_files(directory: Path, rows: int = 35) -> Path:
    """``directory``, given a link to each shipped market file with fewer than ``rows`` data rows.

    With the default 35 (MACD's warm-up is 33 bars): the market's 54 short histories, 16 of
    them a single row (``data/nepse/SOURCE.md``, section 3).
    """
    from nepse_perf.data import MARKET_DIR

    for p in sorted(MARKET_DIR.glob("*.csv")):
        with p.open("rb") as fh:
            if sum(1 for _ in fh) - 1 < rows:
                (directory / p.name).symlink_to(p.resolve())
    return directory


@pytest.fixture(scope="session")
def sample_prices() -> pd.DataFrame:
    """Every real stock and index file of the shipped sample, loaded once."""
    from nepse_perf.data import load_prices, sample_path

    return load_prices(sample_path())


@pytest.fixture(scope="session")
def capstone_index() -> pd.DataFrame:
    """The 1997-2019 NEPSE index history (capstone2020), loaded once."""
    from nepse_perf.data import load_prices, sample_path

    return load_prices(sample_path().parent / "capstone2020" / "nepse_index.csv")


@pytest.fixture(scope="session")
def serving_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """A small saved model (hgb, 20 iterations) for the serving tests, trained once."""
    from nepse_perf.data import load_prices, sample_path
    from nepse_perf.model import make_dataset, save, train

    ds = make_dataset(load_prices(sample_path()))
    model = train(ds, kind="hgb", n_splits=2, max_iter=20)
    return save(model, tmp_path_factory.mktemp("serving-model"))


@pytest.fixture(scope="module")
def stocks() -> pd.DataFrame:
    """Every stock file of the shipped sample (``DEFAULT_DATA_DIR``), loaded once per module."""
    return load_prices(DEFAULT_DATA_DIR)


@pytest.fixture(scope="module")
def index() -> pd.DataFrame:
    """The shipped NEPSE index file (``DEFAULT_INDEX_FILE``), loaded once per module."""
    return load_prices(DEFAULT_INDEX_FILE)


@pytest.fixture(scope="module")
def in_process(sample_prices: pd.DataFrame) -> pd.DataFrame:
    """The sample's indicators computed in this process: what every engine must reproduce."""
    return compute_indicators(sample_prices, "numba_parallel")


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, poll: float = 0.05
) -> None:
    """Call ``predicate`` every ``poll`` s until it is true; ``TimeoutError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def start_logged(cmd: list[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen:
    """``cmd`` in its own process group (a new session), stdout and stderr to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )


def run_in_cuda_simulator(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -W error ARGS`` with ``NUMBA_ENABLE_CUDASIM=1``; asserts it exits 0."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run(
        [sys.executable, "-W", "error", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
