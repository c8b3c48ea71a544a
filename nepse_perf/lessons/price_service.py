"""A local HTTP price service with artificial latency and fault injection, and three clients.

The I/O lessons need a server whose latency is known, so that measured times can be
explained: :class:`PriceServer` serves each symbol of ``data/nepse`` as JSON from a
background thread on ``127.0.0.1`` (a free port), sleeping ``latency`` seconds per price
request. Faults are injected by symbol: ``fail`` answers with an HTTP error every time,
``flaky`` fails the first N requests and then succeeds (retries should hide it), ``stall``
holds the response past any sensible timeout.

Three clients fetch a list of symbols and return a :class:`FetchResult`: one request at a
time (:func:`fetch_sequential`), a ``ThreadPoolExecutor`` (:func:`fetch_threaded`) and
``asyncio`` + aiohttp with a semaphore bounding the requests in flight
(:func:`fetch_async`; :func:`fetch_asyncio` runs it from synchronous code). All three
apply a per-request timeout and retry 5xx answers, timeouts and connection errors with
exponential back-off. A symbol that still fails is named in ``FetchResult.failed`` with the
reason; nothing goes missing silently.

Endpoints: ``GET /symbols`` -> ``{"symbols": [...]}``; ``GET /prices/<symbol>`` ->
``{"symbol": ..., "date": ["YYYY-MM-DD", ...], "open": [...], ..., "turnover": [...]}``
(the columns of ``load_prices``; ``null`` where the value is NaN); unknown paths or
symbols -> 404.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from os import PathLike
from types import TracebackType

import aiohttp
import numpy as np
import pandas as pd

from nepse_perf._infra.checks import non_negative_int, positive_int
from nepse_perf.data import load_prices, sample_path
from nepse_perf.data.errors import describe_failures
from nepse_perf.data.schema import PRICE_COLUMNS, VALUE_COLUMNS

__all__ = [
    "FetchError",
    "FetchResult",
    "PriceServer",
    "fetch_async",
    "fetch_asyncio",
    "fetch_sequential",
    "fetch_threaded",
    "frame_from_json",
    "list_symbols",
    "serve_prices",
]

#: Default per-request timeout of the clients, seconds.
DEFAULT_TIMEOUT = 5.0
#: Default number of retries after the first attempt (so up to 3 requests per symbol).
DEFAULT_RETRIES = 2
#: First back-off pause, seconds; doubles after each failed attempt.
DEFAULT_BACKOFF = 0.05

_HOST = "127.0.0.1"


# --------------------------------------------------------------------------- the server


def _encode(prices: pd.DataFrame, symbol: str) -> bytes:
    """One symbol's rows as the JSON body of ``/prices/<symbol>`` (NaN -> null)."""
    rows = prices[prices["symbol"] == symbol]
    body: dict[str, object] = {
        "symbol": symbol,
        "date": np.datetime_as_string(rows["date"].to_numpy(), unit="D").tolist(),
    }
    for col in VALUE_COLUMNS:
        body[col] = [None if math.isnan(x) else x for x in rows[col].to_numpy().tolist()]
    return json.dumps(body, allow_nan=False).encode("utf-8")


class _Server(ThreadingHTTPServer):
    """The HTTP server plus the state its handler threads share (bodies, faults, counters)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # the default 5 drops connections under a burst of clients

    def __init__(self, owner: PriceServer) -> None:
        self.owner = owner
        super().__init__((_HOST, owner.requested_port), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (timeout) closes its socket: count it, print nothing."""
        with self.owner.lock:
            self.owner.dropped += 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request log lines that BaseHTTPRequestHandler writes to stderr."""

    def do_GET(self) -> None:
        owner = self.server.owner
        path = urllib.parse.urlsplit(self.path).path
        if path == "/symbols":
            self._send(HTTPStatus.OK, json.dumps({"symbols": list(owner.symbols)}).encode())
            return
        prefix = "/prices/"
        symbol = urllib.parse.unquote(path[len(prefix) :]) if path.startswith(prefix) else None
        if symbol is None or symbol not in owner.bodies:
            self._send(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')
            return
        with owner.lock:
            owner.requests += 1
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
            owner.requests_by_symbol[symbol] = owner.requests_by_symbol.get(symbol, 0) + 1
            n = owner.requests_by_symbol[symbol]
        try:
            if owner.latency > 0 and owner.closing.wait(owner.latency):
                return
            if symbol in owner.stall and owner.closing.wait(owner.stall_seconds):
                return
            if symbol in owner.fail:
                status, body = owner.fail[symbol], b'{"error": "injected failure"}'
            elif n <= owner.flaky.get(symbol, 0):
                status, body = HTTPStatus.SERVICE_UNAVAILABLE, b'{"error": "injected, try again"}'
            else:
                status, body = HTTPStatus.OK, owner.bodies[symbol]
        finally:
            # no longer in flight once the answer is ready: a client cannot send its next
            # request before it has this one's answer, so a sequential client counts 1
            with owner.lock:
                owner.in_flight -= 1
        self._send(status, body)

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client hung up (it timed out): nothing to tell it
            with self.server.owner.lock:
                self.server.owner.dropped += 1


class PriceServer:
    """An HTTP price service on 127.0.0.1 in a background thread; use it as a context manager.

    ``data`` is a directory of per-symbol CSVs (default: the shipped sample) or an already
    loaded price frame. ``latency`` seconds are slept before every price response (requests
    overlap, each in its own thread). Fault injection by symbol: ``fail`` (symbol -> HTTP
    status, or an iterable of symbols for 500) always errors; ``flaky`` (symbol -> n)
    answers 503 to the first n requests; ``stall`` symbols wait ``stall_seconds`` (default:
    until the server closes) before answering. ``port=0`` picks a free port; ``url`` is the
    base address once started. ``latency`` may be changed between runs (set it to 0 to
    measure the client's own work). Counters: ``requests`` (price requests), ``in_flight`` and
    ``max_in_flight`` (price requests being served now, and at most at once),
    ``requests_by_symbol``, ``dropped`` (responses the client no longer waited for);
    ``reset_counters()`` restarts them.
    """

    def __init__(
        self,
        data: str | PathLike[str] | pd.DataFrame | None = None,
        *,
        latency: float = 0.0,
        fail: Mapping[str, int] | Iterable[str] = (),
        flaky: Mapping[str, int] | None = None,
        stall: Iterable[str] = (),
        stall_seconds: float | None = None,
        port: int = 0,
    ) -> None:
        if not (isinstance(latency, int | float) and math.isfinite(latency) and latency >= 0):
            raise ValueError(f"latency must be a finite number of seconds >= 0, got {latency!r}")
        prices = data if isinstance(data, pd.DataFrame) else load_prices(data or sample_path())
        self.symbols: tuple[str, ...] = tuple(
            str(s) for s in pd.unique(prices["symbol"].astype(str))
        )
        self.bodies: dict[str, bytes] = {s: _encode(prices, s) for s in self.symbols}
        self.latency = float(latency)
        self.fail: dict[str, int] = (
            {str(k): int(v) for k, v in fail.items()}
            if isinstance(fail, Mapping)
            else dict.fromkeys(map(str, fail), int(HTTPStatus.INTERNAL_SERVER_ERROR))
        )
        self.flaky: dict[str, int] = {str(k): int(v) for k, v in (flaky or {}).items()}
        self.stall: frozenset[str] = frozenset(map(str, stall))
        self.stall_seconds = stall_seconds
        self.requested_port = port
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.in_flight = 0
        self.reset_counters()

    def reset_counters(self) -> None:
        """Zero ``requests``, ``requests_by_symbol`` and ``dropped``; ``max_in_flight`` restarts
        from the requests still being served (``in_flight``, e.g. stalled ones, is not reset).
        """
        with self.lock:
            self.requests = 0
            self.max_in_flight = self.in_flight
            self.dropped = 0
            self.requests_by_symbol: dict[str, int] = {}

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (the server must be started)."""
        if self._server is None:
            raise RuntimeError("the price server is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PriceServer:
        """Bind 127.0.0.1 (free port unless one was given) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self.closing.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="nepse-price-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self, wait: float = 5.0) -> None:
        """Stop serving, release stalled requests, wait up to ``wait`` s for handlers to end."""
        if self._server is None:
            return
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(wait)
        deadline = time.monotonic() + wait
        while self.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._server = None
        self._thread = None

    def __enter__(self) -> PriceServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_prices(
    data: str | PathLike[str] | pd.DataFrame | None = None, **options: object
) -> PriceServer:
    """A started :class:`PriceServer` (same arguments); ``with serve_prices(...) as server:``."""
    return PriceServer(data, **options).start()  # type: ignore[arg-type]


# --------------------------------------------------------------------------- results


class FetchError(RuntimeError):
    """Raised by :meth:`FetchResult.unwrap` when symbols failed; carries the partial result."""

    def __init__(self, result: FetchResult) -> None:
        self.result = result
        self.failed = dict(result.failed)
        super().__init__(describe_failures(self.failed, "could not be fetched"))


@dataclass(frozen=True)
class FetchResult:
    """What a client returns: one price frame per fetched symbol, the failures, the effort.

    ``frames`` maps symbol -> the frame ``load_prices`` gives for that symbol's file;
    ``failed`` maps symbol -> why it could not be fetched (after the retries); every
    requested symbol is in exactly one of the two. ``requests`` counts HTTP requests made
    (retries included) and ``seconds`` the wall time of the whole fetch.
    """

    frames: dict[str, pd.DataFrame]
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every requested symbol was fetched."""
        return not self.failed

    def prices(self) -> pd.DataFrame:
        """The fetched symbols as one long frame, exactly as ``load_prices`` of their files.

        Symbols in sorted order, ``symbol`` Categorical with the fetched symbols as
        categories, fresh RangeIndex.
        """
        names = sorted(self.frames)
        parts = [self.frames[s].astype({"symbol": str}) for s in names]
        if not parts:
            parts = [frame_from_json({"symbol": "", "date": []}).astype({"symbol": str})]
        out = pd.concat(parts, ignore_index=True)
        out["symbol"] = pd.Categorical(out["symbol"], categories=names)
        return out

    def unwrap(self) -> FetchResult:
        """This result if nothing failed, else raise :class:`FetchError` naming the symbols."""
        if self.failed:
            raise FetchError(self)
        return self


def frame_from_json(body: Mapping[str, object]) -> pd.DataFrame:
    """Rebuild one symbol's price frame from a ``/prices/<symbol>`` JSON body.

    Gives exactly what ``load_prices`` returns for the symbol's file: ``PRICE_COLUMNS``,
    ``symbol`` Categorical, ``date`` datetime64[ns], float64 values with NaN for ``null``.
    """
    symbol = str(body["symbol"])
    dates = np.array(body["date"], dtype="datetime64[D]").astype("datetime64[ns]")
    n = len(dates)
    data: dict[str, object] = {
        "symbol": pd.Categorical([symbol] * n, categories=[symbol]),
        "date": dates,
    }
    for col in VALUE_COLUMNS:
        data[col] = np.array(body.get(col, [None] * n), dtype=np.float64)
    return pd.DataFrame(data, columns=list(PRICE_COLUMNS))


# --------------------------------------------------------------------------- clients


class _Retryable(Exception):
    """A failure worth another attempt (5xx, timeout, connection error)."""


def _price_url(base_url: str, symbol: str) -> str:
    return f"{base_url.rstrip('/')}/prices/{urllib.parse.quote(symbol, safe='')}"


def _check(timeout: float, retries: int, backoff: float) -> None:
    if not (isinstance(timeout, int | float) and timeout > 0):
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    non_negative_int(retries, "retries")
    if not (isinstance(backoff, int | float) and backoff >= 0):
        raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")


def list_symbols(base_url: str, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """The symbols the service offers (``GET /symbols``)."""
    with urllib.request.urlopen(f"{base_url.rstrip('/')}/symbols", timeout=timeout) as resp:
        return list(json.load(resp)["symbols"])


def _get_once(url: str, timeout: float) -> dict:
    """One blocking GET; raises _Retryable for 5xx/timeouts/connection errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        exc.close()
        msg = f"HTTP {exc.code} {exc.reason}"
        if exc.code >= 500:
            raise _Retryable(msg) from None
        raise RuntimeError(msg) from None
    except TimeoutError:
        raise _Retryable(f"timed out after {timeout:g} s") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _Retryable(f"timed out after {timeout:g} s") from None
        raise _Retryable(f"connection error: {exc.reason}") from None
    except (ConnectionError, OSError) as exc:
        raise _Retryable(f"connection error: {exc}") from None


def _fetch_blocking(
    base_url: str, symbol: str, timeout: float, retries: int, backoff: float
) -> tuple[pd.DataFrame | None, str | None, int]:
    """``(frame, None, attempts)`` or ``(None, reason, attempts)`` for one symbol."""
    url = _price_url(base_url, symbol)
    reason = "unknown error"
    for attempt in range(retries + 1):
        try:
            return frame_from_json(_get_once(url, timeout)), None, attempt + 1
        except _Retryable as exc:
            reason = str(exc)
            if attempt < retries:
                time.sleep(backoff * 2**attempt)
        except Exception as exc:  # 4xx, bad JSON: retrying will not help
            return None, f"{exc} (not retried)", attempt + 1
    return None, f"{reason} ({_attempts(retries + 1)})", retries + 1


def _attempts(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


def _collect(
    symbols: Sequence[str],
    outcomes: Iterable[tuple[pd.DataFrame | None, str | None, int]],
    start: float,
) -> FetchResult:
    """The :class:`FetchResult` of one outcome per symbol, timed from ``start``."""
    frames: dict[str, pd.DataFrame] = {}
    failed: dict[str, str] = {}
    n = 0
    for sym, (frame, reason, attempts) in zip(symbols, outcomes, strict=True):
        n += attempts
        if frame is None:
            failed[sym] = reason or "unknown error"
        else:
            frames[sym] = frame
    return FetchResult(frames, failed, n, time.perf_counter() - start)


def fetch_sequential(
    base_url: str,
    symbols: Sequence[str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> FetchResult:
    """Fetch each symbol in turn (``urllib``): total time is about n x latency.

    ``symbols`` defaults to every symbol the service lists. ``timeout`` applies per request;
    5xx answers, timeouts and connection errors are retried ``retries`` times with
    exponential back-off from ``backoff`` seconds; the rest fail at once.
    """
    _check(timeout, retries, backoff)
    start = time.perf_counter()
    symbols = list(symbols) if symbols is not None else list_symbols(base_url, timeout)
    outcomes = [_fetch_blocking(base_url, s, timeout, retries, backoff) for s in symbols]
    return _collect(symbols, outcomes, start)


def fetch_threaded(
    base_url: str,
    symbols: Sequence[str] | None = None,
    *,
    workers: int = 8,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> FetchResult:
    """Fetch with a ``ThreadPoolExecutor`` of ``workers`` threads: about n / workers x latency.

    Threads help here because a thread waiting on a socket releases the GIL. Timeouts,
    retries and failure reporting as in :func:`fetch_sequential`.
    """
    _check(timeout, retries, backoff)
    positive_int(workers, "workers")
    start = time.perf_counter()
    symbols = list(symbols) if symbols is not None else list_symbols(base_url, timeout)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        outcomes = list(
            pool.map(lambda s: _fetch_blocking(base_url, s, timeout, retries, backoff), symbols)
        )
    return _collect(symbols, outcomes, start)


async def _fetch_one_async(
    session: aiohttp.ClientSession,
    semaphore: asyncio.Semaphore,
    base_url: str,
    symbol: str,
    timeout: float,
    retries: int,
    backoff: float,
) -> tuple[pd.DataFrame | None, str | None, int]:
    url = _price_url(base_url, symbol)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    reason = "unknown error"
    for attempt in range(retries + 1):
        try:
            async with semaphore, session.get(url, timeout=client_timeout) as resp:
                if resp.status >= 500:
                    reason = f"HTTP {resp.status} {resp.reason}"
                elif resp.status != 200:
                    return None, f"HTTP {resp.status} {resp.reason} (not retried)", attempt + 1
                else:
                    body = await resp.json(content_type=None)
                    return frame_from_json(body), None, attempt + 1
        except TimeoutError:
            reason = f"timed out after {timeout:g} s"
        except aiohttp.ClientError as exc:
            reason = f"connection error: {type(exc).__name__}: {exc}"
        except Exception as exc:  # bad JSON or body: retrying will not help
            return None, f"{type(exc).__name__}: {exc} (not retried)", attempt + 1
        if attempt < retries:
            await asyncio.sleep(backoff * 2**attempt)
    return None, f"{reason} ({_attempts(retries + 1)})", retries + 1


async def fetch_async(
    base_url: str,
    symbols: Sequence[str] | None = None,
    *,
    concurrency: int = 8,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> FetchResult:
    """Fetch with ``asyncio`` + aiohttp, at most ``concurrency`` requests in flight.

    One coroutine per symbol, all on one thread; an ``asyncio.Semaphore`` bounds the
    requests in flight (an unbounded ``gather`` of thousands of requests is how clients
    get rate-limited). Each coroutine catches its own errors, so one failure never cancels
    the others. Await it in a notebook (``await fetch_async(url)``); from synchronous code
    use :func:`fetch_asyncio`. Timeouts and retries as in :func:`fetch_sequential`.
    """
    _check(timeout, retries, backoff)
    positive_int(concurrency, "concurrency")
    start = time.perf_counter()
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        if symbols is None:
            async with session.get(
                f"{base_url.rstrip('/')}/symbols", timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                resp.raise_for_status()
                symbols = list((await resp.json(content_type=None))["symbols"])
        symbols = list(symbols)
        outcomes = await asyncio.gather(
            *(
                _fetch_one_async(session, semaphore, base_url, s, timeout, retries, backoff)
                for s in symbols
            )
        )
    return _collect(symbols, outcomes, start)


def fetch_asyncio(
    base_url: str,
    symbols: Sequence[str] | None = None,
    *,
    concurrency: int = 8,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
) -> FetchResult:
    """:func:`fetch_async` from synchronous code (``asyncio.run``; not inside a running loop)."""
    return asyncio.run(
        fetch_async(
            base_url,
            symbols,
            concurrency=concurrency,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
    )
