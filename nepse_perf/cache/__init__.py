"""Caching pipeline results: content-addressed keys, ``.npy`` values, three backends.

``cached_indicators(prices, backend=..., cache=...)`` returns exactly what
``compute_indicators`` would, from a :class:`MemoryCache` (in-process LRU),
:class:`DiskCache` (a directory of ``.npy`` files) or :class:`RedisCache` (a Redis server,
with a TTL). Keys hash the prices, parameters, backend and code (:mod:`.keys`); values are
``.npy`` bytes loaded with ``allow_pickle=False`` (:mod:`.codec`), so a shared cache can
never run code in a reader. :func:`private_redis` / :func:`lesson_redis` start a throw-away
``redis-server`` on 127.0.0.1 for lessons and tests. The DuckDB "materialised view" lesson is
:mod:`nepse_perf.lessons.duckdb_view`.
"""

from nepse_perf.cache import cached, codec, keys, redis_server, stores

# Each module's public names (its __all__) are this package's.
from nepse_perf.cache.cached import *  # noqa: F403
from nepse_perf.cache.codec import *  # noqa: F403
from nepse_perf.cache.keys import *  # noqa: F403
from nepse_perf.cache.redis_server import *  # noqa: F403
from nepse_perf.cache.stores import *  # noqa: F403

__all__ = sorted(
    [*cached.__all__, *codec.__all__, *keys.__all__, *redis_server.__all__, *stores.__all__]
)
