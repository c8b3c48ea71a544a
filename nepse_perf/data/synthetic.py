"""Deterministic, NEPSE-like synthetic daily prices of any size, fully vectorised."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nepse_perf._infra.checks import positive_int
from nepse_perf.data.schema import PRICE_COLUMNS

#: Named synthetic sizes: (symbols, trading days per symbol).
SIZES: dict[str, tuple[int, int]] = {
    "small": (50, 2_500),
    "medium": (500, 2_500),
    "large": (2_000, 5_000),
}

__all__ = ["MAX_SYNTHETIC_SYMBOLS", "synthetic_prices"]

_CONSONANTS = "BCDGHKLMNPRSTV"
_VOWELS = "AEIOU"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]  # 70 "NA", "BI", ...
_N4 = len(_SYLLABLES) ** 2  # 4-letter tickers: two syllables ("NABI")
#: Distinct tickers available: two syllables, optionally plus a consonant ("NABIL").
MAX_SYNTHETIC_SYMBOLS = _N4 * (1 + len(_CONSONANTS))

_TICK = 0.1  # NPR
_TICKS_PER_NPR = 10.0
_UP, _DOWN = np.log(1.10), np.log(0.90)  # the +/-10 % daily band, in log price
_LEVEL_MEDIAN, _LEVEL_SIGMA, _LEVEL_MIN, _LEVEL_MAX = 300.0, 0.8, 50.0, 5000.0
# Hard floor and cap of the price path.  Clipping a log-price path is monotone and shrinks
# every move, so the band still holds; at >= 25 NPR a 0.1 tick moves a return by < 0.45 %.
_FLOOR, _CAP = 25.0, 50_000.0
_PHI = 0.995  # daily AR(1) coefficient of log price around its level (half-life ~140 sessions)
_BLOCK = 2048  # sessions per block of the vectorised AR(1) (keeps PHI**-t far from overflow)


def synthetic_prices(
    n_symbols: int, n_days: int, *, seed: int = 0, start: str | pd.Timestamp = "2015-01-01"
) -> pd.DataFrame:
    """Generate NEPSE-like daily prices with the same columns, dtypes and order as load_prices.

    Every symbol trades on each of ``n_days`` Sunday-to-Thursday sessions from ``start`` (no
    holidays).  Closes follow a fat-tailed, mean-reverting log random walk around a lognormal
    price level (median 300 NPR, clipped to 50-5,000 NPR); each day's close-to-close move is
    clipped to NEPSE's +/-10 % band before rounding to the 0.1 NPR tick, so after rounding a
    move exceeds 10 % by at most 0.105 NPR (< 0.45 % at the 25 NPR price floor).  Open, high
    and low stay in the band around the previous close, with low <= open, close <= high;
    ``volume`` is a whole, positive, lognormal number of shares and ``turnover`` is volume
    times the typical price (high + low + close) / 3, in NPR rounded to paisa.  Tickers are 4-5
    uppercase letters built from syllables ("NABI", "SOKET"), unique, and depend only on
    ``n_symbols`` (the first n of a fixed shuffle, so a larger universe contains a smaller
    one); prices are a deterministic function of ``seed`` (``np.random.default_rng``).
    ``n_symbols`` and ``n_days`` must be ints >= 1 (ValueError naming the argument otherwise).
    """
    n_symbols = positive_int(n_symbols, "n_symbols")
    n_days = positive_int(n_days, "n_days")
    if n_symbols > MAX_SYNTHETIC_SYMBOLS:
        raise ValueError(f"n_symbols must be <= {MAX_SYNTHETIC_SYMBOLS:,}, got {n_symbols:,}")
    dates = _sessions(start, n_days)
    symbols = _tickers(n_symbols)
    rng = np.random.default_rng(seed)
    level, sigma, liquidity = _character(rng, n_symbols)
    log_close, log_prev = _close_path(rng, (n_symbols, n_days), level, sigma)
    open_, high, low, close = _bars(rng, log_close, log_prev, sigma)
    volume, turnover = _volume(rng, liquidity, log_close, log_prev, high, low, close)
    codes = np.repeat(np.arange(n_symbols, dtype=np.int32), n_days)
    return pd.DataFrame(
        {
            "symbol": pd.Categorical.from_codes(codes, categories=symbols),
            "date": np.tile(dates, n_symbols),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
            "turnover": turnover.ravel(),
        },
        columns=list(PRICE_COLUMNS),
        copy=False,
    )


def _character(rng: np.random.Generator, n_symbols: int) -> tuple[np.ndarray, ...]:
    """Per-symbol character: log price level, daily volatility, log liquidity."""
    level = np.log(
        np.clip(
            _LEVEL_MEDIAN * np.exp(_LEVEL_SIGMA * rng.standard_normal(n_symbols)),
            _LEVEL_MIN,
            _LEVEL_MAX,
        )
    )
    sigma = rng.uniform(0.010, 0.028, n_symbols)
    liquidity = np.log(2_000.0) + 1.2 * rng.standard_normal(n_symbols)
    return level, sigma, liquidity


def _close_path(
    rng: np.random.Generator, shape: tuple[int, int], level: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Log closes and previous closes: Gaussian shocks plus rare jumps, AR(1) around the level.

    Daily moves are clipped to the band, then the path to [floor, cap]: both keep every
    close-to-close move inside the band.
    """
    n_symbols = shape[0]
    shocks = rng.standard_normal(shape)
    shocks *= sigma[:, None]
    n_jumps = int(rng.binomial(shocks.size, 0.002))
    shocks.flat[rng.integers(0, shocks.size, n_jumps)] += rng.normal(0.0, 0.07, n_jumps)
    x0 = sigma / np.sqrt(1.0 - _PHI**2) * rng.standard_normal(n_symbols)
    dev = _ar1(shocks, _PHI, x0)
    moves = np.diff(dev, axis=1, prepend=x0[:, None])
    np.clip(moves, _DOWN, _UP, out=moves)
    log_close = np.cumsum(moves, axis=1)
    log_close += (level + x0)[:, None]
    np.clip(log_close, np.log(_FLOOR), np.log(_CAP), out=log_close)
    log_prev = np.empty_like(log_close)
    log_prev[:, 0] = level + x0
    log_prev[:, 1:] = log_close[:, :-1]
    return log_close, log_prev


def _bars(
    rng: np.random.Generator, log_close: np.ndarray, log_prev: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Open near the previous close, high and low beyond the body, all inside the band; on
    the 0.1 NPR tick with low <= open, close <= high. Returns open, high, low, close."""
    shape = log_close.shape
    log_open = log_prev + np.clip(0.3 * sigma[:, None] * rng.standard_normal(shape), _DOWN, _UP)
    np.clip(log_open, np.log(_FLOOR), np.log(_CAP), out=log_open)
    wick = 0.5 * sigma[:, None]
    log_high = np.maximum(log_open, log_close) + wick * rng.standard_exponential(shape)
    log_low = np.minimum(log_open, log_close) - wick * rng.standard_exponential(shape)
    np.minimum(log_high, log_prev + _UP, out=log_high)
    np.maximum(log_low, log_prev + _DOWN, out=log_low)
    close = _to_tick(log_close)
    open_ = _to_tick(log_open)
    high = np.maximum(_to_tick(log_high), np.maximum(open_, close))
    low = np.minimum(_to_tick(log_low), np.minimum(open_, close))
    return open_, high, low, close


def _volume(
    rng: np.random.Generator,
    liquidity: np.ndarray,
    log_close: np.ndarray,
    log_prev: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Lognormal share volume, busier on big moves; turnover at the typical price (paisa)."""
    log_volume = 0.7 * rng.standard_normal(log_close.shape)
    log_volume += liquidity[:, None]
    log_volume += 8.0 * np.abs(log_close - log_prev)
    volume = np.maximum(np.rint(np.exp(log_volume)), 1.0)
    turnover = np.round(volume * (high + low + close) / 3.0, 2)
    return volume, turnover


def _sessions(start: str | pd.Timestamp, n_days: int) -> np.ndarray:
    """The first ``n_days`` Sunday-Thursday dates on or after ``start``, as datetime64[ns]."""
    try:
        first = pd.Timestamp(start).normalize()
        days = pd.date_range(first, periods=n_days // 5 * 7 + 7, freq="D", unit="ns")
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"start={start!r} with n_days={n_days:,}: {exc}") from None
    sessions = days[days.day_of_week.isin([6, 0, 1, 2, 3])][:n_days]
    return sessions.to_numpy().astype("datetime64[ns]")


def _tickers(n: int) -> list[str]:
    """``n`` unique 4-5 letter tickers, sorted; the first n of one fixed shuffle of all."""
    picks = np.random.default_rng(20_260_821).permutation(MAX_SYNTHETIC_SYMBOLS)[:n]
    tickers = []
    for p in picks.tolist():
        suffix, pair = divmod(p, _N4)
        a, b = divmod(pair, len(_SYLLABLES))
        tail = _CONSONANTS[suffix - 1] if suffix else ""
        tickers.append(_SYLLABLES[a] + _SYLLABLES[b] + tail)
    return sorted(tickers)


def _ar1(shocks: np.ndarray, phi: float, x0: np.ndarray) -> np.ndarray:
    """x[:, t] = phi * x[:, t-1] + shocks[:, t] with x[:, -1] = x0, vectorised along time.

    Uses x[t] = phi**(t+1) * (x0 + sum_{s<=t} phi**-(s+1) * shocks[s]) block by block, so the
    scale factors stay below phi**-BLOCK (about 3e4) and the error stays near machine precision.
    """
    out = np.empty_like(shocks)
    state = x0.astype(np.float64)
    for lo in range(0, shocks.shape[1], _BLOCK):
        hi = min(lo + _BLOCK, shocks.shape[1])
        powers = phi ** np.arange(1, hi - lo + 1, dtype=np.float64)
        block = out[:, lo:hi]
        np.divide(shocks[:, lo:hi], powers, out=block)
        np.cumsum(block, axis=1, out=block)
        block += state[:, None]
        block *= powers
        state = block[:, -1].copy()
    return out


def _to_tick(log_price: np.ndarray) -> np.ndarray:
    """exp(log_price) rounded to the 0.1 NPR tick, at least one tick."""
    price = np.exp(log_price)
    price *= _TICKS_PER_NPR
    np.rint(price, out=price)
    price /= _TICKS_PER_NPR  # k / 10 is the double nearest to the decimal, like "12.3"
    return np.maximum(price, _TICK, out=price)
