"""Find and back-adjust corporate-action gaps (bonus/rights issues, mergers) in closes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nepse_perf.data.quality import DEFAULT_BAND, DEFAULT_TOL, _close_ratio
from nepse_perf.data.schema import OHLC, sorted_arrays, symbol_column

__all__ = ["adjust_for_gaps", "corporate_action_gaps"]

#: Bits for the day number in the (symbol, day) search key; datetime64[ns] spans +/-106,752 days.
_DAY_BITS = 18


def corporate_action_gaps(
    prices: pd.DataFrame, *, band: float = DEFAULT_BAND, tol: float = DEFAULT_TOL
) -> pd.DataFrame:
    """Close-to-close moves too large for NEPSE's daily price band, taken as corporate actions.

    Returns columns ``symbol`` (Categorical, same categories as ``prices``), ``date`` (the
    ``datetime64[ns]`` session on which the new price level first appears) and ``ratio``
    (float64, ``close / previous close`` of the same symbol; e.g. ADBL 2016-09-26 675/995),
    one row per move with ``|ratio - 1| > band + tol``, sorted by symbol and date with a fresh
    RangeIndex.  Prices are unadjusted NPR (index points); the default ``band=0.10`` is the
    +/-10 % NEPSE limit and ``tol=0.005`` keeps limit moves that tick rounding pushes just past
    10 % from being flagged, so the default threshold is 10.5 %.  "Previous" means the
    previous row, whatever the calendar gap, and a spurious one-day price (e.g. ADBL
    2011-11-29) shows up as two gaps: inspect before trusting.
    """
    if not (band > 0 and tol >= 0):
        raise ValueError(f"band must be > 0 and tol >= 0, got band={band!r}, tol={tol!r}")
    arrays = sorted_arrays(prices, ("close",))
    ratio = _close_ratio(arrays.values["close"], arrays.same_symbol_as_prev)
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero(np.abs(ratio - 1.0) > band + tol)
    return pd.DataFrame(
        {
            "symbol": symbol_column(arrays.codes[rows], arrays.categories),
            "date": arrays.dates[rows],
            "ratio": ratio[rows],
        }
    )


def adjust_for_gaps(prices: pd.DataFrame, gaps: pd.DataFrame | None = None) -> pd.DataFrame:
    """Back-adjust prices so each gap's close-to-close jump disappears; returns a new frame.

    For every gap (``symbol, date, ratio``; by default :func:`corporate_action_gaps` of
    ``prices``) all rows of that symbol dated *before* the gap have ``open, high, low, close``
    multiplied by ``ratio`` and ``volume`` divided by it, compounding over later gaps, so the
    latest prices (NPR, or index points) are unchanged and earlier ones are expressed in today's
    share units; ``turnover`` (NPR traded) is left as is.  Rows keep their order, columns and
    dtypes, and ``attrs`` are copied.  After adjusting with the default gaps,
    :func:`corporate_action_gaps` of the result is empty.  Raises ``ValueError`` when ``gaps``
    names a symbol that ``prices`` lacks or holds a ratio that is not finite and positive.
    """
    arrays = sorted_arrays(prices, ())
    if gaps is None:
        gaps = corporate_action_gaps(prices)
    missing = [c for c in ("symbol", "date", "ratio") if c not in gaps.columns]
    if missing:
        raise ValueError(f"gaps lacks column(s) {', '.join(map(repr, missing))}")
    out = prices.copy()
    if len(gaps) == 0:
        return out

    ratios = gaps["ratio"].to_numpy(dtype=np.float64)
    if not (np.isfinite(ratios) & (ratios > 0)).all():
        raise ValueError("gaps['ratio'] must be finite and > 0")
    gap_symbols = gaps["symbol"].astype(str).to_numpy()
    gap_codes = arrays.categories.get_indexer(gap_symbols).astype(np.int64)
    if (gap_codes < 0).any():
        unknown = sorted(set(gap_symbols[gap_codes < 0]))
        raise ValueError(f"gaps names symbol(s) not in prices: {', '.join(unknown[:5])}")
    gap_keys = _keys(gap_codes, gaps["date"].to_numpy().astype("datetime64[ns]"))
    order = np.argsort(gap_keys, kind="stable")
    gap_keys, gap_codes, ratios = gap_keys[order], gap_codes[order], ratios[order]

    # suffix[k]: product of the ratios of gap k and every later gap of the same symbol.
    rev = pd.Series(ratios[::-1]).groupby(gap_codes[::-1]).cumprod().to_numpy()
    suffix = rev[::-1]

    # Rows in the caller's order: factor = suffix of the first gap strictly after the row.
    if arrays.order is None:
        row_codes, row_dates = arrays.codes, arrays.dates
    else:
        inverse = np.empty_like(arrays.order)
        inverse[arrays.order] = np.arange(len(arrays.order))
        row_codes, row_dates = arrays.codes[inverse], arrays.dates[inverse]
    k = np.searchsorted(gap_keys, _keys(row_codes, row_dates), side="right")
    hit = k < len(gap_keys)
    hit[hit] = gap_codes[k[hit]] == row_codes[hit]
    factor = np.ones(len(row_codes))
    factor[hit] = suffix[k[hit]]

    for col in OHLC:
        out[col] = out[col].to_numpy(dtype=np.float64) * factor
    if "volume" in out.columns:
        out["volume"] = out["volume"].to_numpy(dtype=np.float64) / factor
    return out


def _keys(codes: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Sortable int64 key of (symbol code, calendar day)."""
    days = dates.astype("datetime64[D]").astype(np.int64)
    return (codes << _DAY_BITS) + days + (1 << (_DAY_BITS - 1))
