"""Decoding the two POST bodies without stalling the event loop on a hostile one.

A body under the size limit can still hold hundreds of thousands of JSON values:
``{"rows": [[],[],...]}`` is 350,000 lists in 1 MB. ``json.loads`` builds every one of them
before any check can look at the shape, and the garbage collector runs over them while they are
built; the event loop is frozen meanwhile (about half a second for that body), ``/healthz``
included. Two measures keep every body's decoding short:

1. **Count before parsing.** A valid features body holds no strings but its key, so every
   ``[`` is a row (or the list of rows) and every ``,`` separates two values; ``bytes.count``
   bounds both in microseconds, and a body with more of either than ``max_rows`` rows of the
   model's features can hold is refused (413) before anything is built. For symbols, the
   number of ``"`` (less one per backslash, the most escaped quotes there can be) bounds the
   strings from below.
2. **A typed parser.** `msgspec <https://jcristharif.com/msgspec/>`_ decodes straight into the
   expected shape and stops at the first value of the wrong type or length, so a rejected
   shape builds (almost) nothing; unknown fields are refused, NaN and infinity are not JSON,
   and a number beyond float64 is "out of range".

When the typed parser refuses a features body that passed the counts (so a bounded one),
the plain parser and a Python walk over it find the precise message ("rows[3] has 2 values;
the model takes 16 features").
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

import msgspec
import numpy as np

from nepse_perf._infra.checks import shown

__all__ = ["BadRequest", "BodyDecoder"]


class BadRequest(Exception):
    """A client error: answered with ``status`` and ``{"detail": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _decode_error(exc: Exception) -> BadRequest:
    """The 400 for what a JSON parser raised on malformed bytes."""
    if isinstance(exc, UnicodeDecodeError):
        return BadRequest(400, f"malformed JSON: not UTF-8 text (byte {exc.start})")
    if isinstance(exc, RecursionError):
        return BadRequest(400, "malformed JSON: nested too deeply")
    if isinstance(exc, json.JSONDecodeError):
        return BadRequest(400, f"malformed JSON: {exc.msg} at position {exc.pos}")
    text = str(exc).removeprefix("JSON is malformed: ")  # msgspec's: positions, no client text
    return BadRequest(400, f"malformed JSON: {text[:120]}")


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def _where(exc: msgspec.ValidationError) -> tuple[str, str]:
    """(message, path) of msgspec's ``"Expected ... - at `$.rows[0]`"`` ("" for the root)."""
    m = _AT.match(str(exc))
    return m["what"], (m["path"] or "").lstrip(".")


def _unknown_field(what: str) -> str:
    """`` (unknown field `x`)`` when msgspec's message is about one, else ``""``."""
    if "contains unknown field" not in what:
        return ""
    name = what.split("unknown field `", 1)[1][:-1]  # client text: quoted cut short
    return f" (unknown field {shown(name, 40)})"


def _payload_list(payload: Any, key: str, example: str, items: str, limit: int) -> list:
    """``payload[key]``: a non-empty list of at most ``limit`` entries, else BadRequest 400/413."""
    if not isinstance(payload, dict) or key not in payload:
        raise BadRequest(400, f'body must be a JSON object {{"{key}": {example}}}')
    values = payload[key]
    if not isinstance(values, list) or not values:
        raise BadRequest(400, f"{key} must be a non-empty list of {items}")
    if len(values) > limit:
        raise BadRequest(413, f"too many {key}: {len(values)} (limit {limit} per request)")
    return values


def _explain_rows(payload: Any, n_features: int, max_rows: int) -> BadRequest | None:
    """The precise message for a features body that the typed parser refused (None: none
    found here; the caller uses the parser's own)."""
    try:
        rows = _payload_list(payload, "rows", "[[...], ...]", "rows", max_rows)
    except BadRequest as exc:
        return exc
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            return BadRequest(400, f"rows[{i}] must be a list of {n_features} numbers")
        if len(row) != n_features:
            return BadRequest(
                400, f"rows[{i}] has {len(row)} values; the model takes {n_features} features"
            )
        for j, v in enumerate(row):
            kind = type(v)
            if kind is not float and kind is not int:
                return BadRequest(400, f"rows[{i}][{j}] is {shown(v)}, expected a number")
            if kind is float and not math.isfinite(v):
                return BadRequest(400, f"rows[{i}][{j}] is {shown(v)}; features must be finite")
            if kind is int and not math.isfinite(float(v)):
                return BadRequest(400, f"rows[{i}][{j}]: a value does not fit a float64")
    return None


def _not_empty(body: bytes) -> None:
    """BadRequest 400 for a body of nothing but whitespace."""
    if not body.strip():
        raise BadRequest(400, "empty body: expected JSON")


class BodyDecoder:
    """Decode ``/v1/predict/features`` and ``/v1/predict`` bodies under the service's limits.

    ``n_features`` values per row, at most ``max_rows`` rows and ``max_symbols`` symbols per
    request. :meth:`rows` returns a float64 array, :meth:`symbols` a list of upper-case
    symbols; both raise :class:`BadRequest` (400 malformed or wrong shape, 413 too many) and
    never spend long on any body (see the module docstring).
    """

    def __init__(self, n_features: int, max_rows: int, max_symbols: int) -> None:
        self.n_features, self.max_rows, self.max_symbols = n_features, max_rows, max_symbols
        row = Annotated[list[float], msgspec.Meta(min_length=n_features, max_length=n_features)]
        rows = Annotated[list[row], msgspec.Meta(min_length=1, max_length=max_rows)]
        symbols = Annotated[list[str], msgspec.Meta(min_length=1, max_length=max_symbols)]
        features_body = msgspec.defstruct(
            "FeaturesBody", [("rows", rows)], forbid_unknown_fields=True
        )
        symbols_body = msgspec.defstruct(
            "SymbolsBody", [("symbols", symbols)], forbid_unknown_fields=True
        )
        self._rows = msgspec.json.Decoder(features_body)
        self._symbols = msgspec.json.Decoder(symbols_body)

    def rows(self, body: bytes) -> np.ndarray:
        """The rows of a features body as a (rows, n_features) float64 array."""
        n, limit = self.n_features, self.max_rows
        _not_empty(body)
        lists = body.count(b"[")
        if lists > limit + 1:  # a valid body: one list of rows, one list per row
            raise BadRequest(413, f"too many rows: {lists - 1} (limit {limit} per request)")
        if body.count(b",") >= limit * n:  # a valid body: rows x features - 1 commas
            raise BadRequest(
                413, f"too many values: more than {limit} rows of {n} features (the limit)"
            )
        try:
            decoded = self._rows.decode(body)
        except msgspec.ValidationError as exc:
            raise self._rows_refused(body, exc) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            if b"NaN" in body or b"Infinity" in body:
                raise BadRequest(
                    400, "NaN and Infinity are not JSON; features must be finite"
                ) from None
            raise _decode_error(exc) from None
        arr = np.array(decoded.rows, dtype=np.float64)
        if not np.isfinite(arr).all():  # not reachable from JSON; kept as the last guard
            raise BadRequest(400, "a value does not fit a float64 (features must be finite)")
        return arr

    def _rows_refused(self, body: bytes, exc: msgspec.ValidationError) -> BadRequest:
        """The 400/413 for a features body of the wrong shape (bounded by the counts)."""
        what, path = _where(exc)
        if what.startswith("Number out of range"):
            return BadRequest(400, f"{path}: a value does not fit a float64")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as decode_exc:
            return _decode_error(decode_exc)
        precise = _explain_rows(payload, self.n_features, self.max_rows)
        if precise is not None:
            return precise
        if not path:
            return BadRequest(
                400, 'body must be a JSON object {"rows": [[...], ...]}' + _unknown_field(what)
            )
        return BadRequest(400, f"{path}: {what[:1].lower()}{what[1:]}")

    def symbols(self, body: bytes) -> list[str]:
        """The symbols of a ``/v1/predict`` body, stripped and upper-cased."""
        limit = self.max_symbols
        _not_empty(body)
        strings = (body.count(b'"') - body.count(b"\\")) // 2  # at least this many strings
        if strings > limit + 1:  # the key "symbols" is one of them
            raise BadRequest(413, f"too many symbols: {strings - 1} (limit {limit} per request)")
        try:
            decoded = self._symbols.decode(body)
        except msgspec.ValidationError as exc:
            raise self._symbols_refused(exc) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise _decode_error(exc) from None
        out = []
        for i, s in enumerate(decoded.symbols):
            if not s.strip():
                raise BadRequest(
                    400, f"symbols[{i}] is {shown(s)}, expected a symbol such as 'NABIL'"
                )
            out.append(s.strip().upper())
        return out

    def _symbols_refused(self, exc: msgspec.ValidationError) -> BadRequest:
        """The 400/413 for a symbols body of the wrong shape, from the parser's message."""
        what, path = _where(exc)
        shape = 'body must be a JSON object {"symbols": ["NABIL", ...]}'
        if not path:
            return BadRequest(400, shape + _unknown_field(what))
        if path == "symbols" and "length <=" in what:
            return BadRequest(413, f"too many symbols (limit {self.max_symbols} per request)")
        if path == "symbols":
            return BadRequest(400, "symbols must be a non-empty list of strings")
        got = what.rsplit("got ", 1)[-1] if "got " in what else "a value out of range"
        return BadRequest(400, f"{path} is {got}, expected a symbol such as 'NABIL'")
