"""Time against panel size: when does the GPU beat the best CPU backend?

:func:`panel_size_sweep` times CPU backends and the ``gpu`` backend on synthetic panels of
growing symbol counts (same days per symbol) and splits every GPU call into its phases: the
host-side time-major layout, the host-to-device copy, the kernel and the device-to-host
copy. ``nepse-perf sweep`` writes the result as ``sweep.json`` (with the device, the
machine and the date), ``sweep.csv`` and a chart ``sweep.png``; a sweep recorded on a real
GPU lives in ``results/gpu/`` (:data:`RECORDED_SWEEP`), where notebook 08 finds it.

:func:`simulated_gpu_report` runs the ``gpu`` backend on the real NEPSE sample in Numba's
CUDA simulator, in a child process, and reports how it compares with TA-Lib (float64 and
float32 storage): the kernel's logic checked on a machine without a GPU.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nepse_perf._infra.checks import positive_int
from nepse_perf.bench.report import _jsonable
from nepse_perf.bench.runner import compare_to_reference, reference_block, select_backends
from nepse_perf.bench.timing import format_seconds, timed_call
from nepse_perf.data import synthetic_prices
from nepse_perf.indicators.layout import N_OUT
from nepse_perf.indicators.panel import Panel, panel_from_frame
from nepse_perf.indicators.params import IndicatorParams
from nepse_perf.pipeline import BACKENDS, compute_panel

__all__ = [
    "GPU_PHASES",
    "RECORDED_SWEEP",
    "SWEEP_COLUMNS",
    "format_sweep",
    "gpu_crossover",
    "gpu_transfer_bytes",
    "load_recorded_sweep",
    "load_sweep",
    "panel_size_sweep",
    "plot_sweep",
    "run_in_cuda_simulator",
    "simulated_gpu_report",
    "summary_rows",
    "sweep_table",
    "write_sweep",
]

#: Where a sweep recorded on a real GPU is kept in the repository (``nepse-perf sweep --out
#: results/gpu``); notebook 08 charts it when it exists.
RECORDED_SWEEP: Path = Path(__file__).resolve().parents[2] / "results" / "gpu" / "sweep.json"

#: Phases of one ``gpu`` call: ``total`` (the whole call, as a user sees it) and its parts.
GPU_PHASES: dict[str, str] = {
    "total": "total",
    "layout": "host layout",
    "h2d": "host -> device",
    "kernel": "kernel only",
    "d2h": "device -> host",
}

#: Columns of :func:`panel_size_sweep`'s result, in order (times in seconds).
SWEEP_COLUMNS: tuple[str, ...] = (
    "n_symbols",
    "n_days",
    "n_rows",
    "label",
    "engine",
    "dtype",
    "phase",
    "repeats",
    "median_s",
    "best_s",
    "first_call_s",
    "bytes",
    "max_abs_diff",
    "check",
)


def gpu_transfer_bytes(panel: Panel, dtype: type = np.float64) -> tuple[int, int]:
    """Bytes the ``gpu`` backend copies for ``panel``: ``(host_to_device, device_to_host)``.

    In: close, high and low as time-major (longest symbol's bars x symbols) arrays of
    ``dtype`` plus one int64 length per symbol; out: ten such arrays.
    """
    lens = panel.offsets[1:] - panel.starts
    cells = (int(lens.max()) if lens.size else 0) * panel.n_symbols
    size = np.dtype(dtype).itemsize
    return 3 * cells * size + 8 * panel.n_symbols, 10 * cells * size


def _label(engine: str, dtype: str | None, phase: str) -> str:
    if engine != "gpu":
        return engine
    return f"gpu {dtype}: {GPU_PHASES[phase]}"


def _gpu_call(panel: Panel, params: IndicatorParams, dtype: type) -> tuple[np.ndarray, Any]:
    from nepse_perf.indicators.backends.gpu import compute_with_timing

    out = np.empty((N_OUT, panel.n_rows))
    return out, compute_with_timing(panel, params, out, dtype)


def _sweep_one(
    panel: Panel,
    n_days: int,
    names: list[str],
    repeat: int,
    params: IndicatorParams,
    gpu_dtypes: list[type],
    check: bool,
) -> list[dict[str, Any]]:
    ref = reference_block(panel, params) if check else None
    base = {"n_symbols": panel.n_symbols, "n_days": n_days, "n_rows": panel.n_rows}
    rows: list[dict[str, Any]] = []
    for name in names:
        if name == "gpu":
            continue
        first, out = timed_call(lambda name=name: compute_panel(panel, name, params))
        diff, _, ok = compare_to_reference(out, ref) if ref is not None else (math.nan, 0, None)
        del out
        call = lambda name=name: compute_panel(panel, name, params)  # noqa: E731
        times = [timed_call(call)[0] for _ in range(repeat)]
        rows.append(
            {
                **base,
                "label": name,
                "engine": name,
                "dtype": "float64",
                "phase": "total",
                "repeats": len(times),
                "median_s": float(np.median(times)),
                "best_s": float(min(times)),
                "first_call_s": first,
                "bytes": math.nan,
                "max_abs_diff": diff,
                "check": "n/a" if ok is None else ("ok" if ok else "FAIL"),
            }
        )
    if "gpu" not in names:
        return rows
    for dtype in gpu_dtypes:
        dname = np.dtype(dtype).name
        first, (out, _) = timed_call(lambda dtype=dtype: _gpu_call(panel, params, dtype))
        diff, ok = math.nan, None
        if ref is not None:
            diff, _, ok = compare_to_reference(out, ref)
            if dname != "float64":
                ok = None  # float32 storage cannot meet rtol 1e-9: report the difference only
        del out
        phases: dict[str, list[float]] = {p: [] for p in GPU_PHASES}
        for _ in range(repeat):
            total, (out, t) = timed_call(lambda dtype=dtype: _gpu_call(panel, params, dtype))
            del out
            parts = {"h2d": t.host_to_device, "kernel": t.kernel, "d2h": t.device_to_host}
            parts["layout"] = max(0.0, total - sum(parts.values()))
            parts["total"] = total
            for p, v in parts.items():
                phases[p].append(v)
        h2d, d2h = gpu_transfer_bytes(panel, dtype)
        nbytes = {"total": h2d + d2h, "h2d": h2d, "d2h": d2h}
        for phase, times in phases.items():
            rows.append(
                {
                    **base,
                    "label": _label("gpu", dname, phase),
                    "engine": "gpu",
                    "dtype": dname,
                    "phase": phase,
                    "repeats": len(times),
                    "median_s": float(np.median(times)),
                    "best_s": float(min(times)),
                    "first_call_s": first if phase == "total" else math.nan,
                    "bytes": float(nbytes.get(phase, math.nan)),
                    "max_abs_diff": diff if phase == "total" else math.nan,
                    "check": ("n/a" if ok is None else ("ok" if ok else "FAIL"))
                    if phase == "total"
                    else "",
                }
            )
    return rows


def panel_size_sweep(
    symbol_counts: Sequence[int],
    n_days: int,
    backends: Sequence[str] | None = None,
    repeat: int = 5,
    *,
    seed: int = 0,
    params: IndicatorParams | None = None,
    gpu_float32: bool = True,
    check: bool = True,
    progress: Callable[[str], None] | None = None,
    on_size: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Time ``backends`` on synthetic panels of ``symbol_counts`` symbols x ``n_days`` days.

    For each size (ascending): one synthetic panel (``seed``), the TA-Lib reference (when
    ``check``), then per backend one warm-up call (kept as ``first_call_s``: compile or
    cache load for JIT backends, and checked against TA-Lib) and ``repeat`` timed calls
    with the garbage collector off. ``backends`` defaults to ``numba_parallel`` and
    ``talib``, plus ``gpu`` when a GPU (or the CUDA simulator) is available; naming ``gpu``
    without one raises ``ValueError``. The ``gpu`` backend is timed in float64 and, with
    ``gpu_float32``, in float32 storage; each of its calls gives five rows, one per
    :data:`GPU_PHASES` entry (``layout`` = total minus the three timed phases: the host's
    time-major scatter and gather).

    Returns one row per (size, backend, dtype, phase) with :data:`SWEEP_COLUMNS`: times in
    seconds (median and best of the repeats), ``bytes`` copied for GPU transfer rows,
    ``max_abs_diff`` against TA-Lib and ``check`` ("ok"/"FAIL"; "n/a" for float32 storage or
    without ``check``). ``attrs`` hold ``device`` (None without a GPU), ``gpu`` (name,
    compute capability, driver), ``machine``, ``date`` (ISO), ``n_days``, ``repeat``,
    ``seed`` and ``backends``. ``progress`` receives one line per step; ``on_size`` receives
    the results so far after each size (the command line saves them, so that a run cut short
    keeps its finished sizes).
    """
    from nepse_perf.bench.machine import gpu_info, machine_info
    from nepse_perf.indicators.backends import gpu

    given = list(symbol_counts)
    counts = sorted({positive_int(c, "each of symbol_counts") for c in given})
    if not counts:
        raise ValueError(f"symbol_counts must hold at least one count, got {given!r}")
    n_days = positive_int(n_days, "n_days")
    repeat = positive_int(repeat, "repeat")
    if backends is None:
        backends = ["numba_parallel", "talib"] + (["gpu"] if BACKENDS["gpu"].available() else [])
    names, _ = select_backends(list(backends), 0)
    params = params or IndicatorParams()
    dtypes: list[type] = [np.float64] + ([np.float32] if gpu_float32 else [])
    say = progress or (lambda msg: None)
    has_gpu = "gpu" in names
    attrs: dict[str, Any] = {
        "device": gpu.device_name() if has_gpu else None,
        "gpu": gpu_info() if has_gpu else None,
        "machine": None,
        "date": _dt.date.today().isoformat(),
        "n_days": n_days,
        "repeat": repeat,
        "seed": seed,
        "backends": names,
    }
    rows: list[dict[str, Any]] = []
    results = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    for n_symbols in counts:
        say(f"{n_symbols:,} symbols x {n_days:,} days: generating ...")
        panel = panel_from_frame(synthetic_prices(n_symbols, n_days, seed=seed))
        say(f"{n_symbols:,} symbols x {n_days:,} days: timing {', '.join(names)} ...")
        rows.extend(_sweep_one(panel, n_days, names, repeat, params, dtypes, check))
        del panel
        attrs["machine"] = machine_info()  # after a parallel call: the threading layer is known
        results = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
        results.attrs.update(attrs)
        if on_size is not None:
            on_size(results)
    return results


def sweep_table(results: pd.DataFrame) -> pd.DataFrame:
    """Median seconds as a table: one row per symbol count, one column per label."""
    table = results.pivot_table(
        index="n_symbols", columns="label", values="median_s", aggfunc="first", sort=False
    )
    return table[list(dict.fromkeys(results["label"]))]


def plot_sweep(
    results: pd.DataFrame,
    ax: Any = None,
    *,
    labels: Sequence[str] | None = None,
    suffix: str = "",
    **style: Any,
) -> Any:
    """Draw median seconds against symbols (log-log), one line per label; returns the Axes.

    ``labels`` defaults to every CPU backend plus the GPU's float64 total and kernel-only
    lines (and the float32 total when recorded). ``suffix`` is appended to each legend
    entry; ``style`` goes to ``Axes.plot``. Without ``ax`` a matplotlib ``Figure`` (no
    pyplot) is made.
    """
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(7, 4.2), layout="constrained").add_subplot()
    if labels is None:
        wanted = [("float64", "total"), ("float64", "kernel"), ("float32", "total")]
        labels = [lab for lab in dict.fromkeys(results["label"]) if not lab.startswith("gpu")]
        labels += [_label("gpu", d, p) for d, p in wanted]
    markers = {"total": "o", "kernel": "s", "h2d": ">", "d2h": "<", "layout": "x"}
    for label in labels:
        part = results[results["label"] == label]
        if part.empty:
            continue
        part = part.sort_values("n_symbols")
        kw = {"marker": markers.get(str(part["phase"].iloc[0]), "o"), "markersize": 4}
        if str(part["dtype"].iloc[0]) == "float32":
            kw["linestyle"] = ":"
        kw.update(style)
        ax.plot(part["n_symbols"], part["median_s"], label=label + suffix, **kw)
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("symbols in the panel (log scale)")
    ax.set_ylabel("median seconds per call (log scale)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def write_sweep(results: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``sweep.json`` (attrs + rows), ``sweep.csv`` and ``sweep.png`` into ``out_dir``.

    The directory is created if needed. Returns ``{"json": path, "csv": ..., "png": ...}``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attrs = results.attrs
    doc = {
        "what": "nepse-perf panel-size sweep: median seconds per call vs symbols",
        **{k: attrs.get(k) for k in ("device", "gpu", "date", "n_days", "repeat", "seed")},
        "backends": list(attrs.get("backends", [])),
        "machine": attrs.get("machine"),
        "rows": [{k: _jsonable(v) for k, v in r.items()} for r in results.to_dict("records")],
    }
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "png": out / "sweep.png"}
    paths["json"].write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    results.to_csv(paths["csv"], index=False)
    ax = plot_sweep(results)
    FigureCanvasAgg(ax.figure)
    where = attrs.get("device") or "CPU only"
    ax.set_title(f"{where}, {attrs.get('n_days', '?')} days per symbol, {attrs.get('date', '')}")
    ax.figure.savefig(paths["png"], dpi=110)
    return paths


def load_sweep(path: str | Path) -> pd.DataFrame:
    """Read a ``sweep.json`` written by :func:`write_sweep` back into a DataFrame with attrs."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    results = pd.DataFrame(doc["rows"], columns=list(SWEEP_COLUMNS))
    for col in ("median_s", "best_s", "first_call_s", "bytes", "max_abs_diff"):
        results[col] = results[col].astype(float)
    results.attrs.update({k: v for k, v in doc.items() if k != "rows"})
    return results


def load_recorded_sweep(path: str | Path | None = None) -> pd.DataFrame | None:
    """The sweep recorded on a real GPU (:data:`RECORDED_SWEEP`), or None when there is none.

    A file whose ``device`` is empty (a CPU-only sweep) or the CUDA simulator does not count.
    """
    path = Path(path) if path is not None else RECORDED_SWEEP
    if not path.is_file():
        return None
    results = load_sweep(path)
    if results.attrs.get("device") in (None, "", "CUDA simulator"):
        return None
    return results


def gpu_crossover(results: pd.DataFrame, label: str = "gpu float64: total") -> int | None:
    """The smallest symbol count at which ``label`` beats every CPU backend of the same sweep.

    None when it never does (or was not timed). Compares medians at equal panel sizes.
    """
    table = sweep_table(results)
    cpu = [c for c in table.columns if not str(c).startswith("gpu")]
    if label not in table.columns or not cpu:
        return None
    wins = table.index[table[label] < table[cpu].min(axis=1)]
    return int(wins.min()) if len(wins) else None


def summary_rows(
    results: pd.DataFrame,
    labels: Sequence[str] = ("gpu float64: kernel only", "gpu float64: total"),
    baseline: str = "talib",
) -> list[tuple[str, float, float, float, str]]:
    """Rows ``(label, median_s, speed-up vs baseline, max_abs_diff, where)`` at the widest panel.

    For a notebook's summary table: the speed-up is against ``baseline`` on the same machine
    and panel (NaN if it was not timed), ``max_abs_diff`` is the engine's total-call figure
    against TA-Lib, ``where`` names the device, panel size and date.
    """
    widest = results[results["n_symbols"] == results["n_symbols"].max()].set_index("label")
    base = widest["median_s"].get(baseline, math.nan)
    a = results.attrs
    where = (
        f"recorded: {a.get('device') or 'CPU'}, {int(widest['n_symbols'].iloc[0]):,} symbols x "
        f"{int(widest['n_days'].iloc[0]):,} days, {a.get('date', '?')}"
    )
    rows = []
    for label in labels:
        if label not in widest.index:
            continue
        row = widest.loc[label]
        total = widest[(widest["engine"] == row["engine"]) & (widest["dtype"] == row["dtype"])]
        diff = float(total.loc[total["phase"] == "total", "max_abs_diff"].iloc[0])
        rows.append((label, float(row["median_s"]), base / float(row["median_s"]), diff, where))
    return rows


_SIMULATED = """
import json
import numpy as np
from nepse_perf import compute_indicators, load_prices
from nepse_perf.data import sample_path
from nepse_perf.indicators import IndicatorParams, panel_from_frame
from nepse_perf.indicators.layout import N_OUT
from nepse_perf.indicators.backends.gpu import compute_with_timing, device_name
from nepse_perf.pipeline import to_panel_order
from nepse_perf.lessons.workbook import agrees, checksums, max_abs_diff

prices = load_prices(sample_path())
gpu = compute_indicators(prices, "gpu")
ref = compute_indicators(prices, "talib")
panel = panel_from_frame(prices)
ref_block = to_panel_order(ref.to_numpy().T, panel)
out32 = np.empty((N_OUT, panel.n_rows))
compute_with_timing(panel, IndicatorParams(), out32, dtype=np.float32)
sums = checksums(gpu)
print(json.dumps({
    "device": device_name(),
    "rows": int(len(prices)),
    "symbols": int(prices["symbol"].nunique()),
    "f64_agrees": bool(agrees(gpu, ref)),
    "f64_max_abs_diff": max_abs_diff(gpu, ref),
    "f32_agrees": bool(agrees(out32, ref_block)),
    "f32_max_abs_diff": {c: max_abs_diff(out32[k], ref_block[k]) for k, c in enumerate(ref)},
    "ref_max_abs": {c: float(np.nanmax(np.abs(ref_block[k]))) for k, c in enumerate(ref)},
    "checksums": {c: [int(r["values"]), r["sum"]] for c, r in sums.iterrows()},
}))
"""


def run_in_cuda_simulator(
    code: str, timeout: float = 300, python_args: Sequence[str] = ()
) -> dict[str, Any]:
    """Run ``code`` in a child Python with ``NUMBA_ENABLE_CUDASIM=1``; its last line as JSON.

    The simulator must be chosen before Numba is imported, so it cannot run in this process.
    ``code`` prints one JSON document as its last line of output; the child's stderr is
    captured, and a failure raises ``RuntimeError`` with its end. ``python_args`` go before
    the code (e.g. ``-W error``). The child runs in the caller's environment otherwise.
    """
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run(
        [sys.executable, *python_args, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"the CUDA-simulator run failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def simulated_gpu_report(timeout: float = 300, python_args: Sequence[str] = ()) -> dict[str, Any]:
    """Run the ``gpu`` backend on the real NEPSE sample in Numba's CUDA simulator; report.

    A child Python process (:func:`run_in_cuda_simulator`) computes the pipeline with
    the ``gpu`` backend in float64 and in float32 storage and compares both with TA-Lib.
    Returns the child's JSON: ``device``, ``rows``, ``symbols``, ``f64_agrees``,
    ``f64_max_abs_diff``, ``f32_agrees``, per-column ``f32_max_abs_diff`` and
    ``ref_max_abs`` (the column's largest absolute TA-Lib value) and ``checksums``
    (column -> [count, sum]). A failure raises ``RuntimeError`` with the end of the child's
    stderr. ``python_args`` go before the script (e.g. ``-W error``).
    """
    return run_in_cuda_simulator(_SIMULATED, timeout, python_args)


def format_sweep(results: pd.DataFrame) -> str:
    """Median seconds as text, one line per label and one column per symbol count."""
    table = sweep_table(results).T
    table.columns = [f"{c:,} sym" for c in table.columns]
    table.index.name = None
    return table.map(format_seconds).to_string()
