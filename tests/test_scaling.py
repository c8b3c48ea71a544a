"""The rows x threads scaling run of the fused kernel, its table, chart and files (tiny sizes)."""

from __future__ import annotations

import json

import numba
import numpy as np
import pandas as pd
import pytest

from nepse_perf.bench import memory_bandwidth
from nepse_perf.bench.scaling import (
    OUTPUTS,
    plot_scaling,
    random_walk_panel,
    scaling_summary,
    thread_scaling,
    write_scaling,
)
from nepse_perf.cli import main
from nepse_perf.pipeline import compute_panel


@pytest.fixture(scope="module")
def scaling() -> pd.DataFrame:
    bw = memory_bandwidth(size_mib=2, repeat=2)
    return thread_scaling([3_000, 20_000], threads=(1, 2, 999), repeat=2, days=500, bandwidth=bw)


def test_random_walk_panel_is_valid_and_matches_talib() -> None:
    panel = random_walk_panel(1_234, days=500, seed=3)
    assert panel.n_rows == 1_234 and panel.n_symbols == 3
    assert list(np.diff(panel.offsets)) == [500, 500, 234]
    assert (panel.low <= panel.close).all() and (panel.close <= panel.high).all()
    assert (panel.close > 0).all()
    from nepse_perf.bench.runner import compare_to_reference, reference_block

    _, nan_match, ok = compare_to_reference(compute_panel(panel), reference_block(panel))
    assert nan_match and ok


def test_rows_threads_and_outputs(scaling: pd.DataFrame) -> None:
    threads = [t for t in (1, 2) if t <= numba.config.NUMBA_NUM_THREADS]
    assert len(scaling) == 2 * len(threads) * len(OUTPUTS)
    assert set(scaling["output"]) == set(OUTPUTS)
    assert sorted(set(scaling["threads"])) == threads
    assert (scaling["q1_s"] <= scaling["median_s"]).all()
    assert (scaling["median_s"] <= scaling["q3_s"]).all()
    np.testing.assert_allclose(
        scaling["x_bandwidth_bound"], scaling["median_s"] / scaling["bound_s"]
    )
    np.testing.assert_allclose(scaling["ns_per_row"], scaling["median_s"] / scaling["n_rows"] * 1e9)
    assert any("999" not in n and "skipped" in n for n in scaling.attrs["notes"])
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # restored


def test_summary_chart_and_files(scaling: pd.DataFrame, tmp_path) -> None:
    table = scaling_summary(scaling)
    assert table.shape[0] == 2 * len(OUTPUTS) and "1 thread" in table.columns
    assert plot_scaling(scaling).get_ylabel().startswith("ns per row")
    paths = write_scaling(scaling, tmp_path / "s")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(paths["json"].read_text())
    assert len(doc["rows"]) == len(scaling) and doc["bandwidth"]["copy_gbps"] > 0
    assert len(pd.read_csv(paths["csv"])) == len(scaling)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="repeat"):
        thread_scaling([100], repeat=0)
    with pytest.raises(ValueError, match=r"rows\[0\] must be an int >= 1, got 0"):
        thread_scaling([0, 10])
    with pytest.raises(ValueError, match="at least one panel size"):
        thread_scaling([])


def test_cli_bench_scaling(tmp_path, capsys) -> None:
    out = tmp_path / "b"
    argv = ["bench", "--symbols", "2", "--days", "100", "--backends", "numba_parallel",
            "--repeat", "1", "--quiet", "--bandwidth-mib", "2", "--out", str(out),
            "--scaling", "--scaling-rows", "1000,5000"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "by rows and threads" in captured.out
    for name in ("scaling.csv", "scaling.json", "scaling.png", "bench.csv"):
        assert (out / name).stat().st_size > 0
