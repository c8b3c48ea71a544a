"""nepse_perf: a measured workbook on making a NEPSE stock-indicator pipeline fast."""

from .data import DataError, check_prices, corporate_action_gaps, load_prices, synthetic_prices
from .indicators import OUTPUT_COLUMNS, IndicatorParams
from .pipeline import BACKENDS, compute_indicators

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "OUTPUT_COLUMNS",
    "DataError",
    "IndicatorParams",
    "__version__",
    "check_prices",
    "compute_indicators",
    "corporate_action_gaps",
    "load_prices",
    "synthetic_prices",
]
