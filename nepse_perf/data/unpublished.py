"""What :func:`nepse_perf.data.load_prices` does with a price that was not published.

The wider NEPSE market (``data/nepse/SOURCE.md``, section 3) has rows with ``0.0`` in
``open``, ``high`` or ``low`` on a day that traded; a blank price cell means the same. Such a
cell is "not published", never a price. In default mode the loader applies this policy, one
record per bad cell in ``prices.attrs["bad_prices"]``:

* a bar whose ``high``, ``low`` or ``close`` is not published is **dropped**
  (:data:`DROPPED_BAR`): the indicators read exactly these three columns (TR and ATR need
  high and low, everything else the close), a bar cannot be repaired from its own fields
  without inventing a price, and a NaN left in the bar would reach the recurrences (a NaN fed
  into Wilder's ATR stays NaN for the rest of the series). Dropping it leaves the symbol's
  other bars whole, and the indicators on them equal TA-Lib on the same bars;
* a bar whose only unpublished price is ``open`` is **kept** with ``open`` set to NaN
  (:data:`OPEN_SET_TO_NAN`): no indicator reads ``open``, and NaN is the frame's "not
  published" (as for a blank volume). In the market these are first rows, where the
  source's old ``open`` (the previous close, SOURCE.md quirk 2) had no previous close.

``strict=True`` raises :class:`nepse_perf.data.DataError` instead, naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "BAR_COLUMNS",
    "DROPPED_BAR",
    "OPEN_SET_TO_NAN",
    "RECORD_FIELDS",
    "bad_price_note",
    "bar_mask",
    "make_records",
    "sort_records",
]

#: The columns a bar cannot do without: the indicators read close, high and low.
BAR_COLUMNS: tuple[str, ...] = ("high", "low", "close")

#: The action of a cell whose bar was dropped (its high, low or close was not published).
DROPPED_BAR = "dropped bar"

#: The action of an unpublished ``open`` in a bar that was otherwise whole.
OPEN_SET_TO_NAN = "open set to NaN"

#: The keys of each ``attrs["bad_prices"]`` record, in order: ``date`` is ``YYYY-MM-DD``,
#: ``value`` the price as read (NaN: blank), ``line`` the 1-based file line (CSV, header =
#: line 1) or data row (Parquet), and ``where`` says which, as the loader's errors do
#: (``"line 17"``, ``"row 3"``).
RECORD_FIELDS: tuple[str, ...] = (
    "symbol",
    "date",
    "column",
    "value",
    "action",
    "file",
    "line",
    "where",
)

_COLUMN_ORDER = {c: k for k, c in enumerate(("open", "high", "low", "close"))}


def bar_mask(masks: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Rows whose bar is dropped: an unpublished high, low or close."""
    drop = np.zeros(n, dtype=bool)
    for col in BAR_COLUMNS:
        if col in masks:
            drop |= masks[col]
    return drop


def make_records(
    masks: Mapping[str, np.ndarray],
    drop: np.ndarray,
    values: Mapping[str, np.ndarray],
    dates: np.ndarray,
    where: np.ndarray,
    unit: str,
    symbol_of: Callable[[int], str],
    file_of: Callable[[int], Path],
) -> list[dict[str, object]]:
    """One record per unpublished cell (:data:`RECORD_FIELDS`), in column then row order.

    ``masks`` maps a price column to its unpublished rows, ``drop`` marks the rows whose bar
    is dropped (:func:`bar_mask`), ``values``, ``dates`` and ``where`` (file line or data
    row, as ``unit`` says: ``"line"`` or ``"row"``) are the rows as read, and ``symbol_of(i)``
    and ``file_of(i)`` give row ``i``'s symbol and file.
    """
    records: list[dict[str, object]] = []
    for col in sorted(masks, key=_COLUMN_ORDER.__getitem__):
        for i in np.flatnonzero(masks[col]):
            records.append(
                {
                    "symbol": symbol_of(i),
                    "date": str(np.datetime_as_string(dates[i], unit="D")),
                    "column": col,
                    "value": float(values[col][i]),
                    "action": DROPPED_BAR if drop[i] else OPEN_SET_TO_NAN,
                    "file": str(file_of(i)),
                    "line": int(where[i]),
                    "where": f"{unit} {int(where[i])}",
                }
            )
    return records


def sort_records(records: Iterable[dict[str, object]]) -> list[dict[str, object]]:
    """``records`` sorted by symbol, date, column (open, high, low, close), file and line."""
    return sorted(
        records,
        key=lambda r: (r["symbol"], r["date"], _COLUMN_ORDER[r["column"]], r["file"], r["line"]),
    )


def bad_price_note(records: Sequence[dict[str, object]]) -> str | None:
    """The load note that counts the unpublished cells and what was done, or None if none.

    ``"12 price cell(s) not published (0, negative or blank): 4 bar(s) dropped, 5 open(s)
    set to NaN; each is listed in attrs['bad_prices'] and by check_prices()"``.
    """
    if not records:
        return None
    dropped = {(r["symbol"], r["date"], r["file"]) for r in records if r["action"] == DROPPED_BAR}
    opens = sum(1 for r in records if r["action"] == OPEN_SET_TO_NAN)
    return (
        f"{len(records)} price cell(s) not published (0, negative or blank): "
        f"{len(dropped)} bar(s) dropped, {opens} open(s) set to NaN; each is listed in "
        "attrs['bad_prices'] and by check_prices()"
    )
