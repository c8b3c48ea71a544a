"""Three cache backends behind one interface: in-process LRU, a directory of ``.npy`` files, Redis.

Every backend stores the same thing, the ``.npy`` bytes of an array under a content key
(:mod:`.keys`, :mod:`.codec`), and counts the same statistics, so code and notebooks can
swap backends without changing a printed number. A backend that fails (Redis down or slow,
a read-only directory) never raises from ``get``/``put``: it warns once with
:class:`CacheUnavailableWarning`, counts an error, and behaves like a miss, so the caller
computes the result itself. A value that does not decode is dropped and counted as a miss.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from nepse_perf._infra.checks import positive_int
from nepse_perf._infra.files import atomic_write_bytes
from nepse_perf.cache.codec import CacheFormatError, decode_array, encode_array

__all__ = [
    "Cache",
    "CacheStats",
    "CacheUnavailableWarning",
    "CacheWarning",
    "DiskCache",
    "MemoryCache",
    "RedisCache",
]

T = TypeVar("T")


class CacheWarning(UserWarning):
    """Base class of the warnings this package's caches emit."""


class CacheUnavailableWarning(CacheWarning):
    """The cache backend failed (unreachable, timed out, unwritable); results are computed."""


@dataclass
class CacheStats:
    """Counters of one cache object since creation or :meth:`Cache.reset_stats`.

    ``hits``/``misses`` count ``get`` calls (an expired, undecodable or unreachable entry is
    a miss); ``stores`` counts successful ``put`` calls; ``errors`` counts backend failures
    and undecodable values; ``bytes_read``/``bytes_written`` count the ``.npy`` bytes moved;
    ``evictions`` counts entries the in-process LRU dropped to respect its limits.
    """

    hits: int = 0
    misses: int = 0
    stores: int = 0
    errors: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for printing and tables)."""
        return asdict(self)


class Cache(ABC):
    """One interface for every backend: ``get``, ``put``, ``invalidate``, ``clear``, ``stats``.

    Subclasses implement the byte-level ``_load``/``_save``/``_delete``/``_keys``; this
    class encodes and decodes arrays, checks shape and dtype, keeps :class:`CacheStats` and
    turns backend failures into one :class:`CacheUnavailableWarning` per cache object.
    ``ttl`` (seconds, ``None`` = never) is how long an entry stays valid after ``put``.
    Every counter update goes through :meth:`_count`, under one lock per cache object, so
    the statistics stay exact when threads share a cache.
    """

    name: ClassVar[str] = "cache"

    def __init__(self, ttl: float | None = None) -> None:
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        self.ttl = ttl
        self.stats = CacheStats()
        self._warned = False
        self._stats_lock = threading.Lock()

    def _count(self, **increments: int) -> None:
        """Add to the named :class:`CacheStats` counters atomically (thread-safe)."""
        with self._stats_lock:
            for name, n in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)

    # -- the byte-level operations each backend provides -------------------------------
    @abstractmethod
    def _load(self, key: str) -> bytes | None:
        """The stored bytes of ``key``, or None if absent or expired."""

    @abstractmethod
    def _save(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing any previous value) with this cache's TTL."""

    @abstractmethod
    def _delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""

    @abstractmethod
    def _keys(self) -> list[str]:
        """Every live key of this cache (its namespace only)."""

    def _sizes(self) -> list[int]:
        """Byte size of every live entry."""
        return [len(d) for k in self._keys() if (d := self._load(k)) is not None]

    # -- failure handling ---------------------------------------------------------------
    def _failed(self, exc: BaseException) -> None:
        with self._stats_lock:
            self.stats.errors += 1
            first, self._warned = not self._warned, True
        if first:
            warnings.warn(
                f"{type(self).__name__} is unavailable ({type(exc).__name__}: {exc}); "
                "computing results without it",
                CacheUnavailableWarning,
                stacklevel=4,
            )

    def _guard(self, op: Callable[[], T], default: T) -> T:
        """Run a backend operation; on a backend failure count it, warn once, return default."""
        try:
            return op()
        except self._failures() as exc:
            self._failed(exc)
            return default

    def _failures(self) -> tuple[type[BaseException], ...]:
        return (OSError,)

    # -- the public interface ----------------------------------------------------------
    def get(
        self, key: str, *, shape: tuple[int, ...] | None = None, dtype: Any = None
    ) -> np.ndarray | None:
        """The cached array under ``key`` (a new, writable copy), or None on a miss.

        With ``shape``/``dtype`` given, a value of another shape or dtype is treated like a
        corrupt one: dropped, counted as an error and a miss. Never raises on backend
        failure (see the class docstring).
        """
        data = self._guard(lambda: self._load(key), None)
        if data is None:
            self._count(misses=1)
            return None
        try:
            array = decode_array(data)
            if shape is not None and array.shape != tuple(shape):
                raise CacheFormatError(f"shape {array.shape} != expected {tuple(shape)}")
            if dtype is not None and array.dtype != np.dtype(dtype):
                raise CacheFormatError(f"dtype {array.dtype} != expected {np.dtype(dtype)}")
        except CacheFormatError:
            self._count(errors=1, misses=1)
            self._guard(lambda: self._delete(key), False)
            return None
        self._count(hits=1, bytes_read=len(data))
        return array

    def put(self, key: str, array: np.ndarray) -> int:
        """Store ``array`` as ``.npy`` bytes under ``key``; returns the bytes written (0 on failure)."""
        data = encode_array(array)

        def save() -> bool:
            self._save(key, data)
            return True

        if not self._guard(save, False):
            return 0
        self._count(stores=1, bytes_written=len(data))
        return len(data)

    def invalidate(self, key: str) -> bool:
        """Remove one entry now; True if it was there."""
        return self._guard(lambda: self._delete(key), False)

    def clear(self) -> int:
        """Remove every entry of this cache (its namespace only); returns how many went."""
        return sum(self.invalidate(k) for k in self._guard(self._keys, []))

    def keys(self) -> list[str]:
        """The live keys, sorted."""
        return sorted(self._guard(self._keys, []))

    def nbytes(self) -> int:
        """Total ``.npy`` bytes of the live entries (what the cache holds, not its overhead)."""
        return sum(self._guard(self._sizes, []))

    def reset_stats(self) -> None:
        """Zero the counters."""
        with self._stats_lock:
            self.stats = CacheStats()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in set(self._guard(self._keys, []))

    def __len__(self) -> int:
        return len(self._guard(self._keys, []))

    def describe(self) -> str:
        """One line naming the backend and where it stores (machine-dependent: for ignored cells)."""
        return self.name


class MemoryCache(Cache):
    """In-process LRU of ``.npy`` bytes: at most ``max_entries`` entries and ``max_bytes`` bytes.

    The least recently used entry goes first when a limit would be exceeded (an entry larger
    than ``max_bytes`` is not stored). Storing bytes, not the arrays themselves, means a
    caller that modifies a returned array cannot change the cache, and sizes are exact.
    Thread-safe; lost when the process ends.
    """

    name = "memory"

    def __init__(
        self, max_entries: int = 128, max_bytes: int | None = None, ttl: float | None = None
    ) -> None:
        super().__init__(ttl)
        self.max_entries = positive_int(max_entries, "max_entries")
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def _load(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            expires, data = item
            if expires < time.monotonic():
                self._pop(key)
                return None
            self._data.move_to_end(key)
            return data

    def _pop(self, key: str) -> bool:
        item = self._data.pop(key, None)
        if item is None:
            return False
        self._size -= len(item[1])
        return True

    def _save(self, key: str, data: bytes) -> None:
        if self.max_bytes is not None and len(data) > self.max_bytes:
            return
        expires = time.monotonic() + self.ttl if self.ttl is not None else float("inf")
        with self._lock:
            self._pop(key)
            self._data[key] = (expires, data)
            self._size += len(data)
            while len(self._data) > self.max_entries or (
                self.max_bytes is not None and self._size > self.max_bytes
            ):
                _, (_, dropped) = self._data.popitem(last=False)
                self._size -= len(dropped)
                self._count(evictions=1)

    def _delete(self, key: str) -> bool:
        with self._lock:
            return self._pop(key)

    def _keys(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [k for k, (expires, _) in self._data.items() if expires >= now]


class DiskCache(Cache):
    """A directory of ``<key>.npy`` files (two-character subfolders), shared across processes.

    Files are written to a temporary name, fsynced and renamed into place
    (``nepse_perf._infra.files``), so a reader in another process (or after a kernel
    restart or a crash) sees a whole file or none. With a ``ttl`` an entry
    older than ``ttl`` seconds (file modification time) is a miss and is deleted. Only
    ``*.npy`` files under ``directory`` are ever read or removed.
    """

    name = "disk"

    def __init__(self, directory: str | os.PathLike[str], ttl: float | None = None) -> None:
        super().__init__(ttl)
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        if not key or not all(c.isalnum() or c in "-_" for c in key):
            raise ValueError(f"cache keys must be alphanumeric (a hash), got {key!r}")
        return self.directory / key[:2] / f"{key}.npy"

    def _expired(self, path: Path) -> bool:
        return self.ttl is not None and time.time() - path.stat().st_mtime > self.ttl

    def _load(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            if self._expired(path):
                path.unlink(missing_ok=True)
                return None
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def _save(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)  # ".tmp-<key>.npy.<random>": never matches *.npy

    def _delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def _files(self) -> Iterator[Path]:
        if self.directory.is_dir():
            yield from self.directory.glob("??/*.npy")

    def _keys(self) -> list[str]:
        return [p.stem for p in self._files() if not self._expired(p)]

    def _sizes(self) -> list[int]:
        return [p.stat().st_size for p in self._files() if not self._expired(p)]

    def describe(self) -> str:
        """The backend and its directory."""
        return f"disk ({self.directory})"


class RedisCache(Cache):
    """Entries in a Redis server under ``prefix`` + key, each with a TTL (``SET ... PX``).

    ``url`` (``redis://host:port/db``) defaults to the ``REDIS_URL`` environment variable,
    then to ``redis://127.0.0.1:6379/0``; a ready ``client`` (``redis.Redis``) may be given
    instead. The client is built with short timeouts and no retries: when the server is down
    or slow, one :class:`CacheUnavailableWarning` is emitted, the operation is a miss, and
    the server is left alone for ``retry_after`` seconds before it is tried again.
    ``ttl`` defaults to one hour; ``None`` keeps entries until deleted or evicted.
    """

    name = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        ttl: float | None = 3600.0,
        prefix: str = "nepse-perf:",
        timeout: float = 1.0,
        retry_after: float = 30.0,
    ) -> None:
        super().__init__(ttl)
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        if client is None:
            url = url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                socket_read_size=1 << 20,  # one 5 MB value in few reads, not 160 of 32 KiB
                retry=Retry(NoBackoff(), 0),
            )
        self.url = url
        self.client = client
        self.prefix = prefix
        self.retry_after = retry_after
        self._down_until = 0.0

    def _failures(self) -> tuple[type[BaseException], ...]:
        return self._errors

    def _guard(self, op: Callable[[], T], default: T) -> T:
        if time.monotonic() < self._down_until:
            self._count(errors=1)
            return default
        try:
            return op()
        except self._errors as exc:
            self._down_until = time.monotonic() + self.retry_after
            self._failed(exc)
            return default

    def _load(self, key: str) -> bytes | None:
        return self.client.get(self.prefix + key)

    def _save(self, key: str, data: bytes) -> None:
        px = None if self.ttl is None else max(1, round(self.ttl * 1000))
        self.client.set(self.prefix + key, data, px=px)

    def _delete(self, key: str) -> bool:
        return bool(self.client.delete(self.prefix + key))

    def _keys(self) -> list[str]:
        n = len(self.prefix)
        return [k[n:].decode() for k in self.client.scan_iter(match=self.prefix + "*", count=500)]

    def _sizes(self) -> list[int]:
        return [int(self.client.strlen(self.prefix + k)) for k in self._keys()]

    def ttl_left(self, key: str) -> float | None:
        """Seconds until ``key`` expires; None if it is absent, has no TTL or Redis is down."""
        ms = self._guard(lambda: int(self.client.pttl(self.prefix + key)), -2)
        return ms / 1000 if ms >= 0 else None

    def ping(self) -> bool:
        """True if the server answers (does not warn or count errors)."""
        try:
            return bool(self.client.ping())
        except self._errors:
            return False

    def describe(self) -> str:
        """The backend and its server address."""
        kw = self.client.connection_pool.connection_kwargs
        return f"redis ({kw.get('host', '?')}:{kw.get('port', '?')}, db {kw.get('db', 0)})"
