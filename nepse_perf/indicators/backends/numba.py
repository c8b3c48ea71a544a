"""Backend ``numba``: the ``python`` backend's loops compiled by Numba, one kernel each.

Nothing is rewritten: each kernel is the very function in :mod:`python_backend`, compiled
with its step-function calls bound to the compiled step functions
(:func:`nepse_perf.indicators.targets.njit`), so the compiled code and the readable
definition cannot drift apart. ``compute_panel`` (also compiled) loops over symbols and
calls the six kernels on each symbol's slice, writing straight into the preallocated output
block. The first call in a fresh process compiles (or loads the on-disk cache); time it
separately.
"""

from __future__ import annotations

import numpy as np

from nepse_perf.indicators import layout, targets
from nepse_perf.indicators.backends import python as python_backend
from nepse_perf.indicators.backends.python import (
    atr_into,
    bbands_into,
    ema_into,
    macd_into,
    rsi_into,
    sma_into,
)
from nepse_perf.indicators.panel import Panel
from nepse_perf.indicators.params import IndicatorParams


def compute_panel_py(close, high, low, offsets, starts, p, out):  # pragma: no cover - compiled
    """Run the six kernels on every symbol's slice; leading-NaN rows are set to NaN.

    ``p`` is :meth:`IndicatorParams.kernel_args` (a tuple, so the signature is written once).
    """
    fast, slow, signal = p[layout.P_MACD_FAST], p[layout.P_MACD_SLOW], p[layout.P_MACD_SIGNAL]
    for s in range(offsets.shape[0] - 1):
        a = offsets[s]
        v = starts[s]
        b = offsets[s + 1]
        out[:, a:v] = np.nan
        c = close[v:b]
        sma_into(c, p[layout.P_SMA], out[layout.SMA, v:b])
        ema_into(c, p[layout.P_EMA], out[layout.EMA, v:b])
        rsi_into(c, p[layout.P_RSI], out[layout.RSI, v:b])
        macd_into(
            c,
            fast,
            slow,
            signal,
            out[layout.MACD, v:b],
            out[layout.MACD_SIGNAL, v:b],
            out[layout.MACD_HIST, v:b],
        )
        bbands_into(
            c,
            p[layout.P_BB],
            p[layout.P_BB_NBDEV],
            out[layout.BB_UPPER, v:b],
            out[layout.BB_MIDDLE, v:b],
            out[layout.BB_LOWER, v:b],
        )
        atr_into(high[v:b], low[v:b], c, p[layout.P_ATR], out[layout.ATR, v:b])


_KERNELS = ("sma", "ema", "rsi", "macd", "bbands", "bbands_ema", "atr")
_compiled = targets.njit(
    {
        **{f"{name}_into": getattr(python_backend, f"{name}_into") for name in _KERNELS},
        "compute_panel": compute_panel_py,
    }
)
sma, ema, rsi = _compiled["sma_into"], _compiled["ema_into"], _compiled["rsi_into"]
macd, bbands, atr = _compiled["macd_into"], _compiled["bbands_into"], _compiled["atr_into"]
bbands_ema = _compiled["bbands_ema_into"]
compute_panel = _compiled["compute_panel"]


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (``N_OUT`` x n_rows) with the compiled per-indicator kernels."""
    compute_panel(*panel.kernel_inputs(), params.kernel_args(), out)
