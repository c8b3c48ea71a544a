"""Memory helpers of notebook 07: the column breakdown and the out-of-core job."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from nepse_perf import synthetic_prices
from nepse_perf.lessons.memory import (
    frame_memory,
    hot_days,
    hot_days_in_memory,
    hot_days_out_of_core,
    peak_memory_mb,
)


def test_frame_memory_adds_up(sample_prices: pd.DataFrame) -> None:
    table = frame_memory(sample_prices)
    assert table.loc["total", "bytes"] == sample_prices.memory_usage(deep=True).sum()
    assert table.loc["close", "bytes/row"] == 8.0 and table.loc["symbol", "dtype"] == "category"


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    prices = synthetic_prices(7, 200, seed=3)
    directory = tmp_path_factory.mktemp("parquet")
    for i, (_, part) in enumerate(prices.groupby("symbol", observed=True)):
        part.to_parquet(directory / f"part-{i // 3:05d}-{i}.parquet", index=False)
    return directory, prices


def test_out_of_core_equals_in_memory(parquet_dir: tuple[Path, pd.DataFrame]) -> None:
    directory, prices = parquet_dir
    expected = hot_days(prices).sort_index()
    assert hot_days_in_memory(directory).equals(expected)
    assert hot_days_out_of_core(directory).to_numpy().tolist() == expected.to_numpy().tolist()
    assert list(hot_days_out_of_core(directory).index) == list(expected.index)


def test_peak_memory_runs_in_a_child(parquet_dir: tuple[Path, pd.DataFrame]) -> None:
    directory, prices = parquet_dir
    a = peak_memory_mb("in_memory", directory)
    b = peak_memory_mb("out_of_core", directory)
    assert a["digest"] == b["digest"] and a["total"] == int(hot_days(prices).sum())
    for got in (a, b):
        assert set(got) == {"peak_mb", "seconds", "total", "digest"}
        assert all(math.isfinite(got[k]) for k in ("peak_mb", "seconds"))
    with pytest.raises(ValueError, match="unknown job"):
        peak_memory_mb("everything", directory)
    with pytest.raises(RuntimeError, match=r"no \.parquet"):
        peak_memory_mb("in_memory", directory / "missing")
