"""How the fused kernel scales with rows and threads, against the memory-bandwidth bound.

:func:`thread_scaling` times the fused kernel (:data:`SCALING_BACKEND`, the registry's
``threaded`` backend) on synthetic panels of 1e4 to 1e7 rows (symbols of ``days`` bars
each), with 1 and 2 Numba threads, writing into three kinds of output block: one reused
block (touched before timing), a block from the block pool (what ``compute_panel`` does by
default) and a new ``np.empty`` block (fresh pages). The
variants of one size run interleaved (:func:`~nepse_perf.bench.timing.measure_interleaved`),
so a busy spell on a shared machine hits them alike. Times are nanoseconds per row next to
the bound (rows x 13 float64 series / copy bandwidth). :func:`plot_scaling` draws the chart
``nepse-perf bench --scaling`` writes as ``scaling.png``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from nepse_perf._infra.checks import positive_int
from nepse_perf.bench.machine import Bandwidth, memory_bandwidth, pipeline_bound_seconds
from nepse_perf.bench.report import _jsonable
from nepse_perf.bench.runner import FUSED_BACKEND
from nepse_perf.bench.timing import measure_interleaved
from nepse_perf.indicators.panel import Panel, panel_from_arrays
from nepse_perf.indicators.params import IndicatorParams
from nepse_perf.pipeline import compute_panel, new_block

__all__ = [
    "OUTPUTS",
    "SCALING_BACKEND",
    "SCALING_ROWS",
    "plot_scaling",
    "random_walk_panel",
    "scaling_summary",
    "thread_scaling",
    "write_scaling",
]

#: Panel sizes (rows) of the default scaling run.
SCALING_ROWS: tuple[int, ...] = (10_000, 100_000, 1_000_000, 10_000_000)

#: The backend timed: the registry's threaded one, whose compute uses Numba's thread count.
SCALING_BACKEND = FUSED_BACKEND

#: The output blocks compared: label -> how each call gets its block.
OUTPUTS: tuple[str, ...] = ("reused out", "pooled out", "np.empty out")


def random_walk_panel(n_rows: int, days: int = 2_500, seed: int = 0) -> Panel:
    """A panel of ``n_rows`` rows: symbols of ``days`` bars (the last one shorter), NPR prices.

    Closes are a geometric random walk from 100 to 1,000 NPR (0.1-NPR ticks); high and low
    sit up to 1 % around the close. Cheap to build at 1e7 rows, unlike ``synthetic_prices``.
    """
    rng = np.random.default_rng(seed)
    starts = np.arange(0, n_rows, days, dtype=np.int64)
    offsets = np.append(starts, n_rows)
    steps = rng.normal(0.0, 0.02, n_rows)
    steps[starts] = np.log(rng.uniform(100, 1_000, starts.size))
    log_price = np.cumsum(steps)
    log_price -= np.repeat(np.r_[0.0, log_price[starts[1:] - 1]], np.diff(offsets))
    close = np.round(np.exp(log_price), 1)
    spread = np.abs(rng.normal(0, 0.005, n_rows)) * close
    return panel_from_arrays(close, close + spread, close - spread, offsets)


def _variants(panel: Panel, params: IndicatorParams, reused: np.ndarray) -> dict:
    """The three timed calls of one panel, keyed by :data:`OUTPUTS`."""
    return {
        "reused out": lambda: compute_panel(panel, SCALING_BACKEND, params, out=reused),
        "pooled out": lambda: compute_panel(panel, SCALING_BACKEND, params),
        "np.empty out": lambda: compute_panel(
            panel, SCALING_BACKEND, params, out=np.empty_like(reused)
        ),
    }


def thread_scaling(
    rows: Sequence[int] = SCALING_ROWS,
    threads: Sequence[int] = (1, 2),
    repeat: int = 5,
    *,
    days: int = 2_500,
    bandwidth: Bandwidth | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Median, quartiles and best time of :data:`SCALING_BACKEND` per rows x threads x output.

    Columns: ``n_rows``, ``threads``, ``output`` (one of :data:`OUTPUTS`), ``repeats``,
    ``median_s``, ``q1_s``, ``q3_s``, ``best_s`` (seconds), ``ns_per_row`` (median),
    ``bound_s`` and ``x_bandwidth_bound``. Thread counts above what Numba can use here are
    skipped (``attrs["notes"]`` says so); the thread count is restored afterwards.
    ``bandwidth`` defaults to a fresh :func:`memory_bandwidth` measurement.
    """
    positive_int(repeat, "repeat")
    if not rows:
        raise ValueError("rows must name at least one panel size, got none")
    for i, r in enumerate(rows):
        positive_int(r, f"rows[{i}]")
    bandwidth = bandwidth or memory_bandwidth()
    usable = numba.config.NUMBA_NUM_THREADS
    notes = (
        [f"threads above {usable} skipped (Numba's limit here)"] if max(threads) > usable else []
    )
    params = IndicatorParams()
    before = numba.get_num_threads()
    records = []
    try:
        for n_rows in rows:
            panel = random_walk_panel(n_rows, days, seed)
            reused = new_block(n_rows)
            reused.fill(0.0)
            bound = pipeline_bound_seconds(n_rows, bandwidth.copy_gbps)
            fns = _variants(panel, params, reused)
            for t in threads:
                if t > usable:
                    continue
                numba.set_num_threads(t)
                for output, timing in measure_interleaved(fns, rounds=repeat).items():
                    q1, q3 = timing.quartiles
                    records.append(
                        {
                            "n_rows": n_rows,
                            "threads": t,
                            "output": output,
                            "repeats": timing.repeat,
                            "median_s": timing.median,
                            "q1_s": q1,
                            "q3_s": q3,
                            "best_s": timing.best,
                            "ns_per_row": timing.median / n_rows * 1e9,
                            "bound_s": bound,
                            "x_bandwidth_bound": timing.median / bound,
                        }
                    )
            del panel, reused, fns
    finally:
        numba.set_num_threads(before)
    result = pd.DataFrame.from_records(records)
    result.attrs.update({"bandwidth": bandwidth.as_dict(), "days": days, "notes": notes})
    return result


def plot_scaling(results: pd.DataFrame, ax=None):
    """Nanoseconds per row against rows (log x), one line per threads x output, IQR whiskers.

    The dashed line is the memory-bandwidth bound per row. Returns the matplotlib Axes
    (a new Agg figure when ``ax`` is None, no pyplot state touched).
    """
    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    styles = {"reused out": "-", "pooled out": "--", "np.empty out": ":"}
    colors = {1: "tab:blue", 2: "tab:orange"}
    for (t, output), g in results.groupby(["threads", "output"], sort=False):
        scale = 1e9 / g["n_rows"]
        ax.errorbar(
            g["n_rows"],
            g["ns_per_row"],
            yerr=[(g["median_s"] - g["q1_s"]) * scale, (g["q3_s"] - g["median_s"]) * scale],
            linestyle=styles.get(output, "-"),
            color=colors.get(t, None),
            marker="o",
            markersize=3,
            capsize=2,
            label=f"{t} thread{'s' if t > 1 else ''}, {output}",
        )
    bw = results.attrs.get("bandwidth", {}).get("copy_gbps")
    if bw:
        per_row = 13 * 8 / bw
        label = f"bandwidth bound ({per_row:.1f} ns/row)"
        ax.axhline(per_row, color="tab:red", linewidth=1, linestyle="--", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows in the panel")
    ax.set_ylabel("ns per row (median; bars: IQR)")
    ax.set_title(f"{SCALING_BACKEND}: time per row against panel size and threads")
    ax.legend(fontsize=7, ncol=2)
    return ax


def write_scaling(results: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``scaling.csv``, ``scaling.json`` and ``scaling.png`` into ``out_dir``."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "scaling.csv", "json": out / "scaling.json", "png": out / "scaling.png"}
    results.to_csv(paths["csv"], index=False)
    doc = {
        "bandwidth": {k: _jsonable(v) for k, v in results.attrs.get("bandwidth", {}).items()},
        "days": results.attrs.get("days"),
        "notes": list(results.attrs.get("notes", [])),
        "rows": [{k: _jsonable(v) for k, v in r.items()} for r in results.to_dict("records")],
    }
    paths["json"].write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    ax = plot_scaling(results)
    ax.figure.savefig(paths["png"], dpi=110)
    return paths


def scaling_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Median ms (IQR) per rows x output, one column per thread count, for printing."""
    columns = ["median_s", "q1_s", "q3_s", "x_bandwidth_bound"]
    cells = results.assign(
        cell=[
            f"{m * 1e3:.3g} ms (IQR {(q3 - q1) * 1e3:.2g}) {x:.2f}x" if math.isfinite(m) else "n/a"
            for m, q1, q3, x in results[columns].itertuples(index=False)
        ]
    )
    table = cells.pivot_table(
        index=["n_rows", "output"], columns="threads", values="cell", aggfunc="first", sort=False
    )
    table.columns = [f"{t} thread{'s' if t > 1 else ''}" for t in table.columns]
    return table
