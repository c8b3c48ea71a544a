"""Caching pipeline results: content-addressed keys, ``.npy`` values, three backends.

``cached_indicators(prices, backend=..., cache=...)`` returns exactly what
``compute_indicators`` would, from a :class:`MemoryCache` (in-process LRU),
:class:`DiskCache` (a directory of ``.npy`` files) or :class:`RedisCache` (a Redis server,
with a TTL). Keys hash the prices, parameters, backend and code (:mod:`.keys`); values are
``.npy`` bytes loaded with ``allow_pickle=False`` (:mod:`.codec`), so a shared cache can
never run code in a reader. :func:`private_redis` / :func:`lesson_redis` start a throw-away
``redis-server`` on 127.0.0.1 for lessons and tests; :mod:`.sqlview` keeps the SMA as a
DuckDB table (the SQL "materialised view").
"""

from .cached import cached_indicators, default_cache, key_for, panel_frame
from .codec import NPY_MAGIC, CacheFormatError, decode_array, encode_array
from .keys import KERNEL_VERSION, code_version, hash_arrays, indicator_key
from .redis_server import (
    REQUIRE_VARIABLE,
    RedisUnavailableError,
    free_port,
    lesson_redis,
    private_redis,
    redis_server_binary,
    require_redis,
)
from .stores import (
    Cache,
    CacheStats,
    CacheUnavailableWarning,
    CacheWarning,
    DiskCache,
    MemoryCache,
    RedisCache,
)

__all__ = [
    "KERNEL_VERSION",
    "NPY_MAGIC",
    "REQUIRE_VARIABLE",
    "Cache",
    "CacheFormatError",
    "CacheStats",
    "CacheUnavailableWarning",
    "CacheWarning",
    "DiskCache",
    "MemoryCache",
    "RedisCache",
    "RedisUnavailableError",
    "cached_indicators",
    "code_version",
    "decode_array",
    "default_cache",
    "encode_array",
    "free_port",
    "hash_arrays",
    "indicator_key",
    "key_for",
    "lesson_redis",
    "panel_frame",
    "private_redis",
    "redis_server_binary",
    "require_redis",
]
