"""The indicator set described once: output rows, parameter order and state fields, by name.

Every backend fills one float64 block of ``N_OUT`` rows x n_rows, row ``SMA`` first; the
compiled kernels take the parameters as one tuple in :data:`PARAM_FIELDS` order; each
indicator's running state (:mod:`nepse_perf.indicators.steps`) is a flat tuple whose fields
have the names below. Numba freezes module-level integer constants into the code it compiles,
on the CPU and for CUDA, so ``out[RSI, i]`` and ``s[BB_N]`` cost exactly what ``out[2, i]`` and
``s[9]`` did. Adding an indicator means editing the step functions, this module and the tests.
"""

from __future__ import annotations

__all__ = [
    "N_OUT",
    "N_PARAMS",
    "OUTPUT_COLUMNS",
    "PARAM_FIELDS",
    "STATE_WIDTHS",
]

#: The output series of the pipeline, in the order every backend fills them.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "sma",
    "ema",
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr",
)
#: Output rows of the block, by name (row k holds ``OUTPUT_COLUMNS[k]``).
SMA, EMA, RSI, MACD, MACD_SIGNAL, MACD_HIST, BB_UPPER, BB_MIDDLE, BB_LOWER, ATR = range(10)
#: Rows of the output block.
N_OUT = len(OUTPUT_COLUMNS)

#: The fields of :class:`~nepse_perf.indicators.params.IndicatorParams`, in the order of the
#: kernels' parameter tuple (``IndicatorParams.kernel_args()``).
PARAM_FIELDS: tuple[str, ...] = (
    "sma_period",
    "ema_period",
    "rsi_period",
    "macd_fast",
    "macd_slow",
    "macd_signal",
    "bb_period",
    "bb_nbdev",
    "atr_period",
)
#: Positions in the kernels' parameter tuple.
P_SMA, P_EMA, P_RSI, P_MACD_FAST, P_MACD_SLOW, P_MACD_SIGNAL, P_BB, P_BB_NBDEV, P_ATR = range(9)
#: Length of the kernels' parameter tuple.
N_PARAMS = len(PARAM_FIELDS)

# --- State fields of each indicator (the tuples of steps.*_init) -------------------------
#: SMA: running total of the window, window length.
SMA_TOTAL, SMA_N = range(2)
#: EMA: the seed's running total, then the EMA; span; alpha.
EMA_VALUE, EMA_N, EMA_K = range(3)
#: RSI: previous close, average gain, average loss, period, its reciprocal.
RSI_PREV, RSI_GAIN, RSI_LOSS, RSI_N, RSI_INV = range(5)
#: MACD: seed totals (fast, slow, signal), EMAs (fast, slow, signal), spans, alphas.
(
    MACD_T_FAST,
    MACD_T_SLOW,
    MACD_T_SIGNAL,
    MACD_FAST_EMA,
    MACD_SLOW_EMA,
    MACD_SIGNAL_EMA,
    MACD_FAST_N,
    MACD_SLOW_N,
    MACD_SIGNAL_N,
    MACD_FAST_K,
    MACD_SLOW_K,
    MACD_SIGNAL_K,
) = range(12)
#: Bollinger: middle band total, window mean and M2 (Welford), previous close, run of equal
#: closes, phase in the block of n bars, the block's first close and shifted sums, n, nbdev,
#: 1/n.
(
    BB_TOTAL,
    BB_MEAN,
    BB_M2,
    BB_PREV,
    BB_RUN,
    BB_PHASE,
    BB_BASE,
    BB_S1,
    BB_S2,
    BB_N,
    BB_NBDEV,
    BB_INV,
) = range(12)
#: ATR: previous close, ATR, period, its reciprocal.
ATR_PREV, ATR_VALUE, ATR_N, ATR_INV = range(4)

#: Fields of each indicator's state (the six states sit side by side, in this order, in the
#: stream's per-symbol state row).
W_SMA, W_EMA, W_RSI, W_MACD, W_BB, W_ATR = 2, 3, 5, 12, 12, 4
STATE_WIDTHS: dict[str, int] = {
    "sma": W_SMA,
    "ema": W_EMA,
    "rsi": W_RSI,
    "macd": W_MACD,
    "bbands": W_BB,
    "atr": W_ATR,
}
#: Where each state starts in the stream's state row, and the row's width.
O_SMA = 0
O_EMA = O_SMA + W_SMA
O_RSI = O_EMA + W_EMA
O_MACD = O_RSI + W_RSI
O_BB = O_MACD + W_MACD
O_ATR = O_BB + W_BB
STATE_WIDTH = O_ATR + W_ATR
