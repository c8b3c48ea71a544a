"""The benchmark package: timing rules, checks against TA-Lib, bandwidth and reports (tiny sizes)."""

from __future__ import annotations

import gc
import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from nepse_perf.bench import (
    measure,
    memory_bandwidth,
    pipeline_bound_seconds,
    run_benchmark,
    select_backends,
    timed_call,
    write_reports,
)
from nepse_perf.bench import timing as timing_mod
from nepse_perf.bench.machine import BYTES_PER_ROW, machine_info
from nepse_perf.bench.report import TABLE_HEADERS, format_header, format_table, to_markdown
from nepse_perf.bench.runner import (
    END_TO_END_LABEL,
    END_TO_END_REUSED_LABEL,
    END_TO_END_TALIB_LABEL,
    FRESH_BLOCK_LABEL,
    FRESH_LABEL,
    OVERHEAD_LABEL,
    PYTHON_MAX_ROWS,
    RESULT_COLUMNS,
    REUSED_LABEL,
    STREAM_LABEL,
    STREAM_ONE_LABEL,
    compare_to_reference,
    reference_block,
)
from nepse_perf.data import synthetic_prices
from nepse_perf.indicators import panel_from_frame
from nepse_perf.pipeline import BACKENDS, available_backends, compute_panel


@pytest.fixture(scope="module")
def tiny_prices() -> pd.DataFrame:
    return synthetic_prices(5, 300, seed=1)


@pytest.fixture(scope="module")
def small_bandwidth():
    return memory_bandwidth(size_mib=2, repeat=2)


@pytest.fixture(scope="module")
def results(tiny_prices, small_bandwidth) -> pd.DataFrame:
    return run_benchmark(
        tiny_prices, repeat=2, bandwidth=small_bandwidth, progress=False, dataset="tiny"
    )


# --- measure / timed_call ------------------------------------------------------------------


class FakeClock:
    """perf_counter replacement; the timed function advances it by scripted durations."""

    def __init__(self, durations):
        self.now = 100.0
        self.durations = list(durations)
        self.calls = 0

    def perf_counter(self) -> float:
        return self.now

    def fn(self):
        self.now += self.durations[self.calls]
        self.calls += 1
        return self.calls


def test_measure_excludes_warmup_and_reports_median(monkeypatch):
    clock = FakeClock([5.0, 0.3, 0.1, 0.2, 0.5, 0.4])
    monkeypatch.setattr(timing_mod.time, "perf_counter", clock.perf_counter)
    t = measure(clock.fn, repeat=5, warmup=1)
    assert clock.calls == 6
    assert t.first == pytest.approx(5.0)
    assert t.times == pytest.approx((0.3, 0.1, 0.2, 0.5, 0.4))
    assert t.median == pytest.approx(0.3)
    assert t.median == pytest.approx(statistics.median(t.times))
    assert t.best == pytest.approx(0.1)
    assert t.repeat == 5
    assert "median" in str(t)


def test_measure_several_warmups_and_none(monkeypatch):
    clock = FakeClock([4.0, 3.0, 1.0, 2.0])
    monkeypatch.setattr(timing_mod.time, "perf_counter", clock.perf_counter)
    t = measure(clock.fn, repeat=2, warmup=2)
    assert t.first == pytest.approx(4.0)
    assert t.times == pytest.approx((1.0, 2.0))
    assert t.median == pytest.approx(1.5)
    t0 = measure(lambda: None, repeat=1, warmup=0)
    assert t0.first is None and len(t0.times) == 1


@pytest.mark.parametrize("kwargs", [{"repeat": 0}, {"repeat": 1.5}, {"warmup": -1}])
def test_measure_rejects_bad_counts(kwargs):
    with pytest.raises(ValueError):
        measure(lambda: None, **kwargs)


def test_timed_call_disables_gc_and_restores_it(monkeypatch):
    import nepse_perf.bench.timing as timing_module

    ticks = iter([10.0, 12.5])  # the clock read before and after the call
    monkeypatch.setattr(timing_module.time, "perf_counter", lambda: next(ticks))
    seen = []
    assert gc.isenabled()
    elapsed, result = timed_call(lambda: seen.append(gc.isenabled()) or 42)
    monkeypatch.undo()
    assert seen == [False] and result == 42 and elapsed == 2.5
    assert gc.isenabled()
    gc.disable()
    try:
        timed_call(lambda: None)
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- machine -------------------------------------------------------------------------------


def test_memory_bandwidth_positive(small_bandwidth):
    assert small_bandwidth.copy_gbps > 0 and math.isfinite(small_bandwidth.copy_gbps)
    assert small_bandwidth.read_gbps > 0 and math.isfinite(small_bandwidth.read_gbps)
    assert small_bandwidth.size_mib == pytest.approx(2)
    with pytest.raises(ValueError):
        memory_bandwidth(size_mib=0)


def test_pipeline_bound():
    assert BYTES_PER_ROW == 104
    assert pipeline_bound_seconds(1_000_000, 10.0) == pytest.approx(104e6 / 10e9)


def test_machine_info_keys():
    info = machine_info()
    for key in ("cpu_model", "logical_cores", "physical_cores", "memory_total_gb", "os",
                "python", "numpy", "pandas", "numba", "llvmlite", "talib", "numba_threads",
                "datetime"):  # fmt: skip
        assert key in info, key
    assert info["logical_cores"] >= 1
    json.dumps(info)


# --- backend selection and checks ----------------------------------------------------------


def test_select_backends_default_skips_python_only_when_large():
    names, notes = select_backends(None, 1000)
    assert names == available_backends()
    assert len(notes) == len(BACKENDS) - len(names)  # one note per unavailable backend (gpu)
    names, notes = select_backends(None, PYTHON_MAX_ROWS + 1)
    assert "python" not in names and any("python skipped" in n for n in notes)
    names, _ = select_backends(["python", "numba", "python"], PYTHON_MAX_ROWS + 1)
    assert names == ["python", "numba"]


def test_select_backends_unknown_lists_valid():
    with pytest.raises(ValueError, match="numba_parallel"):
        select_backends(["nope"], 10)


def test_compare_to_reference_flags_differences(tiny_prices):
    panel = panel_from_frame(tiny_prices)
    ref = reference_block(panel)
    got = compute_panel(panel, "talib")
    assert compare_to_reference(got, ref) == (0.0, True, True)
    bad = got.copy()
    bad[2, 100] += 1e-3
    diff, nan_match, ok = compare_to_reference(bad, ref)
    assert diff == pytest.approx(1e-3) and nan_match and not ok
    bad[0, 0] = 1.0  # a value where TA-Lib has NaN (warm-up)
    assert compare_to_reference(bad, ref)[1:] == (False, False)


# --- run_benchmark -------------------------------------------------------------------------


def test_run_benchmark_rows_and_checks(results):
    assert list(results.columns) == list(RESULT_COLUMNS)
    backends = []
    for name in available_backends():
        fused = [name, REUSED_LABEL, FRESH_LABEL, FRESH_BLOCK_LABEL]
        backends += fused if name == "numba_parallel" else [name]
    assert list(results["label"]) == [
        *backends,
        OVERHEAD_LABEL,
        END_TO_END_LABEL,
        END_TO_END_TALIB_LABEL,
        END_TO_END_REUSED_LABEL,
        STREAM_LABEL,
        STREAM_ONE_LABEL,
    ]
    checked = results[~results["kind"].isin(["overhead", "memory", "stream"])]
    assert (checked["check"] == "ok").all(), checked[["label", "max_abs_diff", "check"]]
    assert checked["nan_match"].astype(bool).all()
    assert (checked["max_abs_diff"] < 1e-6).all()
    assert (results["repeats"] == 2).all()
    assert (results["median_s"] > 0).all()
    assert (results["rows_per_s"] > 0).all()
    pandas_row = results.set_index("label").loc["pandas"]
    assert pandas_row["speedup_vs_pandas"] == 1.0
    overhead = results.set_index("label").loc[OVERHEAD_LABEL]
    assert overhead["check"] == "n/a" and math.isnan(overhead["speedup_vs_pandas"])
    talib_row = results.set_index("label").loc["talib"]
    assert talib_row["speedup_vs_talib"] == 1.0
    memory = results.set_index("label").loc[FRESH_BLOCK_LABEL]
    assert memory["kind"] == "memory" and math.isnan(memory["speedup_vs_talib"])
    jit = results.set_index("label")["jit"]
    assert jit["numba"] and jit["numba_parallel"] and jit[REUSED_LABEL] and not jit["pandas"]
    assert results.attrs["n_rows"] == 1500 and results.attrs["n_symbols"] == 5
    assert results.attrs["bound_s"] > 0
    batch = results["kind"] != "stream"
    ratio = results.loc[batch, "median_s"] / results.attrs["bound_s"]
    np.testing.assert_allclose(results.loc[batch, "x_bandwidth_bound"], ratio)
    stream = results.set_index("label").loc[[STREAM_LABEL, STREAM_ONE_LABEL]]
    assert (stream["check"] == "n/a").all() and stream["x_bandwidth_bound"].isna().all()
    np.testing.assert_allclose(stream["rows_per_s"], [5, 1] / stream["median_s"])
    assert any("garbage collector disabled" in n for n in results.attrs["notes"])


def test_run_benchmark_panel_without_pandas(tiny_prices, small_bandwidth):
    panel = panel_from_frame(tiny_prices)
    res = run_benchmark(
        panel, ["talib", "numpy"], repeat=1, bandwidth=small_bandwidth, progress=False
    )
    assert list(res["label"]) == ["talib", "numpy"]
    assert res["speedup_vs_pandas"].isna().all()
    assert (res["check"] == "ok").all()
    assert "n/a" in format_table(res)
    with pytest.raises(ValueError, match="valid backends"):
        run_benchmark(panel, ["bogus"], bandwidth=small_bandwidth, progress=False)
    with pytest.raises(ValueError, match="repeat"):
        run_benchmark(panel, ["talib"], repeat=0, bandwidth=small_bandwidth, progress=False)


# --- reports -------------------------------------------------------------------------------


def test_table_and_markdown(results):
    info = machine_info()
    text = format_table(results)
    lines = text.splitlines()
    for header in TABLE_HEADERS:
        assert header in lines[0]
    assert len(lines) == 2 + len(results)
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned
    assert "1.00x" in text and "ok" in text
    header = format_header(results, info)
    assert "GB/s" in header and info["cpu_model"] in header
    md = to_markdown(results, info)
    assert md.count("\n| ") >= len(results) + 1 and "---:" in md


def test_write_reports(results, tmp_path):
    info = machine_info()
    paths = write_reports(results, info, tmp_path / "out")
    assert set(paths) == {"csv", "md", "png", "json"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == list(RESULT_COLUMNS) and len(csv) == len(results)
    doc = json.loads(paths["json"].read_text())
    for key in ("machine", "dataset", "n_rows", "bandwidth", "bound_s", "notes", "rows"):
        assert key in doc
    for key in ("cpu_model", "logical_cores", "physical_cores", "memory_total_gb", "numpy",
                "pandas", "numba", "talib", "llvmlite", "numba_threads", "datetime"):  # fmt: skip
        assert key in doc["machine"]
    assert doc["bandwidth"]["copy_gbps"] > 0
    assert len(doc["rows"]) == len(results)
    assert doc["rows"][1]["label"] == "pandas" and doc["rows"][1]["speedup_vs_pandas"] == 1.0
    assert any(r["label"] == REUSED_LABEL for r in doc["rows"])
    assert "| backend |" in paths["md"].read_text()


def test_unavailable_backend_is_refused_with_the_reason():
    missing = [n for n in BACKENDS if n not in available_backends()]
    if not missing:
        pytest.skip("every backend is available on this machine (a CUDA GPU is present)")
    with pytest.raises(ValueError, match=r"not available on this machine.*NUMBA_ENABLE_CUDASIM"):
        select_backends(missing, 1000)
