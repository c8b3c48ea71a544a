"""The indicators one series at a time, in TA-Lib's function style: ``sma(close, timeperiod=20)``.

Each function takes NumPy arrays or pandas Series of prices (NPR), returns float64 results
of the same length (a Series with the input's index for Series input, else an ndarray) and
runs the compiled per-indicator kernel of backend ``numba``, which calls the step functions
of :mod:`nepse_perf.indicators.steps`. Conventions are TA-Lib's: the first
``*_lookback(...)`` values are NaN, leading NaNs in the input are skipped (the output is NaN
there too) and multi-output indicators return a tuple in TA-Lib's order. Defaults are this
workbook's (:class:`~nepse_perf.indicators.params.IndicatorParams`), not TA-Lib's (TA-Lib's
SMA and EMA default to 30 bars, its BBANDS to 5). Differences from TA-Lib: a NaN after the
first complete value raises ``ValueError`` (TA-Lib would carry it into every later value),
and bad periods raise instead of returning NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nepse_perf.indicators.backends import numba as numba_backend
from nepse_perf.indicators.steps import (
    atr_lookback,
    bbands_lookback,
    ema_lookback,
    macd_lookback,
    rsi_lookback,
    sma_lookback,
)

__all__ = [
    "atr",
    "atr_lookback",
    "bbands",
    "bbands_lookback",
    "ema",
    "ema_lookback",
    "macd",
    "macd_lookback",
    "rsi",
    "rsi_lookback",
    "sma",
    "sma_lookback",
]

ArrayLike = np.ndarray | pd.Series


def _period(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    return int(value)


def _inputs(**series: ArrayLike) -> tuple[list[np.ndarray], int, pd.Index | None]:
    """Float64 copies of the inputs, the first row where all are finite, and a Series index."""
    arrays = []
    index = None
    for name, values in series.items():
        if isinstance(values, pd.Series):
            index = values.index if index is None else index
        try:
            a = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric, got {exc}") from None
        if a.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
        arrays.append(np.ascontiguousarray(a))
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(f"inputs differ in length: {[a.shape[0] for a in arrays]}")
    finite = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    start = int(np.argmax(finite)) if finite.any() else n
    bad = np.flatnonzero(~finite[start:])
    if bad.size:
        raise ValueError(
            f"NaN or inf at position {start + int(bad[0])}, after the first complete value "
            f"at {start}; only leading NaNs are skipped"
        )
    return arrays, start, index


def _outputs(n: int, k: int) -> list[np.ndarray]:
    return [np.full(n, np.nan) for _ in range(k)]


def _wrap(values: list[np.ndarray], index: pd.Index | None) -> ArrayLike | tuple:
    if index is not None:
        values = [pd.Series(v, index=index) for v in values]
    return values[0] if len(values) == 1 else tuple(values)


def sma(close: ArrayLike, timeperiod: int = 20) -> ArrayLike:
    """Simple moving average of ``timeperiod`` bars (lookback ``timeperiod - 1``)."""
    n = _period("timeperiod", timeperiod)
    (c,), s, index = _inputs(close=close)
    (out,) = _outputs(len(c), 1)
    numba_backend.sma(c[s:], n, out[s:])
    return _wrap([out], index)


def ema(close: ArrayLike, timeperiod: int = 20) -> ArrayLike:
    """EMA, alpha = 2/(timeperiod + 1), seeded with the mean of the first bars."""
    n = _period("timeperiod", timeperiod)
    (c,), s, index = _inputs(close=close)
    (out,) = _outputs(len(c), 1)
    numba_backend.ema(c[s:], n, out[s:])
    return _wrap([out], index)


def rsi(close: ArrayLike, timeperiod: int = 14) -> ArrayLike:
    """Wilder's RSI, 0-100 (lookback ``timeperiod``); 0 where nothing moved at all."""
    n = _period("timeperiod", timeperiod)
    (c,), s, index = _inputs(close=close)
    (out,) = _outputs(len(c), 1)
    numba_backend.rsi(c[s:], n, out[s:])
    return _wrap([out], index)


def macd(
    close: ArrayLike, fastperiod: int = 12, slowperiod: int = 26, signalperiod: int = 9
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """``(macd, signal, hist)`` seeded as TA-Lib does (lookback ``slow + signal - 2``)."""
    fast = _period("fastperiod", fastperiod)
    slow = _period("slowperiod", slowperiod)
    signal = _period("signalperiod", signalperiod)
    if fast >= slow:
        raise ValueError(f"fastperiod must be < slowperiod, got {fast} and {slow}")
    (c,), s, index = _inputs(close=close)
    m, g, h = _outputs(len(c), 3)
    numba_backend.macd(c[s:], fast, slow, signal, m[s:], g[s:], h[s:])
    return _wrap([m, g, h], index)


def bbands(
    close: ArrayLike, timeperiod: int = 20, nbdev: float = 2.0
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """``(upper, middle, lower)``: SMA +/- ``nbdev`` population standard deviations.

    TA-Lib's ``BBANDS(close, timeperiod, nbdevup=nbdev, nbdevdn=nbdev, matype=0)``.
    """
    n = _period("timeperiod", timeperiod)
    if isinstance(nbdev, bool) or not isinstance(nbdev, int | float) or not nbdev > 0:
        raise ValueError(f"nbdev must be a number > 0, got {nbdev!r}")
    (c,), s, index = _inputs(close=close)
    upper, middle, lower = _outputs(len(c), 3)
    numba_backend.bbands(c[s:], n, float(nbdev), upper[s:], middle[s:], lower[s:])
    return _wrap([upper, middle, lower], index)


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> ArrayLike:
    """Average true range (Wilder, lookback ``timeperiod``), in the prices' unit."""
    n = _period("timeperiod", timeperiod)
    (h, lo, c), s, index = _inputs(high=high, low=low, close=close)
    (out,) = _outputs(len(c), 1)
    numba_backend.atr(h[s:], lo[s:], c[s:], n, out[s:])
    return _wrap([out], index)
