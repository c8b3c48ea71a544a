"""The model's features: the ten indicators plus scale-free transforms, defined in one place.

Every feature of session t uses prices of sessions <= t of the same symbol only (windows
count rows of a symbol, as the indicators do). ``FEATURES`` is the column order the model,
its ONNX file and the prediction service all use:

===================  ===================================================================
``sma`` ... ``atr``  the ten indicators of ``compute_indicators`` (NPR or index points;
                     RSI in 0-100), TA-Lib's definitions and warm-ups
``ret_1``            close_t / close_(t-1) - 1 (simple return over one session)
``ret_5``            close_t / close_(t-5) - 1
``close_sma``        close_t / sma_t - 1 (distance from the 20-session mean)
``close_ema``        close_t / ema_t - 1
``bb_position``      (close - lower) / (upper - lower): 0 at the lower band, 1 at the upper
                     band; 0.5 when the band has zero width (a flat window)
``bb_width``         (upper - lower) / middle (relative band width)
``atr_pct``          atr_t / close_t (average true range relative to the price)
``macd_pct``         macd_t / close_t and ``macd_hist_pct`` macd_hist_t / close_t
``range_pct``        (high_t - low_t) / close_t (today's range relative to the price)
===================  ===================================================================

The ten indicators are not scale-free (a 2,000 NPR stock has a larger SMA than a 200 NPR
one); they are kept because the issue asks for them and the trees can still use them, and
the ratios above carry the scale-free information.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nepse_perf.indicators.params import OUTPUT_COLUMNS
from nepse_perf.pipeline import DEFAULT_BACKEND, compute_indicators

__all__ = ["DERIVED_FEATURES", "FEATURES", "feature_frame", "warmup_rows"]

#: The scale-free features derived from prices and indicators (see the module docstring).
DERIVED_FEATURES: tuple[str, ...] = (
    "ret_1",
    "ret_5",
    "close_sma",
    "close_ema",
    "bb_position",
    "bb_width",
    "atr_pct",
    "macd_pct",
    "macd_hist_pct",
    "range_pct",
)

#: Every feature, in the order of the model's input columns.
FEATURES: tuple[str, ...] = (*OUTPUT_COLUMNS, *DERIVED_FEATURES)


def warmup_rows(**params: float) -> int:
    """Rows at the start of each symbol with at least one NaN feature (default parameters: 33).

    The longest warm-up is the MACD signal line (``macd_slow + macd_signal - 2`` rows);
    ``ret_5`` needs 5 earlier rows. Useful to size test data and to explain ``Dataset.dropped``.
    """
    from nepse_perf.indicators.params import IndicatorParams

    p = IndicatorParams.from_kwargs(**params)
    lookbacks = p.lookbacks()
    return max(max(lookbacks.values()), 5)


def feature_frame(
    prices: pd.DataFrame, *, backend: str = DEFAULT_BACKEND, **params: float
) -> pd.DataFrame:
    """Every feature of ``FEATURES`` for every row of ``prices``, NaN inside any warm-up.

    ``prices`` is the long frame of ``load_prices`` (``symbol``, ``date``, ``high``, ``low``,
    ``close``; any row order). Returns a float64 frame with the same index as ``prices``
    and the columns of ``FEATURES``; the indicators come from ``compute_indicators`` with
    ``backend`` and the indicator ``params``. Returns per symbol use that symbol's previous
    rows only (a symbol's first rows have NaN returns).
    """
    ind = compute_indicators(prices, backend, **params)
    order = np.lexsort((prices["date"].to_numpy(), prices["symbol"].astype(str).to_numpy()))
    close = prices["close"].to_numpy(dtype=np.float64)
    high = prices["high"].to_numpy(dtype=np.float64)
    low = prices["low"].to_numpy(dtype=np.float64)
    sym = prices["symbol"].astype(str).to_numpy()

    # previous closes of the same symbol, computed in (symbol, date) order
    def lagged(k: int) -> np.ndarray:
        s_close = close[order]
        s_sym = sym[order]
        prev = np.full_like(s_close, np.nan)
        if len(s_close) > k:
            same = s_sym[k:] == s_sym[:-k]
            prev[k:] = np.where(same, s_close[:-k], np.nan)
        out = np.empty_like(prev)
        out[order] = prev
        return out

    with np.errstate(divide="ignore", invalid="ignore"):
        upper = ind["bb_upper"].to_numpy()
        lower = ind["bb_lower"].to_numpy()
        width = upper - lower
        position = np.where(width > 0, (close - lower) / width, 0.5)
        position[np.isnan(width)] = np.nan
        derived = {
            "ret_1": close / lagged(1) - 1.0,
            "ret_5": close / lagged(5) - 1.0,
            "close_sma": close / ind["sma"].to_numpy() - 1.0,
            "close_ema": close / ind["ema"].to_numpy() - 1.0,
            "bb_position": position,
            "bb_width": width / ind["bb_middle"].to_numpy(),
            "atr_pct": ind["atr"].to_numpy() / close,
            "macd_pct": ind["macd"].to_numpy() / close,
            "macd_hist_pct": ind["macd_hist"].to_numpy() / close,
            "range_pct": (high - low) / close,
        }
    frame = ind.copy()
    for name in DERIVED_FEATURES:
        frame[name] = derived[name]
    return frame[list(FEATURES)]
