"""Backend ``pandas``: idiomatic ``groupby`` + ``rolling`` / ``ewm``, made TA-Lib-exact.

The plain pandas one-liners differ from TA-Lib (``ewm(span=n)`` is adjusted and unseeded,
``rolling().std()`` is the sample std, ...). The recipe that makes them exact: blank the
warm-up rows, put TA-Lib's seed (an SMA) on the first valid row, then run
``ewm(alpha=..., adjust=False)``, which starts at the first non-NaN value. Wilder's
smoothing is ``alpha = 1/n``; the EMA's is ``alpha = 2/(n+1)``.

The Bollinger variance is the one place where ``rolling`` is not accurate enough:
``rolling(n).var()`` is an online update (Welford, each bar added and the oldest removed),
so its sum of squared deviations carries rounding residue from every earlier bar of the
symbol, and pandas 3 no longer zeroes a window of identical values. After a long history at
higher prices a flat window keeps a residue of order 1e-12 NPR^2, whose square root (about
2e-6 NPR) is far outside TA-Lib's agreement (the ``large`` benchmark panel hit 5.5e-6).
:func:`window_variance` computes each window's variance from its own ``n`` values instead
(two passes: deviations from the window's mean), so nothing is carried between windows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nepse_perf.indicators.panel import Panel
from nepse_perf.indicators.params import IndicatorParams


def _seeded_ewm(
    values: pd.Series, keys: np.ndarray, pos: np.ndarray, seed: pd.Series, first: int, alpha: float
) -> pd.Series:
    """EMA per group that starts at position ``first`` with ``seed`` (TA-Lib's seeding)."""
    x = values.where(pos > first)
    x = x.mask(pos == first, seed)
    return x.groupby(keys, sort=False).ewm(alpha=alpha, adjust=False).mean().droplevel(0)


def window_variance(values: pd.Series, keys: np.ndarray, mean: pd.Series, n: int) -> pd.Series:
    """Population variance of each row's last ``n`` values of its group, from those values only.

    ``mean`` is the window mean (the rolling mean); the result is the mean of the ``n``
    squared deviations ``(x[t-k] - mean[t])**2``, k = 0..n-1, gathered with a grouped
    ``shift`` so symbols may interleave. Rows with fewer than ``n`` values are NaN. Exact
    for a window of identical values (0.0) and independent of all earlier bars, unlike
    ``rolling(n).var()``, whose running sums carry rounding from the whole series.
    Units: those of ``values`` squared.
    """
    grouped = values.groupby(keys, sort=False)
    total = (values - mean) ** 2
    for k in range(1, n):
        total += (grouped.shift(k) - mean) ** 2
    return total / n


def _true_range(frame: pd.DataFrame, prev_close: pd.Series) -> pd.Series:
    """max(high - low, |prev close - high|, |prev close - low|); NaN where any is NaN."""
    return pd.concat(
        [
            frame["high"] - frame["low"],
            (prev_close - frame["high"]).abs(),
            (prev_close - frame["low"]).abs(),
        ],
        axis=1,
    ).max(axis=1, skipna=False)


def indicators_frame(frame: pd.DataFrame, params: IndicatorParams) -> pd.DataFrame:
    """The ten outputs for a long frame with columns symbol, close, high, low (one row per bar).

    Rows must be in time order within each symbol; each symbol's first row is its bar 0.
    """
    p = params
    keys = frame["symbol"].to_numpy()
    grouped = frame.groupby("symbol", sort=False, observed=True)
    pos = grouped.cumcount().to_numpy()
    close = frame["close"]
    by_symbol = close.groupby(keys, sort=False)

    def rolling_mean(s: pd.Series, n: int) -> pd.Series:
        return s.groupby(keys, sort=False).rolling(n).mean().droplevel(0)

    sma = rolling_mean(close, p.sma_period)
    ema = _seeded_ewm(
        close,
        keys,
        pos,
        rolling_mean(close, p.ema_period),
        p.ema_period - 1,
        2.0 / (p.ema_period + 1),
    )

    delta = by_symbol.diff()
    gain, loss = delta.clip(lower=0.0), (-delta).clip(lower=0.0)
    n = p.rsi_period
    avg_gain = _seeded_ewm(gain, keys, pos, rolling_mean(gain, n), n, 1.0 / n)
    avg_loss = _seeded_ewm(loss, keys, pos, rolling_mean(loss, n), n, 1.0 / n)
    total = avg_gain + avg_loss
    rsi = (100.0 * avg_gain / total).mask(total == 0.0, 0.0)

    first = p.macd_slow - 1
    fast = _seeded_ewm(
        close, keys, pos, rolling_mean(close, p.macd_fast), first, 2.0 / (p.macd_fast + 1)
    )
    slow = _seeded_ewm(
        close, keys, pos, rolling_mean(close, p.macd_slow), first, 2.0 / (p.macd_slow + 1)
    )
    macd = fast - slow
    sig_first = first + p.macd_signal - 1
    signal = _seeded_ewm(
        macd,
        keys,
        pos,
        rolling_mean(macd, p.macd_signal),
        sig_first,
        2.0 / (p.macd_signal + 1),
    )
    macd = macd.where(pos >= sig_first)

    middle = rolling_mean(close, p.bb_period)
    var = window_variance(close, keys, middle, p.bb_period)
    width = np.sqrt(var) * p.bb_nbdev

    true_range = _true_range(frame, by_symbol.shift(1))
    n = p.atr_period
    atr = _seeded_ewm(true_range, keys, pos, rolling_mean(true_range, n), n, 1.0 / n)

    return pd.DataFrame(
        {
            "sma": sma,
            "ema": ema,
            "rsi": rsi,
            "macd": macd,
            "macd_signal": signal,
            "macd_hist": macd - signal,
            "bb_upper": middle + width,
            "bb_middle": middle,
            "bb_lower": middle - width,
            "atr": atr,
        },
        index=frame.index,
    )


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (N_OUT x n_rows) from :func:`indicators_frame` on the panel's valid rows."""
    out[:] = np.nan
    rows, _, sym = panel.valid_rows()
    frame = pd.DataFrame(
        {
            "symbol": sym,
            "close": panel.close[rows],
            "high": panel.high[rows],
            "low": panel.low[rows],
        }
    )
    result = indicators_frame(frame, params)
    out[:, rows] = result.to_numpy().T
