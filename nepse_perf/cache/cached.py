"""``cached_indicators``: ``compute_indicators`` behind a content-addressed cache.

The frame is turned into its panel (sorted flat arrays), the panel is hashed into a key
(:func:`.keys.indicator_key`), and the 10 x n_rows float64 output block is looked up in the
cache; on a miss it is computed with the requested backend and stored. Either way the block
is mapped back to the caller's row order, so the result equals ``compute_indicators``' bit
for bit, whichever cache backend served it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nepse_perf.cache.keys import indicator_key
from nepse_perf.cache.stores import Cache, MemoryCache
from nepse_perf.indicators.panel import Panel, panel_from_frame
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams
from nepse_perf.pipeline import DEFAULT_BACKEND, compute_panel, frame_from_block, get_backend

__all__ = ["cached_indicators", "default_cache", "key_for", "panel_frame"]

_DEFAULT: MemoryCache | None = None


def default_cache() -> MemoryCache:
    """The process-wide in-memory LRU used when no cache is passed (created on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MemoryCache(max_entries=32)
    return _DEFAULT


def key_for(prices: pd.DataFrame, backend: str = DEFAULT_BACKEND, **params: float) -> str:
    """The cache key ``cached_indicators`` would use for these prices, backend and parameters.

    Use it to :meth:`~.stores.Cache.invalidate` an entry explicitly.
    """
    get_backend(backend)
    return indicator_key(panel_from_frame(prices), backend, IndicatorParams.from_kwargs(**params))


def panel_frame(block: np.ndarray, panel: Panel, index: pd.Index) -> pd.DataFrame:
    """The indicator frame from a panel-ordered 10 x n block, in the original row order.

    ``block`` is not modified: it is copied first, so the frame owns writable data (a
    cached block may be shared). See ``pipeline.frame_from_block``.
    """
    return frame_from_block(block.copy(), panel, index)


def cached_indicators(
    prices: pd.DataFrame,
    backend: str = DEFAULT_BACKEND,
    cache: Cache | None = None,
    **params: float,
) -> pd.DataFrame:
    """``compute_indicators(prices, backend, **params)``, served from ``cache`` when it can be.

    Same arguments, result and errors as :func:`nepse_perf.compute_indicators`, plus
    ``cache`` (any :class:`~.stores.Cache`; default: :func:`default_cache`). The key hashes
    the price arrays, symbols, parameters, backend and kernel code, so a changed input is a
    miss, never a stale hit. A cache that fails or holds an undecodable entry costs a
    recomputation (and one warning for an unavailable backend), never a wrong result.
    """
    get_backend(backend)
    p = IndicatorParams.from_kwargs(**params)
    cache = default_cache() if cache is None else cache
    panel = panel_from_frame(prices)
    key = indicator_key(panel, backend, p)
    shape = (len(OUTPUT_COLUMNS), panel.n_rows)
    block = cache.get(key, shape=shape, dtype=np.float64)
    if block is None:
        block = compute_panel(panel, backend, p)
        cache.put(key, block)
    return panel_frame(block, panel, prices.index)
