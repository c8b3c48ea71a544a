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
from pandas.api.internals import create_dataframe_from_blocks  # pandas 3.0+, as pinned

from nepse_perf._blocks import pool
from nepse_perf.indicators.backends import gpu, numba_parallel
from nepse_perf.indicators.backends import numba as numba_backend
from nepse_perf.indicators.backends import numpy as numpy_backend
from nepse_perf.indicators.backends import pandas as pandas_backend
from nepse_perf.indicators.backends import python as python_backend
from nepse_perf.indicators.backends import talib as talib_backend
from nepse_perf.indicators.panel import Panel, panel_from_frame
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams

ComputeFn = Callable[[Panel, IndicatorParams, np.ndarray], None]

#: The result frames' columns, built once: an Index is immutable, so every frame shares it
#: (building it from the list of names took most of the time of wrapping a block).
_COLUMNS = pd.Index(list(OUTPUT_COLUMNS))


#: A compiled panel kernel: ``kernel(close, high, low, offsets, starts, params, out)`` fills
#: the rows of the symbols ``offsets`` describes (``params`` is ``IndicatorParams.kernel_args()``)
#: and touches no other row of ``out``, so several threads can share one output block.
PanelKernel = Callable[..., None]


@dataclass(frozen=True)
class Backend:
    """A named way of computing the pipeline: ``compute(panel, params, out)`` fills ``out``.

    Besides ``compute``, a backend says what callers may do with it, so that no module has
    to recognise another by name: ``serial`` is a variant that uses one thread only (for
    pool workers; ``None`` when ``compute`` already does), ``panel_kernel`` a compiled
    :data:`PanelKernel` that writes only the given symbols' rows of a shared block,
    ``releases_gil`` whether threads running it run at the same time, and ``threaded``
    whether ``compute`` itself spreads work over threads. ``jit`` says whether the first
    call in a process compiles code (benchmarks time that call separately);
    ``description`` is one line for tables and ``--help``; ``available`` says whether this
    machine can run it (the ``gpu`` backend needs a CUDA GPU).
    """

    name: str
    compute: ComputeFn
    description: str
    jit: bool = False
    available: Callable[[], bool] = lambda: True
    serial: ComputeFn | None = None
    panel_kernel: PanelKernel | None = None
    releases_gil: bool = False
    threaded: bool = False

    def single_thread(self) -> ComputeFn:
        """The variant a pool worker runs: ``serial`` if there is one, else ``compute``."""
        return self.serial or self.compute


#: The backend used when none is named: the fused kernel, symbols in parallel.
DEFAULT_BACKEND = "numba_parallel"

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("python", python_backend.compute, "plain Python loops (the reference definition)"),
        Backend("pandas", pandas_backend.compute, "groupby + rolling/ewm, seeded like TA-Lib"),
        Backend("numpy", numpy_backend.compute, "time-major 2-D arrays, cumsum windows"),
        Backend(
            "numba",
            numba_backend.compute,
            "@njit kernels, one per indicator",
            jit=True,
            panel_kernel=numba_backend.compute_panel,
        ),
        Backend(
            "numba_parallel",
            numba_parallel.compute,
            "one fused @njit pass, prange over symbols",
            jit=True,
            serial=numba_parallel.compute_serial,
            panel_kernel=numba_parallel.fused_panel_serial,
            releases_gil=True,
            threaded=True,
        ),
        Backend("talib", talib_backend.compute, "TA-Lib C library per symbol"),
        Backend(
            "gpu",
            gpu.compute,
            "numba.cuda kernel, one thread per symbol",
            jit=True,
            available=gpu.gpu_available,
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


def check_out(out: np.ndarray, n_rows: int) -> np.ndarray:
    """``out`` if it is a writeable C-contiguous float64 (10, n_rows) block, else ValueError."""
    shape = (len(OUTPUT_COLUMNS), n_rows)
    if (
        not isinstance(out, np.ndarray)
        or out.shape != shape
        or out.dtype != np.float64
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        got = f"{type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}"
        raise ValueError(
            f"out must be a writeable C-contiguous float64 array of shape {shape}; got {got}"
        )
    return out


def new_block(n_rows: int) -> np.ndarray:
    """A 10 x ``n_rows`` float64 output block, uninitialised (every backend fills it all).

    Big blocks come from :func:`nepse_perf._blocks.pool`, which recycles the pages of blocks
    no longer in use, so repeated calls do not pay the operating system's page faults.
    """
    return pool().take(n_rows)


def compute_panel(
    panel: Panel,
    backend: str = "numba_parallel",
    params: IndicatorParams | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Run a backend on a prepared panel; returns the 10 x n_rows float64 output block.

    Rows are in panel (sorted) order; ``compute_indicators`` maps them back to the frame.
    ``out`` (a C-contiguous float64 block of that shape) is filled and returned instead of
    a fresh one: reuse it across calls to skip the allocation and its page faults.
    """
    impl = get_backend(backend)
    out = new_block(panel.n_rows) if out is None else check_out(out, panel.n_rows)
    if panel.n_rows:
        impl.compute(panel, params or IndicatorParams(), out)
    return out


def to_frame_order(block: np.ndarray, panel: Panel, out: np.ndarray | None = None) -> np.ndarray:
    """A panel-ordered block (rows of the last axis) in the original frame's row order.

    Returns ``block`` itself when the frame was already sorted (``panel.order is None``);
    otherwise scatters it into ``out`` (or a new array of the same shape). Works for a
    10 x n block and for a single column alike.
    """
    if panel.order is None:
        if out is not None and out is not block:
            out[...] = block
            return out
        return block
    target = np.empty_like(block) if out is None else out
    target[..., panel.order] = block
    return target


def to_panel_order(block: np.ndarray, panel: Panel) -> np.ndarray:
    """The inverse of :func:`to_frame_order`: frame-ordered rows gathered into panel order."""
    return block if panel.order is None else block[..., panel.order]


def frame_from_block(
    block: np.ndarray, panel: Panel, index: pd.Index, out: np.ndarray | None = None
) -> pd.DataFrame:
    """Wrap a panel-ordered 10 x n output block as the indicator frame, in the frame's row order.

    When the frame was not sorted by symbol/date (``panel.order`` is set) the rows are
    scattered back into ``out`` (a new block if None); otherwise ``block`` becomes the
    frame's data without a copy. Columns are ``OUTPUT_COLUMNS``.
    """
    block = to_frame_order(block, panel, out)
    return _frame_over(block, index)


#: Where each of the block's rows goes: column k of the frame is row k of the block.
_PLACEMENT = np.arange(len(OUTPUT_COLUMNS))


def _frame_over(block: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """The indicator frame over a 10 x n block, without a copy.

    A 10 x n C-contiguous block is exactly how pandas stores ten float64 columns (one
    block, a row per column), so pandas' low-level constructor takes it as it is; the
    ``DataFrame`` constructor does the same but checks and infers first, which on a small
    market, with pandas' code out of the CPU's caches, cost about as much as the kernel's
    own checks. Any other layout (a caller's Fortran-ordered block) goes through the
    ``DataFrame`` constructor; the frames are equal (``tests/test_blocks.py``).
    """
    if not block.flags.c_contiguous:
        return pd.DataFrame(block.T, index=index, columns=_COLUMNS, copy=False)
    return create_dataframe_from_blocks([(block, _PLACEMENT)], index=index, columns=_COLUMNS)


def compute_frame(
    prices: pd.DataFrame,
    compute: ComputeFn,
    params: IndicatorParams,
    out: np.ndarray | None = None,
) -> pd.DataFrame:
    """Frame in, frame out, with an explicit kernel ``compute(panel, params, out)``.

    What :func:`compute_indicators` does once it has chosen the backend's kernel: build the
    panel, fill a block (``out`` when given and the frame is sorted, else a new one), and
    wrap it in the frame's row order (into ``out`` when given). ``out`` must be a
    C-contiguous float64 block of shape (10, len(prices)) (``ValueError`` otherwise).
    """
    panel = panel_from_frame(prices)
    if out is not None:
        check_out(out, panel.n_rows)
    target = out if out is not None and panel.order is None else new_block(panel.n_rows)
    if panel.n_rows:
        compute(panel, params, target)
    return frame_from_block(target, panel, prices.index, out)


def compute_indicators(
    prices: pd.DataFrame,
    backend: str = "numba_parallel",
    *,
    out: np.ndarray | None = None,
    **params: float,
) -> pd.DataFrame:
    """Compute SMA, EMA, RSI, MACD, Bollinger Bands and ATR for every symbol of ``prices``.

    ``prices`` is a long frame with columns ``symbol``, ``date``, ``high``, ``low`` and
    ``close`` (NPR, float64), e.g. from ``load_prices``; it need not be sorted. Keyword
    parameters (``sma_period=20``, ``ema_period=20``, ``rsi_period=14``, ``macd_fast=12``,
    ``macd_slow=26``, ``macd_signal=9``, ``bb_period=20``, ``bb_nbdev=2.0``,
    ``atr_period=14``) follow TA-Lib's definitions; windows are in bars (rows of the
    symbol, not calendar days). Returns float64 columns ``sma, ema, rsi, macd,
    macd_signal, macd_hist, bb_upper, bb_middle, bb_lower, atr`` with the same index as
    ``prices``, NaN during each warm-up. ``out``, a C-contiguous float64 block of shape
    (10, len(prices)), receives the result (in the frame's row order) and the returned
    frame is a view of it: a caller computing again and again reuses one block instead of
    paying for a fresh one (allocation and page faults) every call. Unknown backend,
    missing column, bad parameter or a wrong ``out`` raises ``ValueError``.
    """
    impl = get_backend(backend)
    return compute_frame(prices, impl.compute, IndicatorParams.from_kwargs(**params), out)
