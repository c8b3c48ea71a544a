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

Bad input answers 400 (malformed JSON, wrong shape or type, NaN/inf, unknown fields,
anything the JSON parser refuses), 408 (a body not received within ``read_timeout_s``), 413
(too many symbols/rows, body over ``max_body_bytes``) or 415 (a body not declared
``application/json``). ``/v1/predict`` answers per symbol: 200 when every symbol was
predicted, 207 with an ``errors`` entry (404 unknown, 422 too little history) for each that
was not, 404 or 422 when none was. Overload answers 503 with ``Retry-After`` before the body
is parsed (``max_inflight`` admitted requests, ``max_queue`` queued rows), and so does work
whose ``deadline_ms`` passed in the queue (``nepse_perf.serving.gate``); the bodies are decoded
by ``nepse_perf.serving.request_bodies``, which never stalls the event loop on a hostile one.
Every answer is ASCII JSON, so a message quoting client text can always be sent.
``create_app(config)`` builds an app; ``app_from_env()`` is the factory ``uvicorn --factory``
calls in every worker process (``nepse-perf serve`` sets the ``NEPSE_PERF_SERVE_*`` variables
it reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
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

from nepse_perf._infra.checks import positive_float, positive_int, shown
from nepse_perf.serving.batcher import DeadlinePassed, MicroBatcher, Overloaded
from nepse_perf.serving.gate import (
    BODY_KEY,
    DEADLINE_KEY,
    RETRY_AFTER_S,
    Gate,
    ServiceMetrics,
    json_answer,
)
from nepse_perf.serving.request_bodies import BadRequest, BodyDecoder
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


@dataclass(frozen=True)
class ServeConfig:
    """What one worker process serves and its limits.

    ``model_dir`` a directory written by ``nepse_perf.model.save``; ``prices`` a price file
    or directory for ``/v1/predict`` (None: the whole shipped market); ``max_batch`` rows per ONNX
    call; ``max_wait_ms`` how long the oldest queued request waits for company;
    ``max_queue`` rows allowed to wait before 503; ``max_rows`` rows per request and
    ``max_symbols`` symbols per request (413 beyond); ``max_body_bytes`` request body limit
    (413 beyond); ``threads`` ONNX Runtime intra-op threads. Overload: ``max_inflight``
    requests admitted at once (503 beyond, before parsing); ``deadline_ms`` how long an
    admitted request's work may wait before it is dropped (503). Connections:
    ``read_timeout_s`` for a request's headers and, separately, its body (408);
    ``keep_alive_s`` idle time after a response; ``max_connections`` per worker (503 and
    close beyond). ``drop_log`` a directory where each worker records the requests the
    shutdown cut short (``nepse-perf serve`` reads it for its exit status).
    """

    model_dir: str
    prices: str | None = None
    max_batch: int = 8
    max_wait_ms: float = 0.0
    max_queue: int = 2048
    max_rows: int = 1024
    max_symbols: int = 256
    max_body_bytes: int = 1_048_576
    threads: int = 1
    max_inflight: int = 32
    deadline_ms: float = 1000.0
    read_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1024
    drop_log: str | None = None

    _INTS = ("max_batch", "max_queue", "max_rows", "max_symbols", "max_body_bytes", "threads")
    _FLOATS = ("max_wait_ms", "deadline_ms", "read_timeout_s", "keep_alive_s")

    def __post_init__(self) -> None:
        for name in (*self._INTS, "max_inflight", "max_connections"):
            positive_int(getattr(self, name), name)
        for name in ("deadline_ms", "read_timeout_s", "keep_alive_s"):
            positive_float(getattr(self, name), name)
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
                if f.name in ("model_dir", "prices", "drop_log"):
                    kwargs[f.name] = text
                elif f.name in cls._FLOATS:
                    kwargs[f.name] = float(text)
                else:
                    kwargs[f.name] = int(text)
            except ValueError:
                raise ValueError(f"{key}={text!r}: not a number") from None
        if "model_dir" not in kwargs:
            raise ValueError(f"{ENV_PREFIX}MODEL_DIR is not set (the model directory)")
        return cls(**kwargs)


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
    whose features were computed (a repeated symbol costs none). ``report`` holds the
    loader's ``attrs`` (its repair report: ``bad_prices``, ``load_notes``, ...); the frame
    kept for slicing has none, because pandas deep-copies ``attrs`` into every frame and
    Series derived from it, which was the largest cost of a cache miss (py-spy,
    ``nepse_perf.bench.profile``).
    """

    def __init__(self, path: Path, features: Sequence[str], check_every_s: float = 1.0):
        self.path = path
        self.features = tuple(features)
        self.check_every_s = check_every_s
        self.computations = 0
        self._fingerprint: tuple | None = None
        self._checked = 0.0
        self._prices = None
        self.report: dict[str, Any] = {}
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
        self.report = prices.attrs
        prices.attrs = {}  # no deep copy of the report in every slice of a cache miss
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


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The JSON error answer: ``{"detail": message}`` with ``status`` (and ``headers``)."""
    return json_answer(status, {"detail": message}, headers)


async def _bad_request(request: Request, exc: BadRequest) -> Response:
    """The app's handler of :class:`BadRequest`: its status, message and headers."""
    return _error(exc.status, exc.message, exc.headers)


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

    def __init__(self, config: ServeConfig, n_features: int) -> None:
        self.config = config
        self.metrics = ServiceMetrics()
        self.bodies = BodyDecoder(n_features, config.max_rows, config.max_symbols)
        self.dropped = 0
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
        # what start-up built (modules, prices, the model) stays alive for the process: moved
        # out of the collector's generations, it is not traversed again by every collection
        gc.collect()
        gc.freeze()
        self.ready = True

    def queue_full(self) -> str | None:
        """Why the batcher takes no work now (None when it does): the gate's check."""
        if self.batcher is None:
            return "the model is not loaded yet"
        return self.batcher.full()

    def record_drop(self) -> None:
        """Count a request the shutdown cut short, and log it in ``drop_log`` if set."""
        self.dropped += 1
        if self.config.drop_log:
            path = Path(self.config.drop_log) / f"drops-{os.getpid()}"
            with contextlib.suppress(OSError):
                path.write_text(f"{self.dropped}\n")

    async def infer(self, rows: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """Probabilities of ``rows`` through the batcher; BadRequest 503 (with
        ``Retry-After``) when not loaded, when the queue is full, or when ``deadline``
        (``time.monotonic()`` seconds) passes first."""
        retry = {"Retry-After": str(RETRY_AFTER_S)}
        if self.batcher is None:
            raise BadRequest(503, "the model is not loaded yet", retry)
        if deadline is not None and time.monotonic() >= deadline:
            self.metrics.refused.labels("deadline").inc()
            raise BadRequest(
                503, "overloaded: deadline passed before inference; retry later", retry
            )
        try:
            return await self.batcher.submit(rows, deadline)
        except Overloaded as exc:
            reason = "deadline" if isinstance(exc, DeadlinePassed) else "queue"
            self.metrics.refused.labels(reason).inc()
            raise BadRequest(503, f"overloaded: {exc}; retry later", retry) from None

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
    rows = service.bodies.rows(request.scope[BODY_KEY])
    probs = await service.infer(rows, request.scope[DEADLINE_KEY])
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
    symbols = service.bodies.symbols(request.scope[BODY_KEY])
    found = await asyncio.to_thread(service.symbols.latest, symbols)
    service.count_feature_computations()
    refused = [f for f in found if isinstance(f, SymbolRefused)]
    errors = [{"symbol": r.symbol, "status": r.status, "detail": r.detail} for r in refused]
    ok = [(s, f) for s, f in zip(symbols, found, strict=True) if not isinstance(f, SymbolRefused)]
    if not ok:
        status = 404 if all(r.status == 404 for r in refused) else 422
        detail = "no symbol could be predicted: " + "; ".join(r.detail for r in refused[:5])
        return json_answer(status, {"detail": detail, "errors": errors})
    probs = await service.infer(np.stack([vec for _, (_, vec) in ok]), request.scope[DEADLINE_KEY])
    version = service.model.version
    predictions = [
        {"symbol": s, "date": d, "prob_up": float(p), "model_version": version}
        for (s, (d, _)), p in zip(ok, probs, strict=True)
    ]
    return json_answer(207 if errors else 200, {"predictions": predictions, "errors": errors})


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
    The app is wrapped in the :class:`~nepse_perf.serving.gate.Gate`, which counts, times,
    size-limits and admits requests.
    """
    from fastapi_offline import FastAPIOffline

    from nepse_perf.model import FEATURES

    service = _Service(config, len(FEATURES))
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
    return Gate(
        app,
        service.metrics,
        max_body_bytes=config.max_body_bytes,
        max_inflight=config.max_inflight,
        deadline_ms=config.deadline_ms,
        read_timeout_s=config.read_timeout_s,
        queue_full=service.queue_full,
        on_drop=service.record_drop,
    )


def app_from_env() -> Any:
    """The app of the ``NEPSE_PERF_SERVE_*`` environment: uvicorn's factory in each worker."""
    return create_app(ServeConfig.from_env())
