"""The output-block pool: recycles only blocks nobody uses, and compute_indicators(out=)."""

from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import assert_matches_talib, talib_reference

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf._blocks import BlockPool, pool
from nepse_perf.indicators import panel_from_frame
from nepse_perf.pipeline import BACKENDS, compute_panel, frame_from_block, new_block


def test_a_freed_block_comes_back_and_a_used_one_does_not() -> None:
    p = BlockPool(min_bytes=0, max_free=2)
    a = p.take(1000)
    a_data = a.__array_interface__["data"][0]
    b = p.take(1000)  # a is still alive: b must be another block
    assert b.__array_interface__["data"][0] != a_data
    view = a[3]  # a view keeps a's block in use even after `a` itself is gone
    del a
    gc.collect()
    c = p.take(1000)
    assert c.__array_interface__["data"][0] != a_data
    del view
    gc.collect()
    d = p.take(1000)
    assert d.__array_interface__["data"][0] == a_data
    assert (p.hits, p.misses) == (1, 3)
    assert d.shape == (10, 1000) and d.dtype == np.float64 and d.flags.c_contiguous


def test_sizes_thresholds_and_limits() -> None:
    p = BlockPool(min_bytes=10 * 8 * 100, max_free=1)
    small = p.take(99)  # below min_bytes: plain np.empty, never pooled
    del small
    gc.collect()
    assert p.free_bytes == 0 and p.misses == 0
    a, b, c = p.take(100), p.take(100), p.take(200)
    del a
    del b
    del c
    gc.collect()
    assert p.free_bytes == 10 * 8 * 200  # only the last freed block (c) is kept
    assert p.take(100).shape == (10, 100) and p.hits == 0  # size differs: a new one
    p.clear()
    assert p.free_bytes == 0
    off = BlockPool(min_bytes=0, enabled=False)
    x = off.take(10)
    del x
    gc.collect()
    assert off.free_bytes == 0


def test_frames_keep_their_block_alive() -> None:
    """A DataFrame built on a pooled block must never see it recycled under it."""
    prices = synthetic_prices(30, 4000, seed=1)  # 120k rows: 9.6 MB, above the threshold
    first = compute_indicators(prices)
    snapshot = first.to_numpy().copy()
    for _ in range(3):
        compute_indicators(prices, sma_period=5)
        gc.collect()
    np.testing.assert_array_equal(first.to_numpy(), snapshot)
    del first
    gc.collect()
    hits = pool().hits
    compute_indicators(prices)
    assert pool().hits == hits + 1


def test_pool_can_be_switched_off() -> None:
    code = "from nepse_perf._blocks import pool; print(pool().enabled)"
    env = {"NEPSE_PERF_BLOCK_POOL": "0", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("shuffle", [False, True])
def test_compute_indicators_into_out(shuffle: bool) -> None:
    prices = synthetic_prices(4, 300, seed=2)
    if shuffle:
        prices = prices.sample(frac=1.0, random_state=0)
    out = np.full((10, len(prices)), -1.0)
    got = compute_indicators(prices, out=out)
    assert_matches_talib(got, talib_reference(prices))
    assert np.shares_memory(got.to_numpy(), out)
    pd.testing.assert_frame_equal(got, compute_indicators(prices))
    again = compute_indicators(prices, out=out, rsi_period=5)
    assert np.shares_memory(again.to_numpy(), out)
    pd.testing.assert_frame_equal(again, compute_indicators(prices, rsi_period=5))


@pytest.mark.parametrize(
    "bad",
    [
        np.empty((10, 5)),
        np.empty((9, 1200)),
        np.empty((10, 1200), dtype=np.float32),
        np.empty((1200, 10)).T,
        "not an array",
    ],
)
def test_out_must_fit(bad) -> None:
    prices = synthetic_prices(4, 300, seed=2)
    with pytest.raises(ValueError, match=r"out must be a writeable C-contiguous float64 array"):
        compute_indicators(prices, out=bad)
    with pytest.raises(ValueError, match=r"out must be"):
        compute_panel(panel_from_frame(prices), "numba", out=bad)


def test_new_block_shape() -> None:
    b = new_block(7)
    assert b.shape == (10, 7) and b.dtype == np.float64


def test_backends_declare_their_capabilities() -> None:
    fused = BACKENDS["numba_parallel"]
    assert fused.threaded and fused.releases_gil and fused.serial is not None
    assert fused.panel_kernel is not None and fused.single_thread() is fused.serial
    numba_backend = BACKENDS["numba"]
    assert numba_backend.panel_kernel is not None and not numba_backend.releases_gil
    for name in ("python", "pandas", "numpy", "talib"):
        b = BACKENDS[name]
        assert b.single_thread() is b.compute and b.panel_kernel is None and not b.threaded


def test_frame_over_any_block_layout() -> None:
    """The frame wraps a C-contiguous block without a copy (pandas' blocks constructor) and
    gives the same frame as the ``DataFrame`` constructor does for a Fortran-ordered one."""
    prices = synthetic_prices(n_symbols=3, n_days=80, seed=2)
    panel = panel_from_frame(prices)
    block = compute_panel(panel)
    wrapped = frame_from_block(block, panel, prices.index)
    assert np.shares_memory(wrapped.to_numpy(), block) and wrapped._mgr.nblocks == 1
    fortran = frame_from_block(np.asfortranarray(block), panel, prices.index)
    pd.testing.assert_frame_equal(wrapped, fortran)
    pd.testing.assert_frame_equal(wrapped, compute_indicators(prices))
