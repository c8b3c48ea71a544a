"""nepse_perf: a measured workbook on making a NEPSE stock-indicator pipeline fast.

The public API: load prices (``load_prices``, ``synthetic_prices``, ``check_prices``), compute
the ten indicators on a long frame (``compute_indicators`` with any of ``BACKENDS``), on a
prepared panel (``panel_from_frame``) or bar by bar over a stream (``IndicatorStream``), with
``IndicatorParams``. Layers below: ``nepse_perf.indicators`` (step functions, layout, backends,
TA-Lib-style functions), ``engines``, ``cache``, ``model``, ``serving``, ``cloud``, ``bench``,
``lessons`` (what only the notebooks use) and ``cli``; ``docs/architecture.md`` draws them.
"""

from nepse_perf.data import (
    DataError,
    check_prices,
    corporate_action_gaps,
    load_prices,
    synthetic_prices,
)
from nepse_perf.indicators import OUTPUT_COLUMNS, IndicatorParams, panel_from_frame
from nepse_perf.indicators.stream import IndicatorStream
from nepse_perf.pipeline import BACKENDS, compute_indicators

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "OUTPUT_COLUMNS",
    "DataError",
    "IndicatorParams",
    "IndicatorStream",
    "__version__",
    "check_prices",
    "compute_indicators",
    "corporate_action_gaps",
    "load_prices",
    "panel_from_frame",
    "synthetic_prices",
]
