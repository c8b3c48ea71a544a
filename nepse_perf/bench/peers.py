"""The libraries a user would reach for instead, on the same panel: speed and definitions.

``nepse-perf bench --peers`` and notebook 03 run each installed peer (the ``peers`` extra:
tulipy, ta-numba, talipp, polars-talib, polars-talib-fast; vectorbt and ta-lib-takt when a
user installs them) on the panel the backends race on, and compare its ten outputs with
TA-Lib's. Each :class:`Peer` says how its definitions differ from TA-Lib's, which is what
its disagreement comes from: a peer is not wrong for defining an indicator otherwise, but its
numbers are not TA-Lib's. The per-symbol peers loop over the panel's symbols in Python, the
way their documentation calls them (as the ``talib`` backend does for TA-Lib); the polars
peers run one ``select`` of expressions ``.over("symbol")`` on a polars frame of the panel's
valid rows, built once beforehand (as the panel is, for the backends).

Not in the extra: ta-lib-takt installs a module named ``talib``, which would replace the
TA-Lib this project takes as its reference; vectorbt brings ipywidgets into the notebook
kernel, which changes what other notebooks display. Both are run when installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nepse_perf.indicators import layout
from nepse_perf.indicators.panel import Panel
from nepse_perf.indicators.params import IndicatorParams

__all__ = [
    "AGREEMENT",
    "PEERS",
    "Peer",
    "PeerInput",
    "agreement",
    "installed_peers",
    "peer_version",
]


@dataclass
class PeerInput:
    """A panel and, built on first use, the polars frame of its valid rows (symbol, prices)."""

    panel: Panel
    _polars: Any = field(default=None, repr=False)
    _rows: np.ndarray | None = field(default=None, repr=False)

    def valid(self) -> list[tuple[int, int]]:
        """``(first_valid_row, end_row)`` of each symbol with at least one valid row."""
        return [(s, b) for _, _, s, b in self.panel.slices() if b > s]

    def polars_frame(self) -> Any:
        """The valid rows as a polars DataFrame (``symbol`` code, ``close``, ``high``, ``low``)."""
        if self._polars is None:
            import polars as pl

            rows, _, sym = self.panel.valid_rows()
            p = self.panel
            self._rows = rows
            self._polars = pl.DataFrame(
                {"symbol": sym, "close": p.close[rows], "high": p.high[rows], "low": p.low[rows]}
            )
        return self._polars

    def scatter(self, columns: list[np.ndarray]) -> np.ndarray:
        """A 10 x n_rows panel block from ten columns over the valid rows (NaN elsewhere)."""
        self.polars_frame()
        block = np.full((layout.N_OUT, self.panel.n_rows), np.nan)
        for k, col in enumerate(columns):
            block[k, self._rows] = col
        return block


@dataclass(frozen=True)
class Peer:
    """One peer library: how to run it on a :class:`PeerInput` and how its definitions differ.

    ``run(inp, params)`` returns the library's own result; ``to_block(result, inp)`` turns it
    into a 10 x n_rows block in panel order (the identity for the per-symbol peers, which
    fill a block as they go). ``max_rows`` skips panels larger than that (a slow peer);
    ``jit`` says its first call compiles (Numba), so benchmarks time that call apart.
    """

    name: str
    distribution: str
    module: str
    run: Callable[[PeerInput, IndicatorParams], Any]
    definition: str
    to_block: Callable[[Any, PeerInput], np.ndarray] = lambda result, inp: result
    max_rows: int | None = None
    jit: bool = False


def _right(block: np.ndarray, k: int, end: int, values: np.ndarray) -> None:
    """Write ``values`` into row ``k`` of ``block`` so that they end at column ``end``."""
    if len(values):
        block[k, end - len(values) : end] = values


def _tulipy(inp: PeerInput, p: IndicatorParams) -> np.ndarray:
    """tulipy per symbol: outputs start after each lookback, so they are right-aligned."""
    import tulipy as ti

    panel = inp.panel
    block = np.full((layout.N_OUT, panel.n_rows), np.nan)
    calls = (
        ((layout.SMA,), lambda c, h, lo: (ti.sma(c, p.sma_period),)),
        ((layout.EMA,), lambda c, h, lo: (ti.ema(c, p.ema_period),)),
        ((layout.RSI,), lambda c, h, lo: (ti.rsi(c, p.rsi_period),)),
        (
            (layout.MACD, layout.MACD_SIGNAL, layout.MACD_HIST),
            lambda c, h, lo: ti.macd(c, p.macd_fast, p.macd_slow, p.macd_signal),
        ),
        (
            (layout.BB_LOWER, layout.BB_MIDDLE, layout.BB_UPPER),
            lambda c, h, lo: ti.bbands(c, p.bb_period, p.bb_nbdev),
        ),
        ((layout.ATR,), lambda c, h, lo: (ti.atr(h, lo, c, p.atr_period),)),
    )
    for s, b in inp.valid():
        c, h, lo = panel.close[s:b], panel.high[s:b], panel.low[s:b]
        for rows, call in calls:
            try:
                outputs = call(c, h, lo)
            except ti.InvalidOptionError:  # the series is shorter than the period
                continue
            for k, values in zip(rows, outputs, strict=True):
                _right(block, k, b, values)
    return block


def _ta_numba(inp: PeerInput, p: IndicatorParams) -> np.ndarray:
    """ta-numba per symbol (its documented defaults), every output as long as the input."""
    from ta_numba import momentum, trend, volatility

    panel = inp.panel
    block = np.full((layout.N_OUT, panel.n_rows), np.nan)
    for s, b in inp.valid():
        c, h, lo = panel.close[s:b], panel.high[s:b], panel.low[s:b]
        block[layout.SMA, s:b] = trend.sma(c, p.sma_period)
        block[layout.EMA, s:b] = trend.ema(c, p.ema_period)
        block[layout.RSI, s:b] = momentum.rsi(c, p.rsi_period)
        macd = trend.macd(c, p.macd_fast, p.macd_slow, p.macd_signal)
        block[layout.MACD : layout.MACD_HIST + 1, s:b] = np.vstack(macd)
        bands = volatility.bollinger_bands(c, p.bb_period, p.bb_nbdev)
        block[layout.BB_UPPER : layout.BB_LOWER + 1, s:b] = np.vstack(bands)
        block[layout.ATR, s:b] = volatility.average_true_range(h, lo, c, p.atr_period)
    return block


def _talipp_values(indicator: Any, *fields: str) -> list[np.ndarray]:
    """A talipp indicator's outputs as float arrays (None, its warm-up, as NaN)."""
    if not fields:
        return [np.array([np.nan if v is None else v for v in indicator], dtype=np.float64)]
    return [
        np.array(
            [np.nan if v is None or getattr(v, f) is None else getattr(v, f) for v in indicator],
            dtype=np.float64,
        )
        for f in fields
    ]


def _talipp(inp: PeerInput, p: IndicatorParams) -> np.ndarray:
    """talipp per symbol: incremental indicators fed the whole series as Python lists."""
    from talipp.indicators import ATR, BB, EMA, MACD, RSI, SMA
    from talipp.ohlcv import OHLCV

    panel = inp.panel
    block = np.full((layout.N_OUT, panel.n_rows), np.nan)
    for s, b in inp.valid():
        c = panel.close[s:b].tolist()
        bars = [
            OHLCV(None, h, lo, x)
            for h, lo, x in zip(panel.high[s:b].tolist(), panel.low[s:b].tolist(), c, strict=True)
        ]
        block[layout.SMA, s:b] = _talipp_values(SMA(p.sma_period, input_values=c))[0]
        block[layout.EMA, s:b] = _talipp_values(EMA(p.ema_period, input_values=c))[0]
        block[layout.RSI, s:b] = _talipp_values(RSI(p.rsi_period, input_values=c))[0]
        macd = MACD(p.macd_fast, p.macd_slow, p.macd_signal, input_values=c)
        block[layout.MACD : layout.MACD_HIST + 1, s:b] = np.vstack(
            _talipp_values(macd, "macd", "signal", "histogram")
        )
        bands = BB(p.bb_period, p.bb_nbdev, input_values=c)
        block[layout.BB_UPPER : layout.BB_LOWER + 1, s:b] = np.vstack(
            _talipp_values(bands, "ub", "cb", "lb")
        )
        block[layout.ATR, s:b] = _talipp_values(ATR(p.atr_period, input_values=bars))[0]
    return block


def _polars_exprs(ta: Any, p: IndicatorParams) -> list[Any]:
    """The six indicators as expressions of a TA-Lib-for-polars module ``ta``, per symbol."""
    import polars as pl

    close, high, low = pl.col("close"), pl.col("high"), pl.col("low")
    exprs = [
        ta.sma(close, timeperiod=p.sma_period).alias("sma"),
        ta.ema(close, timeperiod=p.ema_period).alias("ema"),
        ta.rsi(close, timeperiod=p.rsi_period).alias("rsi"),
        ta.macd(close, p.macd_fast, p.macd_slow, p.macd_signal).alias("macd"),
        ta.bbands(close, p.bb_period, p.bb_nbdev, p.bb_nbdev, 0).alias("bbands"),
        ta.atr(high, low, close, timeperiod=p.atr_period).alias("atr"),
    ]
    return [e.over("symbol") for e in exprs]


def _polars_run(module: str) -> Callable[[PeerInput, IndicatorParams], Any]:
    def run(inp: PeerInput, p: IndicatorParams) -> Any:
        return inp.polars_frame().select(_polars_exprs(importlib.import_module(module), p))

    return run


def _polars_block(result: Any, inp: PeerInput) -> np.ndarray:
    """The ten columns of a polars peer's result (MACD and the bands are structs)."""
    macd, bands = result["macd"].struct.unnest(), result["bbands"].struct.unnest()
    columns = [result["sma"], result["ema"], result["rsi"], *macd.iter_columns()]
    columns += [*bands.iter_columns(), result["atr"]]
    return inp.scatter([c.to_numpy().astype(np.float64) for c in columns])


def _vectorbt(inp: PeerInput, p: IndicatorParams) -> np.ndarray:
    """vectorbt's indicator factories on a time-major frame of the panel (one column a symbol)."""
    import pandas as pd
    import vectorbt as vbt

    panel = inp.panel
    block = np.full((layout.N_OUT, panel.n_rows), np.nan)
    valid = inp.valid()
    width = max((b - s for s, b in valid), default=0)

    def frame(values: np.ndarray) -> pd.DataFrame:
        grid = np.full((width, len(valid)), np.nan)
        for j, (s, b) in enumerate(valid):
            grid[: b - s, j] = values[s:b]
        return pd.DataFrame(grid)

    c, h, lo = frame(panel.close), frame(panel.high), frame(panel.low)
    macd = vbt.MACD.run(c, p.macd_fast, p.macd_slow, p.macd_signal)
    bands = vbt.BBANDS.run(c, p.bb_period, alpha=p.bb_nbdev)
    outputs = [
        vbt.MA.run(c, p.sma_period).ma,
        vbt.MA.run(c, p.ema_period, ewm=True).ma,
        vbt.RSI.run(c, p.rsi_period).rsi,
        macd.macd,
        macd.signal,
        macd.hist,
        bands.upper,
        bands.middle,
        bands.lower,
        vbt.ATR.run(h, lo, c, p.atr_period).atr,
    ]
    for k, out in enumerate(outputs):
        values = out.to_numpy()
        for j, (s, b) in enumerate(valid):
            block[k, s:b] = values[: b - s, j]
    return block


#: Every peer this module knows, in the order tables list them.
PEERS: tuple[Peer, ...] = (
    Peer(
        "polars-talib",
        "polars-talib",
        "polars_talib",
        _polars_run("polars_talib"),
        "TA-Lib's C library behind polars expressions: TA-Lib's definitions and bits",
        _polars_block,
    ),
    Peer(
        "polars-talib-fast",
        "polars-talib-fast",
        "polars_talib_fast",
        _polars_run("polars_talib_fast"),
        "TA-Lib's definitions in polars expressions; its EMA step is e * (1 - k) + k * x "
        "(one FMA) where TA-Lib's is (x - e) * k + e: the same EMA, rounded otherwise",
        _polars_block,
    ),
    Peer(
        "tulipy",
        "tulipy",
        "tulipy",
        _tulipy,
        "EMA from bar 0, seeded with the first close (not the mean of the first n); MACD "
        "from bar slow - 1 with the fixed alphas 0.15 and 0.075 when the periods are 12 and "
        "26 (not 2/13 and 2/27); ATR seeded with the first bar's high - low (TR[0])",
    ),
    Peer(
        "ta-numba",
        "ta-numba",
        "ta_numba",
        _ta_numba,
        "pandas-style warm-ups: SMA, EMA, RSI and MACD from bar 0 (min_periods=1, EMA "
        "adjust=True), ATR seeded with TR[0]; the values converge to TA-Lib's",
        jit=True,
    ),
    Peer(
        "talipp",
        "talipp",
        "talipp",
        _talipp,
        "incremental Python objects, one per indicator and symbol; the MACD line from bar "
        "slow - 1 (before its signal), ATR seeded with TR[0]; the values converge",
        max_rows=200_000,
    ),
    Peer(
        "vectorbt",
        "vectorbt",
        "vectorbt",
        _vectorbt,
        "RSI and ATR smoothed with alpha 2/(n+1) (an EMA), not Wilder's 1/n: never converge",
        jit=True,
    ),
)


#: The verdicts of :func:`agreement`, from the closest to TA-Lib to the farthest.
AGREEMENT: tuple[str, ...] = ("bit-identical", "rtol 1e-9", "converges", "differs")


def agreement(
    block: np.ndarray, ref: np.ndarray, panel: Panel, settle: int = 500
) -> dict[str, str]:
    """Each output column's verdict against TA-Lib's block ``ref`` (:data:`AGREEMENT`).

    "bit-identical": every value and NaN equal; "rtol 1e-9": the same NaNs and every value
    within rtol/atol 1e-9; "converges": within 1e-9 on every bar from the ``settle``-th bar
    of each symbol on (only the warm-up differs: another seed or first bar); "differs":
    not even then (another definition).
    """
    rows, bar, _ = panel.valid_rows()
    late = np.zeros(panel.n_rows, dtype=bool)
    late[rows[bar >= settle]] = True
    verdicts = {}
    for k, col in enumerate(layout.OUTPUT_COLUMNS):
        g, r = block[k], ref[k]
        if np.array_equal(g, r, equal_nan=True):
            verdicts[col] = AGREEMENT[0]
        elif np.allclose(g, r, rtol=1e-9, atol=1e-9, equal_nan=True):
            verdicts[col] = AGREEMENT[1]
        elif late.any() and np.allclose(g[late], r[late], rtol=1e-9, atol=1e-9, equal_nan=True):
            verdicts[col] = AGREEMENT[2]
        else:
            verdicts[col] = AGREEMENT[3]
    return verdicts


def peer_version(peer: Peer) -> str:
    """The installed version of ``peer``'s distribution ("not installed" when absent)."""
    try:
        return importlib.metadata.version(peer.distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def installed_peers() -> list[Peer]:
    """The peers of :data:`PEERS` whose module can be imported here (ta-lib-takt excluded)."""
    return [peer for peer in PEERS if importlib.util.find_spec(peer.module) is not None]
