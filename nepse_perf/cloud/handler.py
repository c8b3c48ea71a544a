"""A Lambda-style ``handler(event, context)`` around the model and the indicator pipeline.

The model directory comes from the environment variable ``NEPSE_PERF_MODEL_DIR`` (set in the
function's configuration) and is loaded once per execution environment, on the first call
(the cold start), then reused by warm calls. The event is either the request itself or an
API Gateway proxy event whose ``body`` is that request as JSON text. A request holds exactly
one of:

* ``"features"``: rows of the model's features, each a list in ``FEATURES`` order or an
  object ``{name: value}``; one probability per row;
* ``"prices"``: one symbol's daily bars, oldest first, each ``{"date", "open", "high",
  "low", "close"}`` (``volume`` optional); the indicators and features are computed with the
  pipeline and the probability is returned for the last bar (it needs at least
  ``warmup_rows() + 1`` bars).

The response is ``{"statusCode", "headers", "body"}`` with a JSON body:
``{"p_up": [...], "model": name, "version": v}`` on success, ``{"error": message}`` naming the
field otherwise: 400 for a body that is not JSON or not an object, 413 for more than
``MAX_ROWS`` rows, 422 for a field that fails validation (missing, non-numeric, non-finite,
wrong length, bad date), 503 when the model directory is missing or invalid. The same
statuses as the prediction service: bad input is never imputed or silently dropped.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from nepse_perf._infra.checks import shown

__all__ = ["MAX_ROWS", "MODEL_ENV", "handler", "reset"]

#: Environment variable naming the model directory.
MODEL_ENV = "NEPSE_PERF_MODEL_DIR"
#: Most rows (features) or bars (prices) one request may carry.
MAX_ROWS = 10_000

_MODEL: Any = None
_MODEL_DIR: str | None = None


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def reset() -> None:
    """Forget the loaded model (the next call loads it again, as a cold start would)."""
    global _MODEL, _MODEL_DIR
    _MODEL, _MODEL_DIR = None, None


def _model() -> Any:
    global _MODEL, _MODEL_DIR
    directory = os.environ.get(MODEL_ENV, "").strip()
    if not directory:
        raise _BadRequest(503, f"{MODEL_ENV} is not set: no model directory configured")
    if _MODEL is None or _MODEL_DIR != directory:
        from nepse_perf.model import ModelFileError, load

        try:
            _MODEL = load(directory, threads=1)
        except ModelFileError as exc:
            raise _BadRequest(503, f"model unavailable: {exc}") from None
        _MODEL_DIR = directory
    return _MODEL


def _response(status: int, body: dict) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body, allow_nan=False),
    }


def _request(event: Any) -> dict:
    if isinstance(event, dict) and "body" in event and not {"features", "prices"} & set(event):
        body = event["body"]
        if body is None:
            raise _BadRequest(400, "body: empty")
        if event.get("isBase64Encoded"):
            import base64

            if not isinstance(body, str | bytes):
                raise _BadRequest(400, f"body: base64 text expected, got {type(body).__name__}")
            try:
                body = base64.b64decode(body, validate=True).decode("utf-8")
            except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
                raise _BadRequest(400, f"body: not base64-encoded UTF-8 ({exc})") from None
        event = _parse_body(body) if isinstance(body, str | bytes) else body
    if not isinstance(event, dict):
        raise _BadRequest(400, f"event: expected a JSON object, got {type(event).__name__}")
    given = [k for k in ("features", "prices") if k in event]
    if len(given) != 1:
        raise _BadRequest(
            422,
            "event: give exactly one of 'features' or 'prices'"
            + (" (got both)" if len(given) == 2 else f" (got keys {sorted(map(str, event))[:5]})"),
        )
    rows = event[given[0]]
    if not isinstance(rows, list) or not rows:
        raise _BadRequest(422, f"{given[0]}: expected a non-empty list")
    if len(rows) > MAX_ROWS:
        raise _BadRequest(413, f"{given[0]}: {len(rows):,} rows, at most {MAX_ROWS:,} per request")
    return event


def _parse_body(body: str | bytes) -> Any:
    """The JSON of an API Gateway body; 400 for anything a JSON parser refuses.

    That is malformed JSON, bytes that are not UTF-8, an integer literal longer than
    Python's digit limit (a plain ``ValueError``) and nesting deeper than the recursion
    limit: each names what was wrong, none escapes as an exception.
    """
    try:
        return json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except json.JSONDecodeError as exc:
        raise _BadRequest(400, f"body: not valid JSON ({exc.msg} at position {exc.pos})") from None
    except UnicodeDecodeError as exc:
        raise _BadRequest(400, f"body: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # e.g. an integer literal over the digit limit
        raise _BadRequest(400, f"body: not valid JSON ({shown(str(exc))})") from None
    except RecursionError:
        raise _BadRequest(400, "body: not valid JSON (nested too deeply)") from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadRequest(422, f"{where}: expected a number, got {shown(value)}")
    try:
        x = float(value)
    except OverflowError:
        raise _BadRequest(422, f"{where}: too large for a float64") from None
    if not math.isfinite(x):
        raise _BadRequest(422, f"{where}: must be finite, got {shown(value)}")
    return x


def _date(value: Any, where: str):
    """A bar's date: a ``YYYY-MM-DD`` string within pandas' datetime range, else 422."""
    import datetime

    import pandas as pd

    if not isinstance(value, str):
        raise _BadRequest(422, f"{where}: expected a YYYY-MM-DD string, got {shown(value)}")
    try:
        day = datetime.date.fromisoformat(value)
        if len(value) != 10:
            raise ValueError(value)
        return pd.Timestamp(day).as_unit("ns")
    except (ValueError, OverflowError):
        raise _BadRequest(422, f"{where}: not a date (YYYY-MM-DD): {shown(value)}") from None


def _feature_rows(rows: list, names: tuple[str, ...]):
    import numpy as np

    out = np.empty((len(rows), len(names)))
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            missing = [n for n in names if n not in row]
            if missing:
                raise _BadRequest(422, f"features[{i}]: missing {missing[:3]}")
            values = [row[n] for n in names]
            labels = names
        elif isinstance(row, list):
            if len(row) != len(names):
                raise _BadRequest(
                    422, f"features[{i}]: {len(row)} values, expected {len(names)} (FEATURES order)"
                )
            values, labels = row, names
        else:
            raise _BadRequest(422, f"features[{i}]: expected a list or an object")
        for j, (v, label) in enumerate(zip(values, labels, strict=True)):
            out[i, j] = _number(v, f"features[{i}].{label}")
    return out


def _price_frame(rows: list):
    import numpy as np
    import pandas as pd

    from nepse_perf.model import warmup_rows

    need = warmup_rows() + 1
    if len(rows) < need:
        raise _BadRequest(422, f"prices: {len(rows)} bars, the features need at least {need}")
    cols = {c: np.empty(len(rows)) for c in ("open", "high", "low", "close", "volume")}
    dates = []
    for i, bar in enumerate(rows):
        if not isinstance(bar, dict):
            raise _BadRequest(422, f"prices[{i}]: expected an object")
        for c in ("open", "high", "low", "close"):
            if c not in bar:
                raise _BadRequest(422, f"prices[{i}].{c}: missing")
            x = _number(bar[c], f"prices[{i}].{c}")
            if x <= 0:
                raise _BadRequest(422, f"prices[{i}].{c}: must be > 0, got {shown(bar[c])}")
            cols[c][i] = x
        cols["volume"][i] = (
            _number(bar["volume"], f"prices[{i}].volume") if "volume" in bar else np.nan
        )
        if not cols["low"][i] <= min(cols["open"][i], cols["close"][i]) or not cols["high"][
            i
        ] >= max(cols["open"][i], cols["close"][i]):
            raise _BadRequest(422, f"prices[{i}]: needs low <= open, close <= high")
        if "date" not in bar:
            raise _BadRequest(422, f"prices[{i}].date: missing")
        dates.append(_date(bar["date"], f"prices[{i}].date"))
    d = pd.DatetimeIndex(dates)
    if not d.is_monotonic_increasing or d.has_duplicates:
        bad = int(np.argmax(np.diff(d.asi8) <= 0)) + 1
        raise _BadRequest(422, f"prices[{bad}].date: dates must be strictly increasing")
    return pd.DataFrame(
        {"symbol": pd.Categorical(["REQ"] * len(rows)), "date": d.as_unit("ns"), **cols}
    )


def handler(event: Any, context: Any = None) -> dict:
    """Answer one Lambda invocation: predictions for ``event`` (see the module docstring).

    ``context`` (the Lambda context object) is accepted and unused. Never raises for bad
    input: returns ``{"statusCode": 4xx or 503, "body": '{"error": ...}'}`` naming the field.
    """
    try:
        request = _request(event)
        model = _model()
        from nepse_perf.model import feature_frame, predict_proba

        if "features" in request:
            X = _feature_rows(request["features"], model.features)
        else:
            feats = feature_frame(_price_frame(request["prices"]))
            X = feats.to_numpy()[-1:]
            if not (X == X).all():
                raise _BadRequest(422, "prices: the last bar's features are not defined")
        p = predict_proba(model, X, engine="onnx")
        return _response(
            200,
            {"p_up": [float(v) for v in p], "model": model.name, "version": model.version},
        )
    except _BadRequest as exc:
        return _response(exc.status, {"error": str(exc)})
