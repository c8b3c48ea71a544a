"""The gpu backend: a clear error without a GPU, and TA-Lib-exact in Numba's CUDA simulator."""

from __future__ import annotations

import os
import textwrap

import pytest
from conftest import run_in_cuda_simulator

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.indicators.backends.gpu import GPUUnavailableError, gpu_available

SIMULATED = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from conftest import make_prices, talib_reference, assert_matches_talib
    from nepse_perf import compute_indicators, synthetic_prices
    from nepse_perf.indicators import panel_from_frame, IndicatorParams
    from nepse_perf.indicators.backends.gpu import compute_with_timing, device_name
    from nepse_perf.lessons.workbook import max_abs_diff

    rng = np.random.default_rng(5)
    walk = np.round(400 * np.exp(np.cumsum(rng.normal(0, 0.02, 70))), 1)
    late = walk.copy()
    late[:4] = np.nan
    prices = make_prices({"WALK": walk, "SHORT": walk[:20], "TINY": walk[:3], "FLAT":
                          np.full(40, 46612.3), "LATE": late})
    got = compute_indicators(prices, "gpu")
    assert_matches_talib(got, talib_reference(prices))
    params = dict(sma_period=5, ema_period=9, rsi_period=3, macd_fast=4, macd_slow=11,
                  macd_signal=3, bb_period=6, bb_nbdev=1.5, atr_period=4)
    assert_matches_talib(compute_indicators(prices, "gpu", **params),
                         talib_reference(prices, **params))
    syn = synthetic_prices(6, 90, seed=3)
    panel = panel_from_frame(syn)
    ref = compute_indicators(syn, "talib").to_numpy().T
    out64 = np.empty((10, panel.n_rows)); out32 = np.empty((10, panel.n_rows))
    timing = compute_with_timing(panel, IndicatorParams(), out64)
    compute_with_timing(panel, IndicatorParams(), out32, dtype=np.float32)
    print(json.dumps({"device": device_name(), "f64": max_abs_diff(out64, ref),
                      "f32": max_abs_diff(out32, ref), "kernel_s": timing.kernel}))
    """
)


def test_simulated_kernel_matches_talib(tmp_path) -> None:
    """The CUDA kernel's logic, run by Numba's CUDA simulator on a small panel."""
    script = tmp_path / "simulated.py"
    script.write_text(SIMULATED)
    proc = run_in_cuda_simulator(str(script), os.path.dirname(__file__))
    import json

    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["device"] == "CUDA simulator"
    assert report["f64"] < 1e-8  # float64: TA-Lib-exact (relative 1e-9 at these prices)
    assert 1e-6 < report["f32"] < 1e-1  # float32 storage: visible but small rounding


@pytest.mark.skipif(gpu_available(), reason="a CUDA GPU is present on this machine")
def test_without_gpu_the_error_says_so() -> None:
    with pytest.raises(GPUUnavailableError, match=r"needs an NVIDIA GPU.*NUMBA_ENABLE_CUDASIM=1"):
        compute_indicators(synthetic_prices(2, 40), "gpu")


def test_compiled_layout_equals_the_numpy_scatter() -> None:
    """The backend's compiled time-major gather and scatter-back give the NumPy backend's layout."""
    import numpy as np
    from conftest import make_prices

    from nepse_perf.indicators import panel_from_frame
    from nepse_perf.indicators.backends.gpu import from_device_layout, to_device_layout
    from nepse_perf.indicators.backends.numpy import to_time_major
    from nepse_perf.indicators.layout import N_OUT

    rng = np.random.default_rng(2)
    walk = np.round(300 * np.exp(np.cumsum(rng.normal(0, 0.02, 60))), 1)
    late = walk.copy()
    late[:6] = np.nan
    panel = panel_from_frame(make_prices({"A": walk, "B": walk[:25], "C": walk[:1], "LATE": late}))
    *grids, lengths = to_device_layout(panel)
    assert list(lengths) == list(panel.offsets[1:] - panel.starts)
    for grid, values in zip(grids, (panel.close, panel.high, panel.low), strict=True):
        old, (rows, bar, sym) = to_time_major(panel, values)
        assert grid.shape == old.shape
        assert np.array_equal(grid[bar, sym], old[bar, sym])  # every valid cell, bit for bit
    # back: outputs scattered to panel order, leading rows (before a symbol's first bar) NaN
    stacked = np.stack([grids[0] * (k + 1) for k in range(N_OUT)])
    out = np.zeros((N_OUT, panel.n_rows))
    from_device_layout(stacked, panel, out)
    expected = np.full((N_OUT, panel.n_rows), np.nan)
    for k in range(N_OUT):
        expected[k, rows] = stacked[k][bar, sym]
    assert np.array_equal(out, expected, equal_nan=True)
