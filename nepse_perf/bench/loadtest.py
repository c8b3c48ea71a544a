"""Open-loop load testing of the prediction service, and ``wrk`` as the closed-loop cross-check.

**Open loop.** Request i is *scheduled* at ``start + i / rate`` whatever happened to earlier
requests, and its latency is measured from that scheduled time to the end of its response.
When the server stalls, requests keep being due; their wait (for a connection, for the
server) is counted, so the percentiles show the queueing a user would see. A closed-loop
tool (``wrk``, locust's default users) sends the next request only after the previous reply
on the same connection: a stall delays the *sending*, the late requests are never issued,
and the latency percentiles hide it (coordinated omission). We report achieved vs offered
rate: when the service cannot keep up, the achieved rate falls short and p99 explodes.

The client is a small HTTP/1.1 keep-alive client on raw ``asyncio`` streams (requests
with ``Content-Length``, responses with ``Content-Length``, as this service sends them):
on a 2-core machine the load generator shares the CPUs with the server, and a general
client library spends several times more CPU per request. Targets must be loopback
addresses; the request count (rate x duration) and the run time are bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import ipaddress
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from nepse_perf._infra.checks import positive_int

__all__ = [
    "MAX_DURATION_S",
    "MAX_REQUESTS",
    "Connection",
    "LoadResult",
    "check_loopback_url",
    "features_body",
    "format_result",
    "result_from_events",
    "run_coroutine",
    "run_loadtest",
    "run_wrk",
    "sample_feature_rows",
    "wait_until_ready",
]

MAX_REQUESTS = 2_000_000
MAX_DURATION_S = 600.0
DEFAULT_PATH = "/v1/predict/features"


def check_loopback_url(url: str) -> tuple[str, int, str]:
    """``(host, port, path)`` of an ``http://`` URL whose host is a loopback address.

    ``localhost`` and 127.0.0.0/8 or ``::1`` literals are accepted; anything else raises
    ``ValueError`` (the load generator never targets another machine). An empty path
    becomes ``/v1/predict/features``.
    """
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"{url}: only http:// URLs are supported")
    host = parts.hostname or ""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{url}: host must be a loopback address (127.0.0.1 or ::1)") from None
    if not ip.is_loopback:
        raise ValueError(
            f"{url}: {host} is not a loopback address; load tests stay on this machine"
        )
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError(f"{url}: {exc}") from None
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    if parts.query:
        path += "?" + parts.query
    return host, port, path


def sample_feature_rows(n: int = 256, seed: int = 0) -> np.ndarray:
    """``n`` real feature rows (float64, FEATURES order) drawn from the shipped sample.

    Rows past every warm-up, picked with a seeded generator: realistic inputs, so the trees
    take realistic paths.
    """
    from nepse_perf.data import load_prices, sample_path
    from nepse_perf.model import feature_frame

    feats = feature_frame(load_prices(sample_path())).dropna()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(feats), size=min(n, len(feats)), replace=False)
    return feats.to_numpy(dtype=np.float64)[np.sort(pick)]


def features_body(rows: np.ndarray) -> bytes:
    """The JSON body of ``POST /v1/predict/features`` for ``rows``."""
    return json.dumps({"rows": np.asarray(rows, dtype=np.float64).tolist()}).encode()


@dataclass
class LoadResult:
    """One open-loop run: offered vs achieved rate, latency percentiles, errors by status.

    Latencies are seconds from each request's *scheduled* send time to the end of its
    response (``service_*`` from the actual send time: the closed-loop view), over every
    answer; ``ok_p50_ms``/``ok_p99_ms`` over the 200 answers only (what admitted requests
    saw). ``errors`` counts responses other than 200 by status and failures by kind
    (``"timeout"``, ``"connection"``); ``shed`` counts the 503s that carried ``Retry-After``
    and ``answered_share`` the share of requests answered 200 or shed so within the timeout;
    ``achieved_rps`` counts 200 responses per second of the run (first scheduled send to
    last response).
    """

    url: str
    offered_rps: float
    duration_s: float
    rows_per_request: int
    connections: int
    scheduled: int
    completed_ok: int
    achieved_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    service_p50_ms: float
    service_p99_ms: float
    max_send_lag_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    ok_p50_ms: float = float("nan")
    ok_p99_ms: float = float("nan")
    shed: int = 0
    answered_share: float = float("nan")

    @property
    def predictions_per_s(self) -> float:
        """Rows predicted per second (achieved requests x rows per request)."""
        return self.achieved_rps * self.rows_per_request

    def to_dict(self) -> dict:
        """JSON-able dict (all fields plus ``predictions_per_s``)."""
        d = asdict(self)
        d["predictions_per_s"] = self.predictions_per_s
        return d


def format_result(r: LoadResult) -> str:
    """One table line: offered, achieved, percentiles (ms), error counts."""
    errs = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items())) or "none"
    admitted = ""
    if r.shed:
        admitted = (
            f" | 200s: p50 {r.ok_p50_ms:.1f} p99 {r.ok_p99_ms:.1f} ms; shed 503 {r.shed:,}; "
            f"answered 200/503 {100 * r.answered_share:.1f} %"
        )
    return (
        f"offered {r.offered_rps:,.0f}/s achieved {r.achieved_rps:,.0f}/s "
        f"({r.completed_ok:,}/{r.scheduled:,} ok, {r.rows_per_request} row/req) | "
        f"p50 {r.p50_ms:.1f} p95 {r.p95_ms:.1f} p99 {r.p99_ms:.1f} max {r.max_ms:.1f} ms | "
        f"errors: {errs}{admitted}"
    )


class Connection:
    """One keep-alive HTTP/1.1 connection: send a raw request, read its answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self, raw: bytes) -> tuple[int, bool, bool]:
        """Send one request, read the response; (status, keep-alive, has Retry-After)."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        keep, retry = True, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
            elif name == b"retry-after":
                retry = True
        if length:
            await self.reader.readexactly(length)
        return status, keep, retry

    def closed(self) -> bool:
        """Whether the server has closed this connection (seen while it sat idle)."""
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Pool:
    """At most ``limit`` keep-alive connections to ``host:port``, handed to requests in turn.

    :meth:`get` returns an idle connection, opens a new one below the limit, or waits for
    one to be handed back; :meth:`put` hands a connection back (``None``: it was closed, so
    a waiting request opens a new one in its place).
    """

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host = host
        self.port = port
        self.limit = limit
        self.open_count = 0
        self.idle: list[Connection] = []
        self.waiters: asyncio.Queue[Connection | None] = asyncio.Queue()

    async def get(self) -> Connection:
        """A connection for one request (TCP_NODELAY set on new ones)."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed():
                return conn
            conn.close()  # the server closed it while idle (its keep-alive timeout)
            self.open_count -= 1
        if self.open_count < self.limit:
            self.open_count += 1
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.open_count -= 1
                raise
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return Connection(reader, writer)
        conn = await self.waiters.get()
        if conn is None:  # a connection closed: open a new one in its place
            return await self.get()
        return conn

    def put(self, conn: Connection | None) -> None:
        """Hand ``conn`` back (``None`` after closing it)."""
        if conn is None:
            self.open_count -= 1
        if self.waiters._getters:  # someone waits for a connection: hand it over
            self.waiters.put_nowait(conn)
        elif conn is not None:
            self.idle.append(conn)

    def close(self) -> None:
        """Close every idle connection and every one still queued for a waiter."""
        for conn in self.idle:
            conn.close()
        while not self.waiters.empty():
            c = self.waiters.get_nowait()
            if c is not None:
                c.close()


@dataclass
class _Samples:
    """What an open-loop run measured, per request i (loop-clock seconds).

    ``latency`` from the scheduled send to the end of the response and ``service`` from the
    actual send (NaN where no response came), ``lag`` from the scheduled to the actual send;
    ``status`` the answer's status (0: none) and ``retry`` whether it had ``Retry-After``;
    ``errors`` by status or failure kind; ``start`` the first scheduled send and
    ``last_done`` the end of the last response.
    """

    latency: np.ndarray
    service: np.ndarray
    lag: np.ndarray
    status: np.ndarray
    retry: np.ndarray
    errors: Counter = field(default_factory=Counter)
    start: float = 0.0
    last_done: float = 0.0

    @classmethod
    def empty(cls, n: int) -> _Samples:
        """Room for ``n`` requests, none answered yet."""
        return cls(
            latency=np.full(n, np.nan),
            service=np.full(n, np.nan),
            lag=np.zeros(n),
            status=np.zeros(n, dtype=np.int16),
            retry=np.zeros(n, dtype=bool),
        )


async def _send_one(
    i: int, scheduled: float, pool: _Pool, raw: bytes, timeout: float, samples: _Samples
) -> None:
    """Send request ``i`` (due at ``scheduled``) over a pooled connection and record it."""
    loop = asyncio.get_running_loop()
    conn = None
    try:
        async with asyncio.timeout(timeout):
            conn = await pool.get()
            sent = loop.time()
            samples.lag[i] = sent - scheduled
            status, keep, retry = await conn.request(raw)
        done = loop.time()
        samples.latency[i] = done - scheduled
        samples.service[i] = done - sent
        samples.status[i], samples.retry[i] = status, retry
        samples.last_done = max(samples.last_done, done)
        if status != 200:
            samples.errors[str(status)] += 1
        if not keep:
            conn.close()
            conn = None
        pool.put(conn)
    except TimeoutError:
        samples.errors["timeout"] += 1
        if conn is not None:  # a half-read response: that connection is unusable
            conn.close()
            pool.put(None)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        samples.errors["connection"] += 1
        if conn is not None:
            conn.close()
            pool.put(None)


async def _open_loop(
    host: str,
    port: int,
    raws: Sequence[bytes],
    rate: float,
    n: int,
    connections: int,
    timeout: float,
) -> _Samples:
    """Send ``n`` requests, request i (``raws[i % len(raws)]``) at ``start + i / rate``
    whatever came before.

    Python's garbage collector is off for the run: a full collection over the run's tasks
    stalled this generator for over 100 ms at a time, and the requests it then sent late
    in one burst looked like the server's latency (and tripped its admission limit). Only
    the tasks still running are kept.
    """
    loop = asyncio.get_running_loop()
    pool = _Pool(host, port, connections)
    samples = _Samples.empty(n)
    running: set[asyncio.Task] = set()
    interval = 1.0 / rate
    i = 0
    collecting = gc.isenabled()
    gc.disable()
    try:
        samples.start = start = loop.time() + 0.05
        while i < n:
            now = loop.time()
            due = start + i * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            while i < n and start + i * interval <= now:  # everything due by now
                scheduled = start + i * interval
                raw = raws[i % len(raws)]
                task = loop.create_task(_send_one(i, scheduled, pool, raw, timeout, samples))
                running.add(task)
                task.add_done_callback(running.discard)
                i += 1
        while running:
            await asyncio.gather(*list(running))
    finally:
        if collecting:
            gc.enable()
        pool.close()
    return samples


def run_coroutine(make):
    """``asyncio.run(make())``, in a fresh thread when this thread already runs a loop
    (a Jupyter kernel does), so the generator always owns its event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def run_loadtest(
    url: str,
    *,
    rate: float,
    duration: float,
    rows: int = 1,
    body: bytes | None = None,
    bodies: Sequence[bytes] | None = None,
    connections: int = 64,
    timeout: float = 10.0,
    seed: int = 0,
) -> LoadResult:
    """Offer ``rate`` requests/s for ``duration`` s to ``url`` (loopback), open loop.

    Each request is a ``POST`` of ``body`` (default: ``rows`` real feature rows from the
    sample, a different set per seed) over at most ``connections`` keep-alive connections;
    a request waiting for a free connection is still timed from its scheduled send.
    A request not answered within ``timeout`` s of its scheduled time counts as
    ``"timeout"``. ``bodies`` instead of ``body``: request i posts ``bodies[i % len(bodies)]``
    (distinct requests, e.g. one symbol each for ``/v1/predict`` cache misses). Raises
    ``ValueError`` for both ``body`` and ``bodies``, an empty ``bodies``, a non-loopback
    URL, a rate or duration <= 0, more than ``MAX_REQUESTS`` requests or more than
    ``MAX_DURATION_S`` seconds.
    """
    host, port, path = check_loopback_url(url)
    if not (rate > 0 and duration > 0):
        raise ValueError(f"rate and duration must be > 0, got {rate} and {duration}")
    if duration > MAX_DURATION_S:
        raise ValueError(f"duration {duration} s is over the limit of {MAX_DURATION_S:g} s")
    n = round(rate * duration)
    if n < 1:
        raise ValueError(f"rate x duration = {rate * duration:g}: fewer than one request")
    if n > MAX_REQUESTS:
        raise ValueError(f"{n:,} requests is over the limit of {MAX_REQUESTS:,}")
    positive_int(connections, "connections")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, got {timeout!r}")
    if body is not None and bodies is not None:
        raise ValueError("give body or bodies, not both")
    if bodies is not None and not len(bodies):
        raise ValueError("bodies is empty")
    if bodies is None:
        if body is None:
            body = features_body(sample_feature_rows(positive_int(rows, "rows"), seed=seed))
        bodies = [body]
    hosthdr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"POST {path} HTTP/1.1\r\nHost: {hosthdr}\r\nContent-Type: application/json\r\n"
    raws = [(head + f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]
    samples = run_coroutine(lambda: _open_loop(host, port, raws, rate, n, connections, timeout))
    return _result(samples, url, rate, duration, rows, connections)


def _percentile(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


def _result(
    samples: _Samples, url: str, rate: float, duration: float, rows: int, connections: int
) -> LoadResult:
    """The :class:`LoadResult` of a run's samples: achieved rate, percentiles (ms), errors."""
    errors = samples.errors
    ok = np.isfinite(samples.latency)
    ok_count = int((samples.status == 200).sum())
    elapsed = max(samples.last_done - samples.start, 1e-9)
    lat = samples.latency[ok] * 1000.0
    svc = samples.service[ok] * 1000.0
    ok200 = samples.latency[samples.status == 200] * 1000.0
    shed = (samples.status == 503) & samples.retry
    return LoadResult(
        url=url,
        offered_rps=float(rate),
        duration_s=float(duration),
        rows_per_request=int(rows),
        connections=int(connections),
        scheduled=len(samples.latency),
        completed_ok=ok_count,
        achieved_rps=ok_count / elapsed if ok_count else 0.0,
        p50_ms=_percentile(lat, 50),
        p95_ms=_percentile(lat, 95),
        p99_ms=_percentile(lat, 99),
        max_ms=float(lat.max()) if len(lat) else float("nan"),
        service_p50_ms=_percentile(svc, 50),
        service_p99_ms=_percentile(svc, 99),
        max_send_lag_ms=float(samples.lag.max() * 1000.0),
        errors=dict(errors),
        ok_p50_ms=_percentile(ok200, 50),
        ok_p99_ms=_percentile(ok200, 99),
        shed=int(shed.sum()),
        answered_share=float(((samples.status == 200) | shed).mean()),
    )


def result_from_events(
    scheduled: np.ndarray,
    sent: np.ndarray,
    done: np.ndarray,
    status: np.ndarray,
    *,
    url: str,
    rate: float,
    retry: np.ndarray | None = None,
    rows: int = 1,
    connections: int = 1,
) -> LoadResult:
    """The :class:`LoadResult` of recorded events, by the definitions of :func:`run_loadtest`.

    One entry per request (seconds on one clock): ``scheduled`` send time, actual ``sent``
    time, ``done`` (end of the response; NaN for none) and the answer's ``status`` (0:
    none); ``retry`` whether it carried ``Retry-After``. Latency runs from ``scheduled``,
    service time from ``sent``; the run starts at the first scheduled send and its
    duration is ``len(scheduled) / rate``. Lets a notebook check its own scheduler's
    numbers against the package's on the same events.
    """
    scheduled, sent, done = (np.asarray(a, dtype=np.float64) for a in (scheduled, sent, done))
    n = len(scheduled)
    samples = _Samples.empty(n)
    samples.latency[:] = done - scheduled
    samples.service[:] = done - sent
    samples.lag[:] = sent - scheduled
    samples.status[:] = np.asarray(status, dtype=np.int16)
    if retry is not None:
        samples.retry[:] = np.asarray(retry, dtype=bool)
    answered = samples.status > 0
    samples.errors = Counter(str(s) for s in samples.status[answered & (samples.status != 200)])
    samples.start = float(scheduled.min()) if n else 0.0
    samples.last_done = float(np.nanmax(done)) if np.isfinite(done).any() else samples.start
    return _result(samples, url, rate, n / rate, rows, connections)


_WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
"""


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(
    url: str,
    *,
    body: bytes,
    duration: float = 3.0,
    connections: int = 16,
    threads: int = 1,
) -> dict:
    """Run ``wrk`` (closed loop: each connection waits for its reply) against ``url``.

    Returns ``{"requests_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "non_2xx",
    "connections", "threads", "duration_s", "raw"}`` parsed from ``wrk --latency``. Needs
    the ``wrk`` binary (Debian package ``wrk``); raises ``RuntimeError`` when it is missing
    or fails, ``ValueError`` for a non-loopback URL.
    """
    host, port, path = check_loopback_url(url)
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    if not (0 < duration <= MAX_DURATION_S):
        raise ValueError(f"duration must be within 0-{MAX_DURATION_S:g} s, got {duration}")
    with tempfile.TemporaryDirectory(prefix="nepse-wrk-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(_WRK_SCRIPT.format(body=body_path))
        target = f"http://{host}:{port}{path}"
        cmd = [exe, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
        cmd += ["-s", str(script), target]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration + 30, check=False
        )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    out = proc.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    pcts = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, flags=re.MULTILINE))
    mx = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "requests_per_s": float(rps.group(1)) if rps else float("nan"),
        "p50_ms": _wrk_ms(pcts.get("50", "")),
        "p90_ms": _wrk_ms(pcts.get("90", "")),
        "p99_ms": _wrk_ms(pcts.get("99", "")),
        "max_ms": _wrk_ms(mx.group(1)) if mx else float("nan"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "connections": connections,
        "threads": threads,
        "duration_s": duration,
        "raw": out,
    }


def wait_until_ready(url: str, timeout: float = 60.0, alive=None) -> None:
    """Poll ``url`` (e.g. ``http://127.0.0.1:8000/readyz``) until it answers 200.

    Raises ``TimeoutError`` after ``timeout`` seconds, ``RuntimeError`` as soon as
    ``alive()`` (e.g. ``Popen.poll``) returns an exit status. Uses the standard library only.
    """
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and alive() is not None:
            raise RuntimeError(f"the process behind {url} exited with status {alive()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:g} s ({last})")
