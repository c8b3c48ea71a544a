"""What kind of security each symbol of the NEPSE market is, and the market by kind.

The source files carry no security type, so the kind is inferred, by the rules that
``data/nepse/SOURCE.md`` (section 3) states, in this order:

* ``index``: the index file (``NEPSE_INDEX``);
* ``debenture``: a name ending in a Nepali fiscal-year code, ``D83``, ``D2089``,
  ``D86-87``, ``B87`` (the years 2070-2099 of Bikram Sambat, written with or without
  the century);
* ``promoter share``: a name ending in ``P`` or ``PO``;
* ``mutual fund / SIP``: a median close of at most :data:`FUND_MAX_MEDIAN_CLOSE` NPR (units
  are issued at 10 NPR; shares have a face value of 100 NPR and trade above it);
* ``ordinary share``: everything else.

The rules are a heuristic: a debenture named without a year code (``SCBD``) counts as an
ordinary share, a company whose ticker happens to end in ``P`` as a promoter share. They are
for an overview, never for a computation: every indicator treats every security alike.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["FUND_MAX_MEDIAN_CLOSE", "KINDS", "market_overview", "security_kind", "security_kinds"]

#: The kinds, in the order tables list them.
KINDS: tuple[str, ...] = (
    "ordinary share",
    "promoter share",
    "debenture",
    "mutual fund / SIP",
    "index",
)

#: A security whose median close is at most this (NPR) is taken for a fund's units.
FUND_MAX_MEDIAN_CLOSE = 25.0

_DEBENTURE = re.compile(r"[DB](?:20)?[789]\d(?:-[789]\d)?(?:KA)?$")
_PROMOTER = re.compile(r"(?:P|PO)$")


def security_kind(symbol: str, median_close: float) -> str:
    """The kind of ``symbol`` (one of :data:`KINDS`), by the naming rules of the module docstring.

    ``median_close`` is the median of the symbol's closes in NPR (NaN when it has none); it
    only separates funds from ordinary shares.
    """
    if symbol.endswith("_INDEX"):
        return "index"
    if _DEBENTURE.search(symbol):
        return "debenture"
    if _PROMOTER.search(symbol):
        return "promoter share"
    if np.isfinite(median_close) and median_close <= FUND_MAX_MEDIAN_CLOSE:
        return "mutual fund / SIP"
    return "ordinary share"


def security_kinds(prices: pd.DataFrame) -> pd.Series:
    """Symbol -> kind for every symbol of a ``load_prices`` frame, sorted by symbol."""
    median = prices.groupby("symbol", observed=True)["close"].median()
    kinds = [security_kind(str(s), float(m)) for s, m in median.items()]
    return pd.Series(kinds, index=median.index.astype(str), name="kind").sort_index()


def market_overview(prices: pd.DataFrame, *, short: int = 35) -> pd.DataFrame:
    """One row per kind: securities, rows, and the shortest, median and longest history.

    ``short`` counts the securities with fewer sessions than that (35 by default, one more
    than MACD's 33-session warm-up: shorter series give all-NaN MACD, as TA-Lib does). A
    ``total`` row closes the table; kinds absent from ``prices`` are left out.
    """
    sessions = prices.groupby("symbol", observed=True).size()
    sessions.index = sessions.index.astype(str)
    kinds = security_kinds(prices).reindex(sessions.index)
    groups = sessions.groupby(kinds)
    table = pd.DataFrame(
        {
            "securities": groups.size(),
            "rows": groups.sum(),
            "fewest sessions": groups.min(),
            "median sessions": groups.median(),
            "most sessions": groups.max(),
            f"under {short} sessions": groups.apply(lambda s: int((s < short).sum())),
        }
    )
    table = table.reindex([k for k in KINDS if k in table.index])
    total = {
        "securities": len(sessions),
        "rows": int(sessions.sum()),
        "fewest sessions": sessions.min(),
        "median sessions": sessions.median(),
        "most sessions": sessions.max(),
        f"under {short} sessions": int((sessions < short).sum()),
    }
    table.loc["total"] = pd.Series(total)
    return table.astype({"median sessions": float}).rename_axis("kind")
