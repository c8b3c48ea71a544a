"""Backend ``numpy``: whole-array NumPy, no per-symbol Python loop.

The panel is laid out *time-major*: a 2-D array of shape (bars, symbols), each symbol's
first complete bar in row 0 and NaN padding below shorter symbols. Rolling sums come from
one ``cumsum`` down the time axis (prices are first centred on each symbol's first close,
which keeps the running sums small and their rounding error negligible). Recurrences
(EMA, MACD, Wilder's RSI and ATR) cannot be vectorised in time, so they loop over bars
while each step updates every symbol at once. The Bollinger variance is computed in two
passes, as the mean squared deviation from the window's mean, because the one-pass
``E[x^2] - E[x]^2`` from cumulative sums cancels catastrophically on long series.
"""

from __future__ import annotations

import numpy as np

from nepse_perf.indicators.panel import Panel
from nepse_perf.indicators.params import IndicatorParams


def to_time_major(panel: Panel, values: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Scatter a flat per-row array into (bars, symbols), left-aligned at each first bar.

    Returns the 2-D array and the index triple ``(rows, bar, symbol)`` that maps it back.
    """
    rows, bar, sym = panel.valid_rows()
    lens = panel.offsets[1:] - panel.starts
    length = int(lens.max()) if lens.size else 0
    n_sym = panel.n_symbols
    grid = np.full((length, n_sym), np.nan)
    grid[bar, sym] = values[rows]
    return grid, (rows, bar, sym)


def rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last ``n`` rows down axis 0 from one cumulative sum; NaN for rows < n-1."""
    ref = x[:1]
    cs = np.cumsum(x - ref, axis=0)
    out = np.full_like(x, np.nan)
    if x.shape[0] >= n:
        window = cs[n - 1 :].copy()
        window[1:] -= cs[:-n]
        out[n - 1 :] = window / n + ref
    return out


def rolling_var(x: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """Population variance of the last ``n`` rows: mean squared deviation (two-pass)."""
    out = np.full_like(x, np.nan)
    if x.shape[0] >= n:
        m = mean[n - 1 :]
        acc = np.zeros_like(m)
        for k in range(n):
            dev = x[n - 1 - k : x.shape[0] - k] - m
            acc += dev * dev
        out[n - 1 :] = acc / n
    return out


def ema_recurrence(x: np.ndarray, seed: np.ndarray, first: int, alpha: float) -> np.ndarray:
    """``e = (x - e) * alpha + e`` down axis 0 from ``seed`` at row ``first``; NaN before."""
    out = np.full_like(x, np.nan)
    if x.shape[0] > first:
        e = seed.copy()
        out[first] = e
        for t in range(first + 1, x.shape[0]):
            e = (x[t] - e) * alpha + e
            out[t] = e
    return out


def wilder_recurrence(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing of rows 1..: mean of rows 1..n at row n, then (a*(n-1)+x)/n."""
    out = np.full_like(x, np.nan)
    if x.shape[0] > n:
        a = x[1 : n + 1].sum(axis=0) / n
        out[n] = a
        for t in range(n + 1, x.shape[0]):
            a = (a * (n - 1) + x[t]) / n
            out[t] = a
    return out


def indicators_time_major(
    close: np.ndarray, high: np.ndarray, low: np.ndarray, params: IndicatorParams
) -> list[np.ndarray]:
    """The ten outputs for left-aligned (bars, symbols) price arrays, OUTPUT_COLUMNS order."""
    p = params
    length = close.shape[0]
    sma = rolling_mean(close, p.sma_period)
    ema_seed = close[: p.ema_period].sum(axis=0) / p.ema_period
    ema = ema_recurrence(close, ema_seed, p.ema_period - 1, 2.0 / (p.ema_period + 1))

    diff = np.full_like(close, np.nan)
    diff[1:] = close[1:] - close[:-1]
    gain = wilder_recurrence(np.maximum(diff, 0.0), p.rsi_period)
    loss = wilder_recurrence(np.maximum(-diff, 0.0), p.rsi_period)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total == 0.0, 0.0, 100.0 * (gain / total))
    rsi[np.isnan(total)] = np.nan

    first = p.macd_slow - 1
    macd_line = np.full_like(close, np.nan)
    if length > first:
        fast_seed = close[p.macd_slow - p.macd_fast : p.macd_slow].sum(axis=0) / p.macd_fast
        slow_seed = close[: p.macd_slow].sum(axis=0) / p.macd_slow
        fast = ema_recurrence(close, fast_seed, first, 2.0 / (p.macd_fast + 1))
        slow = ema_recurrence(close, slow_seed, first, 2.0 / (p.macd_slow + 1))
        macd_line = fast - slow
    sig_first = first + p.macd_signal - 1
    signal = np.full_like(close, np.nan)
    if length > sig_first:
        seed = macd_line[first : sig_first + 1].sum(axis=0) / p.macd_signal
        signal = ema_recurrence(macd_line, seed, sig_first, 2.0 / (p.macd_signal + 1))
    macd_line[: min(sig_first, length)] = np.nan
    hist = macd_line - signal

    middle = sma if p.bb_period == p.sma_period else rolling_mean(close, p.bb_period)
    var = rolling_var(close, middle, p.bb_period)
    with np.errstate(invalid="ignore"):
        width = np.sqrt(np.maximum(var, 0.0)) * p.bb_nbdev
    width[np.isnan(var)] = np.nan

    tr = np.full_like(close, np.nan)
    if length > 1:
        prev = close[:-1]
        tr[1:] = np.maximum(
            high[1:] - low[1:], np.maximum(np.abs(prev - high[1:]), np.abs(prev - low[1:]))
        )
    atr = wilder_recurrence(tr, p.atr_period)
    return [sma, ema, rsi, macd_line, signal, hist, middle + width, middle, middle - width, atr]


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (N_OUT x n_rows) from the time-major arrays of the whole panel."""
    out[:] = np.nan
    close, (rows, bar, sym) = to_time_major(panel, panel.close)
    high, _ = to_time_major(panel, panel.high)
    low, _ = to_time_major(panel, panel.low)
    for k, grid in enumerate(indicators_time_major(close, high, low, params)):
        out[k, rows] = grid[bar, sym]
