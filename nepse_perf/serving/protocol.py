"""uvicorn's HTTP protocol with the two connection limits it lacks: a header timeout and a
connection cap.

uvicorn closes a keep-alive connection that stays idle ``--timeout-keep-alive`` seconds
*after a response*, but a new connection that sends nothing, or sends its headers a byte at a
time, is never timed out, and the number of connections is unbounded (its
``limit_concurrency`` answers every request 503 once the cap is reached, on old connections
too). :class:`GuardedHttpToolsProtocol` adds, as nginx's ``client_header_timeout`` and
``worker_connections`` do:

- a **header timeout**: from a connection's start, and from the end of each response, the next
  request's headers must be complete within ``read_timeout_s``. A connection that sent part of
  a request is answered 408; one that sent nothing is closed. (The body has its own timeout,
  in :class:`nepse_perf.serving.gate.Gate`.)
- a **connection cap**: a connection beyond ``max_connections`` is answered 503 with
  ``Retry-After`` and closed, without reading a request.
- **shedding at the protocol**: when the app's :class:`~nepse_perf.serving.gate.Gate` admits
  no more work, a POST to a prediction route is answered 503 as soon as its headers are
  parsed, from here: no ASGI task, no request object, its body dropped as it arrives. This
  is what keeps shedding cheap; at twice the capacity a 503 built by the app cost about a
  third of a served request, and the refusals took the CPU the admitted requests needed.
  A request that waits for ``100 Continue`` and one that arrives while another on the same
  connection is still served (pipelined) go through the app, which refuses them as well.

``nepse-perf serve`` selects it (``http=PROTOCOL``) and passes the limits to every worker
process through the environment (:func:`connection_limits`).
"""

from __future__ import annotations

import asyncio
import functools

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from nepse_perf.serving.gate import Gate, raw_answer

__all__ = ["PROTOCOL", "GuardedHttpToolsProtocol", "connection_limits"]

PROTOCOL = "nepse_perf.serving.protocol:GuardedHttpToolsProtocol"

_TIMED_OUT = raw_answer(b"408 Request Timeout", "request headers not received in time")
_TOO_MANY = raw_answer(b"503 Service Unavailable", "too many connections; retry later", retry=True)


def _find_gate(app: object) -> Gate | None:
    """The :class:`Gate` in uvicorn's chain of ASGI wrappers around the app (None if none)."""
    for _ in range(10):
        if isinstance(app, Gate):
            return app
        app = getattr(app, "app", None)
    return None


@functools.cache
def connection_limits() -> tuple[float, int]:
    """(header timeout in s, connection cap) of this worker's
    :class:`~nepse_perf.serving.app.ServeConfig` (read once from the ``NEPSE_PERF_SERVE_*``
    environment that ``nepse-perf serve`` sets)."""
    from nepse_perf.serving.app import ServeConfig

    config = ServeConfig.from_env()
    return config.read_timeout_s, config.max_connections


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout and a connection cap (module doc)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s, self.max_connections = connection_limits()
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial = False  # bytes of a request arrived since the last response
        self._refused = False
        self._shedding = False  # the current request was answered 503 here: drop its body
        self._gate = _find_gate(self.app)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; refuse it (503, then close) beyond the cap."""
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refused = True
            transport.write(_TOO_MANY)
            if transport.can_write_eof():
                transport.write_eof()  # the client reads the 503, then the end of the stream
            self.loop.call_later(1.0, transport.close)  # whatever it sent meanwhile is dropped
            return
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        """Parse (or, on a refused connection, drop) what arrived."""
        if self._refused:
            return
        if self.cycle is None or self.cycle.response_complete:
            self._partial = True
        super().data_received(data)

    def on_headers_complete(self) -> None:
        """The headers are in: the header timer stops; the request is shed here (503) when
        the gate admits nothing now, else handed to uvicorn (and the app)."""
        self._cancel_header_timer()
        if self._gate is not None and self._may_shed_here():
            answer = self._gate.shed_now(self.url.split(b"?", 1)[0])
            if answer is not None:
                self.transport.write(answer)
                self._shedding = True
                return
        super().on_headers_complete()

    def _may_shed_here(self) -> bool:
        """A POST with no pending answer before it and no ``100 Continue`` awaited."""
        idle = self.cycle is None or self.cycle.response_complete
        return idle and not self.expect_100_continue and self.parser.get_method() == b"POST"

    def on_body(self, body: bytes) -> None:
        """Body bytes: dropped for a shed request, else uvicorn's."""
        if not self._shedding:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """The request's end: a shed one is done (the next request's headers get their
        time), any other is uvicorn's."""
        if not self._shedding:
            super().on_message_complete()
            return
        self._shedding = False
        self._partial = False
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        """A response went out: the next request's headers get their own time."""
        super().on_response_complete()
        self._partial = False
        if not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer with the connection."""
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        """The header time is up: 408 for a partial request, a plain close for none."""
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served (a pipelined one had its headers already)
        if self._partial:
            self.transport.write(_TIMED_OUT)
        self.transport.close()
