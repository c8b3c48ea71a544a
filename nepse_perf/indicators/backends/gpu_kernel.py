"""The CUDA kernel of the ``gpu`` backend (imported lazily: importing it loads numba.cuda).

Thread ``s`` runs symbol ``s`` of a time-major panel through the CPU kernel's own driver,
:func:`nepse_perf.indicators.backends.numba_parallel.update_bars` (every indicator's ``*_update``, bar
by bar), compiled here as a CUDA device function together with the step functions it calls
(:func:`nepse_perf.indicators.targets.cuda_device`). ``numba.cuda`` must be a module-level
name so that Numba's CUDA simulator can substitute its own implementation.
"""

from __future__ import annotations

from numba import cuda

from nepse_perf.indicators import targets
from nepse_perf.indicators.backends import numba_parallel

_device = targets.cuda_device(
    {"init_states": numba_parallel.init_states, "update_bars": numba_parallel.update_bars}
)
init_states = _device["init_states"]
update_bars = _device["update_bars"]


@cuda.jit
def fused_kernel(close, high, low, lengths, p, out):  # pragma: no cover - compiled for the device
    """One thread per symbol; bar j of symbol s is element ``s + j * n_symbols``.

    ``p`` is :meth:`IndicatorParams.kernel_args`; ``out`` is (N_OUT, bars * n_symbols).
    """
    s = cuda.grid(1)
    n_symbols = lengths.shape[0]
    if s < n_symbols:
        update_bars(init_states(p), close, high, low, out, s, 0, lengths[s], n_symbols)
