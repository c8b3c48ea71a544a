"""Backend ``gpu``: the fused pipeline on an NVIDIA GPU with ``numba.cuda``, one thread per symbol.

EMA, RSI, ATR and MACD are recurrences: sequential in time, independent across symbols.
So each CUDA thread runs one symbol's whole series through the *same* Python functions as
the CPU's kernels (the step functions and :func:`numba_parallel.update_bars`, compiled here as
device functions).
Prices are laid out time-major, shape (bars, symbols) flattened, so at every step the 32
threads of a warp read 32 neighbouring float64 values: coalesced loads. Data movement is
explicit: host-to-device copy, kernel and device-to-host copy are timed separately
(:func:`run_on_gpu`), each after ``cuda.synchronize()``.

Without a GPU, ``compute`` raises :class:`GPUUnavailableError`. With the environment
variable ``NUMBA_ENABLE_CUDASIM=1`` set before Numba is imported, the same kernel runs in
Numba's CUDA simulator on the CPU (slowly: use tiny panels), which is how CI tests it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numba
import numpy as np

from nepse_perf.indicators.layout import N_OUT
from nepse_perf.indicators.panel import Panel
from nepse_perf.indicators.params import IndicatorParams

#: Threads per block; 128 keeps several blocks per SM even for a few thousand symbols.
THREADS_PER_BLOCK = 128


class GPUUnavailableError(RuntimeError):
    """Raised by the ``gpu`` backend when no CUDA GPU (and no CUDA simulator) is available."""


def simulator_enabled() -> bool:
    """True when ``NUMBA_ENABLE_CUDASIM=1`` is set (Numba's CUDA simulator, CPU only)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def gpu_available() -> bool:
    """True when ``numba.cuda`` finds a usable GPU, or when the CUDA simulator is on."""
    from numba import cuda

    return bool(cuda.is_available())


def device_name() -> str:
    """The current CUDA device's name (``'CUDA simulator'`` in the simulator)."""
    from numba import cuda

    if simulator_enabled():
        return "CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


@dataclass(frozen=True)
class GPUTiming:
    """Seconds spent in each phase of one GPU run (each measured after a synchronize)."""

    host_to_device: float
    kernel: float
    device_to_host: float

    @property
    def total(self) -> float:
        """Transfers plus kernel, in seconds."""
        return self.host_to_device + self.kernel + self.device_to_host


def run_on_gpu(
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    lengths: np.ndarray,
    params: IndicatorParams,
    dtype: type = np.float64,
) -> tuple[np.ndarray, GPUTiming]:
    """Run the kernel on time-major (bars, symbols) arrays; returns (N_OUT, bars, symbols) outputs.

    ``lengths[s]`` is the number of valid bars of symbol ``s`` (rows beyond it are padding
    and come back unspecified). ``dtype`` float32 halves the bytes moved; the kernel then
    stores float32 but still accumulates in float64. Raises :class:`GPUUnavailableError`
    without a GPU.
    """
    from numba import cuda

    if not gpu_available():
        raise GPUUnavailableError(
            "the 'gpu' backend needs an NVIDIA GPU with a working CUDA driver, and numba.cuda "
            "found none; set NUMBA_ENABLE_CUDASIM=1 (before importing numba) to run the "
            "kernel in Numba's CUDA simulator on the CPU instead"
        )
    bars, n_symbols = close.shape
    flat = [np.ascontiguousarray(a, dtype=dtype).reshape(-1) for a in (close, high, low)]
    p = params
    from nepse_perf.indicators.backends.gpu_kernel import fused_kernel as kernel

    cuda.synchronize()
    t0 = time.perf_counter()
    d_close, d_high, d_low = (cuda.to_device(a) for a in flat)
    d_len = cuda.to_device(np.ascontiguousarray(lengths, dtype=np.int64))
    d_out = cuda.device_array((N_OUT, bars * n_symbols), dtype=dtype)
    cuda.synchronize()
    t1 = time.perf_counter()
    blocks = max(1, (n_symbols + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)
    kernel[blocks, THREADS_PER_BLOCK](d_close, d_high, d_low, d_len, p.kernel_args(), d_out)
    cuda.synchronize()
    t2 = time.perf_counter()
    out = d_out.copy_to_host()
    cuda.synchronize()
    t3 = time.perf_counter()
    return out.reshape(N_OUT, bars, n_symbols), GPUTiming(t1 - t0, t2 - t1, t3 - t2)


@numba.njit(cache=True, parallel=True)
def _gather_time_major(values, starts, lengths, n_bars, grid):  # pragma: no cover - compiled
    """grid[t, s] = bar t of symbol s (padding left untouched); rows in parallel."""
    n_symbols = lengths.shape[0]
    for t in numba.prange(n_bars):
        for s in range(n_symbols):
            if t < lengths[s]:
                grid[t, s] = values[starts[s] + t]


@numba.njit(cache=True, parallel=True)
def _scatter_panel(grids, offsets, starts, lengths, out):  # pragma: no cover - compiled
    """out[k, row] from time-major grids[k, t, s]; leading-NaN rows set to NaN."""
    n_symbols = lengths.shape[0]
    for s in numba.prange(n_symbols):
        for i in range(offsets[s], starts[s]):
            for k in range(N_OUT):
                out[k, i] = np.nan
        v = starts[s]
        for k in range(N_OUT):
            for t in range(lengths[s]):
                out[k, v + t] = grids[k, t, s]


def to_device_layout(panel: Panel, dtype: type = np.float64) -> tuple[np.ndarray, ...]:
    """Time-major (bars, symbols) close, high and low plus per-symbol lengths, compiled gather.

    Bar 0 of every symbol is its first complete bar; rows past a symbol's length are
    padding the kernel never reads.
    """
    lengths = panel.offsets[1:] - panel.starts
    n_bars = int(lengths.max()) if lengths.size else 0
    grids = []
    for values in (panel.close, panel.high, panel.low):
        grid = np.empty((n_bars, panel.n_symbols), dtype=dtype)
        _gather_time_major(values, panel.starts, lengths, n_bars, grid)
        grids.append(grid)
    return (*grids, lengths)


def from_device_layout(grids: np.ndarray, panel: Panel, out: np.ndarray) -> None:
    """Scatter (N_OUT, bars, symbols) kernel outputs back into ``out`` (N_OUT x n_rows, panel order)."""
    lengths = panel.offsets[1:] - panel.starts
    _scatter_panel(grids, panel.offsets, panel.starts, lengths, out)


def compute_with_timing(
    panel: Panel, params: IndicatorParams, out: np.ndarray, dtype: type = np.float64
) -> GPUTiming:
    """Fill ``out`` (N_OUT x n_rows, panel order) on the GPU and return the phase timings.

    The host-side layout change (to time-major and back, compiled and parallel) is not
    part of the returned phases; time the whole call to include it.
    """
    close, high, low, lengths = to_device_layout(panel, dtype)
    grids, timing = run_on_gpu(close, high, low, lengths, params, dtype)
    from_device_layout(grids, panel, out)
    return timing


def compute(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Fill ``out`` (N_OUT x n_rows) with the CUDA kernel (float64)."""
    compute_with_timing(panel, params, out)
