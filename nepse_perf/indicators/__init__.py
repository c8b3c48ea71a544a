"""Indicator kernels, one module per backend, the step functions they share, and the
TA-Lib-style per-indicator functions (``sma(close, timeperiod=20)``, ...)."""

from nepse_perf.indicators import functions
from nepse_perf.indicators.functions import *  # noqa: F403 - the per-indicator functions and their lookbacks
from nepse_perf.indicators.panel import Panel, panel_from_arrays, panel_from_frame
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams

__all__ = [
    "OUTPUT_COLUMNS",
    "IndicatorParams",
    "Panel",
    "panel_from_arrays",
    "panel_from_frame",
    *functions.__all__,
]
