"""Indicator kernels, one module per backend, the step functions they share, and the
TA-Lib-style per-indicator functions (``sma(close, timeperiod=20)``, ...)."""

from .functions import (
    atr,
    atr_lookback,
    bbands,
    bbands_lookback,
    ema,
    ema_lookback,
    macd,
    macd_lookback,
    rsi,
    rsi_lookback,
    sma,
    sma_lookback,
)
from .panel import Panel, panel_from_arrays, panel_from_frame
from .params import OUTPUT_COLUMNS, IndicatorParams

__all__ = [
    "OUTPUT_COLUMNS",
    "IndicatorParams",
    "Panel",
    "atr",
    "atr_lookback",
    "bbands",
    "bbands_lookback",
    "ema",
    "ema_lookback",
    "macd",
    "macd_lookback",
    "panel_from_arrays",
    "panel_from_frame",
    "rsi",
    "rsi_lookback",
    "sma",
    "sma_lookback",
]
