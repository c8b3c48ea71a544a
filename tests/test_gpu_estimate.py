"""The GPU estimate of notebook 08: its parts follow the stated model."""

from __future__ import annotations

import pandas as pd
import pytest

from nepse_perf.bench.gpu_estimate import (
    ASSUMED_CYCLES_PER_BAR,
    ASSUMED_LAUNCH_S,
    BYTES_PER_ROW_FLOAT64,
    H200_SXM,
    PCIE_GBPS,
    cpu_curve,
    cpu_seconds,
    estimate_covariance_seconds,
    estimate_crossover,
    estimate_gpu_seconds,
    estimate_table,
)


def test_parts_follow_the_model() -> None:
    est = estimate_gpu_seconds(300, 2_500, H200_SXM, layout_s_per_input_row=3e-9)
    rows = 300 * 2_500
    assert est["layout"] == pytest.approx(3e-9 * rows * 13 / 3)
    assert est["copies"] == pytest.approx(rows * BYTES_PER_ROW_FLOAT64 / 63e9)
    chain = 2_500 * ASSUMED_CYCLES_PER_BAR / 1.98e9  # few symbols: one thread's chain
    assert est["kernel"] == pytest.approx(chain + ASSUMED_LAUNCH_S)
    assert est["total"] == pytest.approx(est["layout"] + est["copies"] + est["kernel"])
    assert PCIE_GBPS[H200_SXM.pcie] == 63.0 and H200_SXM.thread_slots == 132 * 2048


def test_kernel_is_flat_until_the_card_is_full_then_bandwidth_bound() -> None:
    small = estimate_gpu_seconds(10, 2_500, H200_SXM, layout_s_per_input_row=0.0)["kernel"]
    full = estimate_gpu_seconds(1_000, 2_500, H200_SXM, layout_s_per_input_row=0.0)["kernel"]
    assert small == full  # same chain length, more threads in flight
    huge = 10 * H200_SXM.thread_slots
    est = estimate_gpu_seconds(huge, 2_500, H200_SXM, layout_s_per_input_row=0.0)
    assert est["kernel"] >= huge * 2_500 * BYTES_PER_ROW_FLOAT64 / 4.8e12


def test_cpu_curve_and_crossover() -> None:
    sweep = pd.DataFrame(
        {
            "label": ["numba_parallel"] * 3 + ["talib"],
            "n_rows": [4_000, 1_000, 2_000, 1_000],
            "median_s": [1e-6 + 1e-10 * r for r in (4_000, 1_000, 2_000)] + [1.0],
        }
    )
    curve = cpu_curve(sweep, "numba_parallel")
    assert list(curve[0]) == [1_000, 2_000, 4_000]
    assert cpu_seconds(curve, 1_500) == pytest.approx(1e-6 + 1.5e-7)  # interpolated
    assert cpu_seconds(curve, 10) == pytest.approx(1e-6 + 1e-7)  # narrowest point's time
    assert cpu_seconds(curve, 8_000) == pytest.approx(2 * (1e-6 + 4e-7))  # per-row of widest
    table = estimate_table([10, 1_000, 100_000], 2_500, H200_SXM, curve, layout_s_per_input_row=0.0)
    assert list(table.columns) == [
        "cpu (measured curve)",
        "gpu kernel only (estimate)",
        "gpu total (estimate)",
    ]
    assert estimate_crossover(table, "gpu kernel only (estimate)") == 100_000
    slow_layout = estimate_table([10, 1_000], 2_500, H200_SXM, curve, layout_s_per_input_row=1e-6)
    assert estimate_crossover(slow_layout, "gpu total (estimate)") is None
    with pytest.raises(ValueError, match="two sweep points"):
        cpu_curve(sweep, "talib")
    both = cpu_curve(sweep.assign(label=["a", "b", "a", "b"]), ["a", "b"])  # best per width
    assert list(both[0]) == [1_000, 2_000, 4_000]
    assert list(both[1]) == [1e-6 + 1e-10 * r for r in (1_000, 2_000, 4_000)]


def test_crossover_needs_every_wider_width() -> None:
    table = pd.DataFrame(
        {"cpu (measured curve)": [1.0, 1.0, 1.0, 1.0], "gpu": [0.5, 2.0, 0.5, 0.5]},
        index=[10, 30, 100, 300],
    )
    assert estimate_crossover(table, "gpu") == 100
    assert estimate_crossover(table.iloc[:2], "gpu") is None


def test_layout_per_row_and_covariance_estimates() -> None:
    whole = estimate_gpu_seconds(300, 2_500, H200_SXM, layout_s_per_row=13e-9)
    inputs = estimate_gpu_seconds(300, 2_500, H200_SXM, layout_s_per_input_row=3e-9)
    assert whole["layout"] == pytest.approx(inputs["layout"]) == pytest.approx(13e-9 * 750_000)
    with pytest.raises(ValueError, match="exactly one"):
        estimate_gpu_seconds(3, 10, H200_SXM)
    est = estimate_covariance_seconds(500, 2_500, 250, 50, H200_SXM)
    assert est["compute"] == pytest.approx(2 * 500**2 * 250 * 46 / 34e12)
    assert est["copies"] == pytest.approx(8 * (2_500 * 500 + 46 * 500**2) / 63e9)
    assert est["total"] == pytest.approx(est["compute"] + est["copies"] + ASSUMED_LAUNCH_S)
