"""The security kinds of the market overview (nepse_perf.data.kinds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nepse_perf.data import load_prices, market_path
from nepse_perf.data.kinds import KINDS, market_overview, security_kind, security_kinds


@pytest.mark.parametrize(
    ("symbol", "median_close", "kind"),
    [
        ("NEPSE_INDEX", 2000.0, "index"),
        ("ADBLD83", 1000.0, "debenture"),
        ("NABILD2089", 1000.0, "debenture"),
        ("GBILD86-87", 1000.0, "debenture"),
        ("BOKD86KA", 1000.0, "debenture"),
        ("ADBLB87", 1000.0, "debenture"),
        ("CZBILP", 300.0, "promoter share"),
        ("GUFLPO", 300.0, "promoter share"),
        ("NMB50", 10.0, "mutual fund / SIP"),  # a fund: 50 is no fiscal-year code
        ("KEF", 9.5, "mutual fund / SIP"),
        ("NABIL", 800.0, "ordinary share"),
        ("CMB", float("nan"), "ordinary share"),
    ],
)
def test_security_kind_rules(symbol: str, median_close: float, kind: str) -> None:
    assert security_kind(symbol, median_close) == kind


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return load_prices(market_path())


def test_market_overview_adds_up(market: pd.DataFrame) -> None:
    table = market_overview(market)
    assert list(table.index) == [*KINDS, "total"]
    total = table.loc["total"]
    assert total["securities"] == market["symbol"].nunique() == 387
    assert total["rows"] == len(market)
    assert table.drop(index="total")["securities"].sum() == total["securities"]
    assert table.drop(index="total")["rows"].sum() == total["rows"]
    assert total["under 35 sessions"] == 54  # SOURCE.md section 3, quirk 2
    assert total["fewest sessions"] == 1


def test_every_symbol_has_one_kind(market: pd.DataFrame) -> None:
    kinds = security_kinds(market)
    assert kinds.index.is_unique and len(kinds) == 387
    assert set(kinds) <= set(KINDS)
    assert kinds["NEPSE_INDEX"] == "index"


def test_overview_of_a_small_frame_leaves_out_absent_kinds() -> None:
    dates = pd.date_range("2024-01-01", periods=3)
    prices = pd.DataFrame(
        {
            "symbol": pd.Categorical(["AAA"] * 3 + ["KEF"] * 2),
            "date": np.r_[dates, dates[:2]],
            "close": [100.0, 101.0, 102.0, 9.0, 9.1],
        }
    )
    table = market_overview(prices, short=3)
    assert list(table.index) == ["ordinary share", "mutual fund / SIP", "total"]
    assert table.loc["total", "under 3 sessions"] == 1
