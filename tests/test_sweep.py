"""The panel-size sweep: CPU-only here, the gpu phases in Numba's CUDA simulator, the CLI."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import run_in_cuda_simulator

from nepse_perf import synthetic_prices
from nepse_perf.bench.sweep import (
    GPU_PHASES,
    RECORDED_SWEEP,
    SWEEP_COLUMNS,
    gpu_crossover,
    gpu_transfer_bytes,
    load_recorded_sweep,
    load_sweep,
    panel_size_sweep,
    simulated_gpu_report,
    summary_rows,
    sweep_table,
    write_sweep,
)
from nepse_perf.cli import main
from nepse_perf.indicators.backends.gpu import gpu_available
from nepse_perf.indicators.backends.numpy import to_time_major
from nepse_perf.indicators.panel import panel_from_frame


@pytest.fixture(scope="module")
def cpu_sweep() -> pd.DataFrame:
    return panel_size_sweep([5, 3], 60, ["numba_parallel", "talib"], repeat=2)


def test_cpu_sweep_rows(cpu_sweep) -> None:
    assert list(cpu_sweep.columns) == list(SWEEP_COLUMNS)
    assert list(cpu_sweep["n_symbols"]) == [3, 3, 5, 5]  # sizes ascending
    assert list(cpu_sweep["n_rows"]) == [180, 180, 300, 300]
    assert set(cpu_sweep["check"]) == {"ok"}
    assert (cpu_sweep["median_s"] > 0).all() and (cpu_sweep["repeats"] == 2).all()
    assert cpu_sweep.attrs["device"] is None and cpu_sweep.attrs["n_days"] == 60
    assert list(sweep_table(cpu_sweep).columns) == ["numba_parallel", "talib"]


def test_write_and_load_round_trip(cpu_sweep, tmp_path) -> None:
    paths = write_sweep(cpu_sweep, tmp_path / "out")
    assert all(p.stat().st_size > 0 for p in paths.values())
    back = load_sweep(paths["json"])
    pd.testing.assert_frame_equal(back, cpu_sweep, check_dtype=False)
    assert back.attrs["date"] == cpu_sweep.attrs["date"]
    # a CPU-only sweep is not a GPU record
    assert load_recorded_sweep(paths["json"]) is None
    assert load_recorded_sweep(tmp_path / "missing.json") is None


def test_recorded_path_is_in_the_repository() -> None:
    assert RECORDED_SWEEP.parts[-3:] == ("results", "gpu", "sweep.json")


def test_recorded_gpu_sweep_is_loaded(cpu_sweep, tmp_path) -> None:
    fake = cpu_sweep.copy()
    fake.attrs = {**cpu_sweep.attrs, "device": "NVIDIA Example"}
    path = write_sweep(fake, tmp_path)["json"]
    got = load_recorded_sweep(path)
    assert got is not None and got.attrs["device"] == "NVIDIA Example"


def test_transfer_bytes_are_the_arrays_bytes() -> None:
    panel = panel_from_frame(synthetic_prices(3, 50, seed=1))
    grid, _ = to_time_major(panel, panel.close)
    h2d, d2h = gpu_transfer_bytes(panel)
    assert h2d == 3 * grid.nbytes + 3 * 8 and d2h == 10 * grid.nbytes
    assert gpu_transfer_bytes(panel, np.float32) == (3 * grid.nbytes // 2 + 24, 5 * grid.nbytes)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="symbol_counts"):
        panel_size_sweep([], 10, ["talib"])
    with pytest.raises(ValueError, match="n_days"):
        panel_size_sweep([2], 0, ["talib"])
    with pytest.raises(ValueError, match="unknown backend"):
        panel_size_sweep([2], 10, ["nope"])


@pytest.mark.skipif(gpu_available(), reason="a CUDA GPU is present on this machine")
def test_gpu_without_gpu_is_refused() -> None:
    with pytest.raises(ValueError, match="not available"):
        panel_size_sweep([2], 40, ["gpu"])


SIMULATED = textwrap.dedent(
    """
    import json, sys
    from nepse_perf.bench.sweep import panel_size_sweep, write_sweep
    r = panel_size_sweep([2, 3], 40, ["numba_parallel", "gpu"], repeat=1)
    write_sweep(r, sys.argv[1])
    """
)


def test_simulated_gpu_sweep(tmp_path) -> None:
    run_in_cuda_simulator("-c", SIMULATED, str(tmp_path))
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["device"] == "CUDA simulator" and doc["gpu"] == {"device": "CUDA simulator"}
    rows = pd.DataFrame(doc["rows"])
    gpu = rows[rows["engine"] == "gpu"]
    assert len(gpu) == 2 * 2 * len(GPU_PHASES)  # 2 sizes x 2 dtypes x phases
    totals = gpu[gpu["phase"] == "total"]
    assert list(totals["check"]) == ["ok", "n/a", "ok", "n/a"]  # float64 exact; float32 reported
    assert (totals[totals["dtype"] == "float32"]["max_abs_diff"] > 1e-6).all()
    for (_, _), part in gpu.groupby(["n_symbols", "dtype"]):
        t = dict(zip(part["phase"], part["median_s"], strict=True))
        parts = t["layout"] + t["h2d"] + t["kernel"] + t["d2h"]
        assert t["layout"] >= 0 and parts == pytest.approx(t["total"], rel=1e-9, abs=1e-12)
    assert load_recorded_sweep(tmp_path / "sweep.json") is None  # the simulator is no record


def test_cli_sweep(tmp_path, capsys) -> None:
    out = tmp_path / "sw"
    argv = ["sweep", "--symbols", "4,2", "--days", "50", "--backends", "numba_parallel",
            "--repeat", "1", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "device: no GPU" in captured.out or gpu_available()
    assert "2 sym" in captured.out and "4 sym" in captured.out
    assert {p.name for p in out.iterdir()} == {"sweep.json", "sweep.csv", "sweep.png"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--symbols", "3,x"], "whole number"),
        (["--symbols", "0"], "value must be an int >= 1, got 0"),
        (["--backends", "nope"], "unknown backend"),
    ],
)
def test_cli_sweep_usage_errors(argv, message, capsys, tmp_path) -> None:
    assert main(["sweep", "--days", "40", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_simulated_gpu_report_on_the_sample() -> None:
    from nepse_perf import compute_indicators, load_prices
    from nepse_perf.data import sample_path
    from nepse_perf.lessons.workbook import checksums

    report = simulated_gpu_report(python_args=["-W", "error"])
    assert report["device"] == "CUDA simulator"
    assert report["f64_agrees"] and report["f64_max_abs_diff"] < 1e-7
    assert not report["f32_agrees"]
    # float32 inputs and outputs: visible, bounded differences (NPR, RSI points), NaNs in place
    for col, diff in report["f32_max_abs_diff"].items():
        assert 0 < diff <= 1e-5 * report["ref_max_abs"][col], col
    ref = checksums(compute_indicators(load_prices(sample_path()), "talib"))
    assert report["checksums"] == {c: [int(r["values"]), r["sum"]] for c, r in ref.iterrows()}


def test_summary_rows(cpu_sweep) -> None:
    (row,) = summary_rows(cpu_sweep, labels=["numba_parallel", "missing"])
    label, median, speedup, diff, where = row
    widest = cpu_sweep[(cpu_sweep["n_symbols"] == 5)].set_index("label")["median_s"]
    assert label == "numba_parallel" and median == widest["numba_parallel"]
    assert speedup == pytest.approx(widest["talib"] / widest["numba_parallel"])
    assert diff < 1e-9 and where.startswith("recorded: CPU, 5 symbols x 60 days")


def test_gpu_crossover() -> None:
    rows = []
    for n, cpu, gpu in [(10, 1.0, 5.0), (100, 2.0, 3.0), (1000, 9.0, 4.0), (5000, 40.0, 6.0)]:
        rows.append({"n_symbols": n, "label": "numba_parallel", "median_s": cpu})
        rows.append({"n_symbols": n, "label": "gpu float64: total", "median_s": gpu})
    frame = pd.DataFrame(rows)
    assert gpu_crossover(frame) == 1000
    assert gpu_crossover(frame[frame["n_symbols"] < 1000]) is None
    assert gpu_crossover(frame, "gpu float32: total") is None


def test_on_size_gets_the_results_so_far() -> None:
    seen: list[list[int]] = []
    final = panel_size_sweep(
        [2, 4], 40, ["talib"], repeat=1, on_size=lambda r: seen.append(sorted(set(r["n_symbols"])))
    )
    assert seen == [[2], [2, 4]] and final.attrs["machine"]["cpu_model"]


def test_cli_sweep_saves_after_each_size(tmp_path, capsys) -> None:
    argv = ["sweep", "--symbols", "2,3", "--days", "40", "--backends", "talib", "--repeat", "1",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "saved 1 size(s)" in err and "saved 2 size(s)" in err
    assert len(load_sweep(tmp_path / "sweep.json")) == 2
