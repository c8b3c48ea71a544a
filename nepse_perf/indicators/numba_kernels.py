"""Backend ``numba``: the ``python`` backend's loops compiled by Numba, one kernel each.

Nothing is rewritten: each kernel is the very function in :mod:`python_loops`, compiled
with its step-function calls bound to the compiled step functions
(:func:`nepse_perf.indicators.targets.njit`), so the compiled code and the readable
definition cannot drift apart. ``compute_panel`` (also compiled) loops over symbols and
calls the six kernels on each symbol's slice, writing straight into the preallocated output
block. The first call in a fresh process compiles (or loads the on-disk cache); time it
separately.
"""

from __future__ import annotations

import numpy as np

from . import python_loops, targets
from .panel import Panel
from .params import IndicatorParams
from .python_loops import atr_into, bbands_into, ema_into, macd_into, rsi_into, sma_into


def compute_panel_py(close, high, low, offsets, starts, p, out):  # pragma: no cover - compiled
    """Run the six kernels on every symbol's slice; leading-NaN rows are set to NaN.

    ``p`` is :meth:`IndicatorParams.kernel_args` (a tuple, so the signature is written once).
    """
    sma_n, ema_n, rsi_n, fast, slow, signal, bb_n, nbdev, atr_n = p
    for s in range(offsets.shape[0] - 1):
        a = offsets[s]
        v = starts[s]
        b = offsets[s + 1]
        out[:, a:v] = np.nan
        c = close[v:b]
        sma_into(c, sma_n, out[0, v:b])
        ema_into(c, ema_n, out[1, v:b])
        rsi_into(c, rsi_n, out[2, v:b])
        macd_into(c, fast, slow, signal, out[3, v:b], out[4, v:b], out[5, v:b])
        bbands_into(c, bb_n, nbdev, out[6, v:b], out[7, v:b], out[8, v:b])
        atr_into(high[v:b], low[v:b], c, atr_n, out[9, v:b])


_KERNELS = ("sma", "ema", "rsi", "macd", "bbands", "atr")
_compiled = targets.njit(
    {
        **{f"{name}_into": getattr(python_loops, f"{name}_into") for name in _KERNELS},
        "compute_panel": compute_panel_py,
    }
)
sma, ema, rsi = _compiled["sma_into"], _compiled["ema_into"], _compiled["rsi_into"]
macd, bbands, atr = _compiled["macd_into"], _compiled["bbands_into"], _compiled["atr_into"]
compute_panel = _compiled["compute_panel"]


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (10 x n_rows) with the compiled per-indicator kernels."""
    compute_panel(*panel.kernel_inputs(), params.kernel_args(), out)
