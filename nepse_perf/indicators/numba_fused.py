"""Backend ``numba_parallel``: all six indicators fused into one pass, parallel over symbols.

Each symbol is read once, bar by bar, while the state of every indicator (the tuples of
:mod:`nepse_perf.indicators.steps`) lives in registers; the ten outputs are written into a
preallocated 10 x n block. The first bars, until the longest warm-up is over, go through
each indicator's ``*_update`` (which branches on the bar number); every later bar goes
through the steady-state steps, which have no warm-up branches at all. ``numba.prange``
hands symbols to threads, and ``nogil=True`` lets other Python threads run meanwhile. The
step functions are the ones every backend calls, so results equal the ``python`` and
``numba`` backends' to the last bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import steps, targets
from .panel import Panel
from .params import IndicatorParams


def init_states(p):  # pragma: no cover - compiled
    """The six indicators' initial states for parameters ``p`` (``kernel_args`` order)."""
    sma_n, ema_n, rsi_n, fast, slow, signal, bb_n, nbdev, atr_n = p
    return (
        steps.sma_init(sma_n),
        steps.ema_init(ema_n),
        steps.rsi_init(rsi_n),
        steps.macd_init(fast, slow, signal),
        steps.bbands_init(bb_n, nbdev),
        steps.atr_init(atr_n),
    )


def warm_bars(p):  # pragma: no cover - compiled
    """Bars after which every indicator is past its warm-up (longest lookback + 1)."""
    sma_n, ema_n, rsi_n, fast, slow, signal, bb_n, _, atr_n = p
    longest = max(
        steps.sma_lookback(sma_n),
        steps.ema_lookback(ema_n),
        steps.rsi_lookback(rsi_n),
        steps.macd_lookback(fast, slow, signal),
        steps.bbands_lookback(bb_n),
        steps.atr_lookback(atr_n),
    )
    return longest + 1


def update_bars(states, close, high, low, out, first, j0, j1, stride):  # pragma: no cover
    """Bars ``j0..j1-1`` of one symbol through every ``*_update``; returns the new states.

    Bar j is at flat index ``first + j * stride`` of ``close``/``high``/``low`` and column
    of ``out`` (10 rows). The GPU kernel runs whole series this way (``stride`` = number of
    symbols in its time-major layout); the CPU kernel runs the warm-up bars this way.
    """
    sma, ema, rsi, macd, bb, atr = states
    i = first + j0 * stride
    for j in range(j0, j1):
        x = close[i]
        sma, out[0, i] = steps.sma_update(sma, j, close, i, stride)
        ema, out[1, i] = steps.ema_update(ema, j, x)
        rsi, out[2, i] = steps.rsi_update(rsi, j, x)
        macd, out[3, i], out[4, i], out[5, i] = steps.macd_update(macd, j, x)
        bb, out[6, i], out[7, i], out[8, i] = steps.bbands_update(bb, j, close, i, stride)
        atr, out[9, i] = steps.atr_update(atr, j, high[i], low[i], x)
        i += stride
    return sma, ema, rsi, macd, bb, atr


def fused_symbol_py(close, high, low, p, out, first, count):  # pragma: no cover - compiled
    """One symbol's ``count`` contiguous bars from flat row ``first``: all ten outputs.

    The warm-up bars go through :func:`update_bars`; the rest through the steady-state
    steps, reading views that start at the first steady bar (so every index is a
    non-negative loop counter, with no negative-index wraparound to check). The two
    per-bar operations that are not recurrences, RSI's division and the bands' square root,
    wait in the output rows (average gain in row 2, average loss in row 8, variance in row 6)
    and are done by a second loop over the symbol, which the compiler vectorises. Profiling
    showed the divider and the square-root unit, not memory, set the pace of the first loop.
    """
    warm = min(warm_bars(p), count)
    states = update_bars(init_states(p), close, high, low, out, first, 0, warm, 1)
    if warm == count:
        return
    sma, ema, rsi, macd, bb, atr = states
    sma_n, bb_n, nbdev = p[0], p[6], p[7]
    a = first + warm
    e = first + count
    c = close[a:e]
    c_sma = close[a - (sma_n - 1) : e]
    c_old = close[a - bb_n : e]
    c_bb = close[a - (bb_n - 1) : e]
    h = high[a:e]
    lo = low[a:e]
    o0, o1, o2, o3, o4 = out[0, a:e], out[1, a:e], out[2, a:e], out[3, a:e], out[4, a:e]
    o5, o6, o7, o8, o9 = out[5, a:e], out[6, a:e], out[7, a:e], out[8, a:e], out[9, a:e]
    for k in range(e - a):
        x = c[k]
        sma, o0[k] = steps.sma_step(sma, x, c_sma[k])
        ema, o1[k] = steps.ema_step(ema, x)
        rsi, o2[k], o8[k] = steps.rsi_averages(rsi, x)  # loss in row 8 until the second loop
        macd, o3[k], o4[k], o5[k] = steps.macd_step(macd, x)
        bb, o7[k], o6[k] = steps.bbands_moments(bb, x, c_old[k], c_bb[k])  # variance in row 6
        atr, o9[k] = steps.atr_step(atr, h[k], lo[k], x)
    for k in range(e - a):  # vectorised: 4 (AVX2) or 8 (AVX-512) divisions and sqrts at once
        o2[k] = steps.rsi_value(o2[k], o8[k])
        o6[k], o7[k], o8[k] = steps.bbands_bands(o7[k], o6[k], nbdev)


def panel_symbol(close, high, low, offsets, starts, s, p, out):  # pragma: no cover - compiled
    """Symbol ``s`` of a panel: NaN for its leading incomplete rows, then the fused pass."""
    v = starts[s]
    for i in range(offsets[s], v):
        for k in range(10):
            out[k, i] = math.nan
    fused_symbol(close, high, low, p, out, v, offsets[s + 1] - v)


def fused_panel(close, high, low, offsets, starts, p, out):  # pragma: no cover - compiled
    """Fused pass over every symbol, symbols spread over threads with ``prange``."""
    for s in numba.prange(offsets.shape[0] - 1):
        panel_symbol(close, high, low, offsets, starts, s, p, out)


def fused_panel_serial(close, high, low, offsets, starts, p, out):  # pragma: no cover - compiled
    """The same fused pass on one thread (for thread pools that release the GIL)."""
    for s in range(offsets.shape[0] - 1):
        panel_symbol(close, high, low, offsets, starts, s, p, out)


#: The drivers, plain Python; compiled below for the CPU, and by ``gpu_kernel`` for CUDA.
DRIVERS = {
    "init_states": init_states,
    "warm_bars": warm_bars,
    "update_bars": update_bars,
    "fused_symbol": fused_symbol_py,
    "panel_symbol": panel_symbol,
    "fused_panel": fused_panel,
    "fused_panel_serial": fused_panel_serial,
}
_cpu = targets.njit(
    DRIVERS,
    {
        "init_states": {"inline": "always"},
        "warm_bars": {"inline": "always"},
        "update_bars": {"nogil": True},
        "fused_symbol": {"nogil": True, "error_model": "numpy"},
        "panel_symbol": {"nogil": True},
        "fused_panel": {"nogil": True, "parallel": True},
        "fused_panel_serial": {"nogil": True},
    },
)
fused_symbol = _cpu["fused_symbol"]
fused_panel = _cpu["fused_panel"]
fused_panel_serial = _cpu["fused_panel_serial"]


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (10 x n_rows) with the fused kernel, symbols in parallel."""
    fused_panel(*panel.kernel_inputs(), params.kernel_args(), out)


def compute_serial(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` with the fused kernel on the calling thread only."""
    fused_panel_serial(*panel.kernel_inputs(), params.kernel_args(), out)
