"""The benchmark: honest timings of every backend, checked against TA-Lib, with reports.

``measure`` (timing cells in the notebooks), ``machine_info``/``memory_bandwidth``
(where the numbers came from, GB/s), ``run_benchmark`` (one row per backend) and
``write_reports`` (CSV, Markdown, PNG, JSON). ``nepse-perf bench`` drives them all;
``panel_size_sweep``/``write_sweep`` (``nepse-perf sweep``) time backends against panel size,
CPU against GPU.
"""

from __future__ import annotations

from nepse_perf.bench.machine import (
    Bandwidth,
    machine_info,
    memory_bandwidth,
    pipeline_bound_seconds,
)
from nepse_perf.bench.report import format_header, format_table, to_markdown, write_reports
from nepse_perf.bench.runner import (
    SIZES,
    compare_to_reference,
    reference_block,
    run_benchmark,
    select_backends,
)
from nepse_perf.bench.sweep import (
    RECORDED_SWEEP,
    load_recorded_sweep,
    load_sweep,
    panel_size_sweep,
    plot_sweep,
    simulated_gpu_report,
    write_sweep,
)
from nepse_perf.bench.timing import Timing, format_seconds, measure, timed_call

__all__ = [
    "RECORDED_SWEEP",
    "SIZES",
    "Bandwidth",
    "Timing",
    "compare_to_reference",
    "format_header",
    "format_seconds",
    "format_table",
    "load_recorded_sweep",
    "load_sweep",
    "machine_info",
    "measure",
    "memory_bandwidth",
    "panel_size_sweep",
    "pipeline_bound_seconds",
    "plot_sweep",
    "reference_block",
    "run_benchmark",
    "select_backends",
    "simulated_gpu_report",
    "timed_call",
    "to_markdown",
    "write_reports",
    "write_sweep",
]
