"""Indicator parameters, their validation, and each output's warm-up length (lookback)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from nepse_perf.indicators import layout

#: The ten output series of the pipeline, in the order every backend fills them.
OUTPUT_COLUMNS = layout.OUTPUT_COLUMNS


@dataclass(frozen=True)
class IndicatorParams:
    """Windows (in bars) and the band width of the six indicators, with the workbook's defaults.

    The defaults are the conventional settings (SMA/EMA/Bollinger 20, RSI/ATR 14, MACD
    12/26/9, two standard deviations); TA-Lib's own defaults differ for SMA and EMA (30) and
    for BBANDS (5), see :mod:`nepse_perf.indicators.functions`.

    ``sma_period`` SMA window, ``ema_period`` EMA span (alpha = 2/(n+1)), ``rsi_period`` and
    ``atr_period`` Wilder periods (alpha = 1/n), ``macd_fast``/``macd_slow``/``macd_signal``
    the MACD EMA spans, ``bb_period`` the Bollinger window and ``bb_nbdev`` the band width in
    population standard deviations. Construction validates every value and raises
    ``ValueError`` naming the offending parameter.
    """

    sma_period: int = 20
    ema_period: int = 20
    rsi_period: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    bb_period: int = 20
    bb_nbdev: float = 2.0
    atr_period: int = 14

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "bb_nbdev":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"bb_nbdev must be a number, got {value!r}")
                if not math.isfinite(value) or value <= 0:
                    raise ValueError(f"bb_nbdev must be finite and > 0, got {value!r}")
                object.__setattr__(self, f.name, float(value))
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{f.name} must be an integer window, got {value!r}")
            if value < 2:
                raise ValueError(f"{f.name} must be >= 2 bars, got {value}")
        if self.macd_fast >= self.macd_slow:
            raise ValueError(
                f"macd_fast must be < macd_slow, got fast={self.macd_fast}, slow={self.macd_slow}"
            )

    @classmethod
    def from_kwargs(cls, **kwargs: float) -> IndicatorParams:
        """Build parameters from keyword arguments, rejecting unknown names with a ValueError."""
        if not kwargs and cls is IndicatorParams:
            return DEFAULT_PARAMS  # frozen, so one instance serves every call
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(
                f"unknown indicator parameter(s) {unknown}; valid names: {sorted(known)}"
            )
        return cls(**kwargs)

    def as_dict(self) -> dict[str, float]:
        """The parameters as a plain dict (for reports and cache keys)."""
        return asdict(self)

    def kernel_args(self) -> tuple[int, int, int, int, int, int, int, float, int]:
        """The parameters in the order the compiled kernels take them (``layout.PARAM_FIELDS``;
        the kernels read them as ``p[P_SMA]``, ``p[P_BB_NBDEV]``, ...)."""
        return tuple(getattr(self, name) for name in layout.PARAM_FIELDS)  # type: ignore[return-value]

    def lookbacks(self) -> dict[str, int]:
        """Leading NaN rows of each output column for one symbol (TA-Lib's lookback).

        From the lookback functions of :mod:`nepse_perf.indicators.steps`, the same ones
        the kernels use to decide where their warm-up ends.
        """
        from nepse_perf.indicators import steps

        macd = steps.macd_lookback(self.macd_fast, self.macd_slow, self.macd_signal)
        bb = steps.bbands_lookback(self.bb_period)
        return {
            "sma": steps.sma_lookback(self.sma_period),
            "ema": steps.ema_lookback(self.ema_period),
            "rsi": steps.rsi_lookback(self.rsi_period),
            "macd": macd,
            "macd_signal": macd,
            "macd_hist": macd,
            "bb_upper": bb,
            "bb_middle": bb,
            "bb_lower": bb,
            "atr": steps.atr_lookback(self.atr_period),
        }


#: The workbook's default parameters (``IndicatorParams()``), shared by every call that
#: passes none.
DEFAULT_PARAMS = IndicatorParams()
