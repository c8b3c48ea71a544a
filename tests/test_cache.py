"""The pipeline cache: content keys, safe values, three backends, a real Redis, failures.

Redis tests start their own ``redis-server`` on 127.0.0.1 (a free port, stopped in the
fixture's teardown). They skip only when redis-server is absent and
``NEPSE_PERF_REQUIRE_REDIS`` is unset; with that variable set (CI) they fail instead.
"""

from __future__ import annotations

import io
import pickle
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.cache import (
    NPY_MAGIC,
    Cache,
    CacheFormatError,
    CacheUnavailableWarning,
    DiskCache,
    MemoryCache,
    RedisCache,
    RedisUnavailableError,
    cached_indicators,
    decode_array,
    encode_array,
    hash_arrays,
    key_for,
    lesson_redis,
    private_redis,
    redis_server_binary,
    require_redis,
)
from nepse_perf.cache import keys as keys_module
from nepse_perf.cache import redis_server as redis_server_module


def _redis_or_skip() -> None:
    if redis_server_binary() is None:
        if require_redis():
            pytest.fail("NEPSE_PERF_REQUIRE_REDIS is set but redis-server is not installed")
        pytest.skip("redis-server is not installed (and NEPSE_PERF_REQUIRE_REDIS is unset)")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A private redis-server on 127.0.0.1 for this module, stopped afterwards."""
    _redis_or_skip()
    with private_redis() as url:
        yield url


@pytest.fixture
def prices() -> pd.DataFrame:
    return synthetic_prices(4, 300, seed=3)


_counter = iter(range(10**9))


@pytest.fixture(params=["memory", "disk", "redis"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cache]:
    """Each backend, empty; the Redis one in its own key namespace of the module's server."""
    if request.param == "memory":
        yield MemoryCache()
    elif request.param == "disk":
        yield DiskCache(tmp_path / "cache")
    else:
        url = request.getfixturevalue("redis_url")
        c = RedisCache(url, prefix=f"test-{next(_counter)}:")
        yield c
        c.clear()


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Bit-for-bit equality (NaN in the same places, every other value identical)."""
    return a.index.equals(b.index) and np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True)


def test_miss_then_hit_returns_the_computed_result(cache: Cache, prices: pd.DataFrame) -> None:
    ref = compute_indicators(prices, "numba")
    first = cached_indicators(prices, "numba", cache=cache)
    assert (cache.stats.hits, cache.stats.misses, cache.stats.stores) == (0, 1, 1)
    second = cached_indicators(prices, "numba", cache=cache)
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)
    assert same(first, ref) and same(second, ref)
    expected = 10 * len(prices) * 8 + 128  # the .npy header of a 2-D float64 array
    assert cache.stats.bytes_written == cache.stats.bytes_read == expected
    assert cache.nbytes() == expected and len(cache) == 1


def test_returned_frames_do_not_alias_the_cache(cache: Cache, prices: pd.DataFrame) -> None:
    a = cached_indicators(prices, "numba", cache=cache)
    a.iloc[:, :] = -1.0
    b = cached_indicators(prices, "numba", cache=cache)
    assert same(b, compute_indicators(prices, "numba"))


def test_one_changed_price_misses(cache: Cache, prices: pd.DataFrame) -> None:
    cached_indicators(prices, "numba", cache=cache)
    changed = prices.copy()
    changed.loc[changed.index[500], "close"] += 0.1
    got = cached_indicators(changed, "numba", cache=cache)
    assert cache.stats.misses == 2 and cache.stats.hits == 0
    assert same(got, compute_indicators(changed, "numba"))
    assert not same(got, compute_indicators(prices, "numba"))


@pytest.mark.parametrize("change", [{"sma_period": 21}, {"bb_nbdev": 2.5}, {"backend": "talib"}])
def test_parameter_or_backend_change_misses(
    cache: Cache, prices: pd.DataFrame, change: dict[str, object]
) -> None:
    cached_indicators(prices, "numba", cache=cache)
    kwargs = {"backend": "numba", **change}
    got = cached_indicators(prices, cache=cache, **kwargs)
    assert cache.stats.misses == 2 and cache.stats.hits == 0
    assert same(got, compute_indicators(prices, **kwargs))


def test_key_is_content_addressed() -> None:
    prices = synthetic_prices(3, 100, seed=1)
    shuffled = prices.sample(frac=1.0, random_state=0)
    assert key_for(prices, "numba") == key_for(shuffled.copy(), "numba")
    c = MemoryCache()
    cached_indicators(prices, "numba", cache=c)
    got = cached_indicators(shuffled, "numba", cache=c)
    assert c.stats.hits == 1
    assert same(got, compute_indicators(shuffled, "numba"))
    renamed = prices.assign(symbol=prices["symbol"].cat.rename_categories(lambda s: s + "X"))
    assert key_for(renamed, "numba") != key_for(prices, "numba")


def test_code_version_enters_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    prices = synthetic_prices(2, 60, seed=1)
    before = key_for(prices)
    monkeypatch.setattr(keys_module, "code_version", lambda: "edited-kernel")
    assert key_for(prices) != before


def test_hash_arrays_sees_bytes_dtype_and_shape() -> None:
    a = np.arange(6, dtype=np.float64)
    assert hash_arrays(a) == hash_arrays(a.copy())
    assert hash_arrays(a) != hash_arrays(a.astype(np.float32))
    assert hash_arrays(a) != hash_arrays(a.reshape(2, 3))
    assert hash_arrays(a) != hash_arrays(a, period=14)
    b = a.copy()
    b[3] = np.nextafter(b[3], 10)
    assert hash_arrays(a) != hash_arrays(b)


def _odd_values() -> np.ndarray:
    payload_nan = np.array([0x7FF8DEADBEEF0001], dtype=np.uint64).view(np.float64)[0]
    return np.array(
        [[0.0, -0.0, np.inf, -np.inf, np.nan, payload_nan, 5e-324, 1.0 / 3.0]] * 3,
        dtype=np.float64,
    )


def test_values_round_trip_bit_exact(cache: Cache) -> None:
    values = _odd_values()
    cache.put("k" * 8, values)
    got = cache.get("k" * 8)
    assert got is not None and got.flags.writeable
    assert got.dtype == values.dtype and got.shape == values.shape
    assert got.tobytes() == values.tobytes()


def test_stored_bytes_are_npy_and_load_without_pickle(redis_url: str) -> None:
    c = RedisCache(redis_url, prefix="npy-test:")
    prices = synthetic_prices(2, 80, seed=2)
    cached_indicators(prices, "numba", cache=c)
    (key,) = c.keys()
    raw = c.client.get(c.prefix + key)
    c.clear()
    assert raw.startswith(NPY_MAGIC)
    block = np.load(io.BytesIO(raw), allow_pickle=False)
    assert block.shape == (10, len(prices)) and block.dtype == np.float64


def test_nothing_is_ever_unpickled(
    cache: Cache, prices: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle was used")

    for name in ("loads", "load", "dumps", "dump"):
        monkeypatch.setattr(pickle, name, refuse)
    ref = compute_indicators(prices, "numba")
    assert same(cached_indicators(prices, "numba", cache=cache), ref)
    assert same(cached_indicators(prices, "numba", cache=cache), ref)
    assert cache.stats.hits == 1


EXECUTED: list[str] = []


def _payload() -> str:  # what a hostile cache entry would run if it were unpickled
    EXECUTED.append("ran")
    return "ran"


class _Hostile:
    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_payload, ())


def test_a_pickled_entry_is_refused_not_run(cache: Cache, prices: pd.DataFrame) -> None:
    key = key_for(prices, "numba")
    hostile = np.empty((10, len(prices)), dtype=object)
    hostile[:] = _Hostile()
    buf = io.BytesIO()
    np.save(buf, hostile, allow_pickle=True)
    cache._save(key, buf.getvalue())  # what an attacker with write access could store
    assert cache.get(key) is None
    assert cache.stats.errors == 1 and key not in cache
    got = cached_indicators(prices, "numba", cache=cache)
    assert same(got, compute_indicators(prices, "numba"))
    assert EXECUTED == []
    with pytest.raises(CacheFormatError):
        decode_array(pickle.dumps([1, 2]))
    with pytest.raises(CacheFormatError):
        encode_array(np.array([None]))


def test_a_corrupt_or_misshaped_entry_is_recomputed(cache: Cache, prices: pd.DataFrame) -> None:
    key = key_for(prices, "numba")
    cache._save(key, encode_array(np.zeros((10, 5))))  # right format, wrong shape
    assert same(
        cached_indicators(prices, "numba", cache=cache), compute_indicators(prices, "numba")
    )
    cache._save(key, NPY_MAGIC + b"\x01\x00garbage")
    assert same(
        cached_indicators(prices, "numba", cache=cache), compute_indicators(prices, "numba")
    )
    assert cache.stats.errors == 2 and cache.stats.hits == 0


def test_invalidate_and_clear(cache: Cache, prices: pd.DataFrame) -> None:
    cached_indicators(prices, "numba", cache=cache)
    cached_indicators(prices, "talib", cache=cache)
    key = key_for(prices, "numba")
    assert key in cache and len(cache) == 2
    assert cache.invalidate(key) and not cache.invalidate(key)
    cached_indicators(prices, "numba", cache=cache)
    assert cache.stats.misses == 3 and cache.stats.hits == 0
    assert cache.clear() == 2 and len(cache) == 0 and cache.nbytes() == 0


class _ShiftedClock:
    """``time`` as the cache module sees it, ``offset`` seconds in the future (no sleeping)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset


@pytest.mark.parametrize("backend", ["memory", "disk"])
def test_ttl_expiry(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nepse_perf.cache.stores as stores

    clock = _ShiftedClock()
    monkeypatch.setattr(stores, "time", clock)
    c: Cache = MemoryCache(ttl=60.0) if backend == "memory" else DiskCache(tmp_path, ttl=60.0)
    c.put("abc", np.ones(3))
    clock.offset = 59.0
    assert c.get("abc") is not None and "abc" in c
    clock.offset = 61.0
    assert c.get("abc") is None
    assert "abc" not in c and c.stats.misses == 1 and c.stats.hits == 1


def test_ttl_expiry_redis(redis_url: str) -> None:
    # Redis expires keys on its own clock: check the TTL it holds, then wait (bounded) for
    # the key to go instead of reading once after a fixed sleep.
    c = RedisCache(redis_url, ttl=1.0, prefix="ttl-test:")
    assert c.put("abc", np.ones(3)) > 0
    assert 0.0 < c.ttl_left("abc") <= 1.0
    deadline = time.monotonic() + 15.0
    while "abc" in c and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.get("abc") is None
    assert c.ttl_left("abc") is None and c.stats.misses == 1


def test_memory_cache_counts_exactly_under_threads() -> None:
    c = MemoryCache(max_entries=4)
    value = np.arange(8.0)
    size = len(encode_array(value))
    n_threads, n_ops = 8, 400

    def work(t: int) -> None:
        for i in range(n_ops):
            key = f"k{(t + i) % 6}"
            if c.get(key) is None:
                c.put(key, value)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    old = sys.getswitchinterval()
    # switch threads very often; CPython 3.11's AST constructor (numpy's header parse in
    # np.load uses ast.literal_eval) fails with 'recursion depth mismatch' when threads run
    # it at once, so decode_array parses under a lock; this is the test that found it
    sys.setswitchinterval(1e-5)
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    st = c.stats
    assert st.hits + st.misses == n_threads * n_ops
    assert st.stores == st.misses and st.bytes_written == size * st.stores
    assert st.bytes_read == size * st.hits
    assert st.evictions <= st.stores and len(c) <= 4


def test_memory_lru_evicts_least_recently_used() -> None:
    c = MemoryCache(max_entries=2)
    for k in "abc":
        c.put(k * 4, np.full(4, ord(k), dtype=np.float64))
        if k == "b":
            c.get("aaaa")  # a is now more recent than b
    assert c.keys() == ["aaaa", "cccc"] and c.stats.evictions == 1
    small = MemoryCache(max_bytes=2 * len(encode_array(np.zeros(4))))
    for k in "xyz":
        small.put(k * 4, np.zeros(4))
    assert small.keys() == ["yyyy", "zzzz"]
    small.put("big0", np.zeros(1000))  # larger than the whole cache: not stored
    assert "big0" not in small


def test_disk_cache_is_shared_with_another_process(tmp_path: Path) -> None:
    prices = synthetic_prices(3, 120, seed=5)
    csv = tmp_path / "prices.csv"
    prices.to_csv(csv, index=False)
    c = DiskCache(tmp_path / "cache")
    cached_indicators(prices, "numba", cache=c)
    code = (
        "import sys, pandas as pd\n"
        "from nepse_perf.cache import DiskCache, cached_indicators\n"
        "p = pd.read_csv(sys.argv[1], parse_dates=['date'], dtype={'symbol': 'category'})\n"
        "c = DiskCache(sys.argv[2])\n"
        "r = cached_indicators(p, 'numba', cache=c)\n"
        "print(c.stats.hits, c.stats.misses, repr(float(r['rsi'].sum())))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(csv), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    hits, misses, rsi_sum = out.stdout.split()
    assert (hits, misses) == ("1", "0")
    assert float(rsi_sum) == float(compute_indicators(prices, "numba")["rsi"].sum())


def test_disk_cache_rejects_path_like_keys(tmp_path: Path) -> None:
    c = DiskCache(tmp_path)
    with pytest.raises(ValueError):
        c.put("../escape", np.zeros(2))


def test_redis_killed_mid_session_warns_once_and_stays_correct() -> None:
    _redis_or_skip()
    prices = synthetic_prices(3, 200, seed=7)
    ref = compute_indicators(prices, "numba")
    with private_redis() as url:
        c = RedisCache(url, prefix="kill-test:", timeout=0.5)
        assert same(cached_indicators(prices, "numba", cache=c), ref)
        assert same(cached_indicators(prices, "numba", cache=c), ref)
        assert c.stats.hits == 1
    # the server is gone now
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert same(cached_indicators(prices, "numba", cache=c), ref)
    assert [w.category for w in caught] == [CacheUnavailableWarning]
    assert "RedisCache is unavailable" in str(caught[0].message)
    assert c.stats.errors >= 2 and c.stats.hits == 1


def test_redis_that_never_answers_times_out() -> None:
    """A server that accepts connections but never replies: the timeout, not a hang."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = server.getsockname()[1]
        c = RedisCache(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        prices = synthetic_prices(2, 100, seed=1)
        start = time.monotonic()
        with pytest.warns(CacheUnavailableWarning, match="Timeout"):
            got = cached_indicators(prices, "numba", cache=c)
        assert time.monotonic() - start < 5
        assert same(got, compute_indicators(prices, "numba"))
    finally:
        stop.set()
        thread.join()
        for s in accepted:
            s.close()
        server.close()


def test_private_redis_binds_loopback_and_stops() -> None:
    _redis_or_skip()
    with private_redis() as url:
        c = RedisCache(url)
        assert url.startswith("redis://127.0.0.1:") and c.ping()
        info = c.client.config_get("bind")["bind"]
        assert info == "127.0.0.1"
        assert c.client.config_get("save")["save"] == ""
        assert c.client.config_get("appendonly")["appendonly"] == "no"
        port = int(url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_lesson_redis_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:6379/0")
    with lesson_redis() as url:
        assert url == "redis://example.invalid:6379/0"
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setattr(redis_server_module, "redis_server_binary", lambda: None)
    monkeypatch.setenv("NEPSE_PERF_REQUIRE_REDIS", "0")
    with lesson_redis() as url:
        assert url is None
    monkeypatch.setenv("NEPSE_PERF_REQUIRE_REDIS", "1")
    with pytest.raises(RedisUnavailableError), lesson_redis():
        pass


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="ttl"):
        MemoryCache(ttl=0)
    with pytest.raises(ValueError, match="unknown backend"):
        cached_indicators(synthetic_prices(1, 30), "fortran", cache=MemoryCache())
    with pytest.raises(ValueError, match="unknown indicator parameter"):
        cached_indicators(synthetic_prices(1, 30), cache=MemoryCache(), window=3)
