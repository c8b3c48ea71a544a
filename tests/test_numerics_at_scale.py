"""Every backend equals TA-Lib at the sizes the bench offers, and on the numerics that break first.

The small panels of ``test_backends.py`` never showed that pandas' online rolling variance
carries rounding from a symbol's whole history into later windows: it took the ``large``
benchmark panel (2,000 symbols x 5,000 sessions) to print FAIL. These tests try what the
bench offers: the ``large`` panel itself (with the bench's own reference and check), its
hardest symbols for every backend, and targeted constructions that reproduce the same
numerics in a few thousand rows: long series, flat and one-tick windows after a crash from a
high price level, very high and very low price levels, and many symbols.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import assert_matches_talib, make_prices, talib_reference

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.bench.runner import SIZES, compare_to_reference, reference_block
from nepse_perf.indicators.panel import panel_from_frame
from nepse_perf.indicators.params import IndicatorParams
from nepse_perf.pipeline import available_backends, get_backend

ALL = sorted(available_backends())  # gpu only with a CUDA GPU; simulated below


def hard_closes(seed: int = 13) -> dict[str, np.ndarray]:
    """Closes that stress rolling sums: long, flat after a crash, very high, very low.

    ``stepping`` windows hold one tick among identical closes (a tiny non-zero variance);
    the flat stretches are exactly-zero variance windows, which the square root magnifies.
    """
    rng = np.random.default_rng(seed)

    def walk(level: float, n: int, vol: float, tick: float) -> np.ndarray:
        x = level * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
        return np.maximum(np.round(x / tick) * tick, tick)

    def stepping(level: float, n: int, tick: float, every: int) -> np.ndarray:
        x = np.full(n, level)
        x[::every] += tick
        return np.round(x / tick) * tick

    return {
        "LONG": walk(300.0, 20_000, 0.02, 0.1),
        "CRASH": np.r_[walk(46_600.0, 3_000, 0.02, 0.1), np.full(50, 25.0), stepping(25.0, 1_000, 0.1, 23)],
        "HIGH": np.r_[walk(46_600.0, 2_000, 0.03, 0.1), np.full(60, 46_612.3), stepping(46_612.3, 500, 0.1, 21)],
        "LOW": np.r_[walk(2.0, 3_000, 0.02, 0.01), np.full(40, 0.01), stepping(0.5, 500, 0.01, 25)],
        "JUMP": np.r_[walk(5.0, 2_000, 0.02, 0.1), walk(40_000.0, 2_000, 0.02, 0.1), np.full(45, 30.0), stepping(30.0, 400, 0.1, 20)],
    }  # fmt: skip


@pytest.fixture(scope="module")
def hard() -> tuple[pd.DataFrame, pd.DataFrame]:
    prices = make_prices(hard_closes())
    return prices, talib_reference(prices)


@pytest.mark.parametrize("backend", ALL)
def test_hard_numerics(backend: str, hard: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    prices, ref = hard
    assert_matches_talib(compute_indicators(prices, backend), ref)


@pytest.mark.parametrize("backend", ALL)
def test_hard_numerics_with_other_windows(backend: str) -> None:
    closes = {k: v[-3_000:] for k, v in hard_closes(seed=5).items()}
    prices = make_prices(closes)
    params = {"bb_period": 7, "bb_nbdev": 2.5, "sma_period": 50, "atr_period": 21}
    got = compute_indicators(prices, backend, **params)
    assert_matches_talib(got, talib_reference(prices, **params))


@pytest.mark.parametrize("backend", ALL)
def test_many_symbols(backend: str) -> None:
    """Thousands of short symbols: offsets, first bars and symbol boundaries at scale."""
    prices = synthetic_prices(3_000, 40, seed=21)
    panel = panel_from_frame(prices)
    ref = reference_block(panel)
    out = np.empty_like(ref)
    get_backend(backend).compute(panel, IndicatorParams(), out)
    worst, nan_match, ok = compare_to_reference(out, ref)
    assert nan_match and ok, f"{backend}: max abs diff {worst:.3g}"


@pytest.fixture(scope="module")
def large_panel():
    """The ``large`` benchmark panel, exactly as ``nepse-perf bench --size large`` builds it."""
    n_symbols, n_days = SIZES["large"]
    return panel_from_frame(synthetic_prices(n_symbols, n_days))


@pytest.fixture(scope="module")
def large_reference(large_panel) -> np.ndarray:
    return reference_block(large_panel)


def _hardest_symbols(panel, count: int) -> list[int]:
    """The symbols that stress rolling sums most: half with the longest runs of identical
    closes (flat windows, where a carried rounding residue is magnified by the square root),
    half with the deepest fall from their maximum (flat floors after a high level)."""
    close, offsets = panel.close, panel.offsets
    symbol_of_row = np.repeat(np.arange(panel.n_symbols), np.diff(offsets))
    same = np.r_[False, close[1:] == close[:-1]]
    same[offsets[:-1]] = False  # a run never crosses into the next symbol
    run_id = np.cumsum(~same) - 1
    run_length = np.bincount(run_id)
    longest = np.zeros(panel.n_symbols, dtype=np.int64)
    np.maximum.at(longest, symbol_of_row[np.flatnonzero(~same)], run_length)
    fall = np.minimum.reduceat(close, offsets[:-1]) / np.maximum.reduceat(close, offsets[:-1])
    picked = list(np.argsort(-longest, kind="stable")[: count // 2])
    picked += [s for s in np.argsort(fall, kind="stable") if s not in picked][: count - len(picked)]
    return [int(s) for s in picked]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ALL)
def test_large_panel_hardest_symbols(backend: str, large_panel) -> None:
    """Every backend on the large panel's 40 most demanding symbols, all 5,000 sessions."""
    from nepse_perf.engines.pool import sub_panel

    parts = [sub_panel(large_panel, s, s + 1) for s in _hardest_symbols(large_panel, 40)]
    for part in parts:
        ref = reference_block(part)
        out = np.empty_like(ref)
        get_backend(backend).compute(part, IndicatorParams(), out)
        worst, nan_match, ok = compare_to_reference(out, ref)
        assert nan_match and ok, f"{backend} on {part.symbols[0]}: max abs diff {worst:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pandas", "numba_parallel"])
def test_large_panel_whole(backend: str, large_panel, large_reference) -> None:
    """The bench's own check on the whole large panel (10 million rows)."""
    ref = large_reference
    out = np.empty_like(ref)
    get_backend(backend).compute(large_panel, IndicatorParams(), out)
    worst, nan_match, ok = compare_to_reference(out, ref)
    assert nan_match and ok, f"{backend}: max abs diff {worst:.3g}"


SIMULATED = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from conftest import assert_matches_talib, make_prices, talib_reference
    from test_numerics_at_scale import hard_closes
    from nepse_perf import compute_indicators

    closes = {k: v[-1_200:] for k, v in hard_closes().items()}
    prices = make_prices(closes)
    assert_matches_talib(compute_indicators(prices, "gpu"), talib_reference(prices))
    print("ok")
    """
)


@pytest.mark.slow
def test_hard_numerics_gpu_kernel_in_the_simulator(tmp_path) -> None:
    """The gpu kernel on the same constructions (shortened: the simulator is slow)."""
    script = tmp_path / "simulated.py"
    script.write_text(SIMULATED)
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script), os.path.dirname(__file__)],
        env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "ok"


def test_constructions_reproduce_the_old_failure() -> None:
    """The constructions are hard enough: pandas' rolling var misses TA-Lib on them."""
    prices = make_prices({"CRASH": hard_closes()["CRASH"]})
    close = prices["close"]
    rolling_sd = np.sqrt(close.rolling(20).var(ddof=0).clip(lower=0.0)) * 2.0
    ref = talib_reference(prices)
    width = ref["bb_upper"] - ref["bb_middle"]
    assert float(np.nanmax(np.abs(rolling_sd - width))) > 1e-6
    assert_matches_talib(compute_indicators(prices, "pandas"), ref)
