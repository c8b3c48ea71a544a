"""The pipeline: run one backend over a panel of symbols and return the ten indicator columns.

``compute_indicators(prices, backend=...)`` is the one entry point the notebooks, the
benchmark and the command line use. Every backend fills the same preallocated block of
10 x n_rows float64 values (one contiguous block, no per-symbol frames), which becomes
the result DataFrame without a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .indicators import (
    gpu_cuda,
    numba_fused,
    numba_kernels,
    numpy_vectorised,
    pandas_groupby,
    python_loops,
    talib_wrapper,
)
from .indicators.panel import Panel, panel_from_frame
from .indicators.params import OUTPUT_COLUMNS, IndicatorParams

ComputeFn = Callable[[Panel, IndicatorParams, np.ndarray], None]


@dataclass(frozen=True)
class Backend:
    """A named way of computing the pipeline: ``compute(panel, params, out)`` fills ``out``.

    ``jit`` says whether the first call in a process compiles code (benchmarks time that
    call separately); ``description`` is one line for tables and ``--help``; ``available``
    says whether this machine can run it (the ``gpu`` backend needs a CUDA GPU).
    """

    name: str
    compute: ComputeFn
    description: str
    jit: bool = False
    available: Callable[[], bool] = lambda: True


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("python", python_loops.compute, "plain Python loops (the reference definition)"),
        Backend("pandas", pandas_groupby.compute, "groupby + rolling/ewm, seeded like TA-Lib"),
        Backend("numpy", numpy_vectorised.compute, "time-major 2-D arrays, cumsum windows"),
        Backend("numba", numba_kernels.compute, "@njit kernels, one per indicator", jit=True),
        Backend(
            "numba_parallel",
            numba_fused.compute,
            "one fused @njit pass, prange over symbols",
            jit=True,
        ),
        Backend("talib", talib_wrapper.compute, "TA-Lib C library per symbol"),
        Backend(
            "gpu",
            gpu_cuda.compute,
            "numba.cuda kernel, one thread per symbol",
            jit=True,
            available=gpu_cuda.gpu_available,
        ),
    )
}


def available_backends() -> list[str]:
    """Names of the backends this machine can run (``gpu`` only with a CUDA GPU/simulator)."""
    return [name for name, b in BACKENDS.items() if b.available()]


def get_backend(name: str) -> Backend:
    """Look a backend up by name; an unknown name raises ValueError listing the valid ones."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name]


def compute_panel(
    panel: Panel, backend: str = "numba_parallel", params: IndicatorParams | None = None
) -> np.ndarray:
    """Run a backend on a prepared panel; returns the 10 x n_rows float64 output block.

    Rows are in panel (sorted) order; ``compute_indicators`` maps them back to the frame.
    """
    impl = get_backend(backend)
    out = np.empty((len(OUTPUT_COLUMNS), panel.n_rows), dtype=np.float64)
    if panel.n_rows:
        impl.compute(panel, params or IndicatorParams(), out)
    return out


def frame_from_block(block: np.ndarray, panel: Panel, index: pd.Index) -> pd.DataFrame:
    """Wrap a panel-ordered 10 x n output block as the indicator frame, in the frame's row order.

    When the frame was not sorted by symbol/date (``panel.order`` is set) the rows are
    scattered back into a new block; otherwise ``block`` becomes the frame's data without a
    copy. Columns are ``OUTPUT_COLUMNS``.
    """
    if panel.order is not None:
        unsorted = np.empty_like(block)
        unsorted[:, panel.order] = block
        block = unsorted
    return pd.DataFrame(block.T, index=index, columns=list(OUTPUT_COLUMNS), copy=False)


def compute_indicators(
    prices: pd.DataFrame, backend: str = "numba_parallel", **params: float
) -> pd.DataFrame:
    """Compute SMA, EMA, RSI, MACD, Bollinger Bands and ATR for every symbol of ``prices``.

    ``prices`` is a long frame with columns ``symbol``, ``date``, ``high``, ``low`` and
    ``close`` (NPR, float64), e.g. from ``load_prices``; it need not be sorted. Keyword
    parameters (``sma_period=20``, ``ema_period=20``, ``rsi_period=14``, ``macd_fast=12``,
    ``macd_slow=26``, ``macd_signal=9``, ``bb_period=20``, ``bb_nbdev=2.0``,
    ``atr_period=14``) follow TA-Lib's definitions; windows are in bars (rows of the
    symbol, not calendar days). Returns float64 columns ``sma, ema, rsi, macd,
    macd_signal, macd_hist, bb_upper, bb_middle, bb_lower, atr`` with the same index as
    ``prices``, NaN during each warm-up. Unknown backend, missing column or bad parameter
    raises ``ValueError``.
    """
    impl = get_backend(backend)
    p = IndicatorParams.from_kwargs(**params)
    panel = panel_from_frame(prices)
    out = np.empty((len(OUTPUT_COLUMNS), panel.n_rows), dtype=np.float64)
    if panel.n_rows:
        impl.compute(panel, p, out)
    return frame_from_block(out, panel, prices.index)
