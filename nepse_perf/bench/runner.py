"""Race every backend on the same panel, check each against TA-Lib, and tabulate the medians.

:func:`run_benchmark` does the whole job and returns one pandas row per timed thing
(seconds, rows/s, speed-ups, distance from the memory-bandwidth bound, agreement with
TA-Lib). Timing rules: one untimed warm-up call per entry (its duration is kept as the
"first call", i.e. compile time for the numba backends), then the repeats in round-robin
order (repeat 1 of every entry, then repeat 2, ...), each call with the garbage collector
disabled, and the median reported.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..data.synthetic import SIZES
from ..indicators.panel import Panel, panel_from_frame
from ..indicators.params import OUTPUT_COLUMNS, IndicatorParams
from ..indicators.talib_wrapper import indicators_for_symbol
from ..pipeline import (
    BACKENDS,
    compute_indicators,
    compute_panel,
    frame_from_block,
    new_block,
    to_panel_order,
)
from .machine import Bandwidth, memory_bandwidth, pipeline_bound_seconds
from .timing import format_seconds, timed_call

__all__ = [
    "BASELINE",
    "END_TO_END_LABEL",
    "END_TO_END_REUSED_LABEL",
    "FRESH_BLOCK_LABEL",
    "FRESH_LABEL",
    "OVERHEAD_LABEL",
    "PYTHON_MAX_ROWS",
    "RESULT_COLUMNS",
    "REUSED_LABEL",
    "SIZES",
    "compare_to_reference",
    "reference_block",
    "run_benchmark",
    "select_backends",
]

#: The backend every speed-up is measured against (in the same run).
BASELINE = "pandas"

#: The ``python`` backend (~1.4 us per row: ~14 s a call at 10M rows) runs by default up to
#: this many rows; naming it in ``backends`` forces it.
PYTHON_MAX_ROWS = 2_000_000

#: A non-JIT backend whose warm-up call took longer than this (seconds) gets at most
#: ``SLOW_REPEAT`` timed repeats instead of the requested number.
SLOW_CALL_S = 2.0
SLOW_REPEAT = 3

OVERHEAD_LABEL = "frame -> panel -> frame overhead"
END_TO_END_LABEL = "compute_indicators (numba_parallel)"
END_TO_END_REUSED_LABEL = "compute_indicators (numba_parallel, out=)"
REUSED_LABEL = "numba_parallel (reused out)"
FRESH_LABEL = "numba_parallel (np.empty out)"
FRESH_BLOCK_LABEL = "np.empty 10 x n block + first touch"

#: Backends compared in the ``speedup_vs_talib`` column.
TALIB = "talib"

#: Columns of the DataFrame returned by :func:`run_benchmark`, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "label",
    "kind",
    "description",
    "jit",
    "repeats",
    "median_s",
    "best_s",
    "first_call_s",
    "rows_per_s",
    "speedup_vs_pandas",
    "speedup_vs_talib",
    "bound_s",
    "x_bandwidth_bound",
    "max_abs_diff",
    "nan_match",
    "check",
)

_RTOL = 1e-9
_ATOL = 1e-9


def select_backends(requested: Sequence[str] | None, n_rows: int) -> tuple[list[str], list[str]]:
    """Resolve the backends to run on a panel of ``n_rows`` rows; returns ``(names, notes)``.

    ``requested=None`` means every backend of ``BACKENDS`` except ``python`` above
    ``PYTHON_MAX_ROWS`` rows (a note says so). An explicit list is run as given
    (duplicates dropped, order kept), which is how a skipped backend is forced; an unknown
    name raises ``ValueError`` listing the valid ones.
    """
    notes: list[str] = []
    if requested is None:
        names = [n for n, b in BACKENDS.items() if b.available()]
        for n in BACKENDS:
            if n not in names:
                notes.append(f"{n} skipped: not available on this machine (no CUDA GPU found)")
        if n_rows > PYTHON_MAX_ROWS and "python" in names:
            names.remove("python")
            est = n_rows * 1.4e-6  # measured: ~1.7 s at 1.25M rows on a 2-core EPYC
            notes.append(
                f"python skipped: {n_rows:,} rows > {PYTHON_MAX_ROWS:,} (about "
                f"{format_seconds(est)} per call); force it with --backends python,..."
            )
        return names, notes
    unknown = [n for n in requested if n not in BACKENDS]
    if unknown:
        raise ValueError(
            f"unknown backend(s) {', '.join(map(repr, unknown))}; "
            f"valid backends: {', '.join(BACKENDS)}"
        )
    if not requested:
        raise ValueError(f"no backend selected; valid backends: {', '.join(BACKENDS)}")
    missing = [n for n in requested if not BACKENDS[n].available()]
    if missing:
        raise ValueError(
            f"backend(s) {', '.join(map(repr, missing))} not available on this machine: the gpu "
            "backend needs an NVIDIA GPU with a CUDA driver (NUMBA_ENABLE_CUDASIM=1 runs it "
            "in Numba's CUDA simulator, on the CPU and slowly)"
        )
    return list(dict.fromkeys(requested)), notes


def reference_block(panel: Panel, params: IndicatorParams | None = None) -> np.ndarray:
    """The 10 x n_rows TA-Lib reference for ``panel``, straight from ``indicators_for_symbol``.

    TA-Lib is called per symbol on the rows from the symbol's first complete bar; rows
    before it are NaN. Rows are in panel order, like :func:`compute_panel`'s output.
    """
    p = params or IndicatorParams()
    ref = np.full((len(OUTPUT_COLUMNS), panel.n_rows), np.nan)
    for _, _a, s, b in panel.slices():
        if b > s:
            cols = indicators_for_symbol(panel.close[s:b], panel.high[s:b], panel.low[s:b], p)
            for k, col in enumerate(cols):
                ref[k, s:b] = col
    return ref


def compare_to_reference(got: np.ndarray, ref: np.ndarray) -> tuple[float, bool, bool]:
    """Compare a 10 x n output block with the reference: ``(max_abs_diff, nan_match, ok)``.

    ``max_abs_diff`` is the largest absolute difference over all ten outputs where both are
    finite (NPR or RSI points; 0.0 when nothing is finite); ``nan_match`` says whether the
    NaNs sit in the same places; ``ok`` whether ``np.testing.assert_allclose(got, ref,
    rtol=1e-9, atol=1e-9)`` passes (NaNs compare equal). Works row by row to limit memory.
    """
    if got.shape != ref.shape:
        return math.inf, False, False
    worst = 0.0
    nan_match = True
    ok = True
    for g, r in zip(got, ref, strict=True):
        gn, rn = np.isnan(g), np.isnan(r)
        if not np.array_equal(gn, rn):
            nan_match = False
        both = ~(gn | rn)
        if both.any():
            diff = np.abs(g[both] - r[both])
            worst = max(worst, float(diff.max()) if diff.size else 0.0)
        try:
            np.testing.assert_allclose(g, r, rtol=_RTOL, atol=_ATOL)
        except AssertionError:
            ok = False
    return worst, nan_match, ok


def _fresh_block(n_rows: int) -> np.ndarray:
    """A new (10, n_rows) block straight from ``np.empty``: never pooled, pages not yet mapped."""
    return np.empty((len(OUTPUT_COLUMNS), n_rows), dtype=np.float64)


@dataclass
class _Entry:
    label: str
    kind: str
    description: str
    fn: Callable[[], Any]
    jit: bool = False
    check: Callable[[Any], tuple[float, bool, bool]] | None = None
    repeats: int = 0
    first: float = math.nan
    times: list[float] = field(default_factory=list)
    result: tuple[float, bool, bool] | None = None


def _gpu_phase_rows(
    panel: Panel, params: IndicatorParams, repeat: int, n_rows: int, bound: float
) -> list[dict]:
    """Median host-to-device, kernel and device-to-host seconds of the gpu backend (rows)."""
    from ..indicators.gpu_cuda import compute_with_timing

    out = np.empty((10, n_rows))
    compute_with_timing(panel, params, out)  # warm-up (compile)
    phases = [compute_with_timing(panel, params, out) for _ in range(repeat)]
    rows = []
    for label, attr in (
        ("gpu: host -> device copy", "host_to_device"),
        ("gpu: kernel only", "kernel"),
        ("gpu: device -> host copy", "device_to_host"),
    ):
        times = [getattr(t, attr) for t in phases]
        median = float(np.median(times))
        rows.append(
            {
                "label": label,
                "kind": "gpu phase",
                "description": "one phase of the gpu backend, after cuda.synchronize()",
                "jit": False,
                "repeats": len(times),
                "median_s": median,
                "best_s": float(min(times)),
                "first_call_s": math.nan,
                "rows_per_s": n_rows / median if median > 0 else math.inf,
                "speedup_vs_pandas": math.nan,
                "speedup_vs_talib": math.nan,
                "bound_s": bound,
                "x_bandwidth_bound": median / bound,
                "max_abs_diff": math.nan,
                "nan_match": None,
                "check": "n/a",
            }
        )
    return rows


def run_benchmark(
    data: pd.DataFrame | Panel,
    backends: Sequence[str] | None = None,
    repeat: int = 5,
    *,
    params: IndicatorParams | None = None,
    bandwidth: Bandwidth | None = None,
    progress: bool | None = None,
    overhead: bool = True,
    dataset: str | None = None,
    panel: Panel | None = None,
) -> pd.DataFrame:
    """Time each backend on ``data`` and check it against TA-Lib; one result row per entry.

    ``data`` is a long price frame (as from ``load_prices``/``synthetic_prices``) or a
    prepared :class:`Panel`. ``backends`` as in :func:`select_backends`; ``repeat`` timed
    calls per entry after one warm-up call (non-JIT entries whose warm-up exceeded
    ``SLOW_CALL_S`` get at most ``SLOW_REPEAT``; a note says so). For a frame, two more rows
    are timed when ``overhead``: ``OVERHEAD_LABEL`` (``panel_from_frame`` plus the frame
    assembly of ``compute_indicators``) and, if ``numba_parallel`` runs, ``END_TO_END_LABEL``.
    Columns are :data:`RESULT_COLUMNS`: times in seconds, ``rows_per_s`` in rows/s,
    ``speedup_vs_pandas`` = pandas median / median (NaN without pandas), ``bound_s`` the
    memory-bandwidth lower bound in seconds and ``x_bandwidth_bound`` = median / bound_s,
    ``max_abs_diff``/``nan_match``/``check`` ("ok", "FAIL", "n/a") against TA-Lib.
    ``bandwidth`` defaults to a fresh :func:`memory_bandwidth` measurement (GB/s).
    ``attrs`` of the result hold ``n_rows``, ``n_symbols``, ``dataset``, ``repeat``,
    ``bandwidth`` (dict) and ``notes`` (list of str). ``progress=None`` shows a tqdm bar on
    stderr only when it is a terminal. ``panel`` may pass the Panel already built from a
    frame ``data`` (it is not rebuilt); ``dataset`` labels the reports.
    """
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be an int >= 1, got {repeat!r}")
    params = params or IndicatorParams()
    prices: pd.DataFrame | None = None
    if isinstance(data, Panel):
        panel = data
    elif isinstance(data, pd.DataFrame):
        prices = data
        if panel is None:
            panel = panel_from_frame(prices)
    else:
        raise ValueError(f"data must be a price DataFrame or a Panel, got {type(data).__name__}")
    n_rows = panel.n_rows
    if n_rows == 0:
        raise ValueError("nothing to benchmark: the panel has no rows")
    names, notes = select_backends(backends, n_rows)
    if bandwidth is None:
        bandwidth = memory_bandwidth()
    bound = pipeline_bound_seconds(n_rows, bandwidth.copy_gbps)

    disable = (not progress) if progress is not None else None
    bar = tqdm(total=1, desc="TA-Lib reference", unit="call", disable=disable, leave=False)
    try:
        ref = reference_block(panel, params)
        bar.update(1)

        def check_block(out: np.ndarray) -> tuple[float, bool, bool]:
            return compare_to_reference(out, ref)

        entries: list[_Entry] = []
        for name in names:
            b = BACKENDS[name]
            entries.append(
                _Entry(
                    label=name,
                    kind="backend",
                    description=b.description,
                    fn=lambda name=name: compute_panel(panel, name, params),
                    jit=b.jit,
                    check=check_block,
                )
            )
            if name == "numba_parallel":
                reused = new_block(n_rows)
                reused.fill(0.0)  # touched once here, so no timed call pays its page faults
                entries.append(
                    _Entry(
                        label=REUSED_LABEL,
                        kind="backend",
                        description="the fused kernel writing into one block reused every call",
                        fn=lambda reused=reused: compute_panel(
                            panel, "numba_parallel", params, out=reused
                        ),
                        jit=True,
                        check=check_block,
                    )
                )
                entries.append(
                    _Entry(
                        label=FRESH_LABEL,
                        kind="backend",
                        description="the fused kernel writing into a new np.empty block "
                        "(fresh pages: the operating system maps and zeroes each one)",
                        fn=lambda: compute_panel(
                            panel, "numba_parallel", params, out=_fresh_block(n_rows)
                        ),
                        jit=True,
                        check=check_block,
                    )
                )
                entries.append(
                    _Entry(
                        label=FRESH_BLOCK_LABEL,
                        kind="memory",
                        description="np.empty + fill: what a fresh block costs before any work",
                        fn=lambda: _fresh_block(n_rows).fill(0.0),
                    )
                )
        if prices is not None and overhead:
            frame = prices
            entries.append(
                _Entry(
                    label=OVERHEAD_LABEL,
                    kind="overhead",
                    description="panel_from_frame(prices) + scatter/wrap of the 10 x n block",
                    fn=lambda: frame_from_block(ref, panel_from_frame(frame), frame.index),
                )
            )
            if "numba_parallel" in names:
                kwargs = params.as_dict()

                def check_frame(df: pd.DataFrame) -> tuple[float, bool, bool]:
                    return compare_to_reference(to_panel_order(df.to_numpy().T, panel), ref)

                entries.append(
                    _Entry(
                        label=END_TO_END_LABEL,
                        kind="end-to-end",
                        description="the public entry point: frame in, frame out",
                        fn=lambda: compute_indicators(frame, "numba_parallel", **kwargs),
                        jit=True,
                        check=check_frame,
                    )
                )
                frame_out = new_block(n_rows)
                frame_out.fill(0.0)
                entries.append(
                    _Entry(
                        label=END_TO_END_REUSED_LABEL,
                        kind="end-to-end",
                        description="the public entry point writing into a reused out= block",
                        fn=lambda: compute_indicators(
                            frame, "numba_parallel", out=frame_out, **kwargs
                        ),
                        jit=True,
                        check=check_frame,
                    )
                )

        bar.reset(total=1 + len(entries) * (1 + repeat))
        bar.update(1)
        # Warm-up: one call each, checked against TA-Lib; its time is the "first call".
        for e in entries:
            bar.set_description(f"warm-up {e.label}")
            gc.collect()
            e.first, out = timed_call(e.fn)
            if e.check is not None:
                e.result = e.check(out)
            del out
            e.repeats = repeat
            if not e.jit and e.first > SLOW_CALL_S and repeat > SLOW_REPEAT:
                e.repeats = SLOW_REPEAT
                notes.append(
                    f"{e.label}: {SLOW_REPEAT} repeats instead of {repeat} (first call took "
                    f"{format_seconds(e.first)} > {SLOW_CALL_S:g} s)"
                )
                bar.total -= repeat - SLOW_REPEAT
                bar.refresh()
            bar.update(1)
        # Timed repeats, round-robin: repeat r of every entry before repeat r + 1 of any.
        for r in range(repeat):
            gc.collect()
            for e in entries:
                if r >= e.repeats:
                    continue
                bar.set_description(f"repeat {r + 1}/{repeat} {e.label}")
                elapsed, out = timed_call(e.fn)
                del out
                e.times.append(elapsed)
                bar.update(1)
    finally:
        bar.close()

    rows = []
    for e in entries:
        median = float(np.median(e.times))
        diff, nan_match, ok = e.result if e.result is not None else (math.nan, None, None)
        rows.append(
            {
                "label": e.label,
                "kind": e.kind,
                "description": e.description,
                "jit": e.jit,
                "repeats": len(e.times),
                "median_s": median,
                "best_s": float(min(e.times)),
                "first_call_s": e.first,
                "rows_per_s": n_rows / median if median > 0 else math.inf,
                "speedup_vs_pandas": math.nan,
                "speedup_vs_talib": math.nan,
                "bound_s": bound,
                "x_bandwidth_bound": median / bound,
                "max_abs_diff": diff,
                "nan_match": nan_match,
                "check": "n/a" if ok is None else ("ok" if ok else "FAIL"),
            }
        )
    if "gpu" in names:
        rows.extend(_gpu_phase_rows(panel, params, repeat, n_rows, bound))
    results = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    if BASELINE in names:
        base = float(results.loc[results["label"] == BASELINE, "median_s"].iloc[0])
        timed = ~results["kind"].isin(["overhead", "gpu phase", "memory"])
        results.loc[timed, "speedup_vs_pandas"] = base / results.loc[timed, "median_s"]
    else:
        notes.append(f"speed-up vs pandas: n/a ({BASELINE} was not run)")
    timed = ~results["kind"].isin(["overhead", "gpu phase", "memory"])
    if TALIB in names:
        base = float(results.loc[results["label"] == TALIB, "median_s"].iloc[0])
        results.loc[timed, "speedup_vs_talib"] = base / results.loc[timed, "median_s"]

    if prices is not None and overhead and "numba_parallel" in names:
        med = dict(zip(results["label"], results["median_s"], strict=True))
        notes.append(
            "overhead cross-check: compute_indicators - compute_panel (numba_parallel) = "
            f"{format_seconds(med[END_TO_END_LABEL] - med['numba_parallel'])}; "
            f"timed directly: {format_seconds(med[OVERHEAD_LABEL])}"
        )
    notes.insert(
        0,
        f"each entry: 1 warm-up call (excluded; 'first call' = numba compile or cache load), "
        f"then up to {repeat} timed calls round-robin across entries; median reported; "
        "time.perf_counter; garbage collector disabled during each timed call; each call "
        "gets its output block from the block pool (nepse_perf.blocks: the pages of the "
        f"previous call's block, already mapped) except '{REUSED_LABEL}' and "
        f"'{END_TO_END_REUSED_LABEL}', which write into one block touched before timing, and "
        f"'{FRESH_LABEL}', which writes into a new np.empty block (page faults included); "
        f"'{FRESH_BLOCK_LABEL}' times such an allocation and its first touch alone",
    )
    results.attrs.update(
        {
            "n_rows": n_rows,
            "n_symbols": panel.n_symbols,
            "dataset": dataset or ("price frame" if prices is not None else "panel"),
            "repeat": repeat,
            "bandwidth": bandwidth.as_dict(),
            "bound_s": bound,
            "notes": notes,
        }
    )
    return results
