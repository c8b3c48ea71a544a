"""The SMA as a stored SQL result in DuckDB: the chapter's "materialised view", done right.

DuckDB (embedded, no server) has no ``MATERIALIZED VIEW``; a materialised view *is* a
stored query result, so :func:`materialise_sma` keeps it as a table (``CREATE OR REPLACE
TABLE ... AS SELECT``) and :func:`refresh_sma` appends only what new price rows add. The
window ``ROWS BETWEEN n-1 PRECEDING AND CURRENT ROW`` averages *fewer* than n closes on each
symbol's first n-1 rows, where TA-Lib's SMA is NaN; the masked query keeps a value only
when the window holds n rows (``COUNT(*) OVER w = n``), which makes it agree with TA-Lib.
"""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd

__all__ = ["load_prices_table", "materialise_sma", "refresh_sma", "sma_from_view", "sma_sql"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _ident(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    """Execute and fetch everything (DuckDB 2 refuses new work while a result is unfinished)."""
    return con.execute(sql).fetchall()


def _window(n: int) -> str:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer window >= 2, got {n!r}")
    return f"(PARTITION BY symbol ORDER BY date ROWS BETWEEN {n - 1} PRECEDING AND CURRENT ROW)"


def sma_sql(n: int = 20, source: str = "prices", masked: bool = True) -> str:
    """The SELECT computing every row's n-row SMA per symbol from table ``source``.

    ``masked=False`` is the chapter's query (partial windows on the first n-1 rows);
    ``masked=True`` returns NULL there, like TA-Lib's NaN warm-up.
    """
    value = (
        "AVG(close) OVER w"
        if not masked
        else f"CASE WHEN COUNT(*) OVER w = {n} THEN AVG(close) OVER w END"
    )
    return f"SELECT symbol, date, {value} AS sma\nFROM {_ident(source)}\nWINDOW w AS {_window(n)}"


def _price_rows(prices: pd.DataFrame) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "symbol": prices["symbol"].astype(str).to_numpy(dtype=object),
            "date": prices["date"].to_numpy(dtype="datetime64[ns]"),
            "close": prices["close"].to_numpy(dtype=np.float64),
        }
    )
    if rows["close"].isna().any():
        raise ValueError("close has NaN values; drop incomplete rows before loading them into SQL")
    return rows


def load_prices_table(
    con: duckdb.DuckDBPyConnection, prices: pd.DataFrame, table: str = "prices"
) -> int:
    """(Re)create table ``table`` (symbol VARCHAR, date TIMESTAMP, close DOUBLE) from a frame.

    Returns the number of rows. NaN closes are rejected (ValueError): SQL's AVG would
    propagate NaN where TA-Lib's wrapper skips leading NaNs.
    """
    rows = _price_rows(prices)
    con.register("_nepse_rows", rows)
    try:
        _run(
            con,
            f"CREATE OR REPLACE TABLE {_ident(table)} AS "
            "SELECT symbol::VARCHAR AS symbol, date::TIMESTAMP AS date, close::DOUBLE AS close "
            "FROM _nepse_rows",
        )
    finally:
        con.unregister("_nepse_rows")
    return len(rows)


def materialise_sma(
    con: duckdb.DuckDBPyConnection,
    n: int = 20,
    source: str = "prices",
    view: str = "sma_view",
    masked: bool = True,
) -> int:
    """Store the SMA of every row of ``source`` as table ``view`` (a full refresh); returns rows."""
    _run(con, f"CREATE OR REPLACE TABLE {_ident(view)} AS {sma_sql(n, source, masked)}")
    return int(_run(con, f"SELECT COUNT(*) FROM {_ident(view)}")[0][0])


def refresh_sma(
    con: duckdb.DuckDBPyConnection,
    new_rows: pd.DataFrame,
    n: int = 20,
    source: str = "prices",
    view: str = "sma_view",
) -> int:
    """Append new price rows to ``source`` and their masked SMA to ``view``; returns rows added.

    Only the new rows and the last n-1 stored rows of their symbols are read, so the cost
    follows the size of the update, not of the history. Every new row must be later than
    its symbol's last stored date (a back-fill needs :func:`materialise_sma` instead):
    otherwise ``ValueError`` and nothing is changed. New symbols are fine.
    """
    src, dst = _ident(source), _ident(view)
    rows = _price_rows(new_rows)
    con.register("_nepse_new", rows)
    try:
        late = con.execute(
            f"SELECT COUNT(*) FROM _nepse_new r JOIN "
            f"(SELECT symbol, MAX(date) AS last FROM {src} GROUP BY symbol) l USING (symbol) "
            "WHERE r.date <= l.last"
        ).fetchall()[0][0]
        dup = con.execute(
            "SELECT COUNT(*) - COUNT(DISTINCT (symbol, date)) FROM _nepse_new"
        ).fetchall()[0][0]
        if late or dup:
            raise ValueError(
                f"{late} new row(s) are not after their symbol's last stored date and {dup} "
                "repeat a (symbol, date); use materialise_sma for a full refresh"
            )
        _run(con, "BEGIN TRANSACTION")
        try:
            _run(
                con,
                f"""INSERT INTO {dst}
                WITH old AS (
                    SELECT symbol, date, close, FALSE AS is_new FROM {src}
                    WHERE symbol IN (SELECT DISTINCT symbol FROM _nepse_new)
                    QUALIFY ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY date DESC) <= {n - 1}
                ),
                ctx AS (
                    SELECT * FROM old
                    UNION ALL SELECT symbol, date::TIMESTAMP, close, TRUE FROM _nepse_new
                ),
                sma AS (
                    SELECT symbol, date, is_new,
                        CASE WHEN COUNT(*) OVER w = {n} THEN AVG(close) OVER w END AS sma
                    FROM ctx WINDOW w AS {_window(n)}
                )
                SELECT symbol, date, sma FROM sma WHERE is_new""",
            )
            _run(con, f"INSERT INTO {src} SELECT symbol, date::TIMESTAMP, close FROM _nepse_new")
            _run(con, "COMMIT")
        except BaseException:
            _run(con, "ROLLBACK")
            raise
    finally:
        con.unregister("_nepse_new")
    return len(rows)


def sma_from_view(
    con: duckdb.DuckDBPyConnection, prices: pd.DataFrame, view: str = "sma_view"
) -> np.ndarray:
    """The view's SMA for each row of ``prices`` (matched on symbol and date), NaN for NULL.

    A row of ``prices`` missing from the view raises ValueError.
    """
    stored = con.execute(f"SELECT symbol, date, sma FROM {_ident(view)}").df()
    keys = pd.DataFrame(
        {
            "symbol": prices["symbol"].astype(str).to_numpy(dtype=object),
            "date": prices["date"].to_numpy(dtype="datetime64[ns]"),
        }
    )
    stored["symbol"] = stored["symbol"].astype(object)
    stored["date"] = stored["date"].astype("datetime64[ns]")
    merged = keys.merge(stored, on=["symbol", "date"], how="left", indicator=True, validate="1:1")
    if (merged["_merge"] != "both").any():
        raise ValueError("some rows of prices are not in the view; refresh it first")
    return merged["sma"].to_numpy(dtype=np.float64, na_value=np.nan)
