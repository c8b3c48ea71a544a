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


@numba.njit(cache=True, fastmath={"reassoc"})
def _quick_checks(codes, dates, close, high, low):  # pragma: no cover - compiled
    """One vectorised pass: ``(any NaT date, all prices finite, rows out of order, symbols)``.

    ``x - x`` is 0 for a finite ``x`` and NaN for NaN or an infinity, so the sum of those
    differences is 0 exactly when every price is finite; the NaT date is the int64 minimum,
    so the smallest date tells whether there is one; a row is out of order when its symbol
    code is smaller than the row before's, or equal with a date not after it. Reassociation
    (and nothing else of fast-math: NaN stays NaN) lets the compiler vectorise the sums. The
    common case (a sorted, finite frame) thus reads every column once; only a frame with a
    problem takes :func:`_scan`'s row-by-row search for the first bad row.
    """
    n = close.shape[0]
    if n == 0:
        return False, True, 0, 0
    acc = (close[0] - close[0]) + (high[0] - high[0]) + (low[0] - low[0])
    smallest = dates[0]
    disorder = 0
    groups = 1
    for i in range(1, n):
        acc += (close[i] - close[i]) + (high[i] - high[i]) + (low[i] - low[i])
        smallest = min(smallest, dates[i])
        new = codes[i] != codes[i - 1]
        groups += new
        disorder += (codes[i] < codes[i - 1]) | (not new and dates[i] <= dates[i - 1])
    return smallest == _NAT, acc == 0.0, disorder, groups


@numba.njit(cache=True)
def _scan(codes, dates, close, high, low, check_finite, disorder, groups):  # pragma: no cover
    """Group boundaries, sortedness, first-valid rows and the first bad row.

    Returns ``(status, bad_row, offsets, starts)``; status 0 = fine, 1 = not sorted by
    symbol/date (caller sorts and rescans), 2 = the same date twice within a symbol,
    3 = NaN after a symbol's first valid row. ``check_finite=False`` (the caller knows every
    price is finite) skips reading the prices: each symbol starts at its first row.
    ``disorder`` and ``groups`` are :func:`_quick_checks`' counts (0 and the number of
    symbols for a sorted frame: dates are then not compared again).
    """
    n = codes.shape[0]
    bounds = np.empty(groups + 1 if disorder == 0 else n + 1, dtype=np.int64)
    n_groups = 0
    if n > 0:
        bounds[0] = 0
        n_groups = 1
    for i in range(1, n):
        if codes[i] != codes[i - 1]:
            if codes[i] < codes[i - 1]:
                return 1, i, bounds[:1], bounds[:1]
            bounds[n_groups] = i
            n_groups += 1
        elif disorder and dates[i] <= dates[i - 1]:
            if dates[i] == dates[i - 1]:
                return 2, i, bounds[:1], bounds[:1]
            return 1, i, bounds[:1], bounds[:1]
    bounds[n_groups] = n
    offsets = bounds[: n_groups + 1].copy()
    starts = offsets[:-1].copy()
    if not check_finite:
        return 0, -1, offsets, starts
    for g in range(n_groups):
        a = offsets[g]
        b = offsets[g + 1]
        s = a
        while s < b and not (
            np.isfinite(close[s]) and np.isfinite(high[s]) and np.isfinite(low[s])
        ):
            s += 1
        starts[g] = s
        for i in range(s, b):
            if not (np.isfinite(close[i]) and np.isfinite(high[i]) and np.isfinite(low[i])):
                return 3, i, offsets, starts
    return 0, -1, offsets, starts


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
    dtype = values.dtype
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        raise ValueError(f"column {name!r} must be numeric (float64), got dtype {dtype}")
    if isinstance(values, np.ndarray):
        return np.ascontiguousarray(values, dtype=np.float64)
    return np.ascontiguousarray(values.to_numpy(dtype=np.float64, na_value=np.nan))


def panel_from_frame(prices: pd.DataFrame) -> Panel:
    """Build a :class:`Panel` from a long price frame (columns symbol, date, high, low, close).

    The frame need not be sorted: if it is not sorted by symbol then date, a stable sort
    order is computed and kept in ``Panel.order``. Raises ``ValueError`` naming the
    column, symbol or date on a missing column, a non-numeric price column, the same date
    twice for a symbol, or a NaN price after a symbol's first complete row.
    """
    if not isinstance(prices, pd.DataFrame):
        raise ValueError(f"prices must be a pandas DataFrame, got {type(prices).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in prices.columns]
    if missing:
        raise ValueError(
            f"prices is missing required column(s) {missing}; it has {list(prices.columns)}"
        )
    index = prices.index
    symbol = _column(prices, "symbol")
    if isinstance(symbol, pd.Categorical):
        codes = symbol.codes
        names = np.asarray(symbol.categories, dtype=object)
        if (codes < 0).any():
            row = int(np.flatnonzero(codes < 0)[0])
            raise ValueError(f"prices has a missing symbol at row {index[row]!r}")
    else:
        symbol = _bare(prices)["symbol"]
        if symbol.isna().any():
            row = int(np.flatnonzero(symbol.isna().to_numpy())[0])
            raise ValueError(f"prices has a missing symbol at row {index[row]!r}")
        codes, names = pd.factorize(symbol, sort=True)
    date = _column(prices, "date")
    if not pd.api.types.is_datetime64_any_dtype(date.dtype):
        raise ValueError(f"column 'date' must be datetime64, got dtype {date.dtype}")
    dates = np.asarray(date).view(np.int64)  # the DatetimeArray's own int64 values
    close = _float_column(prices, "close")
    high = _float_column(prices, "high")
    low = _float_column(prices, "low")
    # The category codes as they are (int8/int16 for a few thousand symbols): a quarter of
    # the bytes of int64 for the scan to read.
    codes = np.ascontiguousarray(codes)
    has_nat, all_finite, disorder, groups = _quick_checks(codes, dates, close, high, low)
    if has_nat:
        row = int(np.flatnonzero(dates == _NAT)[0])
        raise ValueError(f"prices has a missing date at row {index[row]!r}")
    check_finite = not all_finite

    order = None
    status, bad, offsets, starts = _scan(
        codes, dates, close, high, low, check_finite, disorder, groups
    )
    if status == 1:
        order = np.lexsort((dates, codes))
        codes, dates = codes[order], dates[order]
        close, high, low = close[order], high[order], low[order]
        status, bad, offsets, starts = _scan(
            codes, dates, close, high, low, check_finite, 1, len(codes)
        )
    if status == 2:
        raise ValueError(
            f"symbol {names[codes[bad]]!r} has the date "
            f"{pd.Timestamp(dates[bad], unit='ns').date()} twice; "
            "deduplicate the prices (load_prices does) before computing indicators"
        )
    if status == 3:
        row = bad if order is None else int(order[bad])
        raise ValueError(
            f"symbol {names[codes[bad]]!r} has a NaN close/high/low on "
            f"{pd.Timestamp(dates[bad], unit='ns').date()} (row {index[row]!r}) after "
            "its first complete row; only leading NaNs are allowed"
        )
    used = tuple(str(names[c]) for c in codes[offsets[:-1]]) if codes.size else ()
    return Panel(close, high, low, offsets, starts, used, order)


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
    status, bad, offsets, starts = _scan(codes, dates, close, high, low, True, 0, len(offsets) - 1)
    if status == 3:
        raise ValueError(f"NaN price at flat row {bad} after its symbol's first complete row")
    names = tuple(f"S{s:04d}" for s in range(offsets.shape[0] - 1))
    return Panel(close, high, low, offsets, starts, names, None)
