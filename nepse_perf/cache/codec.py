"""Cache values as NumPy ``.npy`` bytes: a safe binary format that can never run code.

A cached value crosses process boundaries (a directory on disk, a shared Redis), so whoever
can write to the cache can choose the bytes the reader decodes. ``pickle`` would run any
code those bytes ask for; the ``.npy`` format is a short text header (dtype, shape, order,
parsed with ``ast.literal_eval``) followed by raw numbers, and ``allow_pickle=False``
refuses object arrays, the one place where the format falls back to pickle.
"""

from __future__ import annotations

import io
import threading

import numpy as np

__all__ = ["NPY_MAGIC", "CacheFormatError", "decode_array", "encode_array"]

#: The first six bytes of every ``.npy`` file (``\\x93NUMPY``); the version bytes follow.
NPY_MAGIC: bytes = b"\x93NUMPY"

# np.load parses the header with ast.literal_eval, and CPython 3.11's AST constructor is not
# safe when threads run it at once: under frequent thread switches it fails with "AST
# constructor recursion depth mismatch" (seen in tests/test_cache.py's thread stress test).
# Decoding is a small header parse plus one copy, so serialising it costs little.
_DECODE_LOCK = threading.Lock()


class CacheFormatError(ValueError):
    """Bytes that are not a plain numeric ``.npy`` array (corrupt, truncated or hostile)."""


def encode_array(array: np.ndarray) -> bytes:
    """Serialise a numeric array to ``.npy`` bytes (header + raw data), never with pickle.

    Object arrays (the only kind ``.npy`` would pickle) raise :class:`CacheFormatError`;
    non-contiguous arrays are copied to C order first. The result round-trips bit for bit
    through :func:`decode_array`, NaN payloads and signed zeros included.
    """
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise CacheFormatError(f"refusing to cache an array of dtype {array.dtype} (needs pickle)")
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def decode_array(data: bytes) -> np.ndarray:
    """Decode ``.npy`` bytes from :func:`encode_array` into a new, writable array.

    Anything else (wrong magic, a truncated body, an object dtype that would need pickle)
    raises :class:`CacheFormatError`; nothing is ever unpickled, because ``np.load`` runs
    with ``allow_pickle=False``.
    """
    if not isinstance(data, bytes | bytearray | memoryview) or bytes(data[:6]) != NPY_MAGIC:
        raise CacheFormatError("cached value is not a .npy array (bad magic bytes)")
    try:
        with _DECODE_LOCK:
            array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CacheFormatError(f"cached value is not a readable .npy array: {exc}") from exc
    if not isinstance(array, np.ndarray):  # pragma: no cover - np.load on .npy bytes
        raise CacheFormatError("cached value is not a single .npy array")
    return array
