"""The indicators one series at a time, in TA-Lib's function style: ``sma(close, timeperiod=20)``.

Each function takes NumPy arrays, pandas Series or polars Series of prices (NPR), returns
float64 results of the same length and kind (a pandas Series with the input's index, a polars
Series with the input's name, else an ndarray; with mixed inputs the first Series decides) and
runs the compiled per-indicator kernel of backend ``numba``, which calls the step functions
of :mod:`nepse_perf.indicators.steps`. SMA, EMA, MACD and the Bollinger middle band equal
TA-Lib's to the last bit; RSI, ATR and the outer bands to rounding (rtol 1e-9). ``bbands``
takes TA-Lib's ``matype`` for its middle band (0 SMA, 1 EMA). Conventions are TA-Lib's: the first
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
    "BBANDS_MATYPES",
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

ArrayLike = np.ndarray | pd.Series  # or a polars Series (polars is optional)

#: TA-Lib's ``MA_Type`` codes the Bollinger middle band supports, and their names.
BBANDS_MATYPES: dict[int, str] = {0: "SMA", 1: "EMA"}


def _period(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    return int(value)


def _is_polars(values: object) -> bool:
    kind = type(values)
    return kind.__name__ == "Series" and kind.__module__.split(".")[0] == "polars"


def _like(values: object) -> tuple[str, object] | None:
    """How to wrap outputs like ``values``: ("pandas", index), ("polars", name) or None."""
    if isinstance(values, pd.Series):
        return ("pandas", values.index)
    if _is_polars(values):
        return ("polars", values.name)
    return None


def _inputs(**series: ArrayLike) -> tuple[list[np.ndarray], int, tuple[str, object] | None]:
    """Float64 copies of the inputs, the first row where all are finite, and how to wrap."""
    arrays = []
    like = None
    for name, values in series.items():
        like = like or _like(values)
        try:
            a = np.asarray(values.to_numpy() if _is_polars(values) else values, dtype=np.float64)
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
    return arrays, start, like


def _outputs(n: int, k: int) -> list[np.ndarray]:
    return [np.full(n, np.nan) for _ in range(k)]


def _wrap(values: list[np.ndarray], like: tuple[str, object] | None) -> ArrayLike | tuple:
    if like is not None and like[0] == "pandas":
        values = [pd.Series(v, index=like[1]) for v in values]
    elif like is not None:
        import polars

        values = [polars.Series(like[1], v) for v in values]
    return values[0] if len(values) == 1 else tuple(values)


def sma(close: ArrayLike, timeperiod: int = 20) -> ArrayLike:
    """Simple moving average of ``timeperiod`` bars (lookback ``timeperiod - 1``)."""
    n = _period("timeperiod", timeperiod)
    (c,), s, like = _inputs(close=close)
    (out,) = _outputs(len(c), 1)
    numba_backend.sma(c[s:], n, out[s:])
    return _wrap([out], like)


def ema(close: ArrayLike, timeperiod: int = 20) -> ArrayLike:
    """EMA, alpha = 2/(timeperiod + 1), seeded with the mean of the first bars."""
    n = _period("timeperiod", timeperiod)
    (c,), s, like = _inputs(close=close)
    (out,) = _outputs(len(c), 1)
    numba_backend.ema(c[s:], n, out[s:])
    return _wrap([out], like)


def rsi(close: ArrayLike, timeperiod: int = 14) -> ArrayLike:
    """Wilder's RSI, 0-100 (lookback ``timeperiod``); 0 where nothing moved at all."""
    n = _period("timeperiod", timeperiod)
    (c,), s, like = _inputs(close=close)
    (out,) = _outputs(len(c), 1)
    numba_backend.rsi(c[s:], n, out[s:])
    return _wrap([out], like)


def macd(
    close: ArrayLike, fastperiod: int = 12, slowperiod: int = 26, signalperiod: int = 9
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """``(macd, signal, hist)`` seeded as TA-Lib does (lookback ``slow + signal - 2``)."""
    fast = _period("fastperiod", fastperiod)
    slow = _period("slowperiod", slowperiod)
    signal = _period("signalperiod", signalperiod)
    if fast >= slow:
        raise ValueError(f"fastperiod must be < slowperiod, got {fast} and {slow}")
    (c,), s, like = _inputs(close=close)
    m, g, h = _outputs(len(c), 3)
    numba_backend.macd(c[s:], fast, slow, signal, m[s:], g[s:], h[s:])
    return _wrap([m, g, h], like)


def _matype(value: object) -> int:
    if isinstance(value, str):
        names = {name: code for code, name in BBANDS_MATYPES.items()}
        if value.upper() in names:
            return names[value.upper()]
    elif not isinstance(value, bool) and isinstance(value, int | np.integer):
        if int(value) in BBANDS_MATYPES:
            return int(value)
    raise ValueError(
        f"matype must be 0 (SMA) or 1 (EMA), TA-Lib's MA_Type.SMA or MA_Type.EMA; got {value!r}"
    )


def bbands(
    close: ArrayLike, timeperiod: int = 20, nbdev: float = 2.0, matype: int | str = 0
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """``(upper, middle, lower)``: a moving average +/- ``nbdev`` population standard deviations.

    TA-Lib's ``BBANDS(close, timeperiod, nbdevup=nbdev, nbdevdn=nbdev, matype)``. The middle
    band is the SMA (``matype=0``, TA-Lib's default) or the EMA (``matype=1``) of
    ``timeperiod`` bars; the deviation is always that of the window around its mean, as in
    TA-Lib. Other TA-Lib moving averages (WMA, DEMA, ...) raise ``ValueError``.
    """
    n = _period("timeperiod", timeperiod)
    if isinstance(nbdev, bool) or not isinstance(nbdev, int | float) or not nbdev > 0:
        raise ValueError(f"nbdev must be a number > 0, got {nbdev!r}")
    kernel = numba_backend.bbands_ema if _matype(matype) == 1 else numba_backend.bbands
    (c,), s, like = _inputs(close=close)
    upper, middle, lower = _outputs(len(c), 3)
    kernel(c[s:], n, float(nbdev), upper[s:], middle[s:], lower[s:])
    return _wrap([upper, middle, lower], like)


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, timeperiod: int = 14) -> ArrayLike:
    """Average true range (Wilder, lookback ``timeperiod``), in the prices' unit."""
    n = _period("timeperiod", timeperiod)
    (h, lo, c), s, like = _inputs(high=high, low=low, close=close)
    (out,) = _outputs(len(c), 1)
    numba_backend.atr(h[s:], lo[s:], c[s:], n, out[s:])
    return _wrap([out], like)
