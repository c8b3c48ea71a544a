"""Indicators over a stream of chunks, with each symbol's state carried from chunk to chunk.

Reading a file too large for memory in chunks breaks every rolling window and recurrence
at the chunk edges if each chunk is processed on its own. :class:`IndicatorStream` keeps,
per symbol, exactly the states the step functions of :mod:`nepse_perf.indicators.steps`
carry (running totals, EMAs, Wilder averages, Welford moments, ...), flattened into one
row of a float64 matrix, plus a ring of the last ``max(sma_period, bb_period) + 1`` closes
that supplies the values leaving a window. Each row is one call of every indicator's
``*_update``, the same functions every backend calls, so the chunked result equals the
whole-series result bit for bit, for any chunk size and any interleaving of symbols,
provided each symbol's rows arrive in date order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from numba.np.unsafe.ndarray import to_fixed_tuple

from nepse_perf.indicators import layout, steps, targets
from nepse_perf.indicators.backends import numba_parallel

# to_fixed_tuple needs its length as a literal: module-level names are, attribute lookups not
from nepse_perf.indicators.layout import W_ATR, W_BB, W_EMA, W_MACD, W_RSI, W_SMA
from nepse_perf.indicators.panel import REQUIRED_COLUMNS
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams

__all__ = ["IndicatorStream", "indicators_from_csv", "read_price_chunks"]


def _initial_states(p: IndicatorParams) -> tuple[tuple[float, ...], ...]:
    """The six indicators' initial state tuples (the fused kernel's own ``init_states``)."""
    return numba_parallel.init_states(p.kernel_args())


def _initial_state(p: IndicatorParams) -> np.ndarray:
    """One symbol's initial state row: the six state tuples, concatenated."""
    return np.array([v for state in _initial_states(p) for v in state], dtype=np.float64)


_NO_DATE = np.iinfo(np.int64).min

_OK, _ERR_ORDER, _ERR_NAN, _ERR_CODE = 0, 1, 2, 3


def _store(row, offset, state):  # pragma: no cover - compiled
    """Write a state tuple back into its place in a symbol's state row."""
    for q in range(len(state)):
        row[offset + q] = state[q]


def _stream_rows_py(codes, dates, close, high, low, states, count, last_date, ring, out):
    """Advance every row's symbol by one bar; returns (status, row) with status 0 = fine.

    Status 1: a date not after the symbol's previous date; 2: NaN price after the symbol's
    first complete row. Bar ``j`` of a symbol sits at ``ring[s, j % width]``; a window's
    older bars are read at negative offsets from there, which index from the ring's end,
    i.e. wrap around it.
    """
    width = ring.shape[1]
    for r in range(codes.shape[0]):
        s = codes[r]
        x = close[r]
        h = high[r]
        lo = low[r]
        if dates[r] <= last_date[s]:
            return _ERR_ORDER, r
        last_date[s] = dates[r]
        j = count[s]
        if not (np.isfinite(x) and np.isfinite(h) and np.isfinite(lo)):
            if j == 0:  # leading incomplete rows: NaN out, the series has not started
                for k in range(layout.N_OUT):
                    out[k, r] = math.nan
                continue
            return _ERR_NAN, r
        st = states[s]
        buf = ring[s]
        i = j % width
        buf[i] = x
        sma, out[layout.SMA, r] = steps.sma_update(
            to_fixed_tuple(st[layout.O_SMA : layout.O_EMA], W_SMA), j, buf, i, 1
        )
        _store(st, layout.O_SMA, sma)
        ema, out[layout.EMA, r] = steps.ema_update(
            to_fixed_tuple(st[layout.O_EMA : layout.O_RSI], W_EMA), j, x
        )
        _store(st, layout.O_EMA, ema)
        rsi, out[layout.RSI, r] = steps.rsi_update(
            to_fixed_tuple(st[layout.O_RSI : layout.O_MACD], W_RSI), j, x
        )
        _store(st, layout.O_RSI, rsi)
        macd = to_fixed_tuple(st[layout.O_MACD : layout.O_BB], W_MACD)
        macd, out[layout.MACD, r], out[layout.MACD_SIGNAL, r], out[layout.MACD_HIST, r] = (
            steps.macd_update(macd, j, x)
        )
        _store(st, layout.O_MACD, macd)
        bb = to_fixed_tuple(st[layout.O_BB : layout.O_ATR], W_BB)
        bb, out[layout.BB_UPPER, r], out[layout.BB_MIDDLE, r], out[layout.BB_LOWER, r] = (
            steps.bbands_update(bb, j, buf, i, 1)
        )
        _store(st, layout.O_BB, bb)
        atr, out[layout.ATR, r] = steps.atr_update(
            to_fixed_tuple(st[layout.O_ATR :], W_ATR), j, h, lo, x
        )
        _store(st, layout.O_ATR, atr)
        count[s] = j + 1
    return _OK, -1


def _check_rows_py(codes, dates, close, high, low, count, last_date):
    """What :func:`_stream_rows_py` would answer, without touching any state: (status, row).

    ``count`` and ``last_date`` are the caller's scratch copies (they advance as the rows
    are read, so a symbol's second row in one chunk is checked against its first).
    """
    for r in range(codes.shape[0]):
        s = codes[r]
        if dates[r] <= last_date[s]:
            return _ERR_ORDER, r
        last_date[s] = dates[r]
        if not (np.isfinite(close[r]) and np.isfinite(high[r]) and np.isfinite(low[r])):
            if count[s] == 0:
                continue
            return _ERR_NAN, r
        count[s] += 1
    return _OK, -1


def _feed_rows_py(codes, dates, close, high, low, states, count, last_date, ring, out):
    """One compiled call for a live feed: codes in range, then every row checked on scratch
    copies of the counts and dates, then the state advanced; (status, row) as above, with
    status 3 for a code that is not a registered symbol."""
    for r in range(codes.shape[0]):
        if codes[r] < 0 or codes[r] >= count.shape[0]:
            return _ERR_CODE, r
    status, row = _check_rows(codes, dates, close, high, low, count.copy(), last_date.copy())
    if status != _OK:
        return status, row
    return _stream_rows(codes, dates, close, high, low, states, count, last_date, ring, out)


_compiled = targets.njit(
    {
        "_store": _store,
        "_stream_rows": _stream_rows_py,
        "_check_rows": _check_rows_py,
        "_feed_rows": _feed_rows_py,
    },
    {
        "_store": {"inline": "always"},
        "_stream_rows": {"nogil": True},
        "_feed_rows": {"nogil": True},
    },
)
_stream_rows, _check_rows = _compiled["_stream_rows"], _compiled["_check_rows"]
_feed_rows = _compiled["_feed_rows"]


class IndicatorStream:
    """Feed price chunks in date order with :meth:`update`; get each chunk's ten indicators.

    Each chunk is a long frame with ``symbol``, ``date`` (datetime64), ``high``, ``low``
    and ``close``; symbols may interleave in any way and may appear in any chunk, but each
    symbol's dates must increase across the whole stream. The output of every row equals
    ``compute_indicators`` on the concatenated stream bit for bit (same definitions, same
    operation order as the ``python``/``numba`` backends). Prices are computed in float64
    whatever the chunk's dtype. A bad chunk (a date out of order, a NaN after a symbol's
    first complete row) raises ``ValueError`` and leaves the state as it was before it.
    """

    def __init__(self, **params: float) -> None:
        self.params = IndicatorParams.from_kwargs(**params)
        p = self.params
        self._width = max(p.sma_period, p.bb_period) + 1
        self._index: dict[str, int] = {}
        self._initial = _initial_state(p)
        self._state = np.zeros((0, layout.STATE_WIDTH))
        self._count = np.zeros(0, dtype=np.int64)
        self._last = np.zeros(0, dtype=np.int64)
        self._ring = np.zeros((0, self._width))

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols seen so far, in order of first appearance."""
        return tuple(self._index)

    def bars_seen(self, symbol: str) -> int:
        """Complete bars of ``symbol`` processed so far (0 for an unknown symbol)."""
        i = self._index.get(symbol)
        return 0 if i is None else int(self._count[i])

    def state_nbytes(self) -> int:
        """Bytes of carried state: what the stream keeps in memory between chunks."""
        return sum(a.nbytes for a in self._arrays())

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self._state, self._count, self._last, self._ring)

    def register(self, symbols: Iterable[str]) -> np.ndarray:
        """The codes (int64) of ``symbols`` for :meth:`update_arrays`, adding unseen ones.

        A code is the symbol's row in the carried state, fixed for the stream's life: a
        live feed registers its symbols once and then sends only codes and prices.
        """
        codes, index = self._codes(list(symbols))
        self._grow(index)
        return codes

    def _codes(self, names: list) -> tuple[np.ndarray, dict[str, int]]:
        """Codes of ``names`` and the index they need (a copy of ``self``'s, grown)."""
        index = dict(self._index)
        codes = np.empty(len(names), dtype=np.int64)
        for i, name in enumerate(names):
            codes[i] = index.setdefault(str(name), len(index))
        return codes, index

    def _grow(self, index: dict[str, int]) -> None:
        """Install ``index``, with fresh state rows for the symbols it adds."""
        grow = len(index) - self._count.shape[0]
        if grow:
            self._state = np.vstack([self._state, np.tile(self._initial, (grow, 1))])
            self._count = np.concatenate([self._count, np.zeros(grow, dtype=np.int64)])
            self._last = np.concatenate([self._last, np.full(grow, _NO_DATE, dtype=np.int64)])
            self._ring = np.vstack([self._ring, np.zeros((grow, self._width))])
        self._index = index

    def _check(self, codes: np.ndarray, dates: np.ndarray, prices: list, n_symbols: int):
        """(status, row) of a chunk, checked against scratch copies of the bar counts and last
        dates (extended to ``n_symbols``): the carried state is not touched."""
        grow = n_symbols - self._count.shape[0]
        count = np.concatenate([self._count, np.zeros(grow, dtype=np.int64)])
        last = np.concatenate([self._last, np.full(grow, _NO_DATE, dtype=np.int64)])
        return _check_rows(codes, dates, *prices, count, last)

    def _refuse(self, status: int, where: str) -> ValueError:
        what = (
            "is not after the previous date of that symbol (rows must arrive in date order)"
            if status == _ERR_ORDER
            else "has a NaN close/high/low after the symbol's first complete row"
        )
        return ValueError(f"{where} {what}")

    def update_arrays(
        self,
        codes: np.ndarray,
        dates: np.ndarray,
        close: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Advance the symbols of ``codes`` (from :meth:`register`) by one bar per row.

        ``dates`` datetime64 (or int64 nanoseconds), the prices float64 arrays of the same
        length. Returns the (10, rows) block of the new values (``out``, a C-contiguous
        float64 block of that shape, is filled when given), row r of the block in
        :data:`OUTPUT_COLUMNS` order. The same kernel as :meth:`update`, without a frame on
        either side: the path of a live feed. Atomic like :meth:`update` (the rows are
        checked before any state moves); ``ValueError`` names the offending row.
        """
        codes = np.ascontiguousarray(codes, dtype=np.int64)
        n = codes.shape[0]
        dates = np.asarray(dates)
        if dates.dtype.kind == "M":
            dates = dates.astype("datetime64[ns]", copy=False).view(np.int64)
        dates = np.ascontiguousarray(dates, dtype=np.int64)
        prices = [np.ascontiguousarray(a, dtype=np.float64) for a in (close, high, low)]
        if any(a.shape != (n,) for a in (dates, *prices)):
            raise ValueError("codes, dates, close, high and low must be 1-D of one length")
        if out is None:
            out = np.empty((layout.N_OUT, n), dtype=np.float64)
        elif (
            out.shape != (layout.N_OUT, n) or out.dtype != np.float64 or not out.flags.c_contiguous
        ):
            raise ValueError(
                f"out must be a C-contiguous float64 block of shape {(layout.N_OUT, n)}"
            )
        status, row = _feed_rows(codes, dates, *prices, *self._arrays(), out)
        if status == _ERR_CODE:
            raise ValueError(f"row {row}: code {codes[row]} does not come from register()")
        if status != _OK:
            raise self._refuse(status, f"row {row} (code {codes[row]})")
        return out

    def update(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """Process one chunk; returns its indicators (OUTPUT_COLUMNS, float64, chunk's index).

        Atomic: every row is checked (dates in order, no NaN after a symbol's start) before
        the kernel advances the carried state in place, so a chunk that raises
        ``ValueError`` leaves the stream (symbols, bar counts, state) exactly as it was.
        """
        missing = [c for c in REQUIRED_COLUMNS if c not in chunk.columns]
        if missing:
            raise ValueError(f"chunk is missing required column(s) {missing}")
        if not pd.api.types.is_datetime64_any_dtype(chunk["date"].dtype):
            raise ValueError(f"column 'date' must be datetime64, got {chunk['date'].dtype}")
        if chunk["date"].isna().any():
            raise ValueError("chunk has a missing date")
        dates = chunk["date"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        prices = [
            np.ascontiguousarray(chunk[c].to_numpy(dtype=np.float64, na_value=np.nan))
            for c in ("close", "high", "low")
        ]
        local, uniques = pd.factorize(chunk["symbol"])
        if (local < 0).any():
            raise ValueError("chunk has a missing symbol")
        mapping, index = self._codes(list(uniques))
        codes = mapping[local]
        status, row = self._check(codes, dates, prices, len(index))
        if status != _OK:
            sym, date = chunk["symbol"].iloc[row], chunk["date"].iloc[row]
            raise self._refuse(status, f"row {chunk.index[row]!r} ({sym!r}, {date})")
        self._grow(index)
        out = np.empty((len(OUTPUT_COLUMNS), len(chunk)), dtype=np.float64)
        _stream_rows(codes, dates, *prices, *self._arrays(), out)
        return pd.DataFrame(out.T, index=chunk.index, columns=list(OUTPUT_COLUMNS), copy=False)

    def run(self, chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """:meth:`update` every chunk in turn, yielding each chunk's indicators."""
        for chunk in chunks:
            yield self.update(chunk)


def read_price_chunks(
    path: str | Path, chunksize: int, columns: Iterable[str] = ("high", "low", "close")
) -> Iterator[pd.DataFrame]:
    """Read a long price CSV (``symbol``, ``date`` and price columns) ``chunksize`` rows at a time.

    Only ``symbol``, ``date`` and ``columns`` are read, with their final dtypes decided up
    front (``symbol`` categorical per chunk, ``date`` datetime64, prices float64), so no
    column is parsed twice or held as Python strings.
    """
    columns = list(columns)
    return pd.read_csv(
        path,
        usecols=["symbol", "date", *columns],
        dtype={"symbol": "category", **dict.fromkeys(columns, np.float64)},
        parse_dates=["date"],
        chunksize=chunksize,
    )


def indicators_from_csv(
    path: str | Path, chunksize: int = 100_000, **params: float
) -> pd.DataFrame:
    """The ten indicators of a long price CSV read in chunks, state carried across chunks.

    Peak memory is one chunk plus the output; the result (indexed by file row number, 0..)
    equals ``compute_indicators`` on the whole file bit for bit.
    """
    stream = IndicatorStream(**params)
    parts = list(stream.run(read_price_chunks(path, chunksize)))
    if not parts:
        return pd.DataFrame(columns=list(OUTPUT_COLUMNS), dtype=np.float64)
    return pd.concat(parts)
