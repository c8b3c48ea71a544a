"""The pipeline on Spark equals the in-process one and TA-Lib: ``local[2]`` on loopback (one
session for the class), SQL windows vs TA-Lib, the chapter's tumbling window, bad input, a
failing symbol named, and one job on a standalone master + worker started from pyspark."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_matches_talib, short_market_files, talib_reference
from pyspark.errors import PythonException
from pyspark.sql import SparkSession

from nepse_perf import compute_indicators
from nepse_perf.data import DataError, load_prices, sample_path
from nepse_perf.engines.spark import (
    MASTER_ENV,
    compute_indicators_spark,
    sma_bbands_spark,
    spark_session,
    standalone_cluster,
    to_spark,
    tumbling_daily_average,
)
from nepse_perf.indicators.backends import numba_parallel

BANDS = ["sma", "bb_upper", "bb_middle", "bb_lower"]


def test_java_is_installed() -> None:
    assert shutil.which("java"), "Spark needs a JRE: .ci/run installs default-jre-headless"


@pytest.fixture(scope="class")
def spark() -> Iterator[SparkSession]:
    """One ``local[2]`` session (one JVM) for the tests of a class."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv(MASTER_ENV, raising=False)
        with spark_session() as session:
            yield session


class TestLocalSpark:
    def test_session_is_local_on_loopback(self, spark: SparkSession) -> None:
        conf = spark.sparkContext.getConf()
        assert spark.sparkContext.master == "local[2]"
        assert conf.get("spark.driver.host") == "127.0.0.1"
        assert conf.get("spark.ui.enabled") == "false"
        assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
        assert os.environ["PYSPARK_PYTHON"] == os.environ["PYSPARK_DRIVER_PYTHON"]

    def test_pipeline_equals_in_process_and_talib(
        self, spark: SparkSession, sample_prices: pd.DataFrame, in_process: pd.DataFrame
    ) -> None:
        got = compute_indicators_spark(sample_path(), spark=spark)
        pd.testing.assert_frame_equal(got, in_process)
        assert_matches_talib(got, talib_reference(sample_prices))

    def test_one_group_per_symbol_gives_the_same_frame(
        self, spark: SparkSession, sample_prices: pd.DataFrame, in_process: pd.DataFrame
    ) -> None:
        got = compute_indicators_spark(sample_prices, spark=spark, per_symbol=True)
        pd.testing.assert_frame_equal(got, in_process)

    def test_unsorted_input_other_parameters(
        self, spark: SparkSession, sample_prices: pd.DataFrame
    ) -> None:
        shuffled = sample_prices.sample(frac=1.0, random_state=2).iloc[:20000]
        got = compute_indicators_spark(shuffled, spark=spark, rsi_period=9, bb_nbdev=1.5)
        pd.testing.assert_frame_equal(
            got, compute_indicators(shuffled, "numba_parallel", rsi_period=9, bb_nbdev=1.5)
        )

    def test_sql_windows_match_talib(
        self, spark: SparkSession, sample_prices: pd.DataFrame
    ) -> None:
        got = sma_bbands_spark(sample_prices, spark)
        ref = talib_reference(sample_prices)[BANDS]
        assert_frame = pd.DataFrame(got, columns=BANDS)
        for col in BANDS:
            g, r = assert_frame[col].to_numpy(), ref[col].to_numpy()
            np.testing.assert_array_equal(np.isnan(g), np.isnan(r), err_msg=col)
            np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-9, err_msg=col)
        # the first full window of every symbol adds the same closes in the same order
        first = ref["sma"].notna() & ~ref["sma"].notna().groupby(sample_prices["symbol"]).shift(
            1, fill_value=False
        )
        assert first.sum() == 25
        np.testing.assert_array_equal(got.loc[first, "sma"], ref.loc[first, "sma"])

    def test_chapter_tumbling_window_has_one_row_per_group(
        self, spark: SparkSession, sample_prices: pd.DataFrame
    ) -> None:
        groups = tumbling_daily_average(to_spark(spark, sample_prices))
        summary = groups.selectExpr("count(*) AS n", "max(rows) AS most").first()
        assert summary["n"] == len(sample_prices) and summary["most"] == 1

    def test_failing_symbol_is_named(
        self, spark: SparkSession, sample_prices: pd.DataFrame
    ) -> None:
        def fails_on_nabil(panel, params, out) -> None:  # shipped by value (a closure)
            if "NABIL" in panel.symbols:
                raise ValueError("bad bar")
            numba_parallel.compute_serial(panel, params, out)

        with pytest.raises(PythonException, match="symbol NABIL: ValueError: bad bar"):
            compute_indicators_spark(sample_prices, spark=spark, backend=fails_on_nabil)

    def test_short_histories_of_the_market(self, spark: SparkSession, tmp_path: Path) -> None:
        """The market's 54 files shorter than MACD's warm-up (16 of one row) equal TA-Lib."""
        prices = load_prices(short_market_files(tmp_path))
        assert prices["symbol"].nunique() == 54 and prices.groupby("symbol").size().min() == 1
        got = compute_indicators_spark(tmp_path, spark=spark)
        pd.testing.assert_frame_equal(got, compute_indicators(prices, "numba_parallel"))
        ref = talib_reference(prices)
        assert_matches_talib(got, ref)
        bands = pd.DataFrame(sma_bbands_spark(prices, spark), columns=BANDS)
        for col in BANDS:  # SQL windows: NaN until a window is full, as TA-Lib
            g, r = bands[col].to_numpy(), ref[col].to_numpy()
            np.testing.assert_array_equal(np.isnan(g), np.isnan(r), err_msg=col)
            np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-9, err_msg=col)

    def test_bad_input_names_the_file(self, spark: SparkSession, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="no-such-dir"):
            compute_indicators_spark(tmp_path / "no-such-dir", spark=spark)
        (tmp_path / "BROKEN.csv").write_text("Date,Open,High,Low,Close\n2020-01-01,1,2,0.5,x\n")
        with pytest.raises(DataError, match=r"BROKEN\.csv"):
            compute_indicators_spark(tmp_path, spark=spark)
        with pytest.raises(ValueError, match="unknown backend"):
            compute_indicators_spark(sample_path(), spark=spark, backend="nope")


def test_standalone_master_and_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: pd.DataFrame
) -> None:
    with standalone_cluster(tmp_path / "cluster", cores=2) as url:
        assert url.startswith("spark://127.0.0.1:")
        monkeypatch.setenv(MASTER_ENV, url)
        with spark_session() as spark:  # picks the master up from SPARK_MASTER
            assert spark.sparkContext.master == url
            got = compute_indicators_spark(sample_path(), spark=spark)
            executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()
        pd.testing.assert_frame_equal(got, in_process)
        assert executors >= 2  # the driver plus at least one executor on the worker
