"""Output blocks, and a small pool that recycles the big ones instead of faulting in new pages.

Every backend writes an ``N_OUT`` x n float64 block. A fresh block from ``np.empty`` costs
nothing to allocate but a great deal to *touch*: the operating system maps and zeroes each
page on its first write (``nepse-perf bench`` measures it in its own row, and notebook 07
shows it beside the pipeline). A user calling ``compute_indicators`` in a loop would pay that
every call. :class:`BlockPool` keeps a few recently freed big blocks: when the last array
(or DataFrame) using a block is garbage-collected, a ``weakref.finalize`` hook gives the
block back, and the next request of the same size gets its already-mapped pages. Blocks
below ``min_bytes`` are not pooled (small allocations are cheap and the pool would only
raise peak memory), at most ``max_free`` blocks wait in the pool, and a recycled block
is never handed out while anything still refers to it: the hook runs only when nothing
does. ``NEPSE_PERF_BLOCK_POOL=0`` switches pooling off; :func:`pool` returns the pool.
"""

from __future__ import annotations

import os
import threading
import weakref

import numpy as np

from nepse_perf.indicators.layout import N_OUT

__all__ = ["BlockPool", "pool"]


class BlockPool:
    """Hands out C-contiguous (10, n) float64 blocks, recycling freed ones of the same size.

    ``min_bytes`` (default 8 MiB) is the smallest block worth pooling, ``max_free``
    (default 2) the most freed blocks kept. ``hits`` and ``misses`` count requests served
    from the pool and from ``np.empty``; :meth:`clear` drops the free blocks.
    """

    def __init__(self, min_bytes: int = 8 << 20, max_free: int = 2, enabled: bool = True):
        self.min_bytes = int(min_bytes)
        self.max_free = int(max_free)
        self.enabled = bool(enabled)
        self.hits = 0
        self.misses = 0
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, n_rows: int) -> np.ndarray:
        """A (10, n_rows) float64 block: recycled if one of that size is free, else new.

        The contents are unspecified (like ``np.empty``): callers overwrite every value.
        """
        shape = (N_OUT, int(n_rows))
        nbytes = shape[0] * shape[1] * 8
        if not self.enabled or nbytes < self.min_bytes:
            return np.empty(shape, dtype=np.float64)
        with self._lock:
            for k, base in enumerate(self._free):
                if base.shape == shape:
                    del self._free[k]
                    self.hits += 1
                    break
            else:
                base = np.empty(shape, dtype=np.float64)
                self.misses += 1
        # Hand out an array whose base is a memoryview, not an ndarray: NumPy collapses a
        # view-of-a-view onto the first array that owns data, so a view of a plain
        # `base.view()` would point at `base` and outlive the handed-out array unnoticed.
        # With a memoryview in between, every view of `block` keeps `block` itself alive,
        # and the hook below runs only when nothing refers to the block any more.
        block = np.asarray(memoryview(base))
        weakref.finalize(block, self._give_back, base)
        return block

    def _give_back(self, base: np.ndarray) -> None:
        with self._lock:
            self._free.append(base)
            del self._free[: -self.max_free or None]

    @property
    def free_bytes(self) -> int:
        """Bytes held by blocks waiting in the pool."""
        with self._lock:
            return sum(b.nbytes for b in self._free)

    def clear(self) -> None:
        """Drop every free block (their memory goes back to the operating system)."""
        with self._lock:
            self._free.clear()


_POOL = BlockPool(enabled=os.environ.get("NEPSE_PERF_BLOCK_POOL", "1") != "0")


def pool() -> BlockPool:
    """The process-wide pool that ``pipeline.new_block`` draws from."""
    return _POOL
