"""Turn :func:`run_benchmark` results into a text table, Markdown, CSV, a PNG chart and JSON.

Units everywhere: seconds for times, rows/s for throughput, GB/s (1e9 bytes/s) for
bandwidth; speed-ups and "x bandwidth bound" are plain ratios.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from nepse_perf.bench.timing import format_seconds

__all__ = [
    "TABLE_HEADERS",
    "diff_bucket",
    "format_header",
    "format_table",
    "table_cells",
    "to_markdown",
    "write_chart",
    "write_csv",
    "write_json",
    "write_markdown",
    "write_reports",
]

#: Column headers of the printed table, in order.
TABLE_HEADERS: tuple[str, ...] = (
    "backend",
    "runs",
    "median s",
    "compile/first call s",
    "rows/s",
    "speed-up vs pandas",
    "speed-up vs TA-Lib",
    "x bandwidth bound",
    "max abs diff vs TA-Lib",
    "NaNs match",
    "check",
)

_RIGHT = {1, 2, 3, 4, 5, 6, 7, 8}


def _isnan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _secs(x: float) -> str:
    if _isnan(x):
        return "n/a"
    return f"{x:.4g}" if x < 10 else f"{x:.2f}"


def _rate(x: float) -> str:
    if _isnan(x):
        return "n/a"
    if x >= 1e9:
        return f"{x / 1e9:.2f}G"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def _ratio(x: float) -> str:
    if _isnan(x):
        return "n/a"
    return f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def _diff(x: float) -> str:
    if _isnan(x):
        return "n/a"
    return "0" if x == 0 else f"{x:.1e}"


def table_cells(results: pd.DataFrame) -> list[list[str]]:
    """The table's rows as strings, one list per result row, matching :data:`TABLE_HEADERS`."""
    rows = []
    for r in results.to_dict("records"):
        first = _secs(r["first_call_s"]) if r["jit"] else "-"
        nan_match = r["nan_match"]
        rows.append(
            [
                str(r["label"]),
                str(r["repeats"]),
                _secs(r["median_s"]),
                first,
                _rate(r["rows_per_s"]),
                "-" if r["kind"] in ("overhead", "memory") else _ratio(r["speedup_vs_pandas"]),
                "-" if r["kind"] in ("overhead", "memory") else _ratio(r["speedup_vs_talib"]),
                _ratio(r["x_bandwidth_bound"]),
                _diff(r["max_abs_diff"]),
                "n/a" if _isnan(nan_match) else ("yes" if nan_match else "NO"),
                str(r["check"]),
            ]
        )
    return rows


def format_table(results: pd.DataFrame) -> str:
    """The results as an aligned plain-text table (numbers right-aligned), no trailing newline."""
    cells = table_cells(results)
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(TABLE_HEADERS)]

    def line(row: list[str] | tuple[str, ...]) -> str:
        parts = [
            c.rjust(w) if i in _RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(TABLE_HEADERS), rule, *(line(r) for r in cells)])


def _header_lines(results: pd.DataFrame, machine: Mapping[str, Any]) -> list[str]:
    attrs = results.attrs
    bw = attrs.get("bandwidth", {})
    return [
        f"dataset: {attrs.get('dataset', '?')} ({attrs.get('n_rows', 0):,} rows, "
        f"{attrs.get('n_symbols', 0):,} symbols)",
        f"machine: {machine.get('cpu_model')}, {machine.get('logical_cores')} logical / "
        f"{machine.get('physical_cores')} physical cores ({machine.get('usable_cores')} usable), "
        f"{machine.get('memory_total_gb')} GB RAM, {machine.get('os')}",
        f"software: Python {machine.get('python')}, numpy {machine.get('numpy')}, pandas "
        f"{machine.get('pandas')}, numba {machine.get('numba')} ({machine.get('numba_threads')} "
        f"threads, {machine.get('numba_threading_layer')}), llvmlite {machine.get('llvmlite')}, "
        f"TA-Lib {machine.get('talib')}"
        + "".join(f", {k}={v}" for k, v in (machine.get("thread_env") or {}).items()),
        f"memory bandwidth: copy {bw.get('copy_gbps', math.nan):.1f} GB/s (read+write, "
        f"np.copyto on {bw.get('size_mib', math.nan):.0f} MiB), read-only "
        f"{bw.get('read_gbps', math.nan):.1f} GB/s (sum); pipeline bound = rows x 13 series x "
        f"8 B / copy = {format_seconds(attrs.get('bound_s', math.nan))}",
        f"date: {machine.get('datetime')}",
    ]


def format_header(results: pd.DataFrame, machine: Mapping[str, Any]) -> str:
    """Header text above the table: dataset, machine, software versions, bandwidth (GB/s)."""
    return "\n".join(_header_lines(results, machine))


def to_markdown(results: pd.DataFrame, machine: Mapping[str, Any]) -> str:
    """A Markdown report: machine bullet list, the results table, then the notes."""
    lines = ["# nepse-perf benchmark", ""]
    lines += [f"- {h}" for h in _header_lines(results, machine)]
    lines += ["", "| " + " | ".join(TABLE_HEADERS) + " |"]
    lines.append(
        "|"
        + "|".join("---" if i not in _RIGHT else "---:" for i in range(len(TABLE_HEADERS)))
        + "|"
    )
    lines += ["| " + " | ".join(row) + " |" for row in table_cells(results)]
    notes = results.attrs.get("notes", [])
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_csv(results: pd.DataFrame, path: str | Path) -> Path:
    """Write the raw result columns (seconds, rows/s, ratios) as CSV; returns the path."""
    path = Path(path)
    results.to_csv(path, index=False)
    return path


def write_markdown(results: pd.DataFrame, machine: Mapping[str, Any], path: str | Path) -> Path:
    """Write :func:`to_markdown`'s report; returns the path."""
    path = Path(path)
    path.write_text(to_markdown(results, machine), encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return _jsonable(value.item())
    return value


def write_json(results: pd.DataFrame, machine: Mapping[str, Any], path: str | Path) -> Path:
    """Write machine info, dataset, bandwidth (GB/s), notes and result rows as JSON.

    Top-level keys: ``machine`` (from :func:`machine_info`), ``dataset``, ``n_rows``,
    ``n_symbols``, ``repeat``, ``bandwidth``, ``bound_s``, ``notes``, ``rows`` (one object
    per result row; NaN becomes ``null``). Returns the path.
    """
    attrs = results.attrs
    doc = {
        "machine": dict(machine),
        "dataset": attrs.get("dataset"),
        "n_rows": attrs.get("n_rows"),
        "n_symbols": attrs.get("n_symbols"),
        "repeat": attrs.get("repeat"),
        "bandwidth": {k: _jsonable(v) for k, v in attrs.get("bandwidth", {}).items()},
        "bound_s": _jsonable(attrs.get("bound_s")),
        "notes": list(attrs.get("notes", [])),
        "rows": [{k: _jsonable(v) for k, v in rec.items()} for rec in results.to_dict("records")],
    }
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def write_chart(results: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Horizontal bar chart of median seconds (log scale), each bar labelled with its speed-up.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change). Returns the
    path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(results["label"])
    medians = [float(m) for m in results["median_s"]]
    fig = Figure(figsize=(9, 1.2 + 0.5 * len(labels)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = [
        {"backend": "tab:blue", "overhead": "tab:gray", "end-to-end": "tab:orange"}.get(
            k, "tab:blue"
        )
        for k in results["kind"]
    ]
    y = range(len(labels))
    ax.barh(y, medians, color=colors)
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median seconds per call (log scale)")
    for yi, (m, s, kind) in enumerate(
        zip(medians, results["speedup_vs_pandas"], results["kind"], strict=True)
    ):
        text = f" {format_seconds(m)}"
        if kind not in ("overhead", "memory") and not _isnan(s):
            text += f"  ({s:.1f}x vs pandas)"
        ax.text(m, yi, text, va="center", fontsize=8)
    if medians:
        lo, hi = min(medians), max(medians)
        ax.set_xlim(lo / 2, hi * 20)
    bound = results.attrs.get("bound_s")
    if bound:
        ax.axvline(
            bound,
            color="tab:red",
            linestyle="--",
            linewidth=1,
            label=f"memory-bandwidth bound ({format_seconds(bound)})",
        )
        ax.legend(loc="lower right", fontsize=8)
        ax.set_xlim(min(ax.get_xlim()[0], bound / 2), ax.get_xlim()[1])
    ax.set_title(title or f"nepse-perf bench: {results.attrs.get('dataset', '')}")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def write_reports(
    results: pd.DataFrame, machine: Mapping[str, Any], out_dir: str | Path
) -> dict[str, Path]:
    """Write ``bench.csv``, ``bench.md``, ``bench.png`` and ``bench.json`` into ``out_dir``.

    The directory is created if needed. Returns ``{"csv": path, "md": ..., "png": ...,
    "json": ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "csv": write_csv(results, out / "bench.csv"),
        "md": write_markdown(results, machine, out / "bench.md"),
        "png": write_chart(results, out / "bench.png"),
        "json": write_json(results, machine, out / "bench.json"),
    }


def diff_bucket(diff: float) -> str:
    """An order-of-magnitude label for a difference: ``'0'``, ``'< 1e-11'``, ... ``'NaN mismatch'``.

    Exact last-bit differences can vary between CPUs; the bucket does not (except at a
    power of ten), so notebooks print the bucket where nbval compares.
    """
    if math.isinf(diff):
        return "NaN mismatch"
    if diff == 0.0:
        return "0"
    return f"< 1e{math.floor(math.log10(diff)) + 1}"
