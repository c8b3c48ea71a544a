"""Indicators over a stream of chunks, with each symbol's state carried from chunk to chunk.

Reading a file too large for memory in chunks breaks every rolling window and recurrence
at the chunk edges if each chunk is processed on its own. :class:`IndicatorStream` keeps,
per symbol, exactly the running values the ``python`` backend's loops keep: the SMA and
Bollinger running totals; the Bollinger mean and M2 (rolling Welford, restarted exactly every
``bb_period`` bars) and the length of the current run of equal closes; the EMA; Wilder's RSI
averages; both MACD EMAs, their seeds and the signal; ATR; the previous close. A ring of the
last ``max(sma_period, bb_period) + 1`` closes supplies the values that leave a window. The row
update is one compiled kernel doing the same floating-point operations in the same order
as :mod:`nepse_perf.indicators.python_loops`, so the chunked result equals the whole-series
result bit for bit, for any chunk size and any interleaving of symbols, provided each
symbol's rows arrive in date order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from .indicators.panel import REQUIRED_COLUMNS
from .indicators.params import OUTPUT_COLUMNS, IndicatorParams

__all__ = ["IndicatorStream", "indicators_from_csv", "read_price_chunks"]

# Per-symbol float state, one column each.
_PREV, _SMA_T, _EMA_T, _EMA, _GAIN, _LOSS = 0, 1, 2, 3, 4, 5
_MF_T, _MS_T, _MF, _MS, _MG_T, _MG = 6, 7, 8, 9, 10, 11
_BB_T, _BB_MEAN, _BB_M2, _ATR = 12, 13, 14, 15
_N_STATE = 16
_NO_DATE = np.iinfo(np.int64).min

_OK, _ERR_ORDER, _ERR_NAN = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _stream_rows(
    codes,
    dates,
    close,
    high,
    low,
    sma_n,
    ema_n,
    rsi_n,
    fast,
    slow,
    signal,
    bb_n,
    nbdev,
    atr_n,
    state,
    count,
    run_len,
    last_date,
    ring,
    out,
):  # pragma: no cover - compiled
    """Advance every row's symbol by one bar; returns (status, row) with status 0 = fine.

    Status 1: a date not after the symbol's previous date; 2: NaN price after the symbol's
    first complete row. The operation order mirrors python_loops line by line.
    """
    nan = math.nan
    width = ring.shape[1]
    ke = 2.0 / (ema_n + 1)
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    kg = 2.0 / (signal + 1)
    first = slow + signal - 2
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
                for k in range(10):
                    out[k, r] = nan
                continue
            return _ERR_NAN, r
        st = state[s]
        ring[s, j % width] = x

        # SMA: add the new close, output, then drop the oldest (TA-Lib's order).
        t = st[_SMA_T] + x
        if j < sma_n - 1:
            st[_SMA_T] = t
            out[0, r] = nan
        else:
            out[0, r] = t / sma_n
            st[_SMA_T] = t - ring[s, (j - sma_n + 1) % width]

        # EMA seeded with the mean of the first n closes.
        if j < ema_n:
            t = st[_EMA_T] + x
            st[_EMA_T] = t
            if j == ema_n - 1:
                e = t / ema_n
                st[_EMA] = e
                out[1, r] = e
            else:
                out[1, r] = nan
        else:
            e = (x - st[_EMA]) * ke + st[_EMA]
            st[_EMA] = e
            out[1, r] = e

        # RSI (Wilder), first value at bar n.
        if j == 0:
            out[2, r] = nan
        else:
            d = x - st[_PREV]
            gain = st[_GAIN]
            loss = st[_LOSS]
            if j <= rsi_n:
                if d < 0:
                    loss -= d
                else:
                    gain += d
                if j == rsi_n:
                    gain /= rsi_n
                    loss /= rsi_n
            else:
                loss *= rsi_n - 1
                gain *= rsi_n - 1
                if d < 0:
                    loss -= d
                else:
                    gain += d
                loss /= rsi_n
                gain /= rsi_n
            st[_GAIN] = gain
            st[_LOSS] = loss
            if j < rsi_n:
                out[2, r] = nan
            else:
                tot = gain + loss
                out[2, r] = 100.0 * (gain / tot) if tot != 0.0 else 0.0

        # MACD: both EMAs seeded at bar slow-1, signal seeded at bar slow+signal-2.
        if j < slow:
            if j >= slow - fast:
                st[_MF_T] += x
            st[_MS_T] += x
            if j == slow - 1:
                st[_MF] = st[_MF_T] / fast
                st[_MS] = st[_MS_T] / slow
                st[_MG_T] = st[_MF] - st[_MS]
            out[3, r] = nan
            out[4, r] = nan
            out[5, r] = nan
        else:
            ef = (x - st[_MF]) * kf + st[_MF]
            es = (x - st[_MS]) * ks + st[_MS]
            st[_MF] = ef
            st[_MS] = es
            if j <= first:
                st[_MG_T] += ef - es
                if j == first:
                    g = st[_MG_T] / signal
                    st[_MG] = g
                    m = ef - es
                    out[3, r] = m
                    out[4, r] = g
                    out[5, r] = m - g
                else:
                    out[3, r] = nan
                    out[4, r] = nan
                    out[5, r] = nan
            else:
                m = ef - es
                g = (m - st[_MG]) * kg + st[_MG]
                st[_MG] = g
                out[3, r] = m
                out[4, r] = g
                out[5, r] = m - g

        # Bollinger Bands: running total for the middle; the variance by rolling Welford,
        # zero on a flat window (run of n equal closes), recomputed exactly in two passes
        # (shifted by the window's first close) every bb_n bars.
        run = run_len[s] + 1 if j > 0 and x == st[_PREV] else 1
        run_len[s] = run
        t = st[_BB_T] + x
        if j < bb_n - 1:
            st[_BB_T] = t
            out[6, r] = nan
            out[7, r] = nan
            out[8, r] = nan
        else:
            mid = t / bb_n
            st[_BB_T] = t - ring[s, (j - bb_n + 1) % width]
            if run >= bb_n:
                st[_BB_MEAN] = x
                st[_BB_M2] = 0.0
            elif (j + 1) % bb_n == 0:
                first_x = ring[s, (j - bb_n + 1) % width]
                acc = 0.0
                for k in range(j - bb_n + 1, j + 1):
                    acc += ring[s, k % width] - first_x
                shift = acc / bb_n
                m2 = 0.0
                for k in range(j - bb_n + 1, j + 1):
                    dev = ring[s, k % width] - first_x - shift
                    m2 += dev * dev
                st[_BB_M2] = m2
                st[_BB_MEAN] = first_x + shift
            else:
                old = ring[s, (j - bb_n) % width]
                delta = x - old
                prev_mean = st[_BB_MEAN]
                st[_BB_MEAN] += delta / bb_n
                st[_BB_M2] += delta * (x - st[_BB_MEAN] + old - prev_mean)
            var = st[_BB_M2] / bb_n
            sd = math.sqrt(var) * nbdev if var > 0.0 else 0.0
            out[6, r] = mid + sd
            out[7, r] = mid
            out[8, r] = mid - sd

        # ATR: mean true range of bars 1..n, then Wilder.
        if j == 0:
            out[9, r] = nan
        else:
            tr = h - lo
            up = abs(st[_PREV] - h)
            if up > tr:
                tr = up
            down = abs(st[_PREV] - lo)
            if down > tr:
                tr = down
            if j < atr_n:
                st[_ATR] += tr
                out[9, r] = nan
            elif j == atr_n:
                a = (st[_ATR] + tr) / atr_n
                st[_ATR] = a
                out[9, r] = a
            else:
                a = (st[_ATR] * (atr_n - 1) + tr) / atr_n
                st[_ATR] = a
                out[9, r] = a

        st[_PREV] = x
        count[s] = j + 1
    return _OK, -1


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
        self._state = np.zeros((0, _N_STATE))
        self._count = np.zeros(0, dtype=np.int64)
        self._run = np.zeros(0, dtype=np.int64)
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
        return (self._state, self._count, self._run, self._last, self._ring)

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
            np.vstack([self._state, np.zeros((grow, _N_STATE))]),
            np.concatenate([self._count, np.zeros(grow, dtype=np.int64)]),
            np.concatenate([self._run, np.zeros(grow, dtype=np.int64)]),
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
        p = self.params
        status, row = _stream_rows(
            codes,
            dates,
            *prices,
            p.sma_period,
            p.ema_period,
            p.rsi_period,
            p.macd_fast,
            p.macd_slow,
            p.macd_signal,
            p.bb_period,
            p.bb_nbdev,
            p.atr_period,
            *arrays,
            out,
        )
        if status != _OK:
            sym, date = chunk["symbol"].iloc[row], chunk["date"].iloc[row]
            what = (
                "is not after the previous date of that symbol (rows must arrive in date order)"
                if status == _ERR_ORDER
                else "has a NaN close/high/low after the symbol's first complete row"
            )
            raise ValueError(f"row {chunk.index[row]!r} ({sym!r}, {date}) {what}")
        self._index = index
        self._state, self._count, self._run, self._last, self._ring = arrays
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
