"""Backend ``numba_parallel``: all six indicators fused into one pass, parallel over symbols.

Each symbol is read once, bar by bar, while the state of every indicator (the tuples of
:mod:`nepse_perf.indicators.steps`) lives in registers; the ten outputs are written into a
preallocated ``N_OUT`` x n block. The first bars, until the longest warm-up is over, go through
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

from nepse_perf.indicators import layout, steps, targets
from nepse_perf.indicators.panel import Panel
from nepse_perf.indicators.params import IndicatorParams


def init_states(p):  # pragma: no cover - compiled
    """The six indicators' initial states for parameters ``p`` (``kernel_args`` order)."""
    return (
        steps.sma_init(p[layout.P_SMA]),
        steps.ema_init(p[layout.P_EMA]),
        steps.rsi_init(p[layout.P_RSI]),
        steps.macd_init(p[layout.P_MACD_FAST], p[layout.P_MACD_SLOW], p[layout.P_MACD_SIGNAL]),
        steps.bbands_init(p[layout.P_BB], p[layout.P_BB_NBDEV]),
        steps.atr_init(p[layout.P_ATR]),
    )


def warm_bars(p):  # pragma: no cover - compiled
    """Bars after which every indicator is past its warm-up (longest lookback + 1)."""
    longest = max(
        steps.sma_lookback(p[layout.P_SMA]),
        steps.ema_lookback(p[layout.P_EMA]),
        steps.rsi_lookback(p[layout.P_RSI]),
        steps.macd_lookback(p[layout.P_MACD_FAST], p[layout.P_MACD_SLOW], p[layout.P_MACD_SIGNAL]),
        steps.bbands_lookback(p[layout.P_BB]),
        steps.atr_lookback(p[layout.P_ATR]),
    )
    return longest + 1


def update_bars(states, close, high, low, out, first, j0, j1, stride):  # pragma: no cover
    """Bars ``j0..j1-1`` of one symbol through every ``*_update``; returns the new states.

    Bar j is at flat index ``first + j * stride`` of ``close``/``high``/``low`` and column
    of ``out`` (``layout.N_OUT`` rows). The GPU kernel runs whole series this way (``stride`` = number of
    symbols in its time-major layout); the CPU kernel runs the warm-up bars this way.
    """
    sma, ema, rsi, macd, bb, atr = states
    i = first + j0 * stride
    for j in range(j0, j1):
        x = close[i]
        sma, out[layout.SMA, i] = steps.sma_update(sma, j, close, i, stride)
        ema, out[layout.EMA, i] = steps.ema_update(ema, j, x)
        rsi, out[layout.RSI, i] = steps.rsi_update(rsi, j, x)
        macd, out[layout.MACD, i], out[layout.MACD_SIGNAL, i], out[layout.MACD_HIST, i] = (
            steps.macd_update(macd, j, x)
        )
        bb, out[layout.BB_UPPER, i], out[layout.BB_MIDDLE, i], out[layout.BB_LOWER, i] = (
            steps.bbands_update(bb, j, close, i, stride)
        )
        atr, out[layout.ATR, i] = steps.atr_update(atr, j, high[i], low[i], x)
        i += stride
    return sma, ema, rsi, macd, bb, atr


def fused_symbol_py(close, high, low, p, out, first, count):  # pragma: no cover - compiled
    """One symbol's ``count`` contiguous bars from flat row ``first``: all ten outputs.

    The warm-up bars go through :func:`update_bars`; the rest through the steady-state
    steps, reading views that start at the first steady bar (so every index is a
    non-negative loop counter, with no negative-index wraparound to check). The per-bar
    operations that are not recurrences (RSI's division, the SMA's and the middle band's
    division by ``n``, the bands' square root) wait in the output rows (average gain in row
    ``layout.RSI``, average loss in ``layout.BB_LOWER``, variance in ``layout.BB_UPPER``, the
    window totals in ``layout.SMA`` and ``layout.BB_MIDDLE``) and are done by a second loop
    over the symbol, which the compiler vectorises. Profiling showed the divider and the
    square-root unit, not memory, set the pace of the first loop.
    """
    warm = min(warm_bars(p), count)
    states = update_bars(init_states(p), close, high, low, out, first, 0, warm, 1)
    if warm == count:
        return
    sma, ema, rsi, macd, bb, atr = states
    sma_n, bb_n, nbdev = p[layout.P_SMA], p[layout.P_BB], p[layout.P_BB_NBDEV]
    a = first + warm
    e = first + count
    c = close[a:e]
    c_sma = close[a - (sma_n - 1) : e]
    c_old = close[a - bb_n : e]
    c_bb = close[a - (bb_n - 1) : e]
    h = high[a:e]
    lo = low[a:e]
    o_sma, o_ema, o_rsi = out[layout.SMA, a:e], out[layout.EMA, a:e], out[layout.RSI, a:e]
    o_macd, o_sig, o_hist = (
        out[layout.MACD, a:e],
        out[layout.MACD_SIGNAL, a:e],
        out[layout.MACD_HIST, a:e],
    )
    o_up, o_mid, o_low, o_atr = (
        out[layout.BB_UPPER, a:e],
        out[layout.BB_MIDDLE, a:e],
        out[layout.BB_LOWER, a:e],
        out[layout.ATR, a:e],
    )
    for k in range(e - a):
        x = c[k]
        sma, o_sma[k] = steps.sma_total(sma, x, c_sma[k])  # the total waits for its division
        ema, o_ema[k] = steps.ema_step(ema, x)
        rsi, o_rsi[k], o_low[k] = steps.rsi_averages(rsi, x)  # loss waits in the lower band
        macd, o_macd[k], o_sig[k], o_hist[k] = steps.macd_step(macd, x)
        bb, o_mid[k], o_up[k] = steps.bbands_moments(bb, x, c_old[k], c_bb[k])  # total, variance
        atr, o_atr[k] = steps.atr_step(atr, h[k], lo[k], x)
    sma_w, bb_w = sma[layout.SMA_N], bb[layout.BB_N]  # the window lengths, as floats
    for k in range(e - a):  # vectorised: 4 (AVX2) or 8 (AVX-512) divisions and sqrts at once
        o_sma[k] = steps.sma_value(o_sma[k], sma_w)
        o_rsi[k] = steps.rsi_value(o_rsi[k], o_low[k])
        mid = steps.sma_value(o_mid[k], bb_w)
        o_up[k], o_mid[k], o_low[k] = steps.bbands_bands(mid, o_up[k], nbdev)


def panel_symbol(close, high, low, offsets, starts, s, p, out):  # pragma: no cover - compiled
    """Symbol ``s`` of a panel: NaN for its leading incomplete rows, then the fused pass."""
    v = starts[s]
    for i in range(offsets[s], v):
        for k in range(layout.N_OUT):
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


#: Panels with fewer rows than this (or one symbol) run on the calling thread only. Measured
#: on a quiet 2-core machine (median of 3,001 calls each): below it the threaded pass was
#: between 0.75x and 1.4x the serial one, a few microseconds either way; from 5,000 rows up
#: it was faster at every size tried (1.4x at 5,000 rows, 1.6x-2.1x from 50,000 up).
PARALLEL_MIN_ROWS = 4_096


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (10 x n_rows) with the fused kernel, symbols in parallel on big panels.

    Below :data:`PARALLEL_MIN_ROWS` rows, or with one symbol, handing symbols to threads
    costs about what it saves, so the pass runs serially.
    """
    threaded = panel.n_rows >= PARALLEL_MIN_ROWS and panel.n_symbols > 1
    kernel = fused_panel if threaded else fused_panel_serial
    kernel(*panel.kernel_inputs(), params.kernel_args(), out)


def compute_serial(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` with the fused kernel on the calling thread only."""
    fused_panel_serial(*panel.kernel_inputs(), params.kernel_args(), out)
