"""The nepse-perf command line: bench and indicators, and its user-error exits (status 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nepse_perf.cli import main
from nepse_perf.data import PRICE_COLUMNS, load_prices, sample_path
from nepse_perf.indicators import OUTPUT_COLUMNS
from nepse_perf.pipeline import BACKENDS, compute_indicators


@pytest.fixture(scope="module")
def sample_dir():
    return sample_path()


@pytest.fixture(scope="module")
def sample(sample_dir) -> pd.DataFrame:
    return load_prices(sample_dir)


def _no_traceback(captured) -> None:
    assert "Traceback" not in captured.err and "Traceback" not in captured.out


def test_bench_tiny_writes_reports(tmp_path, capsys):
    out = tmp_path / "bench"
    rc = main(["bench", "--symbols", "4", "--days", "200", "--repeat", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for name in ("bench.csv", "bench.md", "bench.png", "bench.json"):
        assert (out / name).stat().st_size > 0, name
    assert "speed-up vs pandas" in captured.out and "GB/s" in captured.out
    assert "garbage collector disabled" in captured.out
    doc = json.loads((out / "bench.json").read_text())
    assert doc["n_rows"] == 800 and doc["n_symbols"] == 4
    assert all(r["check"] in ("ok", "n/a") for r in doc["rows"])


def test_bench_input_sample_subset(tmp_path, capsys, sample_dir):
    out = tmp_path / "b"
    argv = ["bench", "--input", str(sample_dir), "--backends", "talib,numba", "--repeat", "1",
            "--out", str(out), "--quiet", "--bandwidth-mib", "2"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "n/a" in captured.out  # no pandas: no speed-up
    table = pd.read_csv(out / "bench.csv")
    assert list(table["label"])[:2] == ["talib", "numba"]
    assert "note:" not in captured.out  # --quiet


def test_python_m_help():
    proc = subprocess.run(
        [sys.executable, "-m", "nepse_perf", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "bench" in proc.stdout and "indicators" in proc.stdout


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_indicators_writes_file(tmp_path, capsys, sample_dir, sample, suffix):
    out = tmp_path / "sub" / f"ind{suffix}"
    assert main(["indicators", str(sample_dir), "--backend", "numba", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{len(sample):,} rows" in captured.out
    got = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert list(got.columns) == [*PRICE_COLUMNS, *OUTPUT_COLUMNS]
    assert len(got) == len(sample)
    expected = compute_indicators(sample, "numba")
    np.testing.assert_allclose(got["rsi"].to_numpy(), expected["rsi"].to_numpy(), rtol=1e-12)
    assert (got["symbol"].astype(str).to_numpy() == sample["symbol"].astype(str).to_numpy()).all()


def test_indicators_params(tmp_path, sample_dir, sample):
    out = tmp_path / "p.parquet"
    argv = ["indicators", str(sample_dir), "--out", str(out), "--sma-period", "5",
            "--bb-nbdev", "1.5"]  # fmt: skip
    assert main(argv) == 0
    got = pd.read_parquet(out)
    expected = compute_indicators(sample, sma_period=5, bb_nbdev=1.5)
    np.testing.assert_allclose(got["sma"].to_numpy(), expected["sma"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["bb_upper"], expected["bb_upper"], rtol=1e-12)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--backends", "numba,fortran", "--symbols", "2", "--days", "50"],
        ["indicators", "SAMPLE", "--backend", "fortran", "--out", "OUT/x.csv"],
    ],
)
def test_unknown_backend_exit_2(argv, tmp_path, capsys, sample_dir):
    argv = [a.replace("SAMPLE", str(sample_dir)).replace("OUT", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "fortran" in captured.err
    for name in BACKENDS:
        assert name in captured.err
    _no_traceback(captured)
    assert not (tmp_path / "x.csv").exists()


def test_bad_out_suffix_exit_2(tmp_path, capsys, sample_dir):
    assert main(["indicators", str(sample_dir), "--out", str(tmp_path / "x.xlsx")]) == 2
    captured = capsys.readouterr()
    assert ".xlsx" in captured.err and ".parquet" in captured.err
    _no_traceback(captured)


@pytest.mark.parametrize("command", ["indicators", "bench"])
def test_missing_input_exit_2(tmp_path, capsys, command):
    missing = tmp_path / "no-such-dir"
    if command == "indicators":
        argv = ["indicators", str(missing), "--out", str(tmp_path / "x.csv")]
    else:
        argv = ["bench", "--input", str(missing), "--out", str(tmp_path / "b")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert str(missing) in captured.err
    _no_traceback(captured)


def test_bad_data_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "BAD.csv"
    bad.write_text("hello,world\n1,2\n")
    assert main(["indicators", str(bad), "--out", str(tmp_path / "x.csv")]) == 2
    captured = capsys.readouterr()
    assert "BAD.csv" in captured.err
    _no_traceback(captured)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--size", "huge"],
        ["bench", "--size", "small", "--symbols", "3", "--days", "10"],
        ["bench", "--symbols", "3"],
        ["bench", "--symbols", "0", "--days", "10"],
        ["bench", "--repeat", "0"],
        ["indicators", "x.csv", "--out", "y.csv", "--macd-fast", "40"],
        ["indicators", "x.csv"],
        [],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err
    _no_traceback(captured)


def test_help_and_version_exit_0(capsys):
    assert main(["--help"]) == 0
    assert main(["bench", "--help"]) == 0
    assert main(["--version"]) == 0
    capsys.readouterr()
    assert main(["indicators", "--help"]) == 0
    assert "--sma-period" in capsys.readouterr().out


def test_train_loads_the_market_by_default():
    from nepse_perf.cli.model import _load_prices
    from nepse_perf.data import market_path

    prices = _load_prices(None)
    assert prices["symbol"].nunique() == 387
    assert len(prices) == len(load_prices(market_path()))


def test_batch_runs_on_the_market_by_default(tmp_path, capsys):
    assert main(["batch", "--out", str(tmp_path / "out"), "--quiet", "--chunk-symbols", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("387 symbols, 447,160 rows, 4 chunks")
