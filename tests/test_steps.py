"""The step functions: one definition per indicator, the same bits in Python and compiled."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from nepse_perf.indicators import steps, targets
from nepse_perf.indicators.backends import numba_parallel
from nepse_perf.indicators.backends import python as python_backend


def drive(ns, n_bars: int, seed: int, level: float = 300.0) -> np.ndarray:
    """Run all six ``*_update`` functions of namespace ``ns`` over one random series."""
    rng = np.random.default_rng(seed)
    c = np.round(level * np.exp(np.cumsum(rng.normal(0, 0.02, n_bars))), 1)
    h, lo = c * 1.01, c * 0.99
    states = [
        ns.sma_init(20),
        ns.ema_init(20),
        ns.rsi_init(14),
        ns.macd_init(12, 26, 9),
        ns.bbands_init(20, 2.0),
        ns.atr_init(14),
    ]
    out = np.empty((10, n_bars))
    for j in range(n_bars):
        sma, ema, rsi, macd, bb, atr = states
        sma, out[0, j] = ns.sma_update(sma, j, c, j, 1)
        ema, out[1, j] = ns.ema_update(ema, j, c[j])
        rsi, out[2, j] = ns.rsi_update(rsi, j, c[j])
        macd, out[3, j], out[4, j], out[5, j] = ns.macd_update(macd, j, c[j])
        bb, out[6, j], out[7, j], out[8, j] = ns.bbands_update(bb, j, c, j, 1)
        atr, out[9, j] = ns.atr_update(atr, j, h[j], lo[j], c[j])
        states = [sma, ema, rsi, macd, bb, atr]
    return out, c, h, lo


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n_bars=st.integers(1, 120))
def test_compiled_steps_equal_python_steps_bit_for_bit(seed: int, n_bars: int) -> None:
    plain, *_ = drive(steps, n_bars, seed)
    compiled, *_ = drive(targets.cpu_steps()["steps"], n_bars, seed)
    np.testing.assert_array_equal(compiled, plain)


def test_hand_driven_steps_equal_talib() -> None:
    out, c, h, lo = drive(steps, 300, seed=4)
    m, g, hist = talib.MACD(c, 12, 26, 9)
    u, mid, low_band = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    ref = [talib.SMA(c, 20), talib.EMA(c, 20), talib.RSI(c, 14), m, g, hist, u, mid, low_band]
    ref.append(talib.ATR(h, lo, c, 14))
    for k, r in enumerate(ref):
        np.testing.assert_allclose(out[k], r, rtol=1e-9, atol=1e-9, err_msg=str(k))


@pytest.mark.parametrize("n", [2, 5, 14, 20])
def test_update_hands_over_to_step_after_the_lookback(n: int) -> None:
    """Past the warm-up, *_update and *_step are the same function of the state."""
    rng = np.random.default_rng(n)
    c = 100 + np.cumsum(rng.normal(0, 1, 60))
    s_u = s_s = steps.rsi_init(n)
    for j, x in enumerate(c):
        s_u, v_u = steps.rsi_update(s_u, j, x)
        if j > steps.rsi_lookback(n):
            s_s, v_s = steps.rsi_step(s_s, x)
            assert (s_s, v_s) == (s_u, v_u)
        else:
            s_s = s_u
    state = steps.ema_init(n)
    for j, x in enumerate(c[:n]):
        state, value = steps.ema_update(state, j, x)
    assert value == pytest.approx(c[:n].mean()) and not math.isnan(value)


def test_lookbacks_match_the_warm_up_of_every_update() -> None:
    out, *_ = drive(steps, 80, seed=1)
    p = numba_parallel.init_states((20, 20, 14, 12, 26, 9, 20, 2.0, 14))
    assert len(p) == 6
    lookbacks = [
        steps.sma_lookback(20),
        steps.ema_lookback(20),
        steps.rsi_lookback(14),
        *[steps.macd_lookback(12, 26, 9)] * 3,
        *[steps.bbands_lookback(20)] * 3,
        steps.atr_lookback(14),
    ]
    for k, lb in enumerate(lookbacks):
        assert int(np.argmax(~np.isnan(out[k]))) == lb, k
    assert numba_parallel.warm_bars((20, 20, 14, 12, 26, 9, 20, 2.0, 14)) == max(lookbacks) + 1


def test_rebinding_leaves_the_plain_functions_alone() -> None:
    before = dict(python_backend.rsi_into.__globals__)
    compiled = targets.njit({"rsi_into": python_backend.rsi_into})["rsi_into"]
    out = np.empty(40)
    compiled(100 + np.arange(40.0), 14, out)
    assert python_backend.rsi_into.__globals__["steps"] is steps
    assert dict(python_backend.rsi_into.__globals__) == before
    assert targets.cpu_steps()["steps"].rsi_update is not steps.rsi_update
    assert set(targets.STEP_NAMES) >= {"rsi_update", "bbands_moments", "_bb_block"}


def test_flat_window_gives_exactly_zero_width_and_rsi() -> None:
    c = np.full(60, 46_612.3)
    state = steps.bbands_init(20, 2.0)
    rsi = steps.rsi_init(14)
    for j, x in enumerate(c):
        state, up, mid, low = steps.bbands_update(state, j, c, j, 1)
        rsi, r = steps.rsi_update(rsi, j, x)
        if j >= 19:
            assert up == mid == low and mid == pytest.approx(x, rel=1e-14)
        if j >= 14:
            assert r == 0.0


def test_layout_names_every_row_parameter_and_state_field() -> None:
    """The layout module is the one description of the indicator set: its names and widths
    match the parameters, the output columns and the state tuples the step functions build."""
    from dataclasses import fields

    from nepse_perf.indicators import layout
    from nepse_perf.indicators.backends import numba_parallel
    from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams

    assert layout.PARAM_FIELDS == tuple(f.name for f in fields(IndicatorParams))
    assert IndicatorParams().kernel_args() == tuple(
        getattr(IndicatorParams(), name) for name in layout.PARAM_FIELDS
    )
    assert layout.N_OUT == len(OUTPUT_COLUMNS) == layout.ATR + 1
    for k, name in enumerate(OUTPUT_COLUMNS):
        assert getattr(layout, name.upper()) == k
    states = numba_parallel.DRIVERS["init_states"](IndicatorParams().kernel_args())
    assert tuple(map(len, states)) == tuple(layout.STATE_WIDTHS.values())
    assert layout.STATE_WIDTH == sum(layout.STATE_WIDTHS.values())
    assert states[4][layout.BB_N] == IndicatorParams().bb_period
    assert states[3][layout.MACD_SLOW_N] == IndicatorParams().macd_slow
