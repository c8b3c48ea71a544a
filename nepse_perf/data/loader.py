"""Load NEPSE daily price CSV files into one long, validated price frame.

Two source formats are recognised from the header line (see ``data/nepse/SOURCE.md``):

* ``nepal-market-data`` per-symbol files:
  ``published_date,open,high,low,close,per_change,traded_quantity,traded_amount,status``;
* the ``capstone2020`` index history:
  ``S.N,Date,Open,High,Low,Close,Absolute,Percentage,Volume,Trunover`` (newest first, line 2
  blank, ``%`` text with non-breaking spaces, literal ``nan``).

The symbol of a file is its stem (``ADBL.csv`` -> ``ADBL``, ``nepse_index.csv`` ->
``nepse_index``).  Nothing here hard-codes a symbol list, assumes a weekday calendar, prints or
warns.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from .corporate_actions import adjust_for_gaps
from .errors import DataError
from .quality import check_prices
from .schema import OHLC, PRICE_COLUMNS, VALUE_COLUMNS

__all__ = ["load_prices"]

#: Spellings of "no value" in numeric fields (the capstone file writes a literal ``nan``).
_NA_VALUES = ["", "nan", "NaN"]

#: A check's bad-row mask and a function building the message for bad row ``i``.
_Problem = tuple[np.ndarray, Callable[[int], str]]

#: Line breaks as pandas' C parser sees them.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: How many problems a message quotes before summarising the rest.
_QUOTE = 3


@dataclass(frozen=True)
class _Format:
    """One source layout: its canonical header and the source column of each output column."""

    name: str
    header: tuple[str, ...]
    date: str
    columns: Mapping[str, str]  # output column -> source column

    def matches(self, fields: list[str]) -> bool:
        # A file belongs to a format when its header starts like the canonical one; a missing
        # column later in the header is then reported as such, not as an unknown format.
        return fields[: len(self._signature)] == list(self._signature)

    @property
    def _signature(self) -> tuple[str, ...]:
        return self.header[:1] if self.header[0] == "published_date" else self.header[:2]

    @property
    def required(self) -> tuple[str, ...]:
        return (self.date, *self.columns.values())


_FORMATS: tuple[_Format, ...] = (
    _Format(
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
    _Format(
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


@dataclass
class _Parsed:
    """One file's validated rows, ascending by date, duplicates dropped."""

    path: Path
    symbol: str
    dates: np.ndarray  # datetime64[ns]
    values: dict[str, np.ndarray]  # output column -> float64
    dropped: int


def load_prices(
    path: str | PathLike[str], *, adjust: bool = False, strict: bool = False
) -> pd.DataFrame:
    """Load one NEPSE price CSV, or every ``*.csv`` directly inside a directory, as a long frame.

    Returns the columns of :data:`PRICE_COLUMNS` in order: ``symbol`` (Categorical, sorted
    categories; the file stem), ``date`` (``datetime64[ns]`` session date, Gregorian), then
    float64 ``open, high, low, close`` (NPR per share; index points for an index file),
    ``volume`` (shares; NaN where the source leaves it blank, e.g. every ``NEPSE_INDEX`` row or
    the capstone ``nan``) and ``turnover`` (NPR; ``0.0`` is kept as published: it means "not
    recorded", e.g. all stock rows before about March 2011).  Rows are sorted by symbol, then
    date, with a fresh RangeIndex; no calendar is assumed, so missing sessions stay missing.
    A directory is read non-recursively; non-CSV files (``LICENSE``) and hidden files are
    ignored.  Structural problems raise :class:`DataError` naming the file and 1-based file
    line (header = line 1).  Rows repeating a date with identical values are dropped and
    counted in ``attrs["dropped_duplicates"]`` (int) and ``attrs["dropped_duplicates_by_symbol"]``
    (symbol -> int, every symbol listed).  ``strict=True`` raises :class:`DataError` if
    :func:`check_prices` reports any anomaly; ``adjust=True`` back-adjusts prices for
    corporate-action gaps with :func:`adjust_for_gaps` (after the strict check).  A path that
    does not exist raises ``FileNotFoundError``.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(
            (p for p in root.iterdir() if _is_csv(p)),
            key=lambda p: (p.stem, p.name),
        )
        if not files:
            raise DataError(f"{root}: directory holds no .csv files")
        for a, b in itertools.pairwise(files):
            if a.stem == b.stem:
                raise DataError(f"{root}: files {a.name} and {b.name} give the same symbol")
    elif root.exists():
        files = [root]
    else:
        raise FileNotFoundError(f"{root}: no such file or directory")

    parsed = [_parse_file(p) for p in files]
    prices = _assemble(parsed)
    if strict:
        _raise_on_anomalies(prices, {p.symbol: p.path for p in parsed})
    if adjust:
        prices = adjust_for_gaps(prices)
    return prices


def _is_csv(p: Path) -> bool:
    return p.suffix.lower() == ".csv" and not p.name.startswith(".") and p.is_file()


def _assemble(parsed: list[_Parsed]) -> pd.DataFrame:
    """Concatenate per-file results (already in symbol order) into the output frame."""
    categories = [p.symbol for p in parsed]
    lengths = np.array([len(p.dates) for p in parsed], dtype=np.int64)
    codes = np.repeat(np.arange(len(parsed), dtype=np.int64), lengths)
    data: dict[str, object] = {
        "symbol": pd.Categorical.from_codes(codes, categories=categories),
        "date": np.concatenate([p.dates for p in parsed]),
    }
    for col in VALUE_COLUMNS:
        data[col] = np.concatenate([p.values[col] for p in parsed])
    prices = pd.DataFrame(data, columns=list(PRICE_COLUMNS))
    by_symbol = {p.symbol: p.dropped for p in parsed}
    prices.attrs["dropped_duplicates"] = int(sum(by_symbol.values()))
    prices.attrs["dropped_duplicates_by_symbol"] = by_symbol
    return prices


def _raise_on_anomalies(prices: pd.DataFrame, files: Mapping[str, Path]) -> None:
    anomalies = check_prices(prices)
    if anomalies.empty:
        return
    first = anomalies.head(_QUOTE)
    quoted = "; ".join(
        f"{s} {d:%Y-%m-%d} {k}"
        for s, d, k in zip(first["symbol"], first["date"], first["kind"], strict=True)
    )
    symbols = list(dict.fromkeys(str(s) for s in anomalies["symbol"]))
    where = ", ".join(str(files[s]) for s in symbols[:_QUOTE])
    if len(symbols) > _QUOTE:
        where += f" and {len(symbols) - _QUOTE} more file(s)"
    more = f" and {len(anomalies) - _QUOTE} more" if len(anomalies) > _QUOTE else ""
    raise DataError(
        f"{where}: {len(anomalies)} price anomalies (strict=True): {quoted}{more}; "
        "see check_prices()"
    )


# --------------------------------------------------------------------------- one file


def _read_text(path: Path) -> tuple[bytes, str]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{name}: cannot read file: {exc.strerror or exc}") from exc
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise DataError(f"{name}, line {line}: binary file (NUL byte), not CSV text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{name}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)"
        ) from exc
    if not text.strip():
        raise DataError(f"{name}: empty file")
    return raw, text


def _detect_format(name: str, text: str) -> tuple[_Format, list[str]]:
    header = _LINE_BREAK.split(text, maxsplit=1)[0].removeprefix("\ufeff")
    fields = [f.strip() for f in header.split(",")]
    fmt = next((f for f in _FORMATS if f.matches(fields)), None)
    if fmt is None:
        expected = "; ".join(f"{f.name}: {','.join(f.header)!r}" for f in _FORMATS)
        raise DataError(
            f"{name}, line 1: unknown format: header {header[:200]!r}; expected one of {expected}"
        )
    seen: set[str] = set()
    for f in fields:
        if f in seen:
            raise DataError(f"{name}, line 1: duplicate column {f!r} in the header")
        seen.add(f)
    missing = [c for c in fmt.required if c not in seen]
    if missing:
        raise DataError(
            f"{name}, line 1: missing required column(s) {', '.join(map(repr, missing))} "
            f"for the {fmt.name} format (expected header {','.join(fmt.header)!r})"
        )
    return fmt, fields


_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_rows(name: str, raw: bytes, fields: list[str], fmt: _Format) -> pd.DataFrame:
    try:
        return pd.read_csv(
            io.BytesIO(raw),
            header=None,
            skiprows=1,
            names=fields,
            dtype={fmt.date: str},
            keep_default_na=False,
            na_values=_NA_VALUES,
            skip_blank_lines=False,
            low_memory=False,
            encoding="utf-8",
            engine="c",
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name}: header only, no data rows") from exc
    except pd.errors.ParserError as exc:
        m = _FIELDS_RE.search(str(exc))
        if m:
            expected, line, saw = m.groups()
            raise DataError(
                f"{name}, line {line}: malformed row: {saw} fields, the header has {expected}"
            ) from exc
        raise DataError(f"{name}: malformed CSV: {exc}") from exc


def _blank_rows(rows: pd.DataFrame, fmt: _Format, text: str) -> np.ndarray | None:
    """Mask of rows that are blank lines (e.g. the capstone file's line 2), or None."""
    date = rows[fmt.date]
    candidates = date.isna().to_numpy()
    if not candidates.any() and not date.str.startswith((" ", "\t", "\r")).any():
        return None
    candidates = candidates | (date.str.strip().fillna("") == "").to_numpy()
    idx = np.flatnonzero(candidates)
    if len(idx) == 0:
        return None
    lines = _LINE_BREAK.split(text)
    blank = np.zeros(len(rows), dtype=bool)
    for i in idx:
        # Row i sits on file line i + 2, which is lines[i + 1].
        if i + 1 < len(lines) and not lines[i + 1].strip():
            blank[i] = True
    return blank if blank.any() else None


def _numeric(series: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """Float64 values of a column and a mask of non-numeric text (None when all numeric)."""
    if series.dtype.kind in "iuf":
        return series.to_numpy(dtype=np.float64), None
    text = series.astype("str")
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(values) & text.notna().to_numpy()
    return values, (bad if bad.any() else None)


def _parse_file(path: Path) -> _Parsed:
    name = str(path)
    raw, text = _read_text(path)
    fmt, fields = _detect_format(name, text)
    rows = _read_rows(name, raw, fields, fmt)
    lines = np.arange(2, len(rows) + 2, dtype=np.int64)  # file line of each row

    blank = _blank_rows(rows, fmt, text) if len(rows) else None
    if blank is not None:
        keep = ~blank
        rows = rows.loc[keep]
        lines = lines[keep]
    if len(rows) == 0:
        raise DataError(f"{name}: header only, no data rows")

    problems: list[_Problem] = []

    date_text = rows[fmt.date]
    dates = (
        pd.to_datetime(date_text, format="%Y-%m-%d", errors="coerce")
        .to_numpy()
        .astype("datetime64[ns]")
    )
    bad_date = np.isnat(dates)
    if bad_date.any():
        date_raw = date_text.to_numpy(dtype=object, na_value=None)

        def date_msg(i: int) -> str:
            value = date_raw[i]
            if value is None or not str(value).strip():
                return f"missing date ({fmt.date!r} is blank)"
            return f"unparseable date {value!r} (expected YYYY-MM-DD)"

        problems.append((bad_date, date_msg))

    values: dict[str, np.ndarray] = {}
    for out, src in fmt.columns.items():
        column = rows[src]
        vals, non_numeric = _numeric(column)
        values[out] = vals
        raw_col = column.to_numpy(dtype=object, na_value=None)
        if non_numeric is not None:
            problems.append(
                (non_numeric, lambda i, s=src, r=raw_col: f"non-numeric {s} {str(r[i])!r}")
            )
        if out in OHLC:
            missing = np.isnan(vals)
            if non_numeric is not None:
                missing &= ~non_numeric
            if missing.any():
                problems.append((missing, lambda i, s=src: f"missing {s} (blank price)"))
            bad = np.isinf(vals) | (vals <= 0)  # NaN compares False
            if bad.any():
                problems.append((bad, lambda i, s=src, r=raw_col: _bad_number(s, r[i], "price")))
        else:
            bad = np.isinf(vals) | (vals < 0)
            if bad.any():
                problems.append((bad, lambda i, s=src, r=raw_col: _bad_number(s, r[i], "count")))
    if problems:
        _raise_first(name, lines, problems)

    if len(dates) > 1 and not (dates[1:] >= dates[:-1]).all():
        order = np.argsort(dates, kind="stable")
        dates, lines = dates[order], lines[order]
        values = {k: v[order] for k, v in values.items()}

    dropped = 0
    if len(dates) > 1:
        repeat = np.flatnonzero(dates[1:] == dates[:-1]) + 1
        if len(repeat):
            _check_duplicates(name, repeat, dates, lines, values)
            keep = np.ones(len(dates), dtype=bool)
            keep[repeat] = False
            dates, lines = dates[keep], lines[keep]
            values = {k: v[keep] for k, v in values.items()}
            dropped = len(repeat)

    return _Parsed(path=path, symbol=path.stem, dates=dates, values=values, dropped=dropped)


def _bad_number(column: str, raw: object, what: str) -> str:
    value = float(raw)  # type: ignore[arg-type]
    if np.isinf(value):
        return f"non-finite {column} {raw}"
    if what == "price":
        return f"non-positive price {column} {raw} (prices must be > 0)"
    return f"negative {column} {raw}"


def _raise_first(name: str, lines: np.ndarray, problems: list[_Problem]) -> None:
    """Raise a DataError for the problem on the earliest file line; count the other bad rows."""
    any_bad = np.zeros(len(lines), dtype=bool)
    for mask, _ in problems:
        any_bad |= mask
    bad_rows = np.flatnonzero(any_bad)
    first = bad_rows[np.argmin(lines[bad_rows])]
    message = next(build(first) for mask, build in problems if mask[first])
    more = len(bad_rows) - 1
    suffix = f" ({more} more invalid row{'s' if more > 1 else ''} in this file)" if more else ""
    raise DataError(f"{name}, line {lines[first]}: {message}{suffix}")


def _check_duplicates(
    name: str,
    repeat: np.ndarray,
    dates: np.ndarray,
    lines: np.ndarray,
    values: dict[str, np.ndarray],
) -> None:
    """Raise if a repeated date (rows ``repeat`` vs the row before) carries different values."""
    differs = np.zeros(len(repeat), dtype=bool)
    for v in values.values():
        a, b = v[repeat], v[repeat - 1]
        differs |= ~((a == b) | (np.isnan(a) & np.isnan(b)))
    if not differs.any():
        return
    conflicts = repeat[differs]
    i = conflicts[np.argmin(np.maximum(lines[conflicts], lines[conflicts - 1]))]
    later, earlier = max(lines[i], lines[i - 1]), min(lines[i], lines[i - 1])
    col = next(
        c
        for c, v in values.items()
        if not (v[i] == v[i - 1] or (np.isnan(v[i]) and np.isnan(v[i - 1])))
    )
    first_val, second_val = (
        (values[col][i - 1], values[col][i])
        if lines[i - 1] < lines[i]
        else (values[col][i], values[col][i - 1])
    )
    day = np.datetime_as_string(dates[i], unit="D")
    more = len(conflicts) - 1
    suffix = f" ({more} more conflicting date{'s' if more > 1 else ''})" if more else ""
    raise DataError(
        f"{name}, line {later}: date {day} repeats line {earlier} with different values "
        f"({col} {second_val:g} vs {first_val:g}){suffix}"
    )
