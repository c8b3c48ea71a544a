"""The local price service and its three clients: complete, identical, failures reported."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pandas as pd
import pytest

from nepse_perf.lessons.price_service import (
    FetchError,
    FetchResult,
    PriceServer,
    fetch_async,
    fetch_asyncio,
    fetch_sequential,
    fetch_threaded,
    list_symbols,
    serve_prices,
)

Client = Callable[..., FetchResult]
CLIENTS: dict[str, Client] = {
    "sequential": fetch_sequential,
    "threads": fetch_threaded,
    "asyncio": fetch_asyncio,
}


@pytest.fixture(scope="module")
def server() -> Iterator[PriceServer]:
    with serve_prices(latency=0.005) as srv:
        yield srv


@pytest.fixture(scope="module")
def faulty() -> Iterator[PriceServer]:
    with serve_prices(fail={"ADBL": 500}, flaky={"API": 2}, stall=["BBC"]) as srv:
        yield srv


def test_server_binds_loopback_only(server: PriceServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert list_symbols(server.url) == list(server.symbols)
    assert len(server.symbols) == 25


@pytest.mark.parametrize("name", list(CLIENTS))
def test_client_fetches_every_symbol_identical_to_files(
    server: PriceServer, sample_prices: pd.DataFrame, name: str
) -> None:
    got = CLIENTS[name](server.url).unwrap()
    assert got.ok and sorted(got.frames) == sorted(server.symbols)
    assert got.requests == len(server.symbols)
    pd.testing.assert_frame_equal(got.prices(), sample_prices, check_exact=True)


def test_one_symbol_frame_equals_load_prices(server: PriceServer, sample_prices) -> None:
    from nepse_perf import load_prices
    from nepse_perf.data import sample_path

    got = fetch_sequential(server.url, ["NEPSE_INDEX"]).unwrap()
    pd.testing.assert_frame_equal(
        got.frames["NEPSE_INDEX"], load_prices(sample_path() / "NEPSE_INDEX.csv"), check_exact=True
    )
    assert got.frames["NEPSE_INDEX"]["volume"].isna().all()  # JSON null -> NaN


@pytest.mark.parametrize("name", list(CLIENTS))
def test_failures_are_reported_by_name_and_nothing_is_lost(
    faulty: PriceServer, sample_prices: pd.DataFrame, name: str
) -> None:
    faulty.reset_counters()
    got = CLIENTS[name](faulty.url, timeout=0.3, retries=2, backoff=0.01)
    assert set(got.failed) == {"ADBL", "BBC"}
    assert got.failed["ADBL"] == "HTTP 500 Internal Server Error (3 attempts)"
    assert got.failed["BBC"] == "timed out after 0.3 s (3 attempts)"
    assert set(got.frames) | set(got.failed) == set(faulty.symbols)
    assert not set(got.frames) & set(got.failed)
    # API failed twice (503) and was fetched on the third attempt
    assert faulty.requests_by_symbol["API"] == 3
    expected = sample_prices[~sample_prices["symbol"].isin(["ADBL", "BBC"])]
    expected = expected.assign(
        symbol=pd.Categorical(expected["symbol"].astype(str), categories=sorted(got.frames))
    ).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.prices(), expected, check_exact=True)
    with pytest.raises(FetchError, match="ADBL") as info:
        got.unwrap()
    assert set(info.value.failed) == {"ADBL", "BBC"}


@pytest.mark.parametrize("name", list(CLIENTS))
def test_retries_zero_reports_the_flaky_symbol(faulty: PriceServer, name: str) -> None:
    faulty.reset_counters()
    got = CLIENTS[name](faulty.url, ["API", "NTC"], retries=0)
    assert got.failed == {"API": "HTTP 503 Service Unavailable (1 attempt)"}
    assert list(got.frames) == ["NTC"]


@pytest.mark.parametrize("name", list(CLIENTS))
def test_unknown_symbol_is_not_retried(server: PriceServer, name: str) -> None:
    got = CLIENTS[name](server.url, ["NOPE", "NTC"], retries=3)
    assert got.failed == {"NOPE": "HTTP 404 Not Found (not retried)"}
    assert got.requests == 2


def _settle(srv: PriceServer) -> None:
    """Reset the counters once the last handler of the previous fetch has finished.

    A client sees its response before the server's handler has left its ``finally`` block,
    so a request of the previous fetch can still count as in flight for a moment.
    """
    deadline = time.monotonic() + 5.0
    while srv.in_flight and time.monotonic() < deadline:
        time.sleep(0.005)
    srv.reset_counters()


def test_concurrency_is_bounded(sample_prices: pd.DataFrame) -> None:
    with serve_prices(sample_prices, latency=0.05) as srv:
        # 25 requests of 50 ms each: every slot is busy at some moment, and never more
        fetch_asyncio(srv.url, concurrency=3).unwrap()
        assert srv.max_in_flight == 3
        _settle(srv)
        fetch_threaded(srv.url, workers=4).unwrap()
        assert srv.max_in_flight == 4
        _settle(srv)
        fetch_sequential(srv.url).unwrap()
        assert srv.max_in_flight == 1


def test_fetch_async_can_be_awaited(server: PriceServer) -> None:
    got = asyncio.run(fetch_async(server.url, ["NTC", "UNL"], concurrency=2))
    assert got.ok and sorted(got.frames) == ["NTC", "UNL"]


def test_close_releases_a_stalled_request_and_frees_the_port(sample_prices) -> None:
    srv = PriceServer(sample_prices, stall=["NTC"]).start()
    url = srv.url
    got = fetch_threaded(url, ["NTC"], timeout=0.2, retries=0)
    assert "timed out" in got.failed["NTC"]
    start = time.monotonic()
    srv.close()
    assert time.monotonic() - start < 3.0
    assert srv.in_flight == 0
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/symbols", timeout=1)


def test_bad_arguments(server: PriceServer) -> None:
    with pytest.raises(ValueError, match="latency"):
        PriceServer(latency=-1)
    with pytest.raises(ValueError, match="timeout"):
        fetch_sequential(server.url, ["NTC"], timeout=0)
    with pytest.raises(ValueError, match="concurrency"):
        fetch_asyncio(server.url, ["NTC"], concurrency=0)
    with pytest.raises(ValueError, match="workers"):
        fetch_threaded(server.url, ["NTC"], workers=0)
