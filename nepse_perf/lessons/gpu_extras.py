"""Optional GPU extras: the SMA with cuDF (as in the chapter, made correct) and with CuPy.

Neither library is needed by the package or its tests: both are imported only when called,
and a missing library (or a machine without a usable GPU) raises
:class:`GPUExtraUnavailableError` saying how to install them (``requirements-gpu.txt`` or
``environment-gpu.yml``). Both functions take the usual long price frame and return the SMA
aligned with its index, NaN during each symbol's warm-up, like TA-Lib's ``SMA``.

The array code is written once against a module argument (``lib``/``xp``): the default is
the GPU library, and passing ``pandas``/``numpy`` runs the identical code on the CPU, which
is how the tests and notebook 08 check the logic on machines without a GPU.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from nepse_perf._infra.checks import positive_int
from nepse_perf.indicators.backends.numpy import to_time_major
from nepse_perf.indicators.panel import Panel, panel_from_frame
from nepse_perf.pipeline import to_frame_order

__all__ = [
    "INSTALL_HINT",
    "GPUExtraUnavailableError",
    "cudf_sma",
    "cupy_sma",
    "rolling_mean_time_major",
]

#: How to get the optional GPU libraries (quoted by every error of this module).
INSTALL_HINT = (
    "install the GPU extras on a Linux machine with an NVIDIA GPU and a CUDA 12 driver: "
    "pip install -r requirements-gpu.txt, or conda env create -f environment-gpu.yml"
)


class GPUExtraUnavailableError(ImportError):
    """An optional GPU library (cuDF, CuPy) is not installed, or finds no usable GPU."""


def _require(name: str, purpose: str) -> ModuleType:
    """Import ``name`` or raise :class:`GPUExtraUnavailableError` naming ``purpose``."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise GPUExtraUnavailableError(
            f"{purpose} needs the optional package {name!r}, which is not installed; {INSTALL_HINT}"
        ) from exc
    except Exception as exc:  # cuDF fails at import time (not ImportError) without a GPU
        raise GPUExtraUnavailableError(
            f"{purpose}: importing {name!r} failed ({type(exc).__name__}: {exc}); it needs an "
            f"NVIDIA GPU with a working CUDA driver; {INSTALL_HINT}"
        ) from exc
    return module


def _to_frame_order(panel: Panel, flat: np.ndarray, index: pd.Index, name: str) -> pd.Series:
    """A per-row array in panel (sorted) order as a Series in the frame's original order."""
    return pd.Series(to_frame_order(flat, panel), index=index, name=name)


def rolling_mean_time_major(grid: Any, window: int, xp: ModuleType = np) -> Any:
    """Mean of the last ``window`` rows down axis 0 of a time-major (bars, symbols) array.

    One cumulative sum per column, taken after subtracting the column's first value (which
    keeps the sums small, so the difference of two sums loses fewer digits); rows before
    ``window - 1`` are NaN. ``xp`` is the array module: ``numpy`` for host arrays, ``cupy``
    for device arrays (the same code runs on either).
    """
    ref = grid[:1]
    cs = xp.cumsum(grid - ref, axis=0)
    out = xp.full(grid.shape, xp.nan, dtype=grid.dtype)
    if grid.shape[0] >= window:
        sums = cs[window - 1 :].copy()
        sums[1:] -= cs[:-window]
        out[window - 1 :] = sums / window + ref
    return out


def cupy_sma(prices: pd.DataFrame, window: int = 20, *, xp: ModuleType | None = None) -> pd.Series:
    """SMA(``window``) of every symbol's close with CuPy: time-major array, cumsum on the GPU.

    The panel is laid out time-major on the host (each column one symbol, left-aligned at
    its first complete bar, NaN padding below shorter symbols), copied to the GPU, reduced
    with :func:`rolling_mean_time_major` and copied back. Returns a float64 Series named
    ``sma`` with ``prices``' index. ``xp=numpy`` runs the same code on the CPU. Raises
    :class:`GPUExtraUnavailableError` without CuPy or without a GPU.
    """
    positive_int(window, "window")
    if xp is None:
        xp = _require("cupy", "cupy_sma")
        if not xp.cuda.is_available():
            raise GPUExtraUnavailableError(
                f"cupy_sma: CuPy is installed but finds no CUDA GPU; {INSTALL_HINT}"
            )
    panel = panel_from_frame(prices)
    grid, (rows, bar, sym) = to_time_major(panel, panel.close)
    device_sma = rolling_mean_time_major(xp.asarray(grid), window, xp)
    host_sma = device_sma.get() if hasattr(device_sma, "get") else np.asarray(device_sma)
    flat = np.full(panel.n_rows, np.nan)
    flat[rows] = host_sma[bar, sym]
    return _to_frame_order(panel, flat, prices.index, "sma")


def cudf_sma(prices: pd.DataFrame, window: int = 20, *, lib: ModuleType | None = None) -> pd.Series:
    """SMA(``window``) of every symbol's close with cuDF's ``rolling(window).mean()`` on the GPU.

    The chapter's one-liner ``df['Close'].rolling(20).mean()`` on a multi-symbol frame lets
    each symbol's first windows reach into the previous symbol's closes (and, on an unsorted
    frame, into any rows at all). Here the frame is sorted by symbol and date first (the
    panel), the rolling mean runs over the whole sorted close column in one GPU call, and
    every row whose window is not yet full *within its own symbol* (bar < window - 1,
    counted from the symbol's first complete bar) is set to NaN, which is exactly TA-Lib's
    warm-up. Leading NaN rows are zeroed before the call; only masked windows see them.
    Returns a float64 Series named ``sma`` with ``prices``' index; ``lib=pandas`` runs the
    same code on the CPU. Raises :class:`GPUExtraUnavailableError` without cuDF.
    """
    positive_int(window, "window")
    if lib is None:
        lib = _require("cudf", "cudf_sma")
    panel = panel_from_frame(prices)
    column = lib.Series(np.nan_to_num(panel.close, nan=0.0))
    rolled = column.rolling(window, min_periods=1).mean()  # no nulls: to_numpy() is safe
    means = np.asarray(rolled.to_numpy(), dtype=np.float64)
    rows, bar, _ = panel.valid_rows()
    full = rows[bar >= window - 1]
    flat = np.full(panel.n_rows, np.nan)
    flat[full] = means[full]
    return _to_frame_order(panel, flat, prices.index, "sma")
