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
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from nepse_perf._infra.checks import positive_int
from nepse_perf.bench.machine import Bandwidth, memory_bandwidth, pipeline_bound_seconds
from nepse_perf.bench.timing import format_seconds, timed_call
from nepse_perf.data.synthetic import SIZES
from nepse_perf.indicators.backends.talib import indicators_for_symbol
from nepse_perf.indicators.panel import Panel, panel_from_frame
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams
from nepse_perf.indicators.stream import IndicatorStream
from nepse_perf.pipeline import (
    BACKENDS,
    compute_indicators,
    compute_panel,
    frame_from_block,
    new_block,
    to_panel_order,
)

__all__ = [
    "BASELINE",
    "END_TO_END_LABEL",
    "END_TO_END_REUSED_LABEL",
    "END_TO_END_TALIB_LABEL",
    "FRESH_BLOCK_LABEL",
    "FRESH_LABEL",
    "FUSED_BACKEND",
    "OVERHEAD_LABEL",
    "PYTHON_MAX_ROWS",
    "RESULT_COLUMNS",
    "REUSED_LABEL",
    "SIZES",
    "STREAM_LABEL",
    "STREAM_ONE_LABEL",
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


def _threaded_backend() -> str:
    """The first backend of the registry whose ``compute`` spreads its work over threads."""
    for name, backend in BACKENDS.items():
        if backend.threaded:
            return name
    raise RuntimeError("no backend in nepse_perf.pipeline.BACKENDS is threaded")


#: The fused, threaded kernel (the registry's ``threaded`` backend): besides its own row it
#: gets the output-block rows (reused, ``np.empty``) and the ``compute_indicators`` rows.
FUSED_BACKEND = _threaded_backend()

OVERHEAD_LABEL = "frame -> panel -> frame overhead"
END_TO_END_LABEL = f"compute_indicators ({FUSED_BACKEND})"
END_TO_END_REUSED_LABEL = f"compute_indicators ({FUSED_BACKEND}, out=)"
END_TO_END_TALIB_LABEL = "compute_indicators (talib)"
REUSED_LABEL = f"{FUSED_BACKEND} (reused out)"
FRESH_LABEL = f"{FUSED_BACKEND} (np.empty out)"
FRESH_BLOCK_LABEL = "np.empty 10 x n block + first touch"
STREAM_LABEL = "stream: one bar per symbol"
STREAM_ONE_LABEL = "stream: one bar of one symbol"

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


#: The check column of an entry that does not match TA-Lib, by kind: a peer library with
#: its own definitions "differs" (see its description); anything of ours "FAIL"s.
_MISMATCH = {"peer": "differs"}

#: What an entry's check returns: ``(max_abs_diff, nan_match, ok)`` against TA-Lib.
_Check = Callable[[Any], tuple[float, bool, bool]]


@dataclass
class _Entry:
    """One timed thing: ``fn`` is called once to warm up, then ``repeats`` times."""

    label: str
    kind: str
    description: str
    fn: Callable[[], Any] | None  # None: timed elsewhere (the gpu phases)
    jit: bool = False
    check: _Check | None = None
    repeats: int = 0
    first: float = math.nan
    times: list[float] = field(default_factory=list)
    result: tuple[float, bool, bool] | None = None
    rows: int | None = None  # rows one call handles, when not the panel's (the stream rows)

    def row(self, n_rows: int, bound: float) -> dict:
        """The entry's result row (:data:`RESULT_COLUMNS`; the speed-ups are filled later)."""
        if self.rows is not None:  # no bandwidth bound for a few rows of carried state
            n_rows, bound = self.rows, math.nan
        median = float(np.median(self.times))
        diff, nan_match, ok = self.result if self.result is not None else (math.nan, None, None)
        return {
            "label": self.label,
            "kind": self.kind,
            "description": self.description,
            "jit": self.jit,
            "repeats": len(self.times),
            "median_s": median,
            "best_s": float(min(self.times)),
            "first_call_s": self.first,
            "rows_per_s": n_rows / median if median > 0 else math.inf,
            "speedup_vs_pandas": math.nan,
            "speedup_vs_talib": math.nan,
            "bound_s": bound,
            "x_bandwidth_bound": median / bound,
            "max_abs_diff": diff,
            "nan_match": nan_match,
            "check": "n/a" if ok is None else ("ok" if ok else _MISMATCH.get(self.kind, "FAIL")),
        }


def _gpu_phase_rows(
    panel: Panel, params: IndicatorParams, repeat: int, n_rows: int, bound: float
) -> list[dict]:
    """Median host-to-device, kernel and device-to-host seconds of the gpu backend (rows)."""
    from nepse_perf.indicators.backends.gpu import compute_with_timing

    out = np.empty((10, n_rows))
    compute_with_timing(panel, params, out)  # warm-up (compile)
    phases = [compute_with_timing(panel, params, out) for _ in range(repeat)]
    return [
        _Entry(
            label=label,
            kind="gpu phase",
            description="one phase of the gpu backend, after cuda.synchronize()",
            fn=None,
            times=[getattr(t, attr) for t in phases],
        ).row(n_rows, bound)
        for label, attr in (
            ("gpu: host -> device copy", "host_to_device"),
            ("gpu: kernel only", "kernel"),
            ("gpu: device -> host copy", "device_to_host"),
        )
    ]


def _as_panel(data: pd.DataFrame | Panel, panel: Panel | None) -> tuple[Panel, pd.DataFrame | None]:
    """``(panel, prices)`` of ``run_benchmark``'s ``data``: prices is None for a Panel."""
    if isinstance(data, Panel):
        return data, None
    if isinstance(data, pd.DataFrame):
        return (panel if panel is not None else panel_from_frame(data)), data
    raise ValueError(f"data must be a price DataFrame or a Panel, got {type(data).__name__}")


def _compare_frame(frame: pd.DataFrame, panel: Panel, ref: np.ndarray) -> tuple[float, bool, bool]:
    """:func:`compare_to_reference` of an indicator frame (frame row order) with ``ref``."""
    return compare_to_reference(to_panel_order(frame.to_numpy().T, panel), ref)


def _backend_entries(
    names: Sequence[str], panel: Panel, params: IndicatorParams, check: _Check
) -> list[_Entry]:
    """One entry per backend of ``names``; the fused backend brings its output-block entries."""
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
                check=check,
            )
        )
        if name == FUSED_BACKEND:
            entries += _block_entries(panel, params, check)
    return entries


def _block_entries(panel: Panel, params: IndicatorParams, check: _Check) -> list[_Entry]:
    """The fused backend writing into one reused block and into a fresh ``np.empty`` block,
    and what such a fresh block costs alone."""
    n_rows = panel.n_rows
    jit = BACKENDS[FUSED_BACKEND].jit
    reused = new_block(n_rows)
    reused.fill(0.0)  # touched once here, so no timed call pays its page faults
    return [
        _Entry(
            label=REUSED_LABEL,
            kind="backend",
            description="the fused kernel writing into one block reused every call",
            fn=lambda: compute_panel(panel, FUSED_BACKEND, params, out=reused),
            jit=jit,
            check=check,
        ),
        _Entry(
            label=FRESH_LABEL,
            kind="backend",
            description="the fused kernel writing into a new np.empty block "
            "(fresh pages: the operating system maps and zeroes each one)",
            fn=lambda: compute_panel(panel, FUSED_BACKEND, params, out=_fresh_block(n_rows)),
            jit=jit,
            check=check,
        ),
        _Entry(
            label=FRESH_BLOCK_LABEL,
            kind="memory",
            description="np.empty + fill: what a fresh block costs before any work",
            fn=lambda: _fresh_block(n_rows).fill(0.0),
        ),
    ]


def _frame_entries(
    frame: pd.DataFrame,
    panel: Panel,
    params: IndicatorParams,
    ref: np.ndarray,
    names: Sequence[str],
) -> list[_Entry]:
    """The frame -> panel -> frame overhead and, when the fused backend runs, the public
    entry point end to end (a fresh and a reused ``out=`` block)."""
    entries = [
        _Entry(
            label=OVERHEAD_LABEL,
            kind="overhead",
            description="panel_from_frame(prices) + scatter/wrap of the 10 x n block",
            fn=lambda: frame_from_block(ref, panel_from_frame(frame), frame.index),
        )
    ]
    if FUSED_BACKEND not in names:
        return entries
    kwargs = params.as_dict()
    jit = BACKENDS[FUSED_BACKEND].jit
    check = partial(_compare_frame, panel=panel, ref=ref)
    frame_out = new_block(panel.n_rows)
    frame_out.fill(0.0)
    entries.append(
        _Entry(
            label=END_TO_END_LABEL,
            kind="end-to-end",
            description="the public entry point: frame in, frame out",
            fn=lambda: compute_indicators(frame, FUSED_BACKEND, **kwargs),
            jit=jit,
            check=check,
        )
    )
    if TALIB in names:
        entries.append(
            _Entry(
                label=END_TO_END_TALIB_LABEL,
                kind="end-to-end",
                description="the public entry point with backend='talib': frame in, frame out",
                fn=lambda: compute_indicators(frame, TALIB, **kwargs),
                check=check,
            )
        )
    entries.append(
        _Entry(
            label=END_TO_END_REUSED_LABEL,
            kind="end-to-end",
            description="the public entry point writing into a reused out= block",
            fn=lambda: compute_indicators(frame, FUSED_BACKEND, out=frame_out, **kwargs),
            jit=jit,
            check=check,
        )
    )
    return entries


def _next_bar(stream: IndicatorStream, frame: pd.DataFrame, symbols: list[str]) -> Callable:
    """A call that feeds ``stream`` one new bar of each of ``symbols`` (a day after the
    last), at each symbol's last close, and returns the (10, symbols) block."""
    codes = stream.register(symbols)
    last = frame.groupby("symbol", observed=True).tail(1).set_index("symbol")
    close = last["close"].reindex(symbols).fillna(100.0).to_numpy(dtype=np.float64)
    high, low = close * 1.01, close * 0.99
    day = np.int64(86_400 * 10**9)
    today = [frame["date"].max().value]
    dates = np.empty(len(symbols), dtype=np.int64)
    out = np.empty((len(OUTPUT_COLUMNS), len(symbols)))

    def bar() -> np.ndarray:
        today[0] += day
        dates.fill(today[0])
        return stream.update_arrays(codes, dates, close, high, low, out=out)

    return bar


def _stream_entries(frame: pd.DataFrame, params: IndicatorParams, notes: list[str]) -> list[_Entry]:
    """The live-feed rows: ``IndicatorStream.update_arrays`` with one new bar for every
    symbol of ``frame`` (primed on all of it), and for one symbol alone."""
    kwargs = params.as_dict()
    symbols = sorted(frame["symbol"].astype(str).unique())
    if not symbols:
        return []
    try:
        every = IndicatorStream(**kwargs)
        every.update(frame)
        first = frame[frame["symbol"].astype(str) == symbols[0]]
        alone = IndicatorStream(**kwargs)
        alone.update(first)
    except ValueError as exc:
        notes.append(f"stream rows skipped: the frame cannot be streamed ({exc})")
        return []
    notes.append(
        f"{STREAM_LABEL}: per call; per symbol-bar it is the median / {len(symbols):,} "
        "(rows_per_s counts symbol-bars). The state is primed on the whole frame first."
    )
    return [
        _Entry(
            label=STREAM_LABEL,
            kind="stream",
            description=f"IndicatorStream.update_arrays: one new bar for each of {len(symbols):,} symbols",
            fn=_next_bar(every, frame, symbols),
            jit=True,
            rows=len(symbols),
        ),
        _Entry(
            label=STREAM_ONE_LABEL,
            kind="stream",
            description="IndicatorStream.update_arrays: one new bar of one symbol (latency)",
            fn=_next_bar(alone, first, symbols[:1]),
            jit=True,
            rows=1,
        ),
    ]


def _peer_entries(
    panel: Panel, params: IndicatorParams, ref: np.ndarray, notes: list[str]
) -> list[_Entry]:
    """One entry per installed peer library (:mod:`nepse_perf.bench.peers`), checked
    against TA-Lib like the backends; a peer over its ``max_rows`` is skipped with a note."""
    from nepse_perf.bench import peers

    inp = peers.PeerInput(panel)
    entries = []
    for peer in peers.installed_peers():
        label = f"peer: {peer.name} {peers.peer_version(peer)}"
        if peer.max_rows is not None and panel.n_rows > peer.max_rows:
            notes.append(f"{label} skipped: {panel.n_rows:,} rows > its {peer.max_rows:,}")
            continue
        entries.append(
            _Entry(
                label=label,
                kind="peer",
                description=peer.definition,
                fn=lambda peer=peer: peer.run(inp, params),
                jit=peer.jit,
                check=lambda result, peer=peer: compare_to_reference(
                    peer.to_block(result, inp), ref
                ),
            )
        )
    if not entries:
        notes.append("--peers: no peer library is installed (pip install -e '.[peers]')")
    return entries


def _warm_up(entries: Sequence[_Entry], repeat: int, notes: list[str], bar: tqdm) -> None:
    """One call each, checked against TA-Lib; its time is the "first call". A slow non-JIT
    entry gets ``SLOW_REPEAT`` repeats (a note says so)."""
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


def _time_round_robin(entries: Sequence[_Entry], repeat: int, bar: tqdm) -> None:
    """The timed repeats: repeat r of every entry before repeat r + 1 of any.

    Each round runs the entries in a new order (a fixed-seed shuffle): an entry's time
    depends on what ran just before it (what it left in the caches), and in a fixed order
    each entry would always follow the same neighbour (the overhead row, for one, always
    ran right after TA-Lib's loop had evicted pandas' code and data).
    """
    rng = np.random.default_rng(48)
    for r in range(repeat):
        gc.collect()
        for k in rng.permutation(len(entries)):
            e = entries[k]
            if r >= e.repeats:
                continue
            bar.set_description(f"repeat {r + 1}/{repeat} {e.label}")
            elapsed, out = timed_call(e.fn)
            del out
            e.times.append(elapsed)
            bar.update(1)


def _timed_entries(
    panel: Panel,
    frame: pd.DataFrame | None,
    names: Sequence[str],
    params: IndicatorParams,
    repeat: int,
    notes: list[str],
    progress: bool | None,
    peers: bool = False,
) -> list[_Entry]:
    """Build every entry (``frame``: with the frame entries; ``peers``: with the peer
    libraries'), warm them up and time them."""
    disable = (not progress) if progress is not None else None
    bar = tqdm(total=1, desc="TA-Lib reference", unit="call", disable=disable, leave=False)
    try:
        ref = reference_block(panel, params)
        bar.update(1)
        entries = _backend_entries(names, panel, params, partial(compare_to_reference, ref=ref))
        if frame is not None:
            entries += _frame_entries(frame, panel, params, ref, names)
            entries += _stream_entries(frame, params, notes)
        if peers:
            entries += _peer_entries(panel, params, ref, notes)
        bar.reset(total=1 + len(entries) * (1 + repeat))
        bar.update(1)
        _warm_up(entries, repeat, notes, bar)
        _time_round_robin(entries, repeat, bar)
    finally:
        bar.close()
    return entries


def _add_speedups(results: pd.DataFrame, names: Sequence[str], notes: list[str]) -> None:
    """Fill ``speedup_vs_pandas`` and ``speedup_vs_talib`` of the timed rows, in place."""
    timed = ~results["kind"].isin(["overhead", "gpu phase", "memory", "stream"])
    for baseline, column in ((BASELINE, "speedup_vs_pandas"), (TALIB, "speedup_vs_talib")):
        if baseline in names:
            base = float(results.loc[results["label"] == baseline, "median_s"].iloc[0])
            results.loc[timed, column] = base / results.loc[timed, "median_s"]
    if BASELINE not in names:
        notes.append(f"speed-up vs pandas: n/a ({BASELINE} was not run)")


def _overhead_note(results: pd.DataFrame) -> str:
    """The end-to-end minus the kernel time, beside the overhead timed directly."""
    med = dict(zip(results["label"], results["median_s"], strict=True))
    return (
        f"overhead cross-check: compute_indicators - compute_panel ({FUSED_BACKEND}) = "
        f"{format_seconds(med[END_TO_END_LABEL] - med[FUSED_BACKEND])}; "
        f"timed directly: {format_seconds(med[OVERHEAD_LABEL])}"
    )


def _timing_note(repeat: int) -> str:
    """The first note of every run: how each entry was timed."""
    return (
        f"each entry: 1 warm-up call (excluded; 'first call' = numba compile or cache load), "
        f"then up to {repeat} timed calls round-robin across entries (a new, seeded order each round); median reported; "
        "time.perf_counter; garbage collector disabled during each timed call; each call "
        "gets its output block from the block pool (nepse_perf._blocks: the pages of the "
        f"previous call's block, already mapped) except '{REUSED_LABEL}' and "
        f"'{END_TO_END_REUSED_LABEL}', which write into one block touched before timing, and "
        f"'{FRESH_LABEL}', which writes into a new np.empty block (page faults included); "
        f"'{FRESH_BLOCK_LABEL}' times such an allocation and its first touch alone"
    )


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
    peers: bool = False,
) -> pd.DataFrame:
    """Time each backend on ``data`` and check it against TA-Lib; one result row per entry.

    ``data`` is a long price frame (as from ``load_prices``/``synthetic_prices``) or a
    prepared :class:`Panel`. ``backends`` as in :func:`select_backends`; ``repeat`` timed
    calls per entry after one warm-up call (non-JIT entries whose warm-up exceeded
    ``SLOW_CALL_S`` get at most ``SLOW_REPEAT``; a note says so). The fused backend
    (:data:`FUSED_BACKEND`) also gets ``REUSED_LABEL``, ``FRESH_LABEL`` and
    ``FRESH_BLOCK_LABEL`` rows. For a frame, more rows are timed when ``overhead``:
    ``OVERHEAD_LABEL`` (``panel_from_frame`` plus the frame assembly of
    ``compute_indicators``) and, if the fused backend runs, ``END_TO_END_LABEL`` and
    ``END_TO_END_REUSED_LABEL``. Columns are :data:`RESULT_COLUMNS`: times in seconds,
    ``rows_per_s`` in rows/s, ``speedup_vs_pandas`` = pandas median / median (NaN without
    pandas), ``bound_s`` the memory-bandwidth lower bound in seconds and
    ``x_bandwidth_bound`` = median / bound_s, ``max_abs_diff``/``nan_match``/``check``
    ("ok", "FAIL", "n/a") against TA-Lib. ``bandwidth`` defaults to a fresh
    :func:`memory_bandwidth` measurement (GB/s). ``attrs`` of the result hold ``n_rows``,
    ``n_symbols``, ``dataset``, ``repeat``, ``bandwidth`` (dict) and ``notes`` (list of
    str). ``progress=None`` shows a tqdm bar on stderr only when it is a terminal.
    ``panel`` may pass the Panel already built from a frame ``data`` (it is not rebuilt);
    ``dataset`` labels the reports. ``peers`` adds a row (kind "peer") for each installed
    peer library of :mod:`nepse_perf.bench.peers`, with its version in the label and its
    definitions in the description; its check reads "differs" where it is not TA-Lib's.
    """
    positive_int(repeat, "repeat")
    params = params or IndicatorParams()
    panel, prices = _as_panel(data, panel)
    n_rows = panel.n_rows
    if n_rows == 0:
        raise ValueError("nothing to benchmark: the panel has no rows")
    names, notes = select_backends(backends, n_rows)
    if bandwidth is None:
        bandwidth = memory_bandwidth()
    bound = pipeline_bound_seconds(n_rows, bandwidth.copy_gbps)
    frame = prices if overhead else None
    entries = _timed_entries(panel, frame, names, params, repeat, notes, progress, peers)

    rows = [e.row(n_rows, bound) for e in entries]
    if "gpu" in names:
        rows.extend(_gpu_phase_rows(panel, params, repeat, n_rows, bound))
    results = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    _add_speedups(results, names, notes)
    if frame is not None and FUSED_BACKEND in names:
        notes.append(_overhead_note(results))
    notes.insert(0, _timing_note(repeat))
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
