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

Speed: the stem-named CSV files of one header are parsed together, one ``read_csv`` for up
to :data:`_BATCH_BYTES` of them (the whole 387-file market in one), and checked as one table
whose rows keep their own file and line.  Any error in a batch makes the loader read those
files again one at a time, so a message always names the first bad file and its own line.
"""

from __future__ import annotations

import csv
import io
import os
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
from nepse_perf.data.unpublished import bad_price_note, bar_mask, make_records, sort_records

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

#: CSV files of one header are parsed together up to about this many bytes at a time.
_BATCH_BYTES = 64 * 2**20


class _Lines:
    """The lines of a CSV text (str or UTF-8 bytes), split on first use: ``lines[k]``."""

    def __init__(self, text: str | bytes) -> None:
        self._text: str | bytes | None = text
        self._lines: list[str] = []

    def __getitem__(self, k: int) -> str:
        if self._text is not None:
            text = self._text
            self._lines = _LINE_BREAK.split(
                text.decode("utf-8") if isinstance(text, bytes) else text
            )
            self._text = None
        return self._lines[k]


@dataclass
class _Table:
    """One file's rows as read, before any check: ``where`` holds each row's line or row.

    A *batch* table holds the rows of several stem-named CSV files of one header, parsed in
    one go: ``files`` lists them (in symbol order) and ``file_of_row`` says whose each row is.
    ``lines[src[i]]`` is the text of row ``i`` (CSV only; ``n_fields`` header fields).
    """

    path: Path
    layout: Layout
    rows: pd.DataFrame
    where: np.ndarray  # int64: file line (CSV, header = line 1) or data row (Parquet, 1-based)
    unit: str  # "line" or "row"
    lines: _Lines | None = None
    src: np.ndarray | None = None
    n_fields: int = 0
    files: tuple[Path, ...] = ()
    file_of_row: np.ndarray | None = None

    def path_of(self, i: int) -> Path:
        """The file row ``i`` was read from."""
        return self.files[self.file_of_row[i]] if self.file_of_row is not None else self.path


@dataclass
class _CsvFile:
    """One CSV file read, decoded and its header recognised, before its rows are parsed."""

    path: Path
    raw: bytes
    text: str
    fields: list[str]
    layout: Layout


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
    A directory is read non-recursively, following symbolic links (``MARKET_DIR`` links the
    sample's files; a broken link is a :class:`DataError`); other files (``LICENSE``) and
    hidden or ``_``-prefixed files are ignored; a symbol may span several ``long`` files but
    not repeat a date across them.  Structural problems raise :class:`DataError` naming the
    file and the 1-based file line (CSV, header = line 1) or data row (Parquet).  A price
    that is ``0``, negative or blank was not published (:mod:`nepse_perf.data.unpublished`):
    a bar whose ``high``, ``low`` or ``close`` was not published is dropped (the indicators
    read these three, and a NaN in them would stay in Wilder's ATR for good), a bar whose
    only unpublished price is ``open`` is kept with ``open`` NaN; each such cell is one record
    of ``attrs["bad_prices"]`` (``symbol, date, column, value, action, file, line, where``,
    sorted; ``check_prices`` lists them, ``attrs["load_notes"]`` counts them) and a symbol
    left without a bar is absent from the frame, not from the records; ``strict=True``
    raises :class:`DataError` on the first one instead, naming the file and line.  Rows
    repeating a symbol's date with identical values are dropped and counted in
    ``attrs["dropped_duplicates"]`` (int) and ``attrs["dropped_duplicates_by_symbol"]``
    (symbol -> int, every symbol listed);
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

    try:
        read = _read_all(files, mapping, date_format, strict, batch=True)
    except DataError:
        # Some file of a batch failed: read one file at a time, which raises the first bad
        # file's own error with its own line numbers (or, were the batch wrong, reads them).
        read = _read_all(files, mapping, date_format, strict, batch=False)
    layouts, pieces, records = read
    parsed = [p for p in _merge(root, pieces) if len(p.dates)]  # a symbol may lose every bar
    prices = _assemble(parsed, layouts, records)
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
    """A ``.csv``/``.parquet``/``.pq`` file (or a link to one); a broken link is an error."""
    if p.suffix.lower() not in _DATA_SUFFIXES or p.name.startswith((".", "_")):
        return False
    if p.is_symlink() and not p.exists():
        raise DataError(
            f"{p}: broken symbolic link (to {os.readlink(p)}); the file it names is missing"
        )
    return p.is_file()


_Read = tuple[list[tuple[Path, Layout]], list[_Parsed], list[dict[str, object]]]


def _read_all(
    files: list[Path],
    mapping: Mapping[str, str] | None,
    date_format: str | None,
    strict: bool,
    *,
    batch: bool,
) -> _Read:
    """Each file's layout, the per-symbol pieces and the records of unpublished prices.

    With ``batch``, the stem-named CSV files of one header are parsed together
    (:func:`_batch_table`), about :data:`_BATCH_BYTES` at a time: one parse for the whole
    market instead of one per file. Without it, one file's raw rows at a time.
    """
    layouts: list[tuple[Path, Layout]] = []
    pieces: list[_Parsed] = []
    records: list[dict[str, object]] = []

    def parse(table: _Table) -> None:
        got, found = _parse_table(table, date_format, strict)
        pieces.extend(got)
        records.extend(found)

    groups: dict[tuple[str, ...], list[_CsvFile]] = {}
    size: dict[tuple[str, ...], int] = {}  # bytes held per group
    for p in files:
        item = _open_file(p, mapping)
        layouts.append((p, item.layout))
        if isinstance(item, _Table):
            parse(item)
        elif not (batch and _batchable(item)):
            parse(_csv_table(item))
        else:
            key = tuple(item.fields)
            group = groups.setdefault(key, [])
            group.append(item)
            size[key] = size.get(key, 0) + len(item.raw)
            if size[key] >= _BATCH_BYTES:
                parse(_group_table(group))
                group.clear()
                size[key] = 0
    for group in groups.values():
        if group:
            parse(_group_table(group))
    return layouts, pieces, records


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


def _assemble(
    parsed: list[_Parsed], layouts: list[tuple[Path, Layout]], records: list[dict[str, object]]
) -> pd.DataFrame:
    """Concatenate per-symbol results (already in symbol order) into the output frame."""
    categories = [p.symbol for p in parsed]
    lengths = np.array([len(p.dates) for p in parsed], dtype=np.int64)
    codes = np.repeat(np.arange(len(parsed), dtype=np.int64), lengths)
    # The float columns go straight into one (column, row) block, the layout pandas would
    # consolidate them into anyway, so the values are copied once, not twice.
    block = np.empty((len(VALUE_COLUMNS), int(lengths.sum())), dtype=np.float64)
    dates = np.empty(int(lengths.sum()), dtype="datetime64[ns]")
    if parsed:  # every bar of every file may have been dropped
        for k, col in enumerate(VALUE_COLUMNS):
            np.concatenate([p.values[col] for p in parsed], out=block[k])
        np.concatenate([p.dates for p in parsed], out=dates)
    prices = pd.DataFrame(block.T, columns=list(VALUE_COLUMNS), copy=False)
    prices.insert(0, "symbol", pd.Categorical.from_codes(codes, categories=categories))
    prices.insert(1, "date", dates)
    by_symbol = {p.symbol: p.dropped for p in parsed}
    prices.attrs["dropped_duplicates"] = int(sum(by_symbol.values()))
    prices.attrs["dropped_duplicates_by_symbol"] = by_symbol
    _describe_sources(prices.attrs, layouts)
    prices.attrs["bad_prices"] = sort_records(records)
    note = bad_price_note(records)
    if note is not None:
        files = sorted({Path(str(r["file"])) for r in records})
        prices.attrs["load_notes"].append(f"{_some_files(files)}: {note}")
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


def _open_file(path: Path, columns: Mapping[str, str] | None) -> _Table | _CsvFile:
    """Read one file: Parquet (by its magic bytes) as a table, CSV text with its header known."""
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
    return _open_csv(path, raw, columns)


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


def _open_csv(path: Path, raw: bytes, columns: Mapping[str, str] | None) -> _CsvFile:
    """Decode one CSV file and recognise its layout from the header line (no rows read)."""
    name = str(path)
    text = _decode(name, raw)
    header = _LINE_BREAK.split(text, maxsplit=1)[0].removeprefix("\ufeff")
    fields = [f.strip() for f in next(csv.reader([header]), [""])]
    layout = detect_layout(fields, f"{name}, line 1", f"header {header[:200]!r}", columns)
    return _CsvFile(path=path, raw=raw, text=text, fields=fields, layout=layout)


def _csv_table(f: _CsvFile) -> _Table:
    """One CSV file's rows, its blank lines left out."""
    name = str(f.path)
    rows = _read_rows(name, f.raw, f.fields, f.layout)
    where = np.arange(2, len(rows) + 2, dtype=np.int64)  # file line of each row
    src = where - 1  # file line L is lines[L - 1]
    lines = _Lines(f.text)
    rows, src, where = _without_blank_rows(rows, f.layout, lines, src, where)
    if len(rows) == 0:
        raise DataError(f"{name}: header only, no data rows")
    return _Table(
        path=f.path,
        layout=f.layout,
        rows=rows,
        where=where,
        unit="line",
        lines=lines,
        src=src,
        n_fields=len(f.fields),
    )


def _without_blank_rows(
    rows: pd.DataFrame, layout: Layout, lines: _Lines, src: np.ndarray, *aligned: np.ndarray
) -> tuple:
    """``rows``, ``src`` and the arrays aligned with them, the blank CSV lines left out.

    One filter for a single file's table and a batch's (see :func:`_blank_rows`).
    """
    blank = _blank_rows(rows, layout, lines, src) if len(rows) else None
    if blank is None:
        return (rows, src, *aligned)
    keep = ~blank
    return (rows.loc[keep], src[keep], *(a[keep] for a in aligned))


def _batchable(f: _CsvFile) -> bool:
    """Whether ``f`` can be parsed in a batch: stem-named, and each row one line of text."""
    raw = f.raw
    bare_cr = b"\r" in raw and raw.count(b"\r") != raw.count(b"\r\n")
    return f.layout.symbol is None and b'"' not in raw and not bare_cr


def _group_table(group: list[_CsvFile]) -> _Table:
    """The table of a batch of files: one file's own table, or several parsed together."""
    return _csv_table(group[0]) if len(group) == 1 else _batch_table(group)


def _body(raw: bytes) -> bytes:
    """The lines after a CSV file's header line, ending with a line break."""
    cut = raw.find(b"\n")
    body = raw[cut + 1 :] if cut >= 0 else b""
    return body if not body or body.endswith(b"\n") else body + b"\n"


def _batch_table(group: list[_CsvFile]) -> _Table:
    """The rows of several CSV files of one header, parsed as one text (see :class:`_Table`).

    Every check of a single file's table applies; anything unexpected (rows that do not line
    up with the files' lines, a column not numeric in every file, a file without rows)
    raises DataError, and :func:`load_prices` then reads the files one at a time.
    """
    first = group[0]
    name = f"{first.path} (and {len(group) - 1} more file(s) read together)"
    bodies = [_body(f.raw) for f in group]
    counts = np.array([b.count(b"\n") for b in bodies], dtype=np.int64)
    raw = b"".join(bodies)
    del bodies
    rows = _read_rows(name, raw, first.fields, first.layout, skiprows=0)
    if len(rows) != counts.sum():
        raise DataError(f"{name}: the rows do not line up with the files' lines")
    for src_col in first.layout.columns.values():
        if rows[src_col].dtype.kind not in "iuf":
            raise DataError(f"{name}: column {src_col!r} is not numeric in every file")
    file_of_row = np.repeat(np.arange(len(group), dtype=np.int64), counts)
    src = np.arange(len(rows), dtype=np.int64)  # row i is line i of the joined text
    where = src - np.repeat(np.cumsum(counts) - counts, counts) + 2
    lines = _Lines(raw)
    rows, src, where, file_of_row = _without_blank_rows(
        rows, first.layout, lines, src, where, file_of_row
    )
    if (np.bincount(file_of_row, minlength=len(group)) == 0).any():
        raise DataError(f"{name}: a file has no data rows")
    return _Table(
        path=first.path,
        layout=first.layout,
        rows=rows,
        where=where,
        unit="line",
        lines=lines,
        src=src,
        n_fields=len(first.fields),
        files=tuple(f.path for f in group),
        file_of_row=file_of_row,
    )


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


def _read_rows(
    name: str, raw: bytes, fields: list[str], layout: Layout, skiprows: int = 1
) -> pd.DataFrame:
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
            skiprows=skiprows,
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


def _blank_rows(
    rows: pd.DataFrame, layout: Layout, lines: _Lines, src: np.ndarray
) -> np.ndarray | None:
    """Mask of rows that are blank lines (e.g. the capstone file's line 2), or None.

    Row ``i`` is the text ``lines[src[i]]``.
    """
    date = rows[layout.date]
    candidates = date.isna().to_numpy()
    if not candidates.any() and not date.str.startswith((" ", "\t", "\r")).any():
        return None
    candidates = candidates | (date.str.strip().fillna("") == "").to_numpy()
    idx = np.flatnonzero(candidates)
    if len(idx) == 0:
        return None
    blank = np.zeros(len(rows), dtype=bool)
    for i in idx:
        if not lines[src[i]].strip():
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


def _parse_table(
    table: _Table, date_format: str | None, strict: bool
) -> tuple[list[_Parsed], list[dict[str, object]]]:
    """Check every row of one table; return one piece per symbol, rows ascending by date,
    and the records of the prices that were not published (:func:`_drop_unpublished`)."""
    name = str(table.path)
    layout, rows = table.layout, table.rows

    dates, problems = _parse_dates(name, rows[layout.date], layout.date, date_format)
    if layout.symbol is not None:
        codes, symbols, symbol_problems = _parse_symbols(rows[layout.symbol], layout.symbol)
        problems += symbol_problems
    elif table.file_of_row is not None:  # a batch: each file is a symbol, in symbol order
        codes, symbols = table.file_of_row, [p.stem for p in table.files]
    else:
        codes, symbols = None, [table.path.stem]
    values, unpublished, blank = _parse_values(rows, layout, problems, strict)
    truncated = _truncated_rows(table, blank)
    if truncated is not None:
        problems.insert(0, truncated)
    if problems:
        _raise_first(name, table.where, table.unit, problems)

    checked = _Rows(dates, table.where, values, codes)
    checked, records = _drop_unpublished(table, checked, unpublished, symbols)
    parsed = _sorted(checked)
    parsed, dropped = _drop_repeats(name, table.unit, parsed, symbols, layout)
    return _pieces(table, parsed, symbols, dropped), records


def _parse_values(
    rows: pd.DataFrame, layout: Layout, problems: list[_Problem], strict: bool
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None]:
    """Float64 values of every output value column (NaN where the layout has none).

    Appends to ``problems`` the non-numeric text, non-finite prices and negative or
    non-finite counts, and with ``strict`` the missing (blank) and non-positive prices too.
    Without ``strict`` those are not published: the second item maps each price column to
    its mask of them, for :func:`_drop_unpublished`. The third marks the rows with a blank
    price (None if there is none), which :func:`_truncated_rows` checks.
    """
    values: dict[str, np.ndarray] = {}
    unpublished: dict[str, np.ndarray] = {}
    blank: np.ndarray | None = None
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
        if out not in OHLC:
            bad = np.isinf(vals) | (vals < 0)
            if bad.any():
                problems.append((bad, lambda i, s=src, r=raw: _bad_number(s, r(i), "count")))
            continue
        missing = np.isnan(vals)
        if non_numeric is not None:
            missing &= ~non_numeric
        non_positive = vals <= 0  # NaN compares False
        infinite = np.isinf(vals)
        if missing.any():
            blank = missing if blank is None else blank | missing
        if strict:
            if missing.any():
                problems.append((missing, lambda i, s=src: f"missing {s} (blank price)"))
            bad = infinite | non_positive
        else:
            not_published = (missing | non_positive) & ~infinite
            if not_published.any():
                unpublished[out] = not_published
            bad = infinite
        if bad.any():
            problems.append((bad, lambda i, s=src, r=raw: _bad_number(s, r(i), "price")))
    return values, unpublished, blank


def _truncated_rows(table: _Table, blank: np.ndarray | None) -> _Problem | None:
    """The rows with a blank price that hold fewer fields than the header: cut-off lines.

    A short CSV line reads as NaN in its missing fields, which must not pass for a price
    that was not published. Only the rows in ``blank`` are looked at (None: none).
    """
    if blank is None or table.lines is None or table.src is None:
        return None
    n_fields: dict[int, int] = {}
    for i in np.flatnonzero(blank):
        n = len(next(csv.reader([table.lines[int(table.src[i])]]), []))
        if n < table.n_fields:
            n_fields[int(i)] = n
    if not n_fields:
        return None
    mask = np.zeros(len(blank), dtype=bool)
    mask[list(n_fields)] = True
    header = table.n_fields
    return mask, lambda i: f"malformed row: {n_fields[i]} fields, the header has {header}"


def _drop_unpublished(
    table: _Table, rows: _Rows, masks: Mapping[str, np.ndarray], symbols: list[str]
) -> tuple[_Rows, list[dict[str, object]]]:
    """Apply the loader's policy for prices that were not published to one table's rows.

    ``masks`` maps a price column to its unpublished cells (:func:`_parse_values`). A bar
    with an unpublished high, low or close is dropped; an unpublished open alone is set to
    NaN (:mod:`nepse_perf.data.unpublished`). Returns the rows kept and one record per cell.
    """
    if not masks:
        return rows, []
    drop = bar_mask(masks, len(rows.dates))
    codes = rows.codes
    records = make_records(
        masks,
        drop,
        rows.values,
        rows.dates,
        rows.where,
        table.unit,
        symbol_of=lambda i: symbols[0 if codes is None else int(codes[i])],
        file_of=table.path_of,
    )
    if "open" in masks:
        opens = masks["open"] & ~drop
        if opens.any():
            rows.values["open"] = np.where(opens, np.nan, rows.values["open"])
    return (rows.take(~drop) if drop.any() else rows), records


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
            path=table.files[k] if table.files else table.path,
            symbol=symbol,
            dates=rows.dates[s],
            values={c: v[s] for c, v in rows.values.items()},
            dropped=int(dropped[k]),
            where=rows.where[s],
            unit=table.unit,
            from_column=table.layout.symbol is not None,
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
