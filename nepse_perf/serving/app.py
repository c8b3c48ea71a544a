"""The prediction service: a FastAPI app around the ONNX model and a micro-batcher.

Endpoints (errors are JSON ``{"detail": ...}``, never a 500 for bad input):

=============================  ==========================================================
``GET /healthz``               200 ``{"status": "ok"}`` while the process serves (liveness)
``GET /readyz``                200 once the model and prices are loaded and warm, else 503
``GET /v1/model``              name, version, kind, ordered ``features``, training dates,
                               metrics
``POST /v1/predict``           ``{"symbols": [...]}`` -> per symbol its latest session date,
                               ``prob_up`` and the model version (features from the prices
                               through ``compute_indicators``, cached per symbol until the
                               price files change)
``POST /v1/predict/features``  ``{"rows": [[...], ...]}`` (columns in ``/v1/model`` order)
                               -> ``{"prob_up": [...]}``: the pure-inference path
``GET /metrics``               Prometheus text: requests, latency histogram, batch sizes,
                               queue depth, feature computations (this worker's registry)
``GET /openapi.json``          the OpenAPI contract: request bodies with the configured
                               limits, every status each route answers
                               (``nepse_perf.serving.schema``)
``GET /docs``                  Swagger UI, its files served by the app (no CDN)
=============================  ==========================================================

Bad input answers 400 (malformed JSON, wrong shape or type, NaN/inf, anything the JSON
parser refuses), 413 (too many symbols/rows, body over ``max_body_bytes``) or 415 (a body not
declared ``application/json``). ``/v1/predict`` answers per symbol: 200 when every symbol was
predicted, 207 with an ``errors`` entry (404 unknown, 422 too little history) for each that
was not, 404 or 422 when none was. A full queue answers 503 with ``Retry-After``. Every
answer is ASCII JSON, so a message quoting client text can always be sent. ``create_app(config)`` builds
an app; ``app_from_env()`` is the factory ``uvicorn --factory`` calls in every worker process
(``nepse-perf serve`` sets the ``NEPSE_PERF_SERVE_*`` variables it reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from nepse_perf._infra.checks import positive_int, shown
from nepse_perf.serving.batcher import MicroBatcher, Overloaded
from nepse_perf.serving.schema import (
    FEATURES_RESPONSES,
    MODEL_RESPONSES,
    PREDICT_RESPONSES,
    READY_RESPONSES,
    Health,
    install_openapi,
)

__all__ = ["ENV_PREFIX", "ServeConfig", "app_from_env", "create_app", "onnx_predictor"]

ENV_PREFIX = "NEPSE_PERF_SERVE_"
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ServeConfig:
    """What one worker process serves and its limits.

    ``model_dir`` a directory written by ``nepse_perf.model.save``; ``prices`` a price file
    or directory for ``/v1/predict`` (None: the whole shipped market); ``max_batch`` rows per ONNX
    call; ``max_wait_ms`` how long the oldest queued request waits for company;
    ``max_queue`` rows allowed to wait before 503; ``max_rows`` rows per request and
    ``max_symbols`` symbols per request (413 beyond); ``max_body_bytes`` request body limit
    (413 beyond); ``threads`` ONNX Runtime intra-op threads.
    """

    model_dir: str
    prices: str | None = None
    max_batch: int = 32
    max_wait_ms: float = 2.0
    max_queue: int = 4096
    max_rows: int = 1024
    max_symbols: int = 256
    max_body_bytes: int = 1_048_576
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "max_rows", "max_symbols", "max_body_bytes"):
            positive_int(getattr(self, name), name)
        positive_int(self.threads, "threads")
        if not (isinstance(self.max_wait_ms, int | float) and 0 <= self.max_wait_ms <= 10_000):
            raise ValueError(f"max_wait_ms must be within 0-10000 ms, got {self.max_wait_ms!r}")

    def to_env(self) -> dict[str, str]:
        """The ``NEPSE_PERF_SERVE_*`` variables that :func:`app_from_env` reads back."""
        return {ENV_PREFIX + k.upper(): str(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServeConfig:
        """Read a config from ``NEPSE_PERF_SERVE_*`` variables (``MODEL_DIR`` required)."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key not in env:
                continue
            text = env[key]
            try:
                if f.name in ("model_dir", "prices"):
                    kwargs[f.name] = text
                elif f.name == "max_wait_ms":
                    kwargs[f.name] = float(text)
                else:
                    kwargs[f.name] = int(text)
            except ValueError:
                raise ValueError(f"{key}={text!r}: not a number") from None
        if "model_dir" not in kwargs:
            raise ValueError(f"{ENV_PREFIX}MODEL_DIR is not set (the model directory)")
        return cls(**kwargs)


class BadRequest(Exception):
    """A client error: answered with ``status`` and ``{"detail": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _prices_fingerprint(path: Path) -> tuple:
    """Size and mtime of every price file under ``path``: changes when the prices change."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    out = []
    for p in files:
        st = p.stat()
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass(frozen=True)
class SymbolRefused:
    """Why one symbol of a ``/v1/predict`` request gets no prediction: its status and reason."""

    symbol: str
    status: int
    detail: str


class SymbolFeatures:
    """Latest feature row per symbol, computed on first request and cached.

    The cache is keyed by the price files' fingerprint (sizes and modification times,
    checked at most once per ``check_every_s``): when a file changes, prices are reloaded
    and every symbol is recomputed on its next request. ``computations`` counts symbols
    whose features were computed (a repeated symbol costs none).
    """

    def __init__(self, path: Path, features: Sequence[str], check_every_s: float = 1.0):
        self.path = path
        self.features = tuple(features)
        self.check_every_s = check_every_s
        self.computations = 0
        self._fingerprint: tuple | None = None
        self._checked = 0.0
        self._prices = None
        self._groups: dict[str, Any] = {}
        self._cache: dict[str, tuple[str, np.ndarray]] = {}
        self._lock = threading.Lock()  # requests run latest() in worker threads

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._prices is not None and now - self._checked < self.check_every_s:
            return
        self._checked = now
        fingerprint = _prices_fingerprint(self.path)
        if fingerprint == self._fingerprint:
            return
        from nepse_perf.data import load_prices

        prices = load_prices(self.path)
        self._prices = prices
        self._groups = {
            str(sym): idx
            for sym, idx in prices.groupby("symbol", observed=True, sort=True).groups.items()
        }
        self._cache = {}
        self._fingerprint = fingerprint

    @property
    def symbols(self) -> list[str]:
        """Every symbol of the current prices."""
        with self._lock:
            self._refresh()
            return sorted(self._groups)

    def latest(self, symbols: Sequence[str]) -> list[tuple[str, np.ndarray] | SymbolRefused]:
        """Per symbol: (latest session date ISO, feature row), or why it has none.

        A :class:`SymbolRefused` is 404 for a symbol the prices do not hold and 422 for one
        whose latest session is inside the indicators' warm-up; the 422 is cached like a
        feature row, until the prices change.
        """
        with self._lock:
            return self._latest(symbols)

    def _latest(self, symbols: Sequence[str]) -> list[tuple[str, np.ndarray] | SymbolRefused]:
        from nepse_perf.model import feature_frame

        self._refresh()
        out: list[tuple[str, np.ndarray] | SymbolRefused] = []
        for sym in symbols:
            if sym not in self._groups:
                out.append(SymbolRefused(sym, 404, f"unknown symbol {shown(sym, 30)}"))
                continue
            hit = self._cache.get(sym)
            if hit is None:
                rows = self._prices.loc[self._groups[sym]]
                feats = feature_frame(rows)
                last = rows["date"].to_numpy().argmax()
                vec = feats.iloc[last].to_numpy(dtype=np.float64)
                self.computations += 1
                if np.isfinite(vec).all():
                    hit = (str(rows["date"].iloc[last].date()), vec)
                else:
                    hit = SymbolRefused(
                        sym,
                        422,
                        f"symbol {sym}: its latest session is inside the indicators' warm-up "
                        f"({len(rows)} sessions of history); no prediction",
                    )
                self._cache[sym] = hit
            out.append(hit)
        return out


def _payload_list(payload: Any, key: str, example: str, items: str, limit: int) -> list:
    """``payload[key]``: a non-empty list of at most ``limit`` entries, else BadRequest 400/413.

    ``example`` shows the expected value in the message for a body without ``key`` and
    ``items`` names what the list holds; the entries themselves are the caller's to check.
    """
    if not isinstance(payload, dict) or key not in payload:
        raise BadRequest(400, f'body must be a JSON object {{"{key}": {example}}}')
    values = payload[key]
    if not isinstance(values, list) or not values:
        raise BadRequest(400, f"{key} must be a non-empty list of {items}")
    if len(values) > limit:
        raise BadRequest(413, f"too many {key}: {len(values)} (limit {limit} per request)")
    return values


def _parse_rows(payload: Any, n_features: int, max_rows: int) -> np.ndarray:
    rows = _payload_list(payload, "rows", "[[...], ...]", "rows", max_rows)
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadRequest(400, f"rows[{i}] must be a list of {n_features} numbers")
        if len(row) != n_features:
            raise BadRequest(
                400, f"rows[{i}] has {len(row)} values; the model takes {n_features} features"
            )
        for j, v in enumerate(row):
            kind = type(v)
            if kind is not float and kind is not int:
                raise BadRequest(400, f"rows[{i}][{j}] is {shown(v)}, expected a number")
            if kind is float and not math.isfinite(v):
                raise BadRequest(400, f"rows[{i}][{j}] is {shown(v)}; features must be finite")
    try:
        arr = np.array(rows, dtype=np.float64)
    except OverflowError:
        raise BadRequest(400, "a value does not fit a float64") from None
    if not np.isfinite(arr).all():  # huge ints overflow to inf
        raise BadRequest(400, "a value does not fit a float64 (features must be finite)")
    return arr


def _parse_symbols(payload: Any, max_symbols: int) -> list[str]:
    symbols = _payload_list(payload, "symbols", '["NABIL", ...]', "strings", max_symbols)
    for i, s in enumerate(symbols):
        if not isinstance(s, str) or not s.strip():
            raise BadRequest(400, f"symbols[{i}] is {shown(s)}, expected a symbol such as 'NABIL'")
    return [s.strip().upper() for s in symbols]


class _Metrics:
    """This worker's Prometheus registry (one per app, so tests can build several apps)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nepse_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nepse_request_latency_seconds",
            "Time from request start to response end in this process",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "nepse_batch_rows",
            "Rows per ONNX Runtime call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "nepse_batch_seconds",
            "Seconds per ONNX Runtime call",
            buckets=(0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
            registry=self.registry,
        )
        self.queue_rows = Gauge(
            "nepse_queue_rows", "Rows waiting for a batch", registry=self.registry
        )
        self.refused = Counter(
            "nepse_overload_refusals", "Requests refused with 503", registry=self.registry
        )
        self.feature_computations = Gauge(
            "nepse_feature_computations",
            "Symbols whose features were computed (cache misses)",
            registry=self.registry,
        )

    def on_batch(self, rows: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.batch_seconds.observe(seconds)


_ENDPOINTS = {
    "/healthz",
    "/readyz",
    "/v1/model",
    "/v1/predict",
    "/v1/predict/features",
    "/metrics",
    "/openapi.json",
    "/docs",
}


class _MetricsAndLimits:
    """Pure ASGI middleware: counts and times requests, refuses a ``Content-Length`` over the
    body limit (413) before reading the body. A chunked body (no length) is counted as it
    arrives by the endpoints (``read_json``), so neither form buffers more than the limit.
    """

    def __init__(self, app: Any, metrics: _Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in _ENDPOINTS else "other"
        status_box = [500]

        async def send_wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        too_big = False
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = False
                break
        try:
            if too_big:
                await self._refuse(send_wrapped)
            else:
                await self.app(scope, receive, send_wrapped)
        finally:  # a request that raised (a 500) is counted and timed too
            self.metrics.requests.labels(endpoint, str(status_box[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            {"detail": f"request body over the limit of {self.max_body:,} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def onnx_predictor(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """One ONNX Runtime call per block of rows: the graph's ``raw_score``, then the link.

    The same computation as ``predict_proba`` (engine ``"onnx"``): the probability is
    SciPy's ``expit`` of the raw score, applied in float64 outside ONNX Runtime, whose own
    vectorised float64 sigmoid can differ in the last bit between a call of one row and a
    call of many. So a row's probability is the same bits whether it is predicted alone or
    in any batch (with one intra-op thread; with more, ONNX Runtime splits large calls over
    the trees and sums in another order: equal to about 1e-16, not bitwise; notebook 10
    counts it). Returns float64 of shape (rows,).
    """
    from nepse_perf.model.io import onnx_block_predictor

    return onnx_block_predictor(model)


def _json(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    """``content`` as an ASCII JSON answer with ``status``: any text in it (client text
    quoted in a message, a lone surrogate included) can always be encoded and sent."""
    body = json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The JSON error answer: ``{"detail": message}`` with ``status`` (and ``headers``)."""
    return _json(status, {"detail": message}, headers)


async def _bad_request(request: Request, exc: BadRequest) -> Response:
    """The app's handler of :class:`BadRequest`: its status, message and headers."""
    return _error(exc.status, exc.message, exc.headers)


async def _read_json(request: Request, max_body_bytes: int) -> Any:
    """The request body as JSON, counted as it arrives (413 beyond ``max_body_bytes``).

    BadRequest 415 unless the ``Content-Type`` is ``application/json`` (checked before any
    of the body is read: a web page cannot send that type cross-origin without a CORS
    preflight, which this service never grants); 400 for an empty body or anything the JSON
    parser refuses (malformed, not UTF-8, nested too deeply, an integer over the digit limit).
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise BadRequest(
            415, f"Content-Type must be application/json, got {shown(media_type or None, 40)}"
        )
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            raise BadRequest(413, f"request body over the limit of {max_body_bytes:,} bytes")
        parts.append(chunk)
    body = b"".join(parts)
    if not body:
        raise BadRequest(400, "empty body: expected JSON")
    try:
        return json.loads(body.decode("utf-8"))  # JSON between systems is UTF-8 (RFC 8259)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"malformed JSON: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise BadRequest(400, f"malformed JSON: {shown(str(exc), 120)}") from None
    except RecursionError:
        raise BadRequest(400, "malformed JSON: nested too deeply") from None


def _first_feature_row(symbols: SymbolFeatures, n_features: int) -> np.ndarray:
    """The feature row of the first symbol that has one (zeros if none has): the warm-up's
    input, which also loads the prices and computes one symbol's features."""
    for sym in symbols.symbols:
        hit = symbols.latest([sym])[0]
        if not isinstance(hit, SymbolRefused):
            return hit[1]
    return np.zeros(n_features)


class _Service:
    """One app's model, batcher, prices and metrics: loaded in the lifespan, used by the routes.

    ``model``, ``batcher`` and ``symbols`` are None until the lifespan has loaded them;
    ``ready`` turns True after the warm-up prediction and False again on shutdown.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = _Metrics()
        self.ready = False
        self.model: Any = None
        self.batcher: MicroBatcher | None = None
        self.symbols: SymbolFeatures | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Load and warm up (once per worker process); on shutdown stop the batcher, which
        finishes its queue."""
        await self._start()
        try:
            yield
        finally:
            self.ready = False
            await self.batcher.stop()

    async def _start(self) -> None:
        from nepse_perf.data import market_path
        from nepse_perf.model import load

        config, metrics = self.config, self.metrics
        model = load(config.model_dir, threads=config.threads)
        batcher = MicroBatcher(
            onnx_predictor(model),
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            on_batch=metrics.on_batch,
            on_queue=metrics.queue_rows.set,
        )
        prices_path = Path(config.prices) if config.prices else market_path()
        symbols = SymbolFeatures(prices_path, model.features)
        await batcher.start()
        self.model, self.batcher, self.symbols = model, batcher, symbols
        # warm-up: the prices load, one symbol's features, one model call
        vec = await asyncio.to_thread(_first_feature_row, symbols, len(model.features))
        await batcher.submit(vec[None, :])
        self.ready = True

    async def infer(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities of ``rows`` through the batcher; BadRequest 503 when not loaded or
        the queue is full (with ``Retry-After``)."""
        if self.batcher is None:
            raise BadRequest(503, "the model is not loaded yet", {"Retry-After": "1"})
        try:
            return await self.batcher.submit(rows)
        except Overloaded as exc:
            self.metrics.refused.inc()
            raise BadRequest(
                503, f"overloaded: {exc}; retry later", {"Retry-After": str(RETRY_AFTER_S)}
            ) from None

    def count_feature_computations(self) -> None:
        """Copy the feature cache's miss count into the ``nepse_feature_computations`` gauge."""
        if self.symbols is not None:
            self.metrics.feature_computations.set(self.symbols.computations)


def _service(request: Request) -> _Service:
    """The :class:`_Service` of the app serving ``request``."""
    return request.app.state.service


#: The endpoints; each app includes them (:func:`create_app`) and finds its service in
#: ``app.state.service``.
router = APIRouter()


@router.get("/healthz", response_model=Health)
async def healthz() -> dict:
    """Liveness: 200 while the process serves."""
    return {"status": "ok"}


@router.get("/readyz", responses=READY_RESPONSES)
async def readyz(request: Request) -> Response:
    """Readiness: 200 once the model and prices are loaded and warm, else 503."""
    if _service(request).ready:
        return JSONResponse({"status": "ready"})
    return _error(503, "not ready: the model or prices are still loading")


@router.get("/v1/model", responses=MODEL_RESPONSES)
async def model_info(request: Request) -> dict:
    """The served model: name, version, kind, ordered features, training dates, metrics."""
    m = _service(request).model
    return {
        "name": m.name,
        "version": m.version,
        "kind": m.kind,
        "features": list(m.features),
        "horizon": m.horizon,
        "train_start": m.train_start,
        "train_end": m.train_end,
        "metrics": m.metrics,
    }


@router.post("/v1/predict/features", responses=FEATURES_RESPONSES)
async def predict_features(request: Request) -> Response:
    """``{"rows": [[...], ...]}`` -> ``{"prob_up": [...]}``: the pure-inference path."""
    service = _service(request)
    payload = await _read_json(request, service.config.max_body_bytes)
    rows = _parse_rows(payload, len(service.model.features), service.config.max_rows)
    probs = await service.infer(rows)
    body = json.dumps({"prob_up": probs.tolist()}).encode()  # skips FastAPI's encoder
    return Response(body, media_type="application/json")


@router.post("/v1/predict", responses=PREDICT_RESPONSES)
async def predict_symbols(request: Request) -> Response:
    """``{"symbols": [...]}`` -> per symbol its latest session date, ``prob_up``, version.

    Answered per symbol: the symbols that can be predicted get predictions, the others an
    entry in ``errors`` (symbol, status 404 or 422, detail). 200 when every symbol was
    predicted, 207 when only some were; when none was, the status is 404 (all unknown) or
    422, with ``detail`` and the same ``errors``.
    """
    service = _service(request)
    payload = await _read_json(request, service.config.max_body_bytes)
    symbols = _parse_symbols(payload, service.config.max_symbols)
    found = await asyncio.to_thread(service.symbols.latest, symbols)
    service.count_feature_computations()
    refused = [f for f in found if isinstance(f, SymbolRefused)]
    errors = [{"symbol": r.symbol, "status": r.status, "detail": r.detail} for r in refused]
    ok = [(s, f) for s, f in zip(symbols, found, strict=True) if not isinstance(f, SymbolRefused)]
    if not ok:
        status = 404 if all(r.status == 404 for r in refused) else 422
        detail = "no symbol could be predicted: " + "; ".join(r.detail for r in refused[:5])
        return _json(status, {"detail": detail, "errors": errors})
    probs = await service.infer(np.stack([vec for _, (_, vec) in ok]))
    version = service.model.version
    predictions = [
        {"symbol": s, "date": d, "prob_up": float(p), "model_version": version}
        for (s, (d, _)), p in zip(ok, probs, strict=True)
    ]
    return _json(207 if errors else 200, {"predictions": predictions, "errors": errors})


@router.get(
    "/metrics",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def prometheus_metrics(request: Request) -> Response:
    """This worker's Prometheus registry as text."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    service = _service(request)
    service.count_feature_computations()
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(config: ServeConfig) -> Any:
    """A FastAPI app serving ``config.model_dir`` (see the module docstring for endpoints).

    The model, the prices and the batcher load in the app's lifespan (once per worker
    process); ``/readyz`` turns 200 after one warm-up prediction. On shutdown (uvicorn
    stops accepting and waits for in-flight requests first) the batcher finishes its queue.
    The app is wrapped in the middleware that counts, times and size-limits requests.
    """
    from fastapi_offline import FastAPIOffline

    from nepse_perf.model import FEATURES

    service = _Service(config)
    app = FastAPIOffline(  # /docs with Swagger UI's files served from the package: no CDN
        title="nepse-perf prediction service",
        version="1",
        lifespan=service.lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.service = service
    app.add_exception_handler(BadRequest, _bad_request)
    app.include_router(router)
    install_openapi(app, len(FEATURES), config.max_rows, config.max_symbols)
    return _MetricsAndLimits(app, service.metrics, config.max_body_bytes)


def app_from_env() -> Any:
    """The app of the ``NEPSE_PERF_SERVE_*`` environment: uvicorn's factory in each worker."""
    return create_app(ServeConfig.from_env())
