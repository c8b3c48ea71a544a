"""The float32 path: prices and indicators *stored* in float32, arithmetic kept in float64.

What is float32 here, precisely: the price arrays the kernels read and the ten output
arrays they write. The kernels are the ``numba`` backend's (:mod:`.indicators.numba_backend`,
the ``python`` loops compiled) specialised for float32 arrays; their running totals,
averages and recurrences start from float64 literals, so every sum and product happens in
float64 registers and is rounded to float32 only when stored. Storage halves; the price
of it is two roundings of 2**-24 relative each (the input prices, the outputs).
:func:`float32_errors` measures what that does to each indicator against TA-Lib (float64).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nepse_perf.indicators.backends import numba as numba_backend
from nepse_perf.indicators.panel import panel_from_frame
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams
from nepse_perf.pipeline import compute_indicators, frame_from_block

__all__ = ["PRICE_COLUMNS_32", "float32_errors", "float32_prices", "indicators_float32"]

#: The price columns :func:`float32_prices` downcasts.
PRICE_COLUMNS_32: tuple[str, ...] = ("open", "high", "low", "close")


def float32_prices(prices: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``prices`` with its price columns (open/high/low/close present) cast to float32.

    This is a forced downcast: every price is rounded to the nearest float32 (24-bit
    mantissa, so 0.1-NPR ticks above 2**20/10 ~ 100,000 NPR, and most 0.1 values anywhere,
    are no longer exact). ``pd.to_numeric(downcast='float')`` is no guard against this: it
    downcasts whenever every value moves by at most its absolute tolerance of 5e-4, which
    half a float32 step never exceeds below 16,384 NPR (notebook 07 computes the threshold).
    """
    cols = {c: np.float32 for c in PRICE_COLUMNS_32 if c in prices.columns}
    return prices.astype(cols)


def indicators_float32(prices: pd.DataFrame, **params: float) -> pd.DataFrame:
    """The ten indicators with float32 inputs and outputs, float64 arithmetic inside.

    ``prices`` may hold float32 or float64 prices; they are rounded to float32 either way.
    Returns float32 columns (``OUTPUT_COLUMNS``) with the same index as ``prices``. The
    first call compiles the float32 specialisation of the ``numba`` kernels (cached on
    disk afterwards).
    """
    p = IndicatorParams.from_kwargs(**params)
    panel = panel_from_frame(prices)
    out = np.empty((len(OUTPUT_COLUMNS), panel.n_rows), dtype=np.float32)
    if panel.n_rows:
        numba_backend.compute_panel(
            panel.close.astype(np.float32),
            panel.high.astype(np.float32),
            panel.low.astype(np.float32),
            panel.offsets,
            panel.starts,
            p.kernel_args(),
            out,
        )
    return frame_from_block(out, panel, prices.index)


def _max_abs(got: np.ndarray, ref: np.ndarray, scale: np.ndarray | None = None) -> float:
    ok = ~np.isnan(ref)
    if not np.array_equal(np.isnan(got), ~ok):
        return float("inf")
    if not ok.any():
        return 0.0
    diff = np.abs(got[ok].astype(np.float64) - ref[ok])
    if scale is not None:
        diff = diff / scale[ok]
    return float(np.max(diff))


def float32_errors(
    prices: pd.DataFrame, reference: pd.DataFrame | None = None, **params: float
) -> pd.DataFrame:
    """Per indicator: how far float32 storage moves the result from TA-Lib's float64 one.

    Columns: ``typical`` (median |value| of the reference over all rows), ``float64`` (the
    ``numba`` backend on float64 prices: the baseline, ~1e-12), ``float32 prices`` (prices
    stored in float32, indicators computed and stored in float64: the input rounding alone),
    ``float32 in+out`` (:func:`indicators_float32`: inputs and outputs in float32) and
    ``relative`` (the ``float32 in+out`` difference of each row divided by the median |value|
    of that indicator for that row's symbol, maximised: the error in units of the
    indicator's own size, so a 55,000-NPR stock and a 200-NPR one weigh alike). Differences
    are maximum absolute differences over every non-NaN value, in the indicator's unit (NPR,
    or RSI points); ``inf`` means a changed NaN pattern. ``reference`` defaults to
    ``compute_indicators(prices, 'talib', **params)``.
    """
    ref = compute_indicators(prices, "talib", **params) if reference is None else reference
    base = compute_indicators(prices, "numba", **params)
    stored = compute_indicators(float32_prices(prices), "numba", **params)
    both = indicators_float32(prices, **params)
    symbol = prices["symbol"]
    rows = []
    for col in OUTPUT_COLUMNS:
        r = ref[col].to_numpy()
        scale = ref[col].abs().groupby(symbol, observed=True).transform("median").to_numpy()
        rows.append(
            (
                float(np.nanmedian(np.abs(r))),
                _max_abs(base[col].to_numpy(), r),
                _max_abs(stored[col].to_numpy(), r),
                _max_abs(both[col].to_numpy(), r),
                _max_abs(both[col].to_numpy(), r, scale),
            )
        )
    columns = ["typical", "float64", "float32 prices", "float32 in+out", "relative"]
    return pd.DataFrame(rows, index=pd.Index(list(OUTPUT_COLUMNS), name="column"), columns=columns)
