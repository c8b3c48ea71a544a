"""The CUDA kernel of the ``gpu`` backend (imported lazily: importing it loads numba.cuda).

Thread ``s`` runs symbol ``s`` of a time-major panel through the CPU's fused kernel
function, compiled here as a CUDA device function. ``numba.cuda`` must be a module-level
name so that Numba's CUDA simulator can substitute its own implementation.
"""

from __future__ import annotations

from numba import cuda

from . import numba_fused

fused_device = cuda.jit(device=True)(numba_fused.fused_symbol.py_func)


@cuda.jit
def fused_kernel(
    close, high, low, lengths, sma_n, ema_n, rsi_n, fast, slow, signal, bb_n, nbdev, atr_n, out
):  # pragma: no cover - compiled for the device
    """One thread per symbol; bar j of symbol s is element ``s + j * n_symbols``."""
    s = cuda.grid(1)
    n_symbols = lengths.shape[0]
    if s < n_symbols:
        fused_device(
            close,
            high,
            low,
            sma_n,
            ema_n,
            rsi_n,
            fast,
            slow,
            signal,
            bb_n,
            nbdev,
            atr_n,
            out,
            s,
            lengths[s],
            n_symbols,
        )
