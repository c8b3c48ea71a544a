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

_OK, _ERR_ORDER, _ERR_NAN = 0, 1, 2


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


_stream_rows = targets.njit(
    {"_store": _store, "_stream_rows": _stream_rows_py},
    {"_store": {"inline": "always"}, "_stream_rows": {"nogil": True}},
)["_stream_rows"]


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

    def _prepare(
        self, symbol: pd.Series
    ) -> tuple[np.ndarray, dict[str, int], tuple[np.ndarray, ...]]:
        """The chunk's symbol codes, plus the symbol index and state arrays it would leave.

        Nothing of ``self`` changes here: unseen symbols go into a copy of the index and the
        state arrays returned are fresh copies (grown for the new symbols), which the kernel
        then advances. :meth:`update` installs them only if the whole chunk succeeds, so a
        rejected chunk leaves neither new symbols nor changed state behind.
        """
        codes, uniques = pd.factorize(symbol)
        if (codes < 0).any():
            raise ValueError("chunk has a missing symbol")
        index = dict(self._index)
        mapping = np.empty(len(uniques), dtype=np.int64)
        for i, name in enumerate(uniques):
            name = str(name)
            if name not in index:
                index[name] = len(index)
            mapping[i] = index[name]
        grow = len(index) - self._count.shape[0]
        arrays = (
            np.vstack([self._state, np.tile(self._initial, (grow, 1))]),
            np.concatenate([self._count, np.zeros(grow, dtype=np.int64)]),
            np.concatenate([self._last, np.full(grow, _NO_DATE, dtype=np.int64)]),
            np.vstack([self._ring, np.zeros((grow, self._width))]),
        )
        return mapping[codes], index, arrays

    def update(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """Process one chunk; returns its indicators (OUTPUT_COLUMNS, float64, chunk's index).

        Atomic: the kernel advances copies of the carried state, installed only when every
        row succeeded; a chunk that raises ``ValueError`` leaves the stream (symbols, bar
        counts, state) exactly as it was before the call.
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
        codes, index, arrays = self._prepare(chunk["symbol"])
        out = np.empty((len(OUTPUT_COLUMNS), len(chunk)), dtype=np.float64)
        status, row = _stream_rows(codes, dates, *prices, *arrays, out)
        if status != _OK:
            sym, date = chunk["symbol"].iloc[row], chunk["date"].iloc[row]
            what = (
                "is not after the previous date of that symbol (rows must arrive in date order)"
                if status == _ERR_ORDER
                else "has a NaN close/high/low after the symbol's first complete row"
            )
            raise ValueError(f"row {chunk.index[row]!r} ({sym!r}, {date}) {what}")
        self._index = index
        self._state, self._count, self._last, self._ring = arrays
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
