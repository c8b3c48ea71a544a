"""Content-addressed cache keys: a BLAKE2b hash of the prices, the parameters and the code.

A key names *what* was computed, never *which Python object* it was computed from: two
frames with the same prices (in any row order) get the same key, and a single changed price,
parameter, backend, kernel source file or library version gives a different key, so a
stale result can never be served. Hashing reads every byte of the price arrays once, at
BLAKE2b's speed: on one symbol that can cost more than a fast indicator kernel (notebook 06
measures both), so a cache pays only for work that is dearer than the hash.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from nepse_perf.indicators.panel import Panel
from nepse_perf.indicators.params import IndicatorParams

__all__ = ["KERNEL_VERSION", "code_version", "hash_arrays", "indicator_key"]

#: Bump by hand when the meaning of a cached result changes without a source change
#: (e.g. a new output layout); every existing cache entry then misses.
KERNEL_VERSION = 1

_PACKAGE = Path(__file__).resolve().parents[1]
#: Source files whose bytes enter :func:`code_version`: everything that computes indicators.
_CODE_FILES = ("pipeline.py", "indicators/*.py")
_DIGEST_SIZE = 32


def _library_versions() -> dict[str, str]:
    import numba
    import talib

    return {"numpy": np.__version__, "numba": numba.__version__, "talib": talib.__version__}


@functools.cache
def code_version() -> str:
    """A short hash of the indicator code: its source files, KERNEL_VERSION and library versions.

    Computed once per process from the bytes of ``pipeline.py`` and ``indicators/*.py``
    plus the NumPy, Numba and TA-Lib versions, so editing a kernel (and restarting, as
    Numba's own cache requires too) or upgrading a library invalidates every cached result.
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(f"kernel-version={KERNEL_VERSION};".encode())
    h.update(json.dumps(_library_versions(), sort_keys=True).encode())
    for pattern in _CODE_FILES:
        for path in sorted(_PACKAGE.glob(pattern)):
            h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()


def _update_with_array(h: hashlib.blake2b, name: str, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    h.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
    h.update(array.view(np.uint8).reshape(-1) if array.size else b"")


def hash_arrays(*arrays: np.ndarray, **meta: object) -> str:
    """BLAKE2b (256-bit, hex) of arrays' bytes, dtypes and shapes plus JSON-able metadata.

    The content hash behind every key: equal values give equal hashes whatever the Python
    objects, and arrays of different dtype or shape never collide by accident (both are
    hashed with the bytes). ``meta`` is hashed as sorted JSON.
    """
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for i, array in enumerate(arrays):
        _update_with_array(h, str(i), np.asarray(array))
    return h.hexdigest()


def indicator_key(panel: Panel, backend: str, params: IndicatorParams) -> str:
    """The cache key of one pipeline run: prices, symbols, parameters, backend and code.

    Hashes the panel's sorted close/high/low arrays, its per-symbol offsets and first-valid
    rows and its symbol names, with ``params.as_dict()``, the backend name and
    :func:`code_version`. The backend is part of the key because backends agree with TA-Lib
    to 1e-9, not bit for bit, and a cache must return exactly what a fresh run would.
    """
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    head = {
        "code": code_version(),
        "backend": backend,
        "params": params.as_dict(),
        "symbols": list(panel.symbols),
    }
    h.update(json.dumps(head, sort_keys=True).encode())
    for name in ("close", "high", "low", "offsets", "starts"):
        _update_with_array(h, name, getattr(panel, name))
    return h.hexdigest()
