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

import numba
import numpy as np

from . import python_loops, targets
from .panel import Panel
from .params import IndicatorParams

_kernels = targets.njit(
    {
        name: getattr(python_loops, f"{name}_into")
        for name in ("sma", "ema", "rsi", "macd", "bbands", "atr")
    }
)
sma, ema, rsi, macd = _kernels["sma"], _kernels["ema"], _kernels["rsi"], _kernels["macd"]
bbands, atr = _kernels["bbands"], _kernels["atr"]


@numba.njit(cache=True)
def compute_panel(close, high, low, offsets, starts, p, out):  # pragma: no cover - compiled
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
        sma(c, sma_n, out[0, v:b])
        ema(c, ema_n, out[1, v:b])
        rsi(c, rsi_n, out[2, v:b])
        macd(c, fast, slow, signal, out[3, v:b], out[4, v:b], out[5, v:b])
        bbands(c, bb_n, nbdev, out[6, v:b], out[7, v:b], out[8, v:b])
        atr(high[v:b], low[v:b], c, atr_n, out[9, v:b])


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (10 x n_rows) with the compiled per-indicator kernels."""
    compute_panel(
        panel.close, panel.high, panel.low, panel.offsets, panel.starts, params.kernel_args(), out
    )
