"""Load daily price files (CSV or Parquet) into one long, validated price frame.

The layout of each file is recognised from its header line (CSV) or column names (Parquet);
:mod:`nepse_perf.data.formats` lists them:

* ``nepal-market-data`` per-symbol files:
  ``published_date,open,high,low,close,per_change,traded_quantity,traded_amount,status``;
* the ``capstone2020`` index history:
  ``S.N,Date,Open,High,Low,Close,Absolute,Percentage,Volume,Trunover`` (newest first, line 2
  blank, ``%`` text with non-breaking spaces, literal ``nan``), both as described in
  ``data/nepse/SOURCE.md``;
* ``long``, the loader's own output (``symbol,date,open,high,low,close,volume[,turnover]``),
  as written by ``to_csv``/``to_parquet``, one file or several (a symbol may span files);
* ``ohlcv``, one symbol per file (``Date,Open,High,Low,Close[,Volume]``, any letter case);
* anything else through an explicit ``columns`` mapping (and ``date_format``).

Without a symbol column the symbol of a file is its stem (``ADBL.csv`` -> ``ADBL``,
``nepse_index.csv`` -> ``nepse_index``).  Every row of every format goes through the same
checks.  Nothing here hard-codes a symbol list, assumes a weekday calendar, prints or warns.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nepse_perf.data.corporate_actions import adjust_for_gaps
from nepse_perf.data.errors import DataError
from nepse_perf.data.formats import Layout, check_column_mapping, detect_layout
from nepse_perf.data.quality import check_prices
from nepse_perf.data.schema import OHLC, PRICE_COLUMNS, VALUE_COLUMNS

__all__ = ["load_prices", "prices_from"]

#: Spellings of "no value" in numeric fields (the capstone file writes a literal ``nan``).
_NA_VALUES = ["", "nan", "NaN"]

#: A check's bad-row mask and a function building the message for bad row ``i``.
_Problem = tuple[np.ndarray, Callable[[int], str]]

#: Line breaks as pandas' C parser sees them.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: How many problems a message quotes before summarising the rest.
_QUOTE = 3

#: The first (and last) four bytes of every Parquet file.
_PARQUET_MAGIC = b"PAR1"
_PARQUET_SUFFIXES = (".parquet", ".pq")
_DATA_SUFFIXES = (".csv", *_PARQUET_SUFFIXES)

#: The default (and the sample's) date layout.
_ISO_DATE = "%Y-%m-%d"

_NS_PER_DAY = 86_400 * 10**9


@dataclass
class _Table:
    """One file's rows as read, before any check: ``where`` holds each row's line or row."""

    path: Path
    layout: Layout
    rows: pd.DataFrame
    where: np.ndarray  # int64: file line (CSV, header = line 1) or data row (Parquet, 1-based)
    unit: str  # "line" or "row"


@dataclass
class _Parsed:
    """One symbol's validated rows from one file (or merged files), ascending by date."""

    path: Path
    symbol: str
    dates: np.ndarray  # datetime64[ns]
    values: dict[str, np.ndarray]  # output column -> float64
    dropped: int
    where: np.ndarray
    unit: str
    from_column: bool  # symbol read from a column (long format), not the file stem


def load_prices(
    path: str | PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    date_format: str | None = None,
    adjust: bool = False,
    strict: bool = False,
) -> pd.DataFrame:
    """Load one price file, or every ``.csv``/``.parquet``/``.pq`` file of a directory, as one frame.

    Returns the columns of :data:`PRICE_COLUMNS` in order: ``symbol`` (Categorical, sorted
    categories; a ``symbol`` column or else the file stem), ``date`` (``datetime64[ns]``
    session date, Gregorian), then float64 ``open, high, low, close`` (NPR per share; index
    points for an index file), ``volume`` (shares; NaN where the source leaves it blank or has
    no volume column, e.g. every ``NEPSE_INDEX`` row or the capstone ``nan``) and ``turnover``
    (NPR; NaN without a turnover column; ``0.0`` is kept as published: it means "not
    recorded", e.g. all stock rows before about March 2011).  Rows are sorted by symbol, then
    date, with a fresh RangeIndex; no calendar is assumed, so missing sessions stay missing.
    The layout of each file (CSV text, or Parquet by its magic bytes) is recognised from its
    column names (:mod:`nepse_perf.data.formats`): the two source formats of the sample, the
    ``long`` format this function returns, and per-symbol ``ohlcv`` files; ``columns`` maps
    output columns to source column names (``{"close": "LTP", "date": "Day"}``) for anything
    else, and ``date_format`` (a ``strftime`` pattern such as ``"%d/%m/%Y"``; default ISO
    ``YYYY-MM-DD``) reads text dates in another layout.  A date must not carry a time of day.
    A directory is read non-recursively; other files (``LICENSE``) and hidden or ``_``-prefixed
    files are ignored; a symbol may span several ``long`` files but not repeat a date across
    them.  Structural problems raise :class:`DataError` naming the file and the 1-based file
    line (CSV, header = line 1) or data row (Parquet).  Rows repeating a symbol's date with
    identical values are dropped and counted in ``attrs["dropped_duplicates"]`` (int) and
    ``attrs["dropped_duplicates_by_symbol"]`` (symbol -> int, every symbol listed);
    ``attrs["formats"]``, ``attrs["columns_used"]`` (output column -> source columns,
    ``"<file stem>"``/``"<absent>"`` where none), ``attrs["columns_ignored"]`` and
    ``attrs["load_notes"]`` (e.g. which column was taken as the close beside ``Adj Close``)
    say how the files were read.  ``strict=True`` raises :class:`DataError` if
    :func:`check_prices` reports any anomaly; ``adjust=True`` back-adjusts prices for
    corporate-action gaps with :func:`adjust_for_gaps` (after the strict check).  A path that
    does not exist raises ``FileNotFoundError``; a bad ``columns`` or ``date_format`` argument
    raises ``ValueError`` (or ``TypeError``).
    """
    mapping = check_column_mapping(columns) if columns is not None else None
    if date_format is not None and (not isinstance(date_format, str) or not date_format.strip()):
        raise ValueError(f"date_format must be a non-empty strftime pattern, got {date_format!r}")
    root = Path(path)
    if root.is_dir():
        files = sorted(
            (p for p in root.iterdir() if _is_data_file(p)), key=lambda p: (p.stem, p.name)
        )
        if not files:
            raise DataError(f"{root}: directory holds no .csv files and no .parquet/.pq files")
    elif root.exists():
        files = [root]
    else:
        raise FileNotFoundError(f"{root}: no such file or directory")

    layouts: list[tuple[Path, Layout]] = []
    pieces: list[_Parsed] = []
    for p in files:  # one file's raw rows at a time
        table = _read_file(p, mapping)
        layouts.append((p, table.layout))
        pieces += _parse_table(table, date_format)
        del table
    parsed = _merge(root, pieces)
    prices = _assemble(parsed, layouts)
    if strict:
        _raise_on_anomalies(prices, {p.symbol: p.path for p in parsed})
    if adjust:
        prices = adjust_for_gaps(prices)
    return prices


def prices_from(source: str | PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """``source`` itself if it is a price frame, else :func:`load_prices` of it as a path.

    For the functions that take either (the Ray and Spark engines): a frame is passed
    through as it is, a ``str`` or ``os.PathLike`` is loaded with the default options (a bad
    file raises :class:`DataError` naming it), anything else raises ``TypeError``.
    """
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, (str, PathLike)):
        return load_prices(source)
    raise TypeError(f"expected a path or a price DataFrame, got {type(source).__name__}")


def _is_data_file(p: Path) -> bool:
    return p.suffix.lower() in _DATA_SUFFIXES and not p.name.startswith((".", "_")) and p.is_file()


def _merge(root: Path, pieces: list[_Parsed]) -> list[_Parsed]:
    """One piece per symbol, in symbol order; a symbol may span several long-format files."""
    by_symbol: dict[str, list[_Parsed]] = {}
    for piece in pieces:
        by_symbol.setdefault(piece.symbol, []).append(piece)
    merged = []
    for symbol in sorted(by_symbol):
        group = by_symbol[symbol]
        if len(group) == 1:
            merged.append(group[0])
            continue
        if not all(p.from_column for p in group):
            a, b = _two_files(group)
            raise DataError(f"{root}: files {a.name} and {b.name} give the same symbol {symbol!r}")
        merged.append(_merge_files(symbol, group))
    return merged


def _two_files(group: list[_Parsed]) -> tuple[Path, Path]:
    """Two files of ``group``, a stem-named one first."""
    ordered = sorted(group, key=lambda p: (p.from_column, p.path.name))
    return ordered[0].path, ordered[1].path


def _merge_files(symbol: str, group: list[_Parsed]) -> _Parsed:
    """Concatenate one symbol's rows from several long-format files; no date may repeat."""
    dates = np.concatenate([p.dates for p in group])
    origin = np.repeat(np.arange(len(group)), [len(p.dates) for p in group])
    where = np.concatenate([p.where for p in group])
    order = np.argsort(dates, kind="stable")
    dates, origin, where = dates[order], origin[order], where[order]
    repeat = np.flatnonzero(dates[1:] == dates[:-1]) + 1
    if len(repeat):
        i = repeat[0]
        a, b = group[origin[i - 1]], group[origin[i]]
        day = np.datetime_as_string(dates[i], unit="D")
        raise DataError(
            f"{b.path}, {b.unit} {where[i]}: date {day} of {symbol} is also in {a.path}, "
            f"{a.unit} {where[i - 1]} ({len(repeat)} date(s) of {symbol} in more than one file)"
        )
    values = {c: np.concatenate([p.values[c] for p in group])[order] for c in VALUE_COLUMNS}
    return _Parsed(
        path=group[0].path,
        symbol=symbol,
        dates=dates,
        values=values,
        dropped=sum(p.dropped for p in group),
        where=where,
        unit=group[0].unit,
        from_column=True,
    )


def _assemble(parsed: list[_Parsed], layouts: list[tuple[Path, Layout]]) -> pd.DataFrame:
    """Concatenate per-symbol results (already in symbol order) into the output frame."""
    categories = [p.symbol for p in parsed]
    lengths = np.array([len(p.dates) for p in parsed], dtype=np.int64)
    codes = np.repeat(np.arange(len(parsed), dtype=np.int64), lengths)
    # The float columns go straight into one (column, row) block, the layout pandas would
    # consolidate them into anyway, so the values are copied once, not twice.
    block = np.empty((len(VALUE_COLUMNS), int(lengths.sum())), dtype=np.float64)
    for k, col in enumerate(VALUE_COLUMNS):
        np.concatenate([p.values[col] for p in parsed], out=block[k])
    prices = pd.DataFrame(block.T, columns=list(VALUE_COLUMNS), copy=False)
    prices.insert(0, "symbol", pd.Categorical.from_codes(codes, categories=categories))
    prices.insert(1, "date", np.concatenate([p.dates for p in parsed]))
    by_symbol = {p.symbol: p.dropped for p in parsed}
    prices.attrs["dropped_duplicates"] = int(sum(by_symbol.values()))
    prices.attrs["dropped_duplicates_by_symbol"] = by_symbol
    _describe_sources(prices.attrs, layouts)
    return prices


def _describe_sources(attrs: dict, layouts: list[tuple[Path, Layout]]) -> None:
    """Record how the files were read: formats, source columns, ignored columns, notes."""
    used: dict[str, set[str]] = {c: set() for c in PRICE_COLUMNS}
    ignored: set[str] = set()
    notes: dict[str, list[Path]] = {}
    for path, layout in layouts:
        for out, src in layout.used.items():
            used[out].add(src if src is not None else _NO_SOURCE[out == "symbol"])
        ignored.update(layout.ignored)
        for note in layout.notes:
            notes.setdefault(note, []).append(path)
    attrs["formats"] = sorted({layout.format for _, layout in layouts})
    attrs["columns_used"] = {c: sorted(v) for c, v in used.items()}
    attrs["columns_ignored"] = sorted(ignored)
    attrs["load_notes"] = [f"{_some_files(paths)}: {note}" for note, paths in notes.items()]


#: How ``attrs["columns_used"]`` names a column without a source (index: is it ``symbol``).
_NO_SOURCE = ("<absent>", "<file stem>")


def _some_files(paths: list[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:_QUOTE])
    return shown + (f" and {len(paths) - _QUOTE} more file(s)" if len(paths) > _QUOTE else "")


def _raise_on_anomalies(prices: pd.DataFrame, files: Mapping[str, Path]) -> None:
    anomalies = check_prices(prices)
    if anomalies.empty:
        return
    first = anomalies.head(_QUOTE)
    quoted = "; ".join(
        f"{s} {d:%Y-%m-%d} {k}"
        for s, d, k in zip(first["symbol"], first["date"], first["kind"], strict=True)
    )
    paths = list(dict.fromkeys(str(files[str(s)]) for s in anomalies["symbol"]))
    where = ", ".join(paths[:_QUOTE])
    if len(paths) > _QUOTE:
        where += f" and {len(paths) - _QUOTE} more file(s)"
    more = f" and {len(anomalies) - _QUOTE} more" if len(anomalies) > _QUOTE else ""
    raise DataError(
        f"{where}: {len(anomalies)} price anomalies (strict=True): {quoted}{more}; "
        "see check_prices()"
    )


# --------------------------------------------------------------------------- reading one file


def _read_file(path: Path, columns: Mapping[str, str] | None) -> _Table:
    """Read one file, CSV text or Parquet (by its magic bytes), and recognise its layout."""
    name = str(path)
    try:
        with path.open("rb") as fh:
            magic = fh.read(len(_PARQUET_MAGIC))
            if magic == _PARQUET_MAGIC:
                return _read_parquet(path, columns)
            raw = magic + fh.read()
    except OSError as exc:
        raise DataError(f"{name}: cannot read file: {exc.strerror or exc}") from exc
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        if not raw.strip():
            raise DataError(f"{name}: empty file")
        raise DataError(f"{name}: not a Parquet file (it does not start with the PAR1 magic bytes)")
    return _read_csv(path, raw, columns)


def _read_parquet(path: Path, columns: Mapping[str, str] | None) -> _Table:
    name = str(path)
    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{name}: unreadable Parquet file: {exc}") from exc
    # pandas stores a non-default index as "__index_level_0__": the index, not data.
    fields = [n for n in names if not re.fullmatch(r"__index_level_\d+__", n)]
    layout = detect_layout(fields, name, f"columns {fields!r}", columns)
    needed = list(dict.fromkeys(c for c in layout.used.values() if c is not None))
    try:
        table = pf.read(columns=needed, use_pandas_metadata=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{name}: unreadable Parquet file: {exc}") from exc
    if table.num_rows == 0:
        raise DataError(f"{name}: no data rows")
    rows = table.to_pandas(date_as_object=False)
    where = np.arange(1, len(rows) + 1, dtype=np.int64)
    return _Table(path=path, layout=layout, rows=rows, where=where, unit="row")


def _read_csv(path: Path, raw: bytes, columns: Mapping[str, str] | None) -> _Table:
    name = str(path)
    text = _decode(name, raw)
    header = _LINE_BREAK.split(text, maxsplit=1)[0].removeprefix("\ufeff")
    fields = [f.strip() for f in next(csv.reader([header]), [""])]
    layout = detect_layout(fields, f"{name}, line 1", f"header {header[:200]!r}", columns)
    rows = _read_rows(name, raw, fields, layout)
    lines = np.arange(2, len(rows) + 2, dtype=np.int64)  # file line of each row
    blank = _blank_rows(rows, layout, text) if len(rows) else None
    if blank is not None:
        keep = ~blank
        rows = rows.loc[keep]
        lines = lines[keep]
    if len(rows) == 0:
        raise DataError(f"{name}: header only, no data rows")
    return _Table(path=path, layout=layout, rows=rows, where=lines, unit="line")


def _decode(name: str, raw: bytes) -> str:
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
    return text


_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_rows(name: str, raw: bytes, fields: list[str], layout: Layout) -> pd.DataFrame:
    dtype = {layout.date: str}
    na_values: list[str] | dict[str, list[str]] = _NA_VALUES
    if layout.symbol is not None:
        # A symbol is text as written: "NA" or "nan" could be a ticker, and "" is reported.
        dtype[layout.symbol] = str
        na_values = {f: _NA_VALUES for f in fields if f != layout.symbol}
    try:
        return pd.read_csv(
            io.BytesIO(raw),
            header=None,
            skiprows=1,
            names=fields,
            dtype=dtype,
            keep_default_na=False,
            na_values=na_values,
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


def _blank_rows(rows: pd.DataFrame, layout: Layout, text: str) -> np.ndarray | None:
    """Mask of rows that are blank lines (e.g. the capstone file's line 2), or None."""
    date = rows[layout.date]
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


# --------------------------------------------------------------------------- checking one file


def _numeric(series: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """Float64 values of a column and a mask of non-numeric text (None when all numeric)."""
    if series.dtype.kind in "iuf":
        if isinstance(series.dtype, np.dtype):
            return series.to_numpy(dtype=np.float64), None
        return series.to_numpy(dtype=np.float64, na_value=np.nan), None
    text = series.astype("str")
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(values) & text.notna().to_numpy()
    return values, (bad if bad.any() else None)


def _raw(column: pd.Series) -> Callable[[int], object]:
    """Row i's value as read (for messages); the object array is built on first use only."""
    cache: list[np.ndarray] = []

    def get(i: int) -> object:
        if not cache:
            cache.append(column.to_numpy(dtype=object, na_value=None))
        return cache[0][i]

    return get


def _parse_dates(
    name: str, column: pd.Series, source: str, date_format: str | None
) -> tuple[np.ndarray, list[_Problem]]:
    """Session dates (datetime64[ns], NaT where bad) and the problems found in ``column``."""
    raw = _raw(column)
    timed = date_format is not None
    if column.dtype.kind == "M":  # typed timestamps (Parquet): wall-clock time where zoned
        timed = True
        parsed = column.dt.tz_localize(None) if column.dt.tz is not None else column
        expected = "a date"
    elif column.dtype.kind in "OSU" or isinstance(column.dtype, pd.StringDtype):
        fmt = date_format or _ISO_DATE
        expected = "YYYY-MM-DD" if date_format is None else f"date_format {date_format!r}"
        try:
            parsed = pd.to_datetime(column, format=fmt, errors="coerce")
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"{name}: cannot read the dates of column {source!r} with {expected}: {exc}"
            ) from exc
        if parsed.dt.tz is not None:
            parsed = parsed.dt.tz_localize(None)
    else:
        raise DataError(
            f"{name}: column {source!r} holds {column.dtype} values, not dates "
            "(text such as 2020-01-31, or a Parquet date/timestamp column)"
        )
    try:
        dates = parsed.to_numpy().astype("datetime64[ns]")
    except (ValueError, OverflowError) as exc:
        raise DataError(f"{name}: column {source!r} holds a date out of range: {exc}") from exc
    problems: list[_Problem] = []
    bad = np.isnat(dates)
    if bad.any():

        def date_msg(i: int) -> str:
            value = raw(i)
            if value is None or pd.isna(value) or not str(value).strip():
                return f"missing date ({source!r} is blank)"
            return f"unparseable date {value!r} (expected {expected})"

        problems.append((bad, date_msg))
    if timed:
        has_time = ~bad & (dates.view(np.int64) % _NS_PER_DAY != 0)
        if has_time.any():
            problems.append(
                (
                    has_time,
                    lambda i: f"date {str(raw(i))!r} has a time of day (daily sessions expected)",
                )
            )
    return dates, problems


def _parse_symbols(column: pd.Series, source: str) -> tuple[np.ndarray, list[str], list[_Problem]]:
    """Integer codes into the sorted symbol names of ``column``; blank symbols are problems."""
    if isinstance(column.dtype, pd.CategoricalDtype):  # Parquet dictionary: map the codes
        raw_codes = column.cat.codes.to_numpy().astype(np.int64)
        labels = [str(c) for c in column.cat.categories]
        used = np.flatnonzero(np.bincount(raw_codes[raw_codes >= 0], minlength=len(labels)))
        names = sorted({labels[k] for k in used})
        position = {s: k for k, s in enumerate(names)}
        remap = np.full(len(labels) + 1, -1, dtype=np.int64)  # last entry: code -1 stays -1
        remap[used] = [position[labels[k]] for k in used]
        codes = remap[raw_codes]
    else:
        text = column.astype("str")
        codes, uniques = pd.factorize(text, sort=True, use_na_sentinel=True)
        names = [str(u) for u in uniques]
    blank = [k for k, u in enumerate(names) if not u.strip()]
    missing = codes < 0
    if blank:
        missing |= np.isin(codes, blank)
    problems: list[_Problem] = []
    if missing.any():
        problems.append((missing, lambda i: f"missing symbol ({source!r} is blank)"))
    return codes.astype(np.int64), names, problems


@dataclass
class _Rows:
    """One file's checked rows as arrays, in step: dates, file line/row, values, symbol codes."""

    dates: np.ndarray  # datetime64[ns]
    where: np.ndarray
    values: dict[str, np.ndarray]  # output column -> float64
    codes: np.ndarray | None  # index into the file's sorted symbols; None: one symbol (stem)

    def take(self, index: np.ndarray) -> _Rows:
        """The rows ``index`` selects (positions or a boolean mask), in that order."""
        return _Rows(
            dates=self.dates[index],
            where=self.where[index],
            values={k: v[index] for k, v in self.values.items()},
            codes=None if self.codes is None else self.codes[index],
        )


def _parse_table(table: _Table, date_format: str | None) -> list[_Parsed]:
    """Check every row of one file; return one piece per symbol, rows ascending by date."""
    name = str(table.path)
    layout, rows = table.layout, table.rows

    dates, problems = _parse_dates(name, rows[layout.date], layout.date, date_format)
    if layout.symbol is not None:
        codes, symbols, symbol_problems = _parse_symbols(rows[layout.symbol], layout.symbol)
        problems += symbol_problems
    else:
        codes, symbols = None, [table.path.stem]
    values = _parse_values(rows, layout, problems)
    if problems:
        _raise_first(name, table.where, table.unit, problems)

    parsed = _sorted(_Rows(dates, table.where, values, codes))
    parsed, dropped = _drop_repeats(name, table.unit, parsed, symbols, layout)
    return _pieces(table, parsed, symbols, dropped)


def _parse_values(
    rows: pd.DataFrame, layout: Layout, problems: list[_Problem]
) -> dict[str, np.ndarray]:
    """Float64 values of every output value column (NaN where the layout has none).

    Appends to ``problems`` the non-numeric text, missing, non-positive or non-finite prices
    and negative or non-finite counts.
    """
    values: dict[str, np.ndarray] = {}
    for out in VALUE_COLUMNS:
        src = layout.columns.get(out)
        if src is None:
            values[out] = np.full(len(rows), np.nan)
            continue
        column = rows[src]
        vals, non_numeric = _numeric(column)
        values[out] = vals
        raw = _raw(column)
        if non_numeric is not None:
            problems.append((non_numeric, lambda i, s=src, r=raw: f"non-numeric {s} {str(r(i))!r}"))
        if out in OHLC:
            missing = np.isnan(vals)
            if non_numeric is not None:
                missing &= ~non_numeric
            if missing.any():
                problems.append((missing, lambda i, s=src: f"missing {s} (blank price)"))
            bad = np.isinf(vals) | (vals <= 0)  # NaN compares False
            if bad.any():
                problems.append((bad, lambda i, s=src, r=raw: _bad_number(s, r(i), "price")))
        else:
            bad = np.isinf(vals) | (vals < 0)
            if bad.any():
                problems.append((bad, lambda i, s=src, r=raw: _bad_number(s, r(i), "count")))
    return values


def _sorted(rows: _Rows) -> _Rows:
    """``rows`` sorted by (symbol, date), stably; ``rows`` itself when already in order."""
    dates, codes = rows.dates, rows.codes
    if len(dates) < 2:
        return rows
    if codes is None:
        in_order = bool((dates[1:] >= dates[:-1]).all())
    else:
        step = codes[1:] - codes[:-1]
        in_order = bool(((step > 0) | ((step == 0) & (dates[1:] >= dates[:-1]))).all())
    if in_order:
        return rows
    order = np.argsort(dates, kind="stable") if codes is None else np.lexsort((dates, codes))
    return rows.take(order)


def _drop_repeats(
    name: str, unit: str, rows: _Rows, symbols: list[str], layout: Layout
) -> tuple[_Rows, np.ndarray]:
    """Drop the rows repeating the previous row's symbol and date with identical values.

    Returns the rows kept and the count dropped per symbol; a repeat with different values
    raises DataError (:func:`_check_duplicates`). ``rows`` must be sorted.
    """
    dropped = np.zeros(len(symbols), dtype=np.int64)
    dates, codes = rows.dates, rows.codes
    if len(dates) < 2:
        return rows, dropped
    same = dates[1:] == dates[:-1]
    if codes is not None:
        same &= codes[1:] == codes[:-1]
    repeat = np.flatnonzero(same) + 1
    if not len(repeat):
        return rows, dropped
    of = None if codes is None else (lambda i: symbols[codes[i]])
    sources = {out: layout.columns.get(out, out) for out in VALUE_COLUMNS}
    _check_duplicates(name, unit, repeat, dates, rows.where, rows.values, sources, of)
    if codes is None:
        dropped[0] = len(repeat)
    else:
        dropped = np.bincount(codes[repeat], minlength=len(symbols))
    keep = np.ones(len(dates), dtype=bool)
    keep[repeat] = False
    return rows.take(keep), dropped


def _pieces(table: _Table, rows: _Rows, symbols: list[str], dropped: np.ndarray) -> list[_Parsed]:
    """One :class:`_Parsed` per symbol of the sorted, de-duplicated ``rows``."""

    def piece(symbol: str, s: slice, k: int) -> _Parsed:
        return _Parsed(
            path=table.path,
            symbol=symbol,
            dates=rows.dates[s],
            values={c: v[s] for c, v in rows.values.items()},
            dropped=int(dropped[k]),
            where=rows.where[s],
            unit=table.unit,
            from_column=rows.codes is not None,
        )

    if rows.codes is None:
        return [piece(symbols[0], slice(None), 0)]
    bounds = np.searchsorted(rows.codes, np.arange(len(symbols) + 1))
    return [piece(symbols[k], slice(bounds[k], bounds[k + 1]), k) for k in range(len(symbols))]


def _bad_number(column: str, raw: object, what: str) -> str:
    value = float(raw)  # type: ignore[arg-type]
    if np.isinf(value):
        return f"non-finite {column} {raw}"
    if what == "price":
        return f"non-positive price {column} {raw} (prices must be > 0)"
    return f"negative {column} {raw}"


def _raise_first(name: str, where: np.ndarray, unit: str, problems: list[_Problem]) -> None:
    """Raise a DataError for the problem on the earliest line/row; count the other bad rows."""
    any_bad = np.zeros(len(where), dtype=bool)
    for mask, _ in problems:
        any_bad |= mask
    bad_rows = np.flatnonzero(any_bad)
    first = bad_rows[np.argmin(where[bad_rows])]
    message = next(build(first) for mask, build in problems if mask[first])
    more = len(bad_rows) - 1
    suffix = f" ({more} more invalid row{'s' if more > 1 else ''} in this file)" if more else ""
    raise DataError(f"{name}, {unit} {where[first]}: {message}{suffix}")


def _check_duplicates(
    name: str,
    unit: str,
    repeat: np.ndarray,
    dates: np.ndarray,
    where: np.ndarray,
    values: dict[str, np.ndarray],
    sources: Mapping[str, str],
    symbol_of: Callable[[int], str] | None,
) -> None:
    """Raise if a repeated date (rows ``repeat`` vs the row before) carries different values."""
    differs = np.zeros(len(repeat), dtype=bool)
    for v in values.values():
        a, b = v[repeat], v[repeat - 1]
        differs |= ~((a == b) | (np.isnan(a) & np.isnan(b)))
    if not differs.any():
        return
    conflicts = repeat[differs]
    i = conflicts[np.argmin(np.maximum(where[conflicts], where[conflicts - 1]))]
    later, earlier = max(where[i], where[i - 1]), min(where[i], where[i - 1])
    col = next(
        c
        for c, v in values.items()
        if not (v[i] == v[i - 1] or (np.isnan(v[i]) and np.isnan(v[i - 1])))
    )
    first_val, second_val = (
        (values[col][i - 1], values[col][i])
        if where[i - 1] < where[i]
        else (values[col][i], values[col][i - 1])
    )
    day = np.datetime_as_string(dates[i], unit="D")
    of = "" if symbol_of is None else f" of {symbol_of(i)}"
    more = len(conflicts) - 1
    suffix = f" ({more} more conflicting date{'s' if more > 1 else ''})" if more else ""
    raise DataError(
        f"{name}, {unit} {later}: date {day}{of} repeats {unit} {earlier} with different values "
        f"({sources[col]} {second_val:g} vs {first_val:g}){suffix}"
    )
