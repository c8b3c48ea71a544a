"""The service's contract: response models, each route's statuses, and the request bodies.

The routes read their bodies themselves (size-limited, before any parsing: see
``nepse_perf.serving.app``), so FastAPI cannot infer the request schemas; they are written
here as JSON Schema with the configured limits (``max_rows``, ``max_symbols``, the feature
count) and merged into the generated OpenAPI document by :func:`install_openapi`. Every status
a route can answer is declared with its body, so a fuzzer (schemathesis, in
``tests/test_openapi_fuzz.py``) can hold the service to it.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel

__all__ = [
    "FEATURES_RESPONSES",
    "MODEL_RESPONSES",
    "PREDICT_RESPONSES",
    "READY_RESPONSES",
    "FeaturesAnswer",
    "Health",
    "ModelInfo",
    "PredictAnswer",
    "install_openapi",
]

#: The largest magnitude of a feature value: float64's largest finite number. The service
#: refuses (400) a number beyond it, which JSON can write but float64 cannot hold.
FEATURE_BOUND = sys.float_info.max


class Problem(BaseModel):
    """An error answer: what was wrong, in one message."""

    detail: str


class SymbolError(BaseModel):
    """Why one symbol got no prediction: 404 (unknown) or 422 (too little history)."""

    symbol: str
    status: int
    detail: str


class Prediction(BaseModel):
    """One symbol's prediction: its latest session, the probability of an up move."""

    symbol: str
    date: str
    prob_up: float
    model_version: str


class PredictAnswer(BaseModel):
    """``/v1/predict``'s answer when at least one symbol was predicted (200 or 207)."""

    predictions: list[Prediction]
    errors: list[SymbolError]


class PredictRefused(BaseModel):
    """``/v1/predict``'s answer when no symbol could be predicted (404 or 422)."""

    detail: str
    errors: list[SymbolError]


class FeaturesAnswer(BaseModel):
    """``/v1/predict/features``'s answer: one probability per row, in order."""

    prob_up: list[float]


class Health(BaseModel):
    """A probe's answer."""

    status: str


class ModelInfo(BaseModel):
    """The served model."""

    name: str
    version: str
    kind: str
    features: list[str]
    horizon: int
    train_start: str
    train_end: str
    metrics: dict[str, Any]


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("the body is not JSON, or not of the documented shape"),
    413: _problem("the body is over the size limit, or holds too many rows or symbols"),
    415: _problem("the body is not declared application/json"),
    503: _problem("overloaded (see Retry-After), or not loaded yet"),
}

#: ``/v1/predict``: 200 all symbols predicted, 207 some; 404/422 none.
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": PredictAnswer, "description": "every symbol predicted"},
    207: {"model": PredictAnswer, "description": "some symbols predicted, the rest in errors"},
    404: {"model": PredictRefused, "description": "no symbol known"},
    422: {"model": PredictRefused, "description": "no symbol could be predicted"},
    **_BODY_ERRORS,
}

#: ``/v1/predict/features``.
FEATURES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": FeaturesAnswer, "description": "one probability per row"},
    **_BODY_ERRORS,
}

#: ``/readyz``.
READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Health, "description": "loaded and warm"},
    503: _problem("still loading"),
}

#: ``/v1/model``.
MODEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ModelInfo, "description": "the served model"},
}


def _request_bodies(n_features: int, max_rows: int, max_symbols: int) -> dict[str, Any]:
    """Path -> the JSON request body's schema, with the configured limits."""
    symbol = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^\S+$"}
    number = {"type": "number", "minimum": -FEATURE_BOUND, "maximum": FEATURE_BOUND}
    row = {"type": "array", "items": number, "minItems": n_features, "maxItems": n_features}
    return {
        "/v1/predict": {
            "type": "object",
            "required": ["symbols"],
            "additionalProperties": False,
            "properties": {
                "symbols": {
                    "type": "array",
                    "items": symbol,
                    "minItems": 1,
                    "maxItems": max_symbols,
                }
            },
        },
        "/v1/predict/features": {
            "type": "object",
            "required": ["rows"],
            "additionalProperties": False,
            "properties": {
                "rows": {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows}
            },
        },
    }


def install_openapi(app: Any, n_features: int, max_rows: int, max_symbols: int) -> None:
    """Make ``app.openapi()`` return the generated document with the request bodies added.

    Each POST route gets a required ``application/json`` body with the schema of
    :func:`_request_bodies`. The document is built once, on the first call.
    """
    bodies = _request_bodies(n_features, max_rows, max_symbols)
    examples = {
        "/v1/predict": {"symbols": ["NABIL", "NICA"]},
        "/v1/predict/features": {"rows": [[0.0] * n_features]},
    }
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path, body in bodies.items():
                content = {"schema": body, "example": examples[path]}
                schema["paths"][path]["post"]["requestBody"] = {
                    "required": True,
                    "content": {"application/json": content},
                }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
