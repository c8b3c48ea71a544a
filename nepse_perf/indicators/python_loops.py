"""Backend ``python``: the indicators as plain loops, the readable definition.

Every function here fills ``out`` (same length as the input) from one symbol's prices and
follows TA-Lib's C code operation for operation, so the results agree with TA-Lib to the
last bits. The functions only index and do scalar arithmetic, so the same source runs on
Python lists (this backend) and compiles unchanged with Numba (backend ``numba``).
Conventions: ``x[0]`` is the symbol's first complete bar; warm-up outputs are NaN.
"""

from __future__ import annotations

import math

import numpy as np

from .panel import Panel
from .params import IndicatorParams


def sma_into(x, n, out):
    """Simple moving average of ``n`` bars: running total, TA-Lib's add-then-drop order."""
    m = len(x)
    for i in range(min(n - 1, m)):
        out[i] = math.nan
    if m < n:
        return
    total = 0.0
    for i in range(n - 1):
        total += x[i]
    for i in range(n - 1, m):
        total += x[i]
        out[i] = total / n
        total -= x[i - n + 1]


def ema_into(x, n, out):
    """EMA with alpha = 2/(n+1), seeded at bar n-1 with the mean of the first n values."""
    m = len(x)
    for i in range(min(n - 1, m)):
        out[i] = math.nan
    if m < n:
        return
    k = 2.0 / (n + 1)
    total = 0.0
    for i in range(n):
        total += x[i]
    e = total / n
    out[n - 1] = e
    for i in range(n, m):
        e = (x[i] - e) * k + e
        out[i] = e


def rsi_into(x, n, out):
    """Wilder's RSI: mean gain/loss of the first n moves, then (avg*(n-1) + move)/n.

    RSI = 100 * gain / (gain + loss), and 0 where gain + loss is exactly zero
    (no movement at all), as TA-Lib 0.6+ defines it. Lookback n: the first value is at bar n.
    """
    m = len(x)
    for i in range(min(n, m)):
        out[i] = math.nan
    if m <= n:
        return
    gain = 0.0
    loss = 0.0
    for i in range(1, n + 1):
        d = x[i] - x[i - 1]
        if d < 0:
            loss -= d
        else:
            gain += d
    gain /= n
    loss /= n
    s = gain + loss
    out[n] = 100.0 * (gain / s) if s != 0.0 else 0.0
    for i in range(n + 1, m):
        d = x[i] - x[i - 1]
        loss *= n - 1
        gain *= n - 1
        if d < 0:
            loss -= d
        else:
            gain += d
        loss /= n
        gain /= n
        s = gain + loss
        out[i] = 100.0 * (gain / s) if s != 0.0 else 0.0


def macd_into(x, fast, slow, signal, out_macd, out_signal, out_hist):
    """MACD as TA-Lib seeds it: both EMAs start at bar slow-1 (lookback slow+signal-2).

    The slow EMA is seeded with the mean of bars 0..slow-1 and the fast EMA with the mean
    of the ``fast`` bars *ending* at slow-1; the signal line is the EMA of the MACD line
    seeded with the mean of its first ``signal`` values. All three outputs start at bar
    slow+signal-2.
    """
    m = len(x)
    first = slow + signal - 2
    for i in range(min(first, m)):
        out_macd[i] = math.nan
        out_signal[i] = math.nan
        out_hist[i] = math.nan
    if m <= first:
        return
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    kg = 2.0 / (signal + 1)
    total = 0.0
    for i in range(slow - fast, slow):
        total += x[i]
    ef = total / fast
    total = 0.0
    for i in range(slow):
        total += x[i]
    es = total / slow
    # The MACD line from bar slow-1; the first signal-1 values only feed the signal seed.
    total = ef - es
    for i in range(slow, first + 1):
        ef = (x[i] - ef) * kf + ef
        es = (x[i] - es) * ks + es
        total += ef - es
    g = total / signal
    macd = ef - es
    out_macd[first] = macd
    out_signal[first] = g
    out_hist[first] = macd - g
    for i in range(first + 1, m):
        ef = (x[i] - ef) * kf + ef
        es = (x[i] - es) * ks + es
        macd = ef - es
        g = (macd - g) * kg + g
        out_macd[i] = macd
        out_signal[i] = g
        out_hist[i] = macd - g


def bbands_into(x, n, nbdev, out_upper, out_middle, out_lower):
    """Bollinger Bands: SMA(n) middle +/- nbdev population standard deviations.

    The middle band is the SMA's running total. The variance is updated with Welford's
    rolling form (add the new bar and drop the oldest in one step) and recomputed in two
    passes every n bars, so rounding never piles up over a long series. A window of
    identical closes is exactly 0, TA-Lib's value (sqrt would magnify leftover rounding
    there). The textbook running sum of squares, ``E[x^2] - E[x]^2``, instead loses every
    digit in a nearly flat window at a high price (x^2 ~ 2e9 for UNL at 46,600 NPR).
    """
    m = len(x)
    for i in range(min(n - 1, m)):
        out_upper[i] = math.nan
        out_middle[i] = math.nan
        out_lower[i] = math.nan
    if m < n:
        return
    total = 0.0
    run = 0  # how many bars in a row, ending at i, have exactly the same close
    for i in range(n - 1):
        total += x[i]
        run = run + 1 if i > 0 and x[i] == x[i - 1] else 1
    mean = 0.0
    m2 = 0.0
    for i in range(n - 1, m):
        total += x[i]
        mid = total / n
        total -= x[i - n + 1]
        run = run + 1 if x[i] == x[i - 1] else 1
        if run >= n:  # a flat window: exactly zero, and no rounding carried forward
            mean = x[i]
            m2 = 0.0
        elif (i + 1) % n == 0:  # exact restart: two passes, shifted by the window's first bar
            first = x[i - n + 1]
            acc = 0.0
            for k in range(i - n + 1, i + 1):
                acc += x[k] - first
            shift = acc / n
            m2 = 0.0
            for k in range(i - n + 1, i + 1):
                d = x[k] - first - shift
                m2 += d * d
            mean = first + shift
        else:  # Welford: x[i] enters, x[i-n] leaves
            old = x[i - n]
            delta = x[i] - old
            prev_mean = mean
            mean += delta / n
            m2 += delta * (x[i] - mean + old - prev_mean)
        var = m2 / n
        sd = math.sqrt(var) * nbdev if var > 0.0 else 0.0
        out_upper[i] = mid + sd
        out_middle[i] = mid
        out_lower[i] = mid - sd


def atr_into(high, low, close, n, out):
    """Average true range: mean TR of bars 1..n, then Wilder's (atr*(n-1) + TR)/n.

    TR = max(high-low, |prev close-high|, |prev close-low|) from bar 1. Lookback n.
    """
    m = len(close)
    for i in range(min(n, m)):
        out[i] = math.nan
    if m <= n:
        return
    atr = 0.0
    for i in range(1, m):
        tr = high[i] - low[i]
        up = abs(close[i - 1] - high[i])
        if up > tr:
            tr = up
        down = abs(close[i - 1] - low[i])
        if down > tr:
            tr = down
        if i < n:
            atr += tr
        elif i == n:
            atr = (atr + tr) / n
            out[i] = atr
        else:
            atr = (atr * (n - 1) + tr) / n
            out[i] = atr


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (10 x n_rows, OUTPUT_COLUMNS order) symbol by symbol with plain loops.

    Each symbol's prices are converted to Python lists, every indicator is computed into
    Python lists, and the lists are copied into ``out``.
    """
    p = params
    for _, a, s, b in panel.slices():
        out[:, a:s] = np.nan
        if b == s:
            continue
        close = panel.close[s:b].tolist()
        high = panel.high[s:b].tolist()
        low = panel.low[s:b].tolist()
        rows = [[0.0] * len(close) for _ in range(10)]
        sma_into(close, p.sma_period, rows[0])
        ema_into(close, p.ema_period, rows[1])
        rsi_into(close, p.rsi_period, rows[2])
        macd_into(close, p.macd_fast, p.macd_slow, p.macd_signal, rows[3], rows[4], rows[5])
        bbands_into(close, p.bb_period, p.bb_nbdev, rows[6], rows[7], rows[8])
        atr_into(high, low, close, p.atr_period, rows[9])
        out[:, s:b] = rows
