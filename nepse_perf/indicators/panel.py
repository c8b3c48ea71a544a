"""The panel layout every backend reads: one contiguous slice of rows per symbol.

A panel is the long price frame sorted by symbol then date. Each symbol's rows are the
slice ``offsets[s]:offsets[s + 1]`` of the flat ``close``, ``high`` and ``low`` arrays
(float64, NPR). ``starts[s]`` is the first row of symbol ``s`` where close, high and low
are all finite; rows before it are leading NaNs and get NaN outputs, exactly as TA-Lib's
Python wrapper skips leading NaNs. A NaN after that start is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

REQUIRED_COLUMNS: tuple[str, ...] = ("symbol", "date", "high", "low", "close")


@dataclass(frozen=True)
class Panel:
    """Flat float64 price arrays plus per-symbol offsets and first-valid rows.

    ``order`` is ``None`` when the frame was already sorted by symbol then date; otherwise
    it is the permutation that sorts it, and outputs are scattered back through it.
    """

    close: np.ndarray
    high: np.ndarray
    low: np.ndarray
    offsets: np.ndarray
    starts: np.ndarray
    symbols: tuple[str, ...]
    order: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        """Number of rows (bars) in the panel."""
        return int(self.close.shape[0])

    @property
    def n_symbols(self) -> int:
        """Number of symbols (contiguous slices) in the panel."""
        return int(self.offsets.shape[0] - 1)

    def valid_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Index triple ``(row, bar, symbol)`` of every row from each symbol's first valid bar.

        ``row`` is the flat panel row, ``bar`` its position counted from the symbol's first
        complete bar (0, 1, ...) and ``symbol`` the symbol's number, all int64 arrays.
        """
        lens = self.offsets[1:] - self.starts
        sym = np.repeat(np.arange(self.n_symbols, dtype=np.int64), lens)
        bar = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
        return np.repeat(self.starts, lens) + bar, bar, sym

    def kernel_inputs(self) -> tuple[np.ndarray, ...]:
        """``(close, high, low, offsets, starts)``: the arrays every panel kernel takes first."""
        return self.close, self.high, self.low, self.offsets, self.starts

    def slices(self) -> list[tuple[str, int, int, int]]:
        """``(symbol, first_row, first_valid_row, end_row)`` for each symbol, in panel order."""
        return [
            (self.symbols[s], int(self.offsets[s]), int(self.starts[s]), int(self.offsets[s + 1]))
            for s in range(self.n_symbols)
        ]


_NAT = np.iinfo(np.int64).min

#: :func:`_layout`'s status codes.
_FINE, _UNSORTED, _SAME_DATE, _NAN_AFTER_START, _NO_DATE, _NO_SYMBOL = range(6)


@numba.njit(cache=True, fastmath={"reassoc"})
def _layout(codes, dates, close, high, low):  # pragma: no cover - compiled
    """Check a long frame's arrays and find its symbols' slices, in one compiled call.

    ``codes`` are the symbols' integer codes (-1 for a missing symbol), ``dates`` int64
    nanoseconds. Returns ``(status, row, offsets, starts)``: ``_FINE`` with the slices, or
    the first problem and its row: ``_NO_SYMBOL``, ``_NO_DATE`` (NaT), ``_UNSORTED`` (not
    sorted by symbol then date: the caller sorts and calls again), ``_SAME_DATE`` (a
    symbol's date twice) or ``_NAN_AFTER_START`` (a NaN price after a symbol's first
    complete row). The common case, a sorted frame of finite prices, reads each column
    once, in a loop the compiler vectorises: ``x - x`` is 0 for a finite ``x`` and NaN for
    NaN or an infinity, so the sum of those differences is 0 exactly when every price is
    finite (reassociation, and nothing else of fast-math, lets the sums vectorise; NaN stays
    NaN); the smallest code and date tell whether one is missing; a row is out of order when
    its code is below the row before's, or equal with a date not after it. The slices of
    sorted codes then take one binary search per symbol, not another pass over the rows;
    only a frame with a problem is searched row by row.
    """
    n = codes.shape[0]
    none = np.zeros(1, dtype=np.int64)
    if n == 0:
        return _FINE, -1, none, none[:0]
    acc = (close[0] - close[0]) + (high[0] - high[0]) + (low[0] - low[0])
    lowest = codes[0]
    smallest = dates[0]
    disorder = 0
    groups = 1
    for i in range(1, n):
        acc += (close[i] - close[i]) + (high[i] - high[i]) + (low[i] - low[i])
        lowest = min(lowest, codes[i])
        smallest = min(smallest, dates[i])
        new = codes[i] != codes[i - 1]
        groups += new
        disorder += (codes[i] < codes[i - 1]) | (not new and dates[i] <= dates[i - 1])
    if lowest < 0:
        return _NO_SYMBOL, int(np.argmin(codes)), none, none[:0]
    if smallest == _NAT:
        return _NO_DATE, int(np.argmin(dates)), none, none[:0]
    if disorder:
        status, row = _first_disorder(codes, dates)
        return status, row, none, none[:0]
    offsets = np.empty(groups + 1, dtype=np.int64)
    offsets[0] = 0
    for g in range(groups):
        offsets[g + 1] = np.searchsorted(codes, codes[offsets[g]], side="right")
    starts = offsets[:-1].copy()
    if acc == 0.0:
        return _FINE, -1, offsets, starts
    status, row = _first_starts(close, high, low, offsets, starts)
    return status, row, offsets, starts


@numba.njit(cache=True)
def _first_disorder(codes, dates):  # pragma: no cover - compiled
    """``(status, row)`` of the first row out of symbol/date order (``_UNSORTED``) or with
    its symbol's previous date again (``_SAME_DATE``)."""
    for i in range(1, codes.shape[0]):
        if codes[i] < codes[i - 1]:
            return _UNSORTED, i
        if codes[i] == codes[i - 1] and dates[i] <= dates[i - 1]:
            return (_SAME_DATE if dates[i] == dates[i - 1] else _UNSORTED), i
    return _FINE, -1


@numba.njit(cache=True)
def _first_starts(close, high, low, offsets, starts):  # pragma: no cover - compiled
    """Set ``starts`` to each symbol's first row of finite prices; returns ``(status, row)``:
    ``_NAN_AFTER_START`` and the row of the first NaN after a start, or ``_FINE``."""
    for g in range(offsets.shape[0] - 1):
        s = offsets[g]
        b = offsets[g + 1]
        while s < b and not (
            np.isfinite(close[s]) and np.isfinite(high[s]) and np.isfinite(low[s])
        ):
            s += 1
        starts[g] = s
        for i in range(s, b):
            if not (np.isfinite(close[i]) and np.isfinite(high[i]) and np.isfinite(low[i])):
                return _NAN_AFTER_START, i
    return _FINE, -1


def _bare(prices: pd.DataFrame) -> pd.DataFrame:
    """``prices`` without its ``attrs``, sharing its data (no copy).

    pandas deep-copies a frame's ``attrs`` into every Series taken from it; the loader's
    report there (notes, repairs, duplicates by symbol) made each column access cost more
    than the whole kernel on the real market. A shallow frame over the same data has none.
    """
    return pd.DataFrame(prices, copy=False) if prices.attrs else prices


def _column(prices: pd.DataFrame, name: str) -> object:
    """Column ``name``'s values as pandas stores them (ndarray or extension array), no copy.

    No Series is built: a Series costs a few microseconds of Python on a warm machine and
    several times that after other work has evicted pandas' code and data from the caches,
    and it deep-copies the frame's ``attrs``; on the real sample the panel builder's column
    accesses cost more than the kernel. pandas' own column accessor
    (``DataFrame._get_column_array``, pandas 1.3+) is used when there is one, and the public
    ``prices[name].array`` of a frame without ``attrs`` otherwise (or for a duplicated name).
    """
    getter = getattr(prices, "_get_column_array", None)
    loc = prices.columns.get_loc(name)
    if getter is not None and isinstance(loc, int):
        return getter(loc)
    return _bare(prices)[name].array


def _float_column(prices: pd.DataFrame, name: str) -> np.ndarray:
    values = _column(prices, name)
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":  # the usual float64
        return np.ascontiguousarray(values, dtype=np.float64)
    dtype = values.dtype
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        raise ValueError(f"column {name!r} must be numeric (float64), got dtype {dtype}")
    if isinstance(values, np.ndarray):
        return np.ascontiguousarray(values, dtype=np.float64)
    return np.ascontiguousarray(values.to_numpy(dtype=np.float64, na_value=np.nan))


#: Symbol names of recently seen categories, by the categories' identity (a pandas Index is
#: immutable, and the entry keeps it alive, so its ``id`` cannot be reused while cached).
_NAMES: dict[int, tuple[pd.Index, tuple[str, ...]]] = {}
_NAMES_KEPT = 16


def _category_names(categories: pd.Index) -> tuple[str, ...]:
    """The categories as a tuple of ``str``, computed once per categories object.

    Converting a frame's categories (pandas' string dtype) costs more than the kernel's
    pass over a small market when pandas' code is not in the CPU's caches; a frame's
    categorical column keeps the same categories object from call to call.
    """
    hit = _NAMES.get(id(categories))
    if hit is not None and hit[0] is categories:
        return hit[1]
    names = tuple(str(c) for c in categories)
    if len(_NAMES) >= _NAMES_KEPT:
        _NAMES.pop(next(iter(_NAMES)), None)
    _NAMES[id(categories)] = (categories, names)
    return names


def _symbol_codes(prices: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(codes, names)``: each row's symbol number (-1 where missing, in the type pandas
    stores it: int8 for up to 127 symbols, a quarter of the bytes of int64 to scan) and
    the names (``str``) in code order. A panel's symbols follow their codes: a categorical
    column's category order, else sorted names."""
    symbol = _column(prices, "symbol")
    if isinstance(symbol, pd.Categorical):
        return np.ascontiguousarray(symbol.codes), _category_names(symbol.categories)
    codes, uniques = pd.factorize(symbol, sort=True)
    return np.ascontiguousarray(codes), tuple(str(u) for u in uniques)


def _date_values(prices: pd.DataFrame) -> tuple[np.ndarray, str]:
    """The date column's int64 values (no copy) and their unit (``ns``, ``us``, ...).

    Time-zone-aware dates give their local wall times: the days the frame shows, which the
    error messages name.
    """
    date = _column(prices, "date")
    if not pd.api.types.is_datetime64_any_dtype(date.dtype):
        raise ValueError(f"column 'date' must be datetime64, got dtype {date.dtype}")
    if getattr(date, "tz", None) is not None:  # tz-aware: the wall times the frame shows
        date = date.tz_localize(None)
    values = np.asarray(date)  # the DatetimeArray's own datetime64 values, no copy
    return values.view(np.int64), np.datetime_data(values.dtype)[0]


def _checked_columns(
    prices: object,
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, str, np.ndarray, np.ndarray, np.ndarray]:
    """``(codes, names, dates, unit, close, high, low)`` of a long price frame, or a
    ``ValueError`` naming what is wrong with the frame or which columns it lacks."""
    if not isinstance(prices, pd.DataFrame):
        raise ValueError(f"prices must be a pandas DataFrame, got {type(prices).__name__}")
    try:
        codes, names = _symbol_codes(prices)
        dates, unit = _date_values(prices)
        close = _float_column(prices, "close")
        high = _float_column(prices, "high")
        low = _float_column(prices, "low")
    except KeyError:
        missing = [c for c in REQUIRED_COLUMNS if c not in prices.columns]
        if not missing:
            raise
        raise ValueError(
            f"prices is missing required column(s) {missing}; it has {list(prices.columns)}"
        ) from None
    return codes, names, dates, unit, close, high, low


def panel_from_frame(prices: pd.DataFrame) -> Panel:
    """Build a :class:`Panel` from a long price frame (columns symbol, date, high, low, close).

    The frame need not be sorted: if it is not sorted by symbol then date, a stable sort
    order is computed and kept in ``Panel.order``. Raises ``ValueError`` naming the
    column, symbol or date on a missing column, a non-numeric price column, a missing
    symbol or date, the same date twice for a symbol, or a NaN price after a symbol's first
    complete row.
    """
    codes, names, dates, unit, close, high, low = _checked_columns(prices)
    order = None
    status, bad, offsets, starts = _layout(codes, dates, close, high, low)
    if status == _UNSORTED:
        order = np.lexsort((dates, codes))
        codes, dates = codes[order], dates[order]
        close, high, low = close[order], high[order], low[order]
        status, bad, offsets, starts = _layout(codes, dates, close, high, low)
    if status != _FINE:
        code = int(codes[bad])
        symbol = names[code] if 0 <= code < len(names) else None
        raise _layout_error(status, bad, order, prices.index, symbol, dates[bad], unit)
    if len(names) != offsets.shape[0] - 1:  # categories that no row uses
        names = tuple(names[c] for c in codes[offsets[:-1]])
    return Panel(close, high, low, offsets, starts, names, order)


def _layout_error(
    status: int,
    bad: int,
    order: np.ndarray | None,
    index: pd.Index,
    symbol: str | None,
    date: np.int64,
    unit: str,
) -> ValueError:
    """The ``ValueError`` for :func:`_layout`'s ``status`` at panel row ``bad``."""
    row = index[bad if order is None else int(order[bad])]
    row = row.item() if isinstance(row, np.generic) else row  # 100, not np.int64(100)
    if status == _NO_SYMBOL:
        return ValueError(f"prices has a missing symbol at row {row!r}")
    if status == _NO_DATE:
        return ValueError(f"prices has a missing date at row {row!r}")
    day = pd.Timestamp(int(date), unit=unit).date()
    if status == _SAME_DATE:
        return ValueError(
            f"symbol {symbol!r} has the date {day} twice; "
            "deduplicate the prices (load_prices does) before computing indicators"
        )
    return ValueError(
        f"symbol {symbol!r} has a NaN close/high/low on {day} (row {row!r}) after "
        "its first complete row; only leading NaNs are allowed"
    )


def panel_from_arrays(
    close: np.ndarray,
    high: np.ndarray | None = None,
    low: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
) -> Panel:
    """Build a :class:`Panel` directly from flat arrays (benchmarks and notebooks).

    ``offsets`` (length n_symbols + 1, starting at 0 and ending at len(close)) defaults
    to one symbol; ``high``/``low`` default to ``close`` (so ATR becomes the mean
    absolute close-to-close move).
    """
    close = np.ascontiguousarray(close, dtype=np.float64)
    high = close if high is None else np.ascontiguousarray(high, dtype=np.float64)
    low = close if low is None else np.ascontiguousarray(low, dtype=np.float64)
    if not close.shape == high.shape == low.shape or close.ndim != 1:
        raise ValueError("close, high and low must be 1-D arrays of the same length")
    if offsets is None:
        offsets = np.array([0, close.shape[0]], dtype=np.int64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets[0] != 0 or offsets[-1] != close.shape[0] or (np.diff(offsets) < 1).any():
        raise ValueError("offsets must start at 0, end at len(close) and strictly increase")
    codes = np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.int64), np.diff(offsets))
    dates = np.arange(close.shape[0], dtype=np.int64)
    status, bad, offsets, starts = _layout(codes, dates, close, high, low)
    if status == _NAN_AFTER_START:
        raise ValueError(f"NaN price at flat row {bad} after its symbol's first complete row")
    names = tuple(f"S{s:04d}" for s in range(offsets.shape[0] - 1))
    return Panel(close, high, low, offsets, starts, names, None)
