"""NEPSE price data: loading, validation, corporate-action adjustment and synthetic prices.

The long price frame used throughout has the columns of :data:`PRICE_COLUMNS` (``symbol``
Categorical, ``date`` datetime64[ns], float64 ``open, high, low, close`` in NPR or index
points, ``volume`` in shares, ``turnover`` in NPR), sorted by symbol and date.
"""

from __future__ import annotations

from nepse_perf.data.corporate_actions import adjust_for_gaps, corporate_action_gaps
from nepse_perf.data.errors import DataError
from nepse_perf.data.loader import load_prices, prices_from
from nepse_perf.data.paths import (
    DEFAULT_DATA_DIR,
    DEFAULT_INDEX_FILE,
    MARKET_DIR,
    SAMPLE_DIR,
    market_path,
    sample_path,
)
from nepse_perf.data.quality import check_prices
from nepse_perf.data.schema import PRICE_COLUMNS
from nepse_perf.data.synthetic import synthetic_prices

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_INDEX_FILE",
    "MARKET_DIR",
    "PRICE_COLUMNS",
    "SAMPLE_DIR",
    "DataError",
    "adjust_for_gaps",
    "check_prices",
    "corporate_action_gaps",
    "load_prices",
    "market_path",
    "prices_from",
    "sample_path",
    "synthetic_prices",
]
