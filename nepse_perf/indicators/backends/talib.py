"""Backend ``talib``: the TA-Lib C library called once per symbol and indicator.

TA-Lib is this project's numeric reference; this backend is also the baseline the
compiled backends are raced against. Leading-NaN rows are skipped the way TA-Lib's own
wrapper does, by calling it on each symbol's slice from its first complete bar.
"""

from __future__ import annotations

import numpy as np
import talib

from nepse_perf.indicators.panel import Panel
from nepse_perf.indicators.params import IndicatorParams


def indicators_for_symbol(
    close: np.ndarray, high: np.ndarray, low: np.ndarray, params: IndicatorParams
) -> list[np.ndarray]:
    """The ten output series for one symbol's float64 arrays, straight from TA-Lib."""
    p = params
    macd, signal, hist = talib.MACD(close, p.macd_fast, p.macd_slow, p.macd_signal)
    upper, middle, lower = talib.BBANDS(close, p.bb_period, p.bb_nbdev, p.bb_nbdev, 0)
    return [
        talib.SMA(close, p.sma_period),
        talib.EMA(close, p.ema_period),
        talib.RSI(close, p.rsi_period),
        macd,
        signal,
        hist,
        upper,
        middle,
        lower,
        talib.ATR(high, low, close, p.atr_period),
    ]


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (N_OUT x n_rows) by calling TA-Lib per symbol."""
    for _, a, s, b in panel.slices():
        out[:, a:s] = np.nan
        if b > s:
            out[:, s:b] = indicators_for_symbol(
                panel.close[s:b], panel.high[s:b], panel.low[s:b], params
            )
