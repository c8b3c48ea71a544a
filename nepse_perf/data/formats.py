"""The input layouts :func:`nepse_perf.data.load_prices` recognises, and how a header maps to them.

A *layout* says which source column feeds each column of the price frame.  It is found from
the header line of a CSV file or the column names of a Parquet file, in this order:

1. with an explicit ``columns`` mapping: the mapping, the rest by the generic spellings (4);
2. ``nepal-market-data`` and ``capstone2020``, the two source formats of the shipped sample,
   recognised by how their header starts (``data/nepse/SOURCE.md``);
3. ``long``, the loader's own output: ``symbol,date,open,high,low,close,volume[,turnover]``
   (``volume`` may be absent too: it then loads as NaN);
4. ``ohlcv``, one symbol per file (the file stem): ``Date,Open,High,Low,Close[,Volume]``.

Formats 3 and 4 match names case-insensitively (``Date``/``date``/``timestamp``/``datetime``,
``Open``, ``High``, ``Low``, ``Close``, ``Volume``, ``Turnover``, ``Symbol``); other columns are
ignored and reported.  Detection is strict: two columns that could fill the same role, a
header that fits no layout, or a missing required column raise :class:`DataError`, and an
adjusted close (``Adj Close``) is never taken as the close unless the mapping says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nepse_perf.data.errors import DataError
from nepse_perf.data.schema import PRICE_COLUMNS, VALUE_COLUMNS

__all__ = ["FORMAT_NAMES", "Layout", "detect_layout", "parse_column_mapping"]

#: Columns a layout must provide (``symbol`` comes from the file stem when absent).
REQUIRED: tuple[str, ...] = ("date", "open", "high", "low", "close")

#: Case-insensitive spellings of each output column in the ``long`` and ``ohlcv`` formats.
SPELLINGS: dict[str, tuple[str, ...]] = {
    "symbol": ("symbol",),
    "date": ("date", "timestamp", "datetime"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
    "turnover": ("turnover",),
}

#: Spellings of an adjusted close: never used as ``close`` without an explicit mapping.
ADJUSTED_CLOSE: tuple[str, ...] = (
    "adj close",
    "adj_close",
    "adjclose",
    "adjusted close",
    "adjusted_close",
)


@dataclass(frozen=True)
class Layout:
    """How one file's columns become price-frame columns.

    ``format`` is the layout's name, ``date`` the source column of the session date,
    ``columns`` maps each value column present (``open`` ... ``turnover``) to its source
    column (an absent ``volume``/``turnover`` is left out and loads as NaN), ``symbol`` is the
    source column of the symbol or None (the file stem is the symbol), ``ignored`` lists the
    source columns not used and ``notes`` says which of several candidate columns was chosen.
    """

    format: str
    date: str
    columns: Mapping[str, str]
    symbol: str | None = None
    ignored: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def used(self) -> dict[str, str | None]:
        """Output column -> source column (None: absent, or the file stem for ``symbol``)."""
        used: dict[str, str | None] = {"symbol": self.symbol, "date": self.date}
        used.update({c: self.columns.get(c) for c in VALUE_COLUMNS})
        return used


@dataclass(frozen=True)
class _Source:
    """One of the sample's source formats: its canonical header and its column mapping."""

    name: str
    header: tuple[str, ...]
    signature: int  # how many leading header fields identify the format
    date: str
    columns: Mapping[str, str]

    def matches(self, fields: Sequence[str]) -> bool:
        # A file belongs to a format when its header starts like the canonical one; a missing
        # column later in the header is then reported as such, not as an unknown format.
        return list(fields[: self.signature]) == list(self.header[: self.signature])


_SOURCES: tuple[_Source, ...] = (
    _Source(
        name="nepal-market-data",
        header=(
            "published_date",
            "open",
            "high",
            "low",
            "close",
            "per_change",
            "traded_quantity",
            "traded_amount",
            "status",
        ),
        signature=1,
        date="published_date",
        columns={
            "open": "open",
            "high": "high",
            "low": "low",
            "close": "close",
            "volume": "traded_quantity",
            "turnover": "traded_amount",
        },
    ),
    _Source(
        name="capstone2020",
        header=(
            "S.N",
            "Date",
            "Open",
            "High",
            "Low",
            "Close",
            "Absolute",
            "Percentage",
            "Volume",
            "Trunover",
        ),
        signature=2,
        date="Date",
        columns={
            "open": "Open",
            "high": "High",
            "low": "Low",
            "close": "Close",
            "volume": "Volume",
            "turnover": "Trunover",
        },
    ),
)

#: Every format name a :class:`Layout` can carry.
FORMAT_NAMES: tuple[str, ...] = (*(s.name for s in _SOURCES), "long", "ohlcv")

_MAPPING_HINT = (
    "or name the columns with columns={'close': 'LTP', 'date': 'Date', ...} "
    "(CLI: --columns close=LTP,date=Date)"
)


def known_formats() -> str:
    """One line listing every recognised layout and the mapping option (for error messages)."""
    sources = "; ".join(f"{s.name}: {','.join(s.header)!r}" for s in _SOURCES)
    return (
        f"{sources}; long: 'symbol,date,open,high,low,close[,volume][,turnover]' (the loader's "
        "own output); ohlcv: 'Date,Open,High,Low,Close[,Volume]' (one symbol per file, the file "
        "stem; any letter case; the date may be named date, timestamp or datetime); "
        + _MAPPING_HINT
    )


def parse_column_mapping(text: str) -> dict[str, str]:
    """Parse the CLI's ``--columns`` text, ``close=LTP,date=Date``, into a column mapping.

    Keys are price-frame columns (``symbol, date, open, high, low, close, volume, turnover``),
    values are source column names (surrounding spaces stripped; a name cannot contain ``,``
    or ``=``).  Raises ``ValueError`` naming the offending item for an empty or malformed
    item, an unknown key or a key given twice.
    """
    mapping: dict[str, str] = {}
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"expected OUT=SOURCE pairs like close=LTP,date=Date, got {text!r}")
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"expected OUT=SOURCE (like close=LTP), got {item.strip()!r}")
        if key in mapping:
            raise ValueError(f"column {key!r} is given twice")
        mapping[key] = value
    return check_column_mapping(mapping)


def check_column_mapping(columns: Mapping[str, str]) -> dict[str, str]:
    """Validate a ``columns`` mapping (output column -> source column); return it as a dict."""
    if not isinstance(columns, Mapping):
        raise TypeError(f"columns must be a mapping, not {type(columns).__name__}")
    out: dict[str, str] = {}
    for key, value in columns.items():
        if key not in PRICE_COLUMNS:
            raise ValueError(
                f"columns: unknown output column {key!r}; use {', '.join(PRICE_COLUMNS)}"
            )
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"columns: the source column for {key!r} must be a non-empty name")
        out[key] = value.strip()
    return out


def detect_layout(
    fields: Sequence[str], where: str, what: str, columns: Mapping[str, str] | None = None
) -> Layout:
    """The :class:`Layout` of a file whose column names are ``fields``.

    ``where`` prefixes every error message (``"path, line 1"`` for CSV, ``"path"`` for
    Parquet) and ``what`` describes the names in it (``"header 'a,b'"``).  ``columns`` is the
    caller's explicit mapping (checked with :func:`check_column_mapping`), or None.  Raises
    :class:`DataError` for a duplicate name, an unknown or ambiguous header, a mapped column
    that is not there, or a missing required column.
    """
    seen: set[str] = set()
    for f in fields:
        if f in seen:
            raise DataError(f"{where}: duplicate column {f!r} in the {what.split(' ', 1)[0]}")
        seen.add(f)
    if columns:
        return _generic(fields, where, what, columns)
    source = next((s for s in _SOURCES if s.matches(fields)), None)
    if source is not None:
        return _source_layout(source, fields, where)
    return _generic(fields, where, what, {})


def _source_layout(source: _Source, fields: Sequence[str], where: str) -> Layout:
    required = (source.date, *source.columns.values())
    missing = [c for c in required if c not in fields]
    if missing:
        raise DataError(
            f"{where}: missing required column(s) {', '.join(map(repr, missing))} "
            f"for the {source.name} format (expected header {','.join(source.header)!r})"
        )
    return Layout(
        format=source.name,
        date=source.date,
        columns=dict(source.columns),
        ignored=tuple(f for f in fields if f not in required),
    )


def _generic(fields: Sequence[str], where: str, what: str, columns: Mapping[str, str]) -> Layout:
    """The ``long``/``ohlcv`` layout of ``fields``, the explicit ``columns`` first."""
    lower: dict[str, list[str]] = {}
    for f in fields:
        lower.setdefault(f.strip().lower(), []).append(f)

    chosen: dict[str, str] = {}
    for out, src in columns.items():
        if src in fields:
            chosen[out] = src
            continue
        candidates = lower.get(src.lower(), [])
        if len(candidates) != 1:
            raise DataError(
                f"{where}: column {src!r} given for {out!r} is not in the {what}"
                + (" (it matches several columns; give the exact name)" if candidates else "")
            )
        chosen[out] = candidates[0]

    for out, spellings in SPELLINGS.items():
        if out in chosen:
            continue
        candidates = [f for s in spellings for f in lower.get(s, [])]
        if len(candidates) > 1:
            names = " and ".join(map(repr, candidates))
            raise DataError(
                f"{where}: ambiguous {what}: {names} could each be the {out} column; choose one "
                f"with columns={{{out!r}: {candidates[0]!r}}} (CLI: --columns {out}=NAME)"
            )
        if candidates:
            chosen[out] = candidates[0]

    if not columns and ("date" not in chosen or not any(c in chosen for c in REQUIRED[1:])):
        raise DataError(f"{where}: unknown format: {what}; expected one of {known_formats()}")

    name = "long" if "symbol" in chosen else "ohlcv"
    adjusted = [f for s in ADJUSTED_CLOSE for f in lower.get(s, [])]
    adjusted = [f for f in adjusted if f not in chosen.values()]
    missing = [c for c in REQUIRED if c not in chosen]
    if missing:
        hint = ""
        if "close" in missing and adjusted:
            hint = (
                f"; {adjusted[0]!r} is an adjusted close and is never used as the close "
                f"silently: pass columns={{'close': {adjusted[0]!r}}} to use it"
            )
        raise DataError(
            f"{where}: missing required column(s) {', '.join(map(repr, missing))} for the "
            f"{name} format ({what}){hint}; {_MAPPING_HINT}"
        )

    notes: tuple[str, ...] = ()
    if adjusted:
        notes = (
            f"close is {chosen['close']!r}; {adjusted[0]!r} is not used "
            f"(columns={{'close': {adjusted[0]!r}}} would use it)",
        )
    used = set(chosen.values())
    return Layout(
        format=name,
        date=chosen["date"],
        columns={c: chosen[c] for c in VALUE_COLUMNS if c in chosen},
        symbol=chosen.get("symbol"),
        ignored=tuple(f for f in fields if f not in used),
        notes=notes,
    )
