"""The service's gate: what every request passes before the app, and what counts it.

:class:`Gate` is pure ASGI middleware around the FastAPI app. For every request it counts
and times the answer (in a ``finally``, so a 500 is counted too). For the two POST routes it
also does, in this order, the cheap things that decide whether the request gets any work:

1. a declared ``Content-Length`` over ``max_body_bytes`` is refused (413), then a
   ``Content-Type`` other than ``application/json`` (415), both before the body is read;
2. the body is read within ``read_timeout_s`` (408) and ``max_body_bytes`` (413). A body over
   the limit is read to its end and discarded, up to :data:`DISCARD_LIMIT` bytes, before the
   413 is sent, so that a client that writes its whole body before reading (Python's
   ``urllib``, ``requests``) sees the 413 and not a reset connection;
3. **admission**: at most ``max_inflight`` requests are admitted at once, and none while the
   batcher's queue is full. Anything else is answered 503 with ``Retry-After`` at once, before
   the body is parsed: shedding costs far less than serving, so an overloaded worker keeps
   its admitted requests fast instead of slowing every request down;
4. an admitted request gets a **deadline** (``deadline_ms``): work still queued at its deadline
   is dropped (503), so nothing is computed for a client that is likely to have given up.

A request still running when the server's graceful-shutdown time runs out is cancelled by
uvicorn; the gate answers it 503 (instead of uvicorn's 500) and reports the drop through
``on_drop``, so that ``nepse-perf serve`` can exit non-zero.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from nepse_perf._infra.checks import shown

__all__ = [
    "BODY_KEY",
    "DEADLINE_KEY",
    "DISCARD_LIMIT",
    "Gate",
    "ServiceMetrics",
    "json_answer",
    "raw_answer",
]

#: The scope keys under which the gate hands an admitted request's body and deadline
#: (``time.monotonic()`` seconds) to the routes.
BODY_KEY = "nepse_perf.body"
DEADLINE_KEY = "nepse_perf.deadline"
#: The most bytes of an over-limit body read and discarded before its 413 (beyond it the
#: connection is closed after the 413, and a client still writing may see a reset).
DISCARD_LIMIT = 64 * 1024 * 1024
RETRY_AFTER_S = 1

_GATED = {"/v1/predict", "/v1/predict/features"}
_ENDPOINTS = {"/healthz", "/readyz", "/v1/model", "/metrics", "/openapi.json", "/docs", *_GATED}


def raw_answer(status: bytes, detail: str, *, retry: bool = False, close: bool = True) -> bytes:
    """A whole HTTP/1.1 answer, written to a transport without the app: JSON ``detail``,
    ``Retry-After`` when ``retry``, ``Connection: close`` when ``close``."""
    body = json.dumps({"detail": detail}).encode("ascii")
    head = b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
    if retry:
        head += b"retry-after: %d\r\n" % RETRY_AFTER_S
    if close:
        head += b"connection: close\r\n"
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


def json_answer(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    """``content`` as an ASCII JSON answer with ``status``: any text in it (client text
    quoted in a message, a lone surrogate included) can always be encoded and sent."""
    body = json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")
    return Response(body, status_code=status, headers=headers, media_type="application/json")


class ServiceMetrics:
    """This worker's Prometheus registry (one per app, so tests can build several apps)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "nepse_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "nepse_request_latency_seconds",
            "Time from request start to response end in this process",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.batch_rows = Histogram(
            "nepse_batch_rows",
            "Rows per ONNX Runtime call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "nepse_batch_seconds",
            "Seconds per ONNX Runtime call",
            buckets=(0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
            registry=r,
        )
        self.queue_rows = Gauge("nepse_queue_rows", "Rows waiting for a batch", registry=r)
        self.inflight = Gauge("nepse_inflight_requests", "Admitted requests now", registry=r)
        self.refused = Counter(
            "nepse_overload_refusals",
            "Requests answered 503 by reason (inflight, queue, deadline, stopping)",
            ["reason"],
            registry=r,
        )
        self.feature_computations = Gauge(
            "nepse_feature_computations",
            "Symbols whose features were computed (cache misses)",
            registry=r,
        )

    def on_batch(self, rows: int, seconds: float) -> None:
        """Record one ONNX Runtime call of ``rows`` rows that took ``seconds``."""
        self.batch_rows.observe(rows)
        self.batch_seconds.observe(seconds)


class _Refused(Exception):
    """The gate answers now: ``status``, ``message``, extra headers, whether to close."""

    def __init__(self, status: int, message: str, *, retry: bool = False, close: bool = False):
        super().__init__(message)
        self.status, self.message, self.close = status, message, close
        self.headers = {"Retry-After": str(RETRY_AFTER_S)} if retry else {}
        if close:
            self.headers["Connection"] = "close"


class Gate:
    """Pure ASGI middleware: metrics, body limits, admission and deadlines (module docstring).

    ``queue_full()`` says why the batcher takes no more work (None when it does); ``on_drop()``
    is called for each request answered 503 because the shutdown cancelled it.
    """

    def __init__(
        self,
        app: Any,
        metrics: ServiceMetrics,
        *,
        max_body_bytes: int,
        max_inflight: int,
        deadline_ms: float,
        read_timeout_s: float,
        queue_full: Callable[[], str | None],
        on_drop: Callable[[], None],
    ) -> None:
        self.app, self.metrics = app, metrics
        self.max_body, self.max_inflight = max_body_bytes, max_inflight
        self.deadline_s, self.read_timeout_s = deadline_ms / 1000.0, read_timeout_s
        self.queue_full, self.on_drop = queue_full, on_drop
        self.inflight = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in _ENDPOINTS else "other"
        started = [0]

        async def send_wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                started[0] = message["status"]
            await send(message)

        try:
            if path in _GATED and scope["method"] == "POST":
                await self._gated(scope, receive, send_wrapped)
            else:
                await self.app(scope, receive, send_wrapped)
        except asyncio.CancelledError:  # the graceful-shutdown time ran out: 503, not 500
            if not started[0]:
                self.on_drop()
                self.metrics.refused.labels("stopping").inc()
                refusal = _Refused(
                    503,
                    "the service stopped before this request finished; retry",
                    retry=True,
                    close=True,
                )
                await self._answer(refusal, scope, receive, send_wrapped)
        finally:  # a request that raised (a 500) is counted and timed too
            self.metrics.requests.labels(endpoint, str(started[0] or 500)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)

    async def _gated(self, scope: dict, receive: Any, send: Any) -> None:
        """A POST route's request: type, body, admission, then the app with its deadline."""
        try:
            headers = dict(scope.get("headers", ()))
            body = await self._read_body(headers, receive)
            reason = self._refusal()
            if reason is not None:
                raise _Refused(503, f"overloaded ({reason}); retry later", retry=True)
        except _Refused as refusal:
            await self._answer(refusal, scope, receive, send)
            return
        scope[BODY_KEY] = body
        scope[DEADLINE_KEY] = time.monotonic() + self.deadline_s
        self.inflight += 1
        self.metrics.inflight.set(self.inflight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
            self.metrics.inflight.set(self.inflight)

    def shed_now(self, path: bytes) -> bytes | None:
        """For the protocol, as a POST's headers arrive: the whole 503 answer (keep-alive,
        ``Retry-After``) when ``path`` is a prediction route and nothing is admitted now,
        else None. The refusal is counted as the app would count it."""
        endpoint = path.decode("latin-1")
        if endpoint not in _GATED:
            return None
        reason = self._refusal()
        if reason is None:
            return None
        self.metrics.requests.labels(endpoint, "503").inc()
        self.metrics.latency.labels(endpoint).observe(0.0)
        detail = f"overloaded ({reason}); retry later"
        return raw_answer(b"503 Service Unavailable", detail, retry=True, close=False)

    def _refusal(self) -> str | None:
        """Why a request is not admitted now (counted by reason), or None to admit it."""
        reason = self._why_not_admitted()
        if reason is not None:
            self.metrics.refused.labels(reason.split(":", 1)[0]).inc()
        return reason

    def _why_not_admitted(self) -> str | None:
        if self.inflight >= self.max_inflight:
            return f"inflight: {self.inflight} requests in progress, limit {self.max_inflight}"
        full = self.queue_full()
        return None if full is None else f"queue: {full}"

    @staticmethod
    def _check_type(headers: dict[bytes, bytes]) -> None:
        """415 unless the body is declared JSON: a web page cannot send that type
        cross-origin without a CORS preflight, which this service never grants."""
        raw = headers.get(b"content-type", b"").decode("latin-1")
        media_type = raw.split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            shown_type = shown(media_type or None, 40)
            raise _Refused(415, f"Content-Type must be application/json, got {shown_type}")

    async def _read_body(self, headers: dict[bytes, bytes], receive: Any) -> bytes:
        """The whole body within the time and size limits (408, 413 otherwise)."""
        limit = self.max_body
        try:
            declared = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            declared = -1
        too_big = f"request body over the limit of {limit:,} bytes"
        if declared > limit:
            if headers.get(b"expect", b"").lower() == b"100-continue" or declared > DISCARD_LIMIT:
                raise _Refused(413, too_big, close=True)  # the client has not sent it (yet)
            await self._discard(receive, 0)
            raise _Refused(413, too_big)
        self._check_type(headers)
        parts, size, more = [], 0, True
        try:
            async with asyncio.timeout(self.read_timeout_s):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Refused(400, "the client closed the connection mid-body", close=True)
                    chunk, more = message.get("body", b""), message.get("more_body", False)
                    size += len(chunk)
                    if size > limit:
                        await self._discard(receive, size, more)
                        raise _Refused(413, too_big)
                    parts.append(chunk)
        except TimeoutError:
            raise _Refused(
                408, f"request body not received within {self.read_timeout_s:g} s", close=True
            ) from None
        return b"".join(parts)

    async def _discard(self, receive: Any, size: int, more: bool = True) -> None:
        """Read and drop the rest of a body, up to :data:`DISCARD_LIMIT` bytes in all and
        ``read_timeout_s``; _Refused 413 with a close when it is longer or slower."""
        try:
            async with asyncio.timeout(self.read_timeout_s):
                while more and size <= DISCARD_LIMIT:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    size += len(message.get("body", b""))
                    more = message.get("more_body", False)
        except TimeoutError:
            more = True
        if more:
            raise _Refused(
                413, f"request body over the limit of {self.max_body:,} bytes", close=True
            )

    @staticmethod
    async def _answer(refusal: _Refused, scope: dict, receive: Any, send: Any) -> None:
        response = json_answer(refusal.status, {"detail": refusal.message}, refusal.headers)
        await response(scope, receive, send)
