"""Indicator kernels, one module per backend, plus the shared panel layout and parameters."""

from .panel import Panel, panel_from_arrays, panel_from_frame
from .params import OUTPUT_COLUMNS, IndicatorParams

__all__ = ["OUTPUT_COLUMNS", "IndicatorParams", "Panel", "panel_from_arrays", "panel_from_frame"]
