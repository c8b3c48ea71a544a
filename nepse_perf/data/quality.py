"""Price-anomaly report for a loaded (or synthetic) price frame."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nepse_perf.data.schema import sorted_arrays, symbol_column

__all__ = ["ANOMALY_KINDS", "REAL_OPEN_FROM", "check_prices"]

#: The anomaly kinds :func:`check_prices` reports, in the order rows of one day are sorted.
ANOMALY_KINDS: tuple[str, ...] = (
    "bad_price",
    "band_breach",
    "close_outside_range",
    "high_below_low",
    "open_outside_range",
)

#: ``open`` is checked against the day's range only from this date on: before about Feb-Mar
#: 2018 the nepal-market-data files carry the previous close in ``open`` (SOURCE.md quirk 2).
REAL_OPEN_FROM = np.datetime64("2018-03-01", "ns")

#: NEPSE's daily price band (+/-10 %) and the tolerance for tick rounding of limit moves.
DEFAULT_BAND = 0.10
DEFAULT_TOL = 0.005


def check_prices(
    prices: pd.DataFrame, *, band: float = DEFAULT_BAND, tol: float = DEFAULT_TOL
) -> pd.DataFrame:
    """Report price anomalies, one row per (symbol, date, kind), without changing the data.

    Returns columns ``symbol`` (Categorical, same categories as ``prices``), ``date``
    (``datetime64[ns]``), ``kind`` and ``detail`` (human-readable, prices with 2 decimals in
    NPR or index points), sorted by symbol, date, kind, with a fresh RangeIndex.  Kinds:
    ``high_below_low`` (high < low); ``close_outside_range`` (close outside [low, high], checked
    only where high >= low); ``open_outside_range`` (the same for open, only from 2018-03-01,
    because earlier ``open`` is the previous close, SOURCE.md quirk 2; close-only rows with
    open = high = low = close, like the capstone index before 2015-08, can never trip it); and
    ``band_breach``: a close-to-close move beyond NEPSE's +/-``band`` daily limit, i.e.
    ``|close / previous close - 1| > band + tol`` where ``tol`` (default 0.005) absorbs tick
    rounding of limit moves.  "Previous" is the symbol's previous *row*, whatever the calendar
    gap; unadjusted bonus/rights issues show up here (see :func:`corporate_action_gaps`).
    ``bad_price`` lists each record of ``prices.attrs["bad_prices"]``: a price that
    :func:`load_prices` read as not published (0, negative or blank) and what it did with it
    (``"open 0.00 not published: open set to NaN (HLBSL.csv, line 2)"``); a symbol that lost
    every bar is added to the categories.
    """
    arrays = sorted_arrays(prices)
    codes, dates = arrays.codes, arrays.dates
    o, h, lo, c = (arrays.values[k] for k in ("open", "high", "low", "close"))

    found: list[tuple[np.ndarray, int, list[str]]] = []  # (row indices, kind index, details)

    def add(kind: str, rows: np.ndarray, details: list[str]) -> None:
        found.append((rows, ANOMALY_KINDS.index(kind), details))

    rows = np.flatnonzero(h < lo)
    add("high_below_low", rows, [f"high {h[i]:.2f} < low {lo[i]:.2f}" for i in rows])

    ordered = h >= lo
    rows = np.flatnonzero(ordered & ((c < lo) | (c > h)))
    add(
        "close_outside_range",
        rows,
        [f"close {c[i]:.2f} outside [low {lo[i]:.2f}, high {h[i]:.2f}]" for i in rows],
    )

    rows = np.flatnonzero(ordered & (dates >= REAL_OPEN_FROM) & ((o < lo) | (o > h)))
    add(
        "open_outside_range",
        rows,
        [f"open {o[i]:.2f} outside [low {lo[i]:.2f}, high {h[i]:.2f}]" for i in rows],
    )

    ratio = _close_ratio(c, arrays.same_symbol_as_prev)
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero(np.abs(ratio - 1.0) > band + tol)
    add(
        "band_breach",
        rows,
        [f"close {c[i]:.2f} vs prev {c[i - 1]:.2f} ({(ratio[i] - 1.0) * 100:+.2f}%)" for i in rows],
    )

    idx = np.concatenate([f[0] for f in found]).astype(np.int64)
    kind_idx = np.concatenate([np.full(len(f[0]), f[1], dtype=np.int64) for f in found])
    details = np.array([d for f in found for d in f[2]], dtype=object)
    records = prices.attrs.get("bad_prices") or ()
    return _report(codes[idx], dates[idx], kind_idx, details, arrays.categories, records)


def _report(
    codes: np.ndarray,
    dates: np.ndarray,
    kind_idx: np.ndarray,
    details: np.ndarray,
    categories: pd.Index,
    records: Sequence[dict],
) -> pd.DataFrame:
    """The report frame of the anomalies found plus the loader's ``bad_prices`` records."""
    if records:
        categories, bad_codes, bad_dates, bad_details = _bad_price_rows(records, categories)
        codes = np.concatenate([codes, bad_codes])
        dates = np.concatenate([dates, bad_dates])
        bad_kind = ANOMALY_KINDS.index("bad_price")
        kind_idx = np.concatenate([kind_idx, np.full(len(bad_codes), bad_kind, dtype=np.int64)])
        details = np.concatenate([details, bad_details])
    order = np.lexsort((kind_idx, dates, codes))
    kinds = np.array(ANOMALY_KINDS, dtype=object)[kind_idx[order]]
    return pd.DataFrame(
        {
            "symbol": symbol_column(codes[order], categories),
            "date": dates[order],
            "kind": pd.array(kinds, dtype="str"),
            "detail": pd.array(details[order], dtype="str"),
        }
    )


def _bad_price_rows(
    records: Sequence[dict], categories: pd.Index
) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]:
    """Categories (plus any symbol only the records name), codes, dates and details of the
    loader's records of prices that were not published."""
    known = {s: k for k, s in enumerate(categories)}
    extra = sorted({str(r["symbol"]) for r in records} - set(known))
    if extra:
        categories = categories.append(pd.Index(extra, dtype=categories.dtype))
        known = {s: k for k, s in enumerate(categories)}
    codes = np.array([known[str(r["symbol"])] for r in records], dtype=np.int64)
    dates = np.array([r["date"] for r in records], dtype="datetime64[ns]")
    details = np.array(
        [
            f"{r['column']} {float(r['value']):.2f} not published: {r['action']} "
            f"({Path(str(r['file'])).name}, {r.get('where', r['line'])})"
            for r in records
        ],
        dtype=object,
    )
    return categories, codes, dates, details


def _close_ratio(close: np.ndarray, same_symbol: np.ndarray) -> np.ndarray:
    """close[i] / close[i - 1] within a symbol; NaN on each symbol's first row."""
    ratio = np.full(len(close), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio[1:] = close[1:] / close[:-1]
    ratio[~same_symbol] = np.nan
    return ratio
