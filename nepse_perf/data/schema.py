"""The long price frame every function of :mod:`nepse_perf.data` returns or accepts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["PRICE_COLUMNS", "VALUE_COLUMNS"]

#: Columns of a price frame, in order.  ``symbol`` is a pandas Categorical with sorted
#: categories, ``date`` is ``datetime64[ns]`` (session date, no time of day), the rest are
#: float64: ``open/high/low/close`` in NPR per share (index: points), ``volume`` in shares
#: (NaN where not published), ``turnover`` in NPR (0.0 where the source did not record it).
#: Rows are sorted by symbol, then date, with a fresh RangeIndex.
PRICE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "date",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "turnover",
)

#: The float64 columns of a price frame.
VALUE_COLUMNS: tuple[str, ...] = PRICE_COLUMNS[2:]

OHLC: tuple[str, ...] = ("open", "high", "low", "close")


@dataclass(frozen=True)
class SortedPrices:
    """A price frame's arrays in (symbol, date) order, plus ``order`` into the original rows."""

    codes: np.ndarray
    categories: pd.Index
    dates: np.ndarray
    values: dict[str, np.ndarray]
    order: np.ndarray | None

    @property
    def same_symbol_as_prev(self) -> np.ndarray:
        """Boolean mask: row i belongs to the same symbol as row i - 1 (False for row 0)."""
        same = np.zeros(len(self.codes), dtype=bool)
        same[1:] = self.codes[1:] == self.codes[:-1]
        return same


def sorted_arrays(prices: pd.DataFrame, columns: tuple[str, ...] = OHLC) -> SortedPrices:
    """Validate ``prices`` and return its arrays sorted by symbol, then date."""
    if not isinstance(prices, pd.DataFrame):
        raise TypeError(f"prices must be a pandas DataFrame, not {type(prices).__name__}")
    missing = [c for c in ("symbol", "date", *columns) if c not in prices.columns]
    if missing:
        raise ValueError(f"prices lacks column(s) {', '.join(map(repr, missing))}")
    symbol = prices["symbol"]
    cat = symbol.cat if isinstance(symbol.dtype, pd.CategoricalDtype) else None
    if cat is None:
        categorical = pd.Categorical(symbol.astype(str))
        codes = categorical.codes.astype(np.int64)
        categories = categorical.categories
    else:
        codes = cat.codes.to_numpy().astype(np.int64)
        categories = cat.categories
    if (codes < 0).any():
        raise ValueError("prices has missing symbols")
    dates = prices["date"].to_numpy().astype("datetime64[ns]")
    values = {c: prices[c].to_numpy(dtype=np.float64) for c in columns}
    order = None
    n = len(codes)
    if n > 1:
        step_code = codes[1:] - codes[:-1]
        in_order = (step_code > 0) | ((step_code == 0) & (dates[1:] >= dates[:-1]))
        if not in_order.all():
            order = np.lexsort((dates, codes))
            codes, dates = codes[order], dates[order]
            values = {c: v[order] for c, v in values.items()}
    return SortedPrices(codes, categories, dates, values, order)


def symbol_column(codes: np.ndarray, categories: pd.Index) -> pd.Categorical:
    """A ``symbol`` Categorical from integer codes and the (sorted) categories."""
    return pd.Categorical.from_codes(codes, categories=categories)
