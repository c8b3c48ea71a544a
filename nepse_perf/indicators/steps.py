"""Each indicator defined once: a state, and a step that advances it by one bar.

This is the accumulator pattern (vectorbt PRO's, TA-Lib's own "running" loops): an
indicator is a small tuple of running values, ``*_init`` builds it from the parameters, and
``state, value = *_update(state, j, ...)`` advances it by bar ``j`` (0 = the symbol's first
complete bar) and returns that bar's output, NaN during the warm-up. Past the warm-up,
``*_update`` is ``*_step``: the steady-state recurrence with no warm-up branches, which the
fused kernel calls directly in its hot loop. Every other driver (the plain loops, the
per-indicator Numba kernels, the fused kernel, the chunked stream and the CUDA kernel)
calls these same functions, so the arithmetic exists in exactly one place.

Rules that let one source serve four targets (CPython, Numba CPU, Numba CUDA and the CUDA
simulator): scalar arithmetic and indexing only, states are flat tuples of numbers, and
windowed indicators (SMA, Bollinger) read the values that leave their window from a price
buffer ``buf`` at flat index ``i`` with a ``stride`` between bars (1 for a symbol's
contiguous rows, the number of symbols in the GPU's time-major layout, 1 in the stream's
ring, where a negative index wraps around to the ring's end). The globals these functions
call are resolved per target by :mod:`nepse_perf.indicators.targets`. The fields of each
state tuple are named in :mod:`nepse_perf.indicators.layout` (``s[BB_N]``, ...).

Numerics follow TA-Lib's C code operation for operation. SMA, EMA, MACD and the Bollinger
middle band are TA-Lib's to the last bit: the SMA and the middle band are the running total
divided by ``n`` (TA-Lib's division, not a multiplication by ``1/n``; the fused kernel leaves
the totals in the output rows and divides in its second, vectorised loop, so the division's
latency never sits on a recurrence), and every EMA step is one fused multiply-add
(:func:`fma`), because TA-Lib's C library is compiled with floating-point contraction and
rounds ``(x - e) * k + e`` once. One documented change remains: in the steady steps of
RSI and ATR, and in the Bollinger variance, the division by the window length inside the
recurrence is a multiplication by ``1/n`` computed once (TA-Lib divides; the results differ
by at most a few units in the last place, far inside 1e-9, and profiling found the divider
to be the fused kernel's bottleneck there). Seeds (once per series) and divisions by a
data-dependent value (RSI's ``gain / (gain + loss)``) stay divisions.
"""

from __future__ import annotations

import math

from nepse_perf.indicators.layout import (
    BB_BASE,
    BB_INV,
    BB_M2,
    BB_MEAN,
    BB_N,
    BB_NBDEV,
    BB_PHASE,
    BB_PREV,
    BB_RUN,
    BB_S1,
    BB_S2,
    BB_TOTAL,
    EMA_K,
    EMA_N,
    EMA_VALUE,
    MACD_FAST_EMA,
    MACD_FAST_K,
    MACD_FAST_N,
    MACD_SIGNAL_EMA,
    MACD_SIGNAL_K,
    MACD_SIGNAL_N,
    MACD_SLOW_EMA,
    MACD_SLOW_K,
    MACD_SLOW_N,
    MACD_T_FAST,
    MACD_T_SIGNAL,
    MACD_T_SLOW,
    SMA_N,
    SMA_TOTAL,
)

#: The step functions, in the order they are compiled for each target.
__all__ = [
    "atr_init",
    "atr_lookback",
    "atr_step",
    "atr_update",
    "bbands_bands",
    "bbands_init",
    "bbands_lookback",
    "bbands_moments",
    "bbands_moments_update",
    "bbands_step",
    "bbands_update",
    "ema_init",
    "ema_lookback",
    "ema_step",
    "ema_update",
    "fma",
    "macd_init",
    "macd_lookback",
    "macd_step",
    "macd_update",
    "rsi_averages",
    "rsi_init",
    "rsi_lookback",
    "rsi_step",
    "rsi_update",
    "rsi_value",
    "sma_init",
    "sma_lookback",
    "sma_step",
    "sma_total",
    "sma_update",
    "sma_value",
    "true_range",
]

NAN = math.nan


# --- The fused multiply-add: a * b + c with one rounding --------------------------------
def fma(a, b, c):
    """``a * b + c`` rounded once, as a fused multiply-add instruction computes it.

    TA-Lib's C library is compiled with floating-point contraction, so its EMA recurrence
    ``(x - e) * k + e`` is one FMA instruction with one rounding, not two; the EMAs here use
    this function to give TA-Lib's bits. This is the CPython version: exact rational
    arithmetic (the ratios of doubles have power-of-two denominators, and Python's integer
    division rounds correctly), slow but exact; every compiled target replaces it by the
    hardware instruction (:mod:`nepse_perf.indicators.targets`). Non-finite inputs give
    ``a * b + c``, whose NaN or infinity is the FMA's too.
    """
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    an, ad = float(a).as_integer_ratio()
    bn, bd = float(b).as_integer_ratio()
    cn, cd = float(c).as_integer_ratio()
    return (an * bn * cd + cn * ad * bd) / (ad * bd * cd)


# --- Lookbacks: the bars before an indicator's first value (TA-Lib's TA_*_Lookback) -----
def sma_lookback(timeperiod=20):
    """Leading NaN bars of SMA: ``timeperiod - 1``."""
    return timeperiod - 1


def ema_lookback(timeperiod=20):
    """Leading NaN bars of EMA: ``timeperiod - 1`` (the seed is the mean of the first bars)."""
    return timeperiod - 1


def rsi_lookback(timeperiod=14):
    """Leading NaN bars of RSI: ``timeperiod`` (that many price moves need one bar more)."""
    return timeperiod


def macd_lookback(fastperiod=12, slowperiod=26, signalperiod=9):
    """Leading NaN bars of all three MACD outputs: ``slowperiod + signalperiod - 2``."""
    return slowperiod + signalperiod - 2  # fastperiod does not matter: both EMAs start together


def bbands_lookback(timeperiod=20):
    """Leading NaN bars of the three Bollinger bands: ``timeperiod - 1``."""
    return timeperiod - 1


def atr_lookback(timeperiod=14):
    """Leading NaN bars of ATR: ``timeperiod`` (the true range needs a previous close)."""
    return timeperiod


# --- SMA: running total, TA-Lib's add-output-drop order --------------------------------
def sma_init(n):
    """SMA state ``(total, n)``: the running total of the window's bars so far."""
    return (0.0, float(n))


def sma_value(total, n):
    """The SMA from the window's total: ``total / n``, TA-Lib's division (not ``* (1/n)``)."""
    return total / n


def sma_total(s, x, x_leave):
    """Steady SMA bar without its division: add ``x``, return the window's total, drop ``x_leave``.

    ``x_leave`` is the bar ``n - 1`` back; :func:`sma_value` turns the total into the SMA.
    """
    total, n = s
    total += x
    return (total - x_leave, n), total


def sma_step(s, x, x_leave):
    """Steady SMA bar: TA-Lib's add, output total/n, drop order."""
    s, total = sma_total(s, x, x_leave)
    return s, sma_value(total, s[SMA_N])


def sma_update(s, j, buf, i, stride):
    """SMA at bar ``j`` (``buf[i]``); NaN for the first ``n - 1`` bars (lookback ``n - 1``)."""
    back = int(s[SMA_N]) - 1
    if j >= back:
        return sma_step(s, buf[i], buf[i - back * stride])
    return (s[SMA_TOTAL] + buf[i], s[SMA_N]), NAN


# --- EMA: alpha 2/(n+1), seeded with the mean of the first n closes --------------------
def ema_init(n):
    """EMA state ``(acc, n, k)``: ``acc`` is the seed's running total, then the EMA."""
    return (0.0, float(n), 2.0 / (n + 1))


def ema_step(s, x):
    """Steady EMA bar: ``(x - e) * k + e``, in TA-Lib's operation order, one FMA."""
    e = fma(x - s[EMA_VALUE], s[EMA_K], s[EMA_VALUE])
    return (e, s[EMA_N], s[EMA_K]), e


def ema_update(s, j, x):
    """EMA at bar ``j``: NaN before bar ``n - 1``, the seed mean at it (lookback ``n - 1``)."""
    n = s[EMA_N]
    if j >= n:
        return ema_step(s, x)
    acc = s[EMA_VALUE] + x
    if j == n - 1:
        acc = acc / n
        return (acc, n, s[EMA_K]), acc
    return (acc, n, s[EMA_K]), NAN


# --- RSI: Wilder's smoothing of gains and losses --------------------------------------
def rsi_init(n):
    """RSI state ``(prev_close, avg_gain, avg_loss, n, 1/n)``, ``n`` as a float (no conversion per bar)."""
    return (NAN, 0.0, 0.0, float(n), 1.0 / n)


def rsi_value(gain, loss):
    """RSI from the average gain and loss: 100 * gain / (gain + loss), 0 with no movement."""
    s = gain + loss
    return 100.0 * (gain / s) if s != 0.0 else 0.0


def rsi_averages(s, x):
    """Steady RSI bar: ``avg = (avg * (n - 1) + move) / n`` for gains and losses.

    Returns the state and the two averages (:func:`rsi_value` makes the RSI of them).
    ``min``/``max`` instead of ``if d < 0``: compiled, they are branch-free selects (a move's sign
    is a coin flip a branch mispredicts); interpreted, each is a call that costs more than an ``if``.
    """
    prev, gain, loss, n, inv = s
    d = x - prev
    loss = (loss * (n - 1.0) - min(d, 0.0)) * inv
    gain = (gain * (n - 1.0) + max(d, 0.0)) * inv
    return (x, gain, loss, n, inv), gain, loss


def rsi_step(s, x):
    """Steady RSI bar: the new averages, then the RSI."""
    s, gain, loss = rsi_averages(s, x)
    return s, rsi_value(gain, loss)


def rsi_update(s, j, x):
    """RSI at bar ``j``: the mean gain and loss of the first ``n`` moves at bar ``n``.

    RSI = 100 * gain / (gain + loss), and 0 where gain + loss is exactly zero (no movement
    at all), as TA-Lib 0.6+ defines it. Lookback ``n``.
    """
    prev, gain, loss, n, inv = s
    if j > n:
        return rsi_step(s, x)
    if j == 0:
        return (x, gain, loss, n, inv), NAN
    d = x - prev
    loss -= min(d, 0.0)
    gain += max(d, 0.0)
    if j < n:
        return (x, gain, loss, n, inv), NAN
    gain /= n
    loss /= n
    return (x, gain, loss, n, inv), rsi_value(gain, loss)


# --- MACD: two EMAs both seeded at bar slow-1, the signal EMA of their difference -----
def macd_init(fast, slow, signal):
    """MACD state: fast/slow seed totals and EMAs, signal total/EMA, spans and alphas."""
    return (
        0.0,  # MACD_T_FAST: fast seed total
        0.0,  # MACD_T_SLOW: slow seed total
        0.0,  # MACD_T_SIGNAL: signal seed total
        0.0,  # MACD_FAST_EMA
        0.0,  # MACD_SLOW_EMA
        0.0,  # MACD_SIGNAL_EMA
        float(fast),  # MACD_FAST_N
        float(slow),  # MACD_SLOW_N
        float(signal),  # MACD_SIGNAL_N
        2.0 / (fast + 1),  # MACD_FAST_K
        2.0 / (slow + 1),  # MACD_SLOW_K
        2.0 / (signal + 1),  # MACD_SIGNAL_K
    )


def _macd_with(s, t_fast, t_slow, t_sig, ef, es, g):
    return (
        t_fast,
        t_slow,
        t_sig,
        ef,
        es,
        g,
        s[MACD_FAST_N],
        s[MACD_SLOW_N],
        s[MACD_SIGNAL_N],
        s[MACD_FAST_K],
        s[MACD_SLOW_K],
        s[MACD_SIGNAL_K],
    )


def macd_step(s, x):
    """Steady MACD bar: advance both EMAs and the signal; returns macd, signal, histogram."""
    ef = fma(x - s[MACD_FAST_EMA], s[MACD_FAST_K], s[MACD_FAST_EMA])
    es = fma(x - s[MACD_SLOW_EMA], s[MACD_SLOW_K], s[MACD_SLOW_EMA])
    m = ef - es
    g = fma(m - s[MACD_SIGNAL_EMA], s[MACD_SIGNAL_K], s[MACD_SIGNAL_EMA])
    t_fast, t_slow, t_sig = s[MACD_T_FAST], s[MACD_T_SLOW], s[MACD_T_SIGNAL]
    return _macd_with(s, t_fast, t_slow, t_sig, ef, es, g), m, g, m - g


def macd_update(s, j, x):
    """MACD at bar ``j``, seeded as TA-Lib does (lookback ``slow + signal - 2``).

    The slow EMA starts from the mean of bars 0..slow-1 and the fast EMA from the mean of
    the ``fast`` bars *ending* at slow-1; the signal line starts from the mean of the first
    ``signal`` MACD values. The seed sums divide (TA-Lib's order, once per series).
    """
    fast, slow, signal = s[MACD_FAST_N], s[MACD_SLOW_N], s[MACD_SIGNAL_N]
    first = slow + signal - 2
    if j > first:
        return macd_step(s, x)
    t_fast, t_slow, t_sig = s[MACD_T_FAST], s[MACD_T_SLOW], s[MACD_T_SIGNAL]
    ef, es, g = s[MACD_FAST_EMA], s[MACD_SLOW_EMA], s[MACD_SIGNAL_EMA]
    if j < slow:
        t_slow += x
        if j >= slow - fast:
            t_fast += x
        if j == slow - 1:
            ef = t_fast / fast
            es = t_slow / slow
            t_sig = ef - es
    else:
        ef = fma(x - ef, s[MACD_FAST_K], ef)
        es = fma(x - es, s[MACD_SLOW_K], es)
        t_sig += ef - es
    if j < first:
        return _macd_with(s, t_fast, t_slow, t_sig, ef, es, g), NAN, NAN, NAN
    g = t_sig / signal
    m = ef - es
    return _macd_with(s, t_fast, t_slow, t_sig, ef, es, g), m, g, m - g


# --- Bollinger Bands: SMA middle +/- nbdev population standard deviations -------------
def bbands_init(n, nbdev):
    """Bollinger state ``(total, mean, m2, prev, run, phase, base, s1, s2, n, nbdev, 1/n)``.

    ``total`` is the middle band's running total; ``mean``/``m2`` the window's mean and sum
    of squared deviations (rolling Welford); ``run`` counts equal closes in a row ending at
    the last bar; ``phase`` is ``(j + 1) % n``, kept as a counter (an integer division per
    bar costs as much as the rest of the bar); ``base``, ``s1`` and ``s2`` are the first
    close of the current block of ``n`` bars and the sums of the block's deviations from it
    and of their squares, from which the block's moments are recomputed when it is complete.
    """
    return (0.0, 0.0, 0.0, NAN, 0.0, 0.0, 0.0, 0.0, 0.0, float(n), float(nbdev), 1.0 / n)


def _bb_block(phase, x, base, s1, s2):
    """Add ``x`` to the current block's shifted sums (a new block starts at phase 1)."""
    if phase == 1.0:
        base = x
        s1 = 0.0
        s2 = 0.0
    d = x - base
    return base, s1 + d, s2 + d * d


def bbands_bands(mid, var, nbdev):
    """Upper, middle and lower band from the middle band and the window's variance."""
    sd = math.sqrt(var) * nbdev if var > 0.0 else 0.0
    return mid + sd, mid, mid - sd


def bbands_step(s, x, x_old, x_leave):
    """Bollinger bar ``j >= n - 1``: upper, middle and lower band (moments, then bands)."""
    s, total, var = bbands_moments(s, x, x_old, x_leave)
    upper, mid, lower = bbands_bands(sma_value(total, s[BB_N]), var, s[BB_NBDEV])
    return s, upper, mid, lower


def bbands_moments(s, x, x_old, x_leave):
    """Bollinger bar ``j >= n - 1``: the middle band's total and the window's population variance.

    ``x_old`` is the bar ``n`` back (it leaves the variance), ``x_leave`` the bar ``n - 1``
    back (it leaves the middle band's total after this bar). The variance is a rolling
    Welford update; every ``n`` bars it is replaced by the moments of the block of ``n``
    bars just completed, computed from sums shifted by the block's first close (so a high
    price level, x^2 ~ 2e9 for UNL at 46,600 NPR, does not cancel the digits of a small
    spread) and accumulated bar by bar as the block went past: rounding never piles up over
    a long series, and no bar pays for a second pass. On a window of identical closes the
    variance is exactly zero (TA-Lib's value; sqrt would magnify leftover rounding there).
    """
    total, mean, m2, prev, run, phase, base, s1, s2, n, nbdev, inv = s
    total += x
    run = run + 1.0 if x == prev else 1.0
    phase += 1.0
    if phase == n:
        phase = 0.0
    base, s1, s2 = _bb_block(phase, x, base, s1, s2)
    if run >= n:  # a flat window: exactly zero, and no rounding carried forward
        mean = x
        m2 = 0.0
    elif phase == 0.0:  # a block is complete: its exact moments replace the rolling ones
        mean = base + s1 / n
        m2 = s2 - s1 * s1 / n
        if m2 < 0.0:
            m2 = 0.0
    else:  # Welford: x enters, x_old leaves
        delta = x - x_old
        prev_mean = mean
        mean += delta * inv
        m2 += delta * (x - mean + x_old - prev_mean)
    state = (total - x_leave, mean, m2, x, run, phase, base, s1, s2, n, nbdev, inv)
    return state, total, m2 * inv


def bbands_moments_update(s, j, buf, i, stride):
    """Bollinger moments at bar ``j`` (``buf[i]``): the state, the middle band's total, the variance.

    Both values are NaN for the first ``n - 1`` bars. At bar ``n - 1`` (lookback) the first
    block is complete, so the first window's moments come from the block sums and the bar
    ``n`` back is never read.
    """
    n = int(s[BB_N])
    x = buf[i]
    if j >= n:
        return bbands_moments(s, x, buf[i - n * stride], buf[i - (n - 1) * stride])
    if j == n - 1:
        return bbands_moments(s, x, x, buf[i - (n - 1) * stride])
    run = s[BB_RUN] + 1.0 if x == s[BB_PREV] else 1.0
    phase = s[BB_PHASE] + 1.0
    base, s1, s2 = _bb_block(phase, x, s[BB_BASE], s[BB_S1], s[BB_S2])
    total = s[BB_TOTAL] + x
    state = (
        total,
        s[BB_MEAN],
        s[BB_M2],
        x,
        run,
        phase,
        base,
        s1,
        s2,
        s[BB_N],
        s[BB_NBDEV],
        s[BB_INV],
    )
    return state, NAN, NAN


def bbands_update(s, j, buf, i, stride):
    """Bollinger bands at bar ``j`` (``buf[i]``): SMA middle; NaN for the first ``n - 1`` bars."""
    s, total, var = bbands_moments_update(s, j, buf, i, stride)
    upper, mid, lower = bbands_bands(sma_value(total, s[BB_N]), var, s[BB_NBDEV])
    return s, upper, mid, lower


# --- ATR: Wilder's smoothing of the true range -----------------------------------------
def true_range(prev_close, high, low):
    """max(high - low, |prev_close - high|, |prev_close - low|), TA-Lib's comparison order."""
    tr = high - low
    up = abs(prev_close - high)
    if up > tr:
        tr = up
    down = abs(prev_close - low)
    if down > tr:
        tr = down
    return tr


def atr_init(n):
    """ATR state ``(prev_close, atr, n, 1/n)``, ``n`` as a float (no conversion per bar)."""
    return (NAN, 0.0, float(n), 1.0 / n)


def atr_step(s, high, low, close):
    """Steady ATR bar: ``atr = (atr * (n - 1) + TR) / n``."""
    prev, atr, n, inv = s
    atr = (atr * (n - 1.0) + true_range(prev, high, low)) * inv
    return (close, atr, n, inv), atr


def atr_update(s, j, high, low, close):
    """ATR at bar ``j``: the mean TR of bars 1..n at bar ``n`` (lookback ``n``), then Wilder."""
    prev, atr, n, inv = s
    if j > n:
        return atr_step(s, high, low, close)
    if j == 0:
        return (close, atr, n, inv), NAN
    atr += true_range(prev, high, low)
    if j < n:
        return (close, atr, n, inv), NAN
    atr /= n
    return (close, atr, n, inv), atr
