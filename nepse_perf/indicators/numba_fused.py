"""Backend ``numba_parallel``: all six indicators fused into one pass, parallel over symbols.

Each symbol is read once, bar by bar, while the running state of every indicator (SMA and
Bollinger running totals, EMA/MACD/RSI/ATR recurrences) lives in registers; the ten
outputs are written into a preallocated 10 x n block. ``numba.prange`` hands symbols to
threads, and ``nogil=True`` lets other Python threads run meanwhile. The arithmetic is the
same operation order as :mod:`python_loops`, so results agree with TA-Lib to the last bits.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .panel import Panel
from .params import IndicatorParams


@numba.njit(cache=True, nogil=True)
def fused_symbol(
    close,
    high,
    low,
    sma_n,
    ema_n,
    rsi_n,
    fast,
    slow,
    signal,
    bb_n,
    nbdev,
    atr_n,
    out,
    first,
    count,
    stride,
):  # pragma: no cover - compiled
    """One symbol's ``count`` bars, bar j at flat index ``first + j * stride``: all outputs.

    ``close``/``high``/``low`` are flat arrays and ``out`` is (10, len(close)). On the CPU a
    symbol's bars are contiguous (``stride`` 1); the GPU backend stores bars time-major
    (``stride`` = number of symbols) so that neighbouring threads read neighbouring
    addresses, and compiles this same function as its device function.
    """
    nan = math.nan
    ke = 2.0 / (ema_n + 1)
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    kg = 2.0 / (signal + 1)
    macd_first = slow + signal - 2
    t_sma = 0.0
    t_ema = 0.0
    e = 0.0
    gain = 0.0
    loss = 0.0
    t_fast = 0.0
    t_slow = 0.0
    t_sig = 0.0
    ef = 0.0
    es = 0.0
    g = 0.0
    t_bb = 0.0
    w_mean = 0.0
    w_m2 = 0.0
    run = 0
    atr = 0.0
    prev = 0.0
    sma_back = (sma_n - 1) * stride
    bb_back = bb_n * stride
    bb_back1 = (bb_n - 1) * stride
    i = first
    for j in range(count):
        x = close[i]
        # SMA
        if j < sma_n - 1:
            t_sma += x
            out[0, i] = nan
        else:
            t_sma += x
            out[0, i] = t_sma / sma_n
            t_sma -= close[i - sma_back]
        # EMA
        if j < ema_n - 1:
            t_ema += x
            out[1, i] = nan
        elif j == ema_n - 1:
            t_ema += x
            e = t_ema / ema_n
            out[1, i] = e
        else:
            e = (x - e) * ke + e
            out[1, i] = e
        # RSI (Wilder)
        if j == 0:
            out[2, i] = nan
        else:
            d = x - prev
            if j <= rsi_n:
                if d < 0:
                    loss -= d
                else:
                    gain += d
                if j < rsi_n:
                    out[2, i] = nan
                else:
                    gain /= rsi_n
                    loss /= rsi_n
                    s = gain + loss
                    out[2, i] = 100.0 * (gain / s) if s != 0.0 else 0.0
            else:
                loss *= rsi_n - 1
                gain *= rsi_n - 1
                if d < 0:
                    loss -= d
                else:
                    gain += d
                loss /= rsi_n
                gain /= rsi_n
                s = gain + loss
                out[2, i] = 100.0 * (gain / s) if s != 0.0 else 0.0
        # MACD: both EMAs seeded at bar slow-1, signal seeded at bar slow+signal-2
        if j < slow:
            t_slow += x
            if j >= slow - fast:
                t_fast += x
            if j == slow - 1:
                ef = t_fast / fast
                es = t_slow / slow
                t_sig = ef - es
        else:
            ef = (x - ef) * kf + ef
            es = (x - es) * ks + es
            if j <= macd_first:
                t_sig += ef - es
                if j == macd_first:
                    g = t_sig / signal
            else:
                g = (ef - es - g) * kg + g
        if j < macd_first:
            out[3, i] = nan
            out[4, i] = nan
            out[5, i] = nan
        else:
            m = ef - es
            out[3, i] = m
            out[4, i] = g
            out[5, i] = m - g
        # Bollinger Bands: running total for the middle; for the variance a rolling
        # Welford update, restarted exactly (two passes) every bb_n bars
        t_bb += x
        run = run + 1 if j > 0 and x == prev else 1
        if run >= bb_n:  # a flat window: exactly zero, no rounding carried forward
            w_mean = x
            w_m2 = 0.0
        elif (j + 1) % bb_n == 0:
            k = i - bb_back1
            first_bb = close[k]
            acc = 0.0
            for _ in range(bb_n):
                acc += close[k] - first_bb
                k += stride
            shift = acc / bb_n
            w_m2 = 0.0
            k = i - bb_back1
            for _ in range(bb_n):
                d = close[k] - first_bb - shift
                w_m2 += d * d
                k += stride
            w_mean = first_bb + shift
        elif j >= bb_n:
            old = close[i - bb_back]
            delta = x - old
            prev_mean = w_mean
            w_mean += delta / bb_n
            w_m2 += delta * (x - w_mean + old - prev_mean)
        if j < bb_n - 1:
            out[6, i] = nan
            out[7, i] = nan
            out[8, i] = nan
        else:
            mid = t_bb / bb_n
            t_bb -= close[i - bb_back1]
            var = w_m2 / bb_n
            sd = math.sqrt(var) * nbdev if var > 0.0 else 0.0
            out[6, i] = mid + sd
            out[7, i] = mid
            out[8, i] = mid - sd
        # ATR (Wilder)
        if j == 0:
            out[9, i] = nan
        else:
            tr = high[i] - low[i]
            up = abs(prev - high[i])
            if up > tr:
                tr = up
            down = abs(prev - low[i])
            if down > tr:
                tr = down
            if j < atr_n:
                atr += tr
                out[9, i] = nan
            elif j == atr_n:
                atr = (atr + tr) / atr_n
                out[9, i] = atr
            else:
                atr = (atr * (atr_n - 1) + tr) / atr_n
                out[9, i] = atr
        prev = x
        i += stride


@numba.njit(cache=True, nogil=True)
def panel_symbol(
    close,
    high,
    low,
    offsets,
    starts,
    s,
    sma_n,
    ema_n,
    rsi_n,
    fast,
    slow,
    signal,
    bb_n,
    nbdev,
    atr_n,
    out,
):  # pragma: no cover - compiled
    """Symbol ``s`` of a panel: NaN for its leading incomplete rows, then the fused pass."""
    v = starts[s]
    for i in range(offsets[s], v):
        for k in range(10):
            out[k, i] = math.nan
    fused_symbol(
        close,
        high,
        low,
        sma_n,
        ema_n,
        rsi_n,
        fast,
        slow,
        signal,
        bb_n,
        nbdev,
        atr_n,
        out,
        v,
        offsets[s + 1] - v,
        1,
    )


@numba.njit(cache=True, parallel=True, nogil=True)
def fused_panel(
    close,
    high,
    low,
    offsets,
    starts,
    sma_n,
    ema_n,
    rsi_n,
    fast,
    slow,
    signal,
    bb_n,
    nbdev,
    atr_n,
    out,
):  # pragma: no cover - compiled
    """Fused pass over every symbol, symbols spread over threads with ``prange``."""
    for s in numba.prange(offsets.shape[0] - 1):
        panel_symbol(
            close,
            high,
            low,
            offsets,
            starts,
            s,
            sma_n,
            ema_n,
            rsi_n,
            fast,
            slow,
            signal,
            bb_n,
            nbdev,
            atr_n,
            out,
        )


@numba.njit(cache=True, nogil=True)
def fused_panel_serial(
    close,
    high,
    low,
    offsets,
    starts,
    sma_n,
    ema_n,
    rsi_n,
    fast,
    slow,
    signal,
    bb_n,
    nbdev,
    atr_n,
    out,
):  # pragma: no cover - compiled
    """The same fused pass on one thread (for thread pools that release the GIL)."""
    for s in range(offsets.shape[0] - 1):
        panel_symbol(
            close,
            high,
            low,
            offsets,
            starts,
            s,
            sma_n,
            ema_n,
            rsi_n,
            fast,
            slow,
            signal,
            bb_n,
            nbdev,
            atr_n,
            out,
        )


def kernel_args(panel: Panel, params: IndicatorParams) -> tuple:
    """The positional arguments of ``fused_panel`` for a panel (without ``out``)."""
    return (panel.close, panel.high, panel.low, panel.offsets, panel.starts, *params.kernel_args())


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (10 x n_rows) with the fused kernel, symbols in parallel."""
    fused_panel(*kernel_args(panel, params), out)


def compute_serial(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` with the fused kernel on the calling thread only."""
    fused_panel_serial(*kernel_args(panel, params), out)
