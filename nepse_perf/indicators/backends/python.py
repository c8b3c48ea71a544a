"""Backend ``python``: each indicator as a plain loop over bars that calls its step function.

A ``*_into`` function fills ``out`` (same length as the input) from one symbol's prices by
calling the indicator's ``*_update`` from :mod:`nepse_perf.indicators.steps` once per bar;
the arithmetic lives there, in TA-Lib's operation order. The loops only index and call,
so the same source runs on Python lists (this backend) and compiles with Numba (backend
``numba``, which rebinds the step functions to their compiled versions).
Conventions: ``x[0]`` is the symbol's first complete bar; warm-up outputs are NaN.
"""

from __future__ import annotations

import numpy as np

from nepse_perf.indicators import layout, steps
from nepse_perf.indicators.panel import Panel
from nepse_perf.indicators.params import IndicatorParams


def sma_into(x, n, out):
    """Simple moving average of ``n`` bars (running total; lookback ``n - 1``)."""
    s = steps.sma_init(n)
    for j in range(len(x)):
        s, out[j] = steps.sma_update(s, j, x, j, 1)


def ema_into(x, n, out):
    """EMA with alpha = 2/(n+1), seeded at bar n-1 with the mean of the first n values."""
    s = steps.ema_init(n)
    for j in range(len(x)):
        s, out[j] = steps.ema_update(s, j, x[j])


def rsi_into(x, n, out):
    """Wilder's RSI (lookback ``n``); 0 where a window has no movement at all."""
    s = steps.rsi_init(n)
    for j in range(len(x)):
        s, out[j] = steps.rsi_update(s, j, x[j])


def macd_into(x, fast, slow, signal, out_macd, out_signal, out_hist):
    """MACD line, signal line and histogram, TA-Lib's seeding (lookback slow + signal - 2)."""
    s = steps.macd_init(fast, slow, signal)
    for j in range(len(x)):
        s, out_macd[j], out_signal[j], out_hist[j] = steps.macd_update(s, j, x[j])


def bbands_into(x, n, nbdev, out_upper, out_middle, out_lower):
    """Bollinger Bands: SMA(n) middle +/- nbdev population standard deviations."""
    s = steps.bbands_init(n, nbdev)
    for j in range(len(x)):
        s, out_upper[j], out_middle[j], out_lower[j] = steps.bbands_update(s, j, x, j, 1)


def bbands_ema_into(x, n, nbdev, out_upper, out_middle, out_lower):
    """Bollinger Bands around an EMA(n) middle (TA-Lib's ``matype=1``), the same deviations.

    TA-Lib's bands are always the window's population standard deviation around its
    mean; ``matype`` changes only the middle band, here the EMA of the same ``n`` bars
    (whose lookback, ``n - 1``, is the bands' own).
    """
    s = steps.bbands_init(n, nbdev)
    e = steps.ema_init(n)
    for j in range(len(x)):
        s, _, var = steps.bbands_moments_update(s, j, x, j, 1)
        e, mid = steps.ema_update(e, j, x[j])
        out_upper[j], out_middle[j], out_lower[j] = steps.bbands_bands(mid, var, nbdev)


def atr_into(high, low, close, n, out):
    """Average true range (Wilder, lookback ``n``)."""
    s = steps.atr_init(n)
    for j in range(len(close)):
        s, out[j] = steps.atr_update(s, j, high[j], low[j], close[j])


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (``layout.N_OUT`` x n_rows, OUTPUT_COLUMNS order) symbol by symbol with plain loops.

    Each symbol's prices are converted to Python lists, every indicator is computed into
    Python lists, and the lists are copied into ``out``.
    """
    p = params
    for _, a, s, b in panel.slices():
        out[:, a:s] = np.nan
        if b == s:
            continue
        close = panel.close[s:b].tolist()
        high = panel.high[s:b].tolist()
        low = panel.low[s:b].tolist()
        rows = [[0.0] * len(close) for _ in range(layout.N_OUT)]
        sma_into(close, p.sma_period, rows[layout.SMA])
        ema_into(close, p.ema_period, rows[layout.EMA])
        rsi_into(close, p.rsi_period, rows[layout.RSI])
        macd_into(
            close,
            p.macd_fast,
            p.macd_slow,
            p.macd_signal,
            rows[layout.MACD],
            rows[layout.MACD_SIGNAL],
            rows[layout.MACD_HIST],
        )
        bbands_into(
            close,
            p.bb_period,
            p.bb_nbdev,
            rows[layout.BB_UPPER],
            rows[layout.BB_MIDDLE],
            rows[layout.BB_LOWER],
        )
        atr_into(high, low, close, p.atr_period, rows[layout.ATR])
        out[:, s:b] = rows
