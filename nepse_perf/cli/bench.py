"""``nepse-perf bench`` (race the backends on one panel), ``nepse-perf sweep`` (time
against panel size, CPU vs GPU) and ``nepse-perf gpu-workloads`` (time the MLP and the
batched matrix product on the CPU and the GPU)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from nepse_perf.bench.machine import Bandwidth, machine_info, memory_bandwidth
from nepse_perf.bench.report import format_header, format_table, write_reports
from nepse_perf.bench.runner import run_benchmark
from nepse_perf.bench.scaling import (
    SCALING_BACKEND,
    SCALING_ROWS,
    scaling_summary,
    thread_scaling,
    write_scaling,
)
from nepse_perf.bench.sweep import RECORDED_SWEEP, format_sweep, panel_size_sweep, write_sweep
from nepse_perf.bench.timing import format_seconds, measure
from nepse_perf.cli.args import (
    UsageError,
    add_command,
    add_input_format_options,
    int_list,
    load_input,
    parse_backends,
    positive_float,
    positive_int,
    progress_printer,
    report_error,
    usage_errors,
)
from nepse_perf.data import load_prices, synthetic_prices
from nepse_perf.data.synthetic import SIZES
from nepse_perf.indicators.panel import panel_from_frame
from nepse_perf.pipeline import BACKENDS

__all__ = ["DEFAULT_SIZE", "add_parsers"]

#: The synthetic size ``bench`` runs without a data option.
DEFAULT_SIZE = "medium"

#: Timed calls of ``load_prices`` behind the report's load line (``--input`` only).
LOAD_REPEAT = 3


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``bench``, ``sweep`` and ``gpu-workloads`` with the ``nepse-perf`` parser."""
    _add_bench_parser(sub)
    _add_sweep_parser(sub)
    _add_workloads_parser(sub)


def _add_workloads_parser(sub: argparse._SubParsersAction) -> None:
    w = add_command(
        sub,
        "gpu-workloads",
        _cmd_workloads,
        help="time the MLP's training and batched covariance windows on CPU and GPU",
        description="Time notebook 08's GPU workloads (the project's MLP and a wide one "
        "trained for a fixed number of epochs; rolling covariance matrices of every symbol's "
        "returns, one batched matrix product per batch of windows) on the CPU and the CUDA "
        "GPU, and write workloads.json. Without a CUDA GPU it stops at once with exit status "
        "2 and says why (--allow-cpu records the CPU alone).",
    )
    w.add_argument("--out", type=Path, default=Path("results/gpu"), metavar="DIR",
                   help="output directory (default results/gpu/)")  # fmt: skip
    w.add_argument("--check", action="store_true", help="only check for a usable GPU, then exit")
    w.add_argument("--allow-cpu", action="store_true", help="record the CPU alone without a GPU")
    w.add_argument("--repeat", type=positive_int, default=3, metavar="N",
                   help="timed repeats (default 3)")  # fmt: skip


def _cmd_workloads(args: argparse.Namespace) -> int:
    from nepse_perf.lessons.gpu_workloads import gpu_problems, record_workloads

    problems = gpu_problems()
    if problems and not args.allow_cpu:
        raise UsageError("no usable CUDA GPU here: " + "; ".join(problems))
    if args.check:
        print("a usable CUDA GPU: numba.cuda and PyTorch both see it")
        return 0
    try:
        path = record_workloads(args.out, repeat=args.repeat)
    except OSError as exc:
        return report_error("gpu-workloads", f"cannot write to {args.out}: {exc}")
    print(f"wrote {path}")
    return 0


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    sizes = ", ".join(f"{k} {s:,}x{d:,}" for k, (s, d) in SIZES.items())
    b = add_command(
        sub,
        "bench",
        _cmd_bench,
        help="time every backend on one panel, check it against TA-Lib, write reports",
        description="Time every backend on the same panel (warm-up excluded, repeats "
        "round-robin, GC off during each call, median reported), check each against TA-Lib, "
        "compare with the memory-bandwidth bound and write bench.csv/.md/.png/.json.",
    )
    src = b.add_argument_group("data (pick one; default --size medium)")
    src.add_argument(
        "--size", choices=list(SIZES), help=f"synthetic panel, symbols x days: {sizes}"
    )
    src.add_argument("--symbols", type=positive_int, metavar="S", help="synthetic: symbols")
    src.add_argument("--days", type=positive_int, metavar="T", help="synthetic: days per symbol")
    src.add_argument(
        "--input",
        type=Path,
        metavar="PATH",
        help="a price file (CSV or Parquet) or a directory of them",
    )
    src.add_argument(
        "--adjust", action="store_true", help="with --input: adjust for corporate actions"
    )
    add_input_format_options(src, "with --input: ")
    src.add_argument("--seed", type=int, default=0, metavar="K", help="synthetic seed (default 0)")
    b.add_argument(
        "--backends",
        metavar="A,B,...",
        help=f"comma-separated, from: {', '.join(BACKENDS)} (default: all; python only up "
        "to 2M rows unless named)",
    )
    b.add_argument(
        "--repeat", type=positive_int, default=5, metavar="N", help="timed repeats (default 5)"
    )
    b.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        metavar="DIR",
        help="report directory (default bench-results/)",
    )
    b.add_argument(
        "--bandwidth-mib",
        type=positive_float,
        default=256.0,
        metavar="MIB",
        help="array size of the bandwidth measurement (default 256 MiB)",
    )
    b.add_argument(
        "--scaling",
        action="store_true",
        help=f"also time {SCALING_BACKEND} at 1e4..1e7 rows with 1 and 2 threads and write "
        "scaling.csv/.json/.png (reused, pooled and np.empty output blocks)",
    )
    b.add_argument(
        "--scaling-rows",
        type=int_list,
        default=list(SCALING_ROWS),
        metavar="R1,R2,...",
        help="with --scaling: panel sizes in rows (default "
        + ",".join(str(r) for r in SCALING_ROWS)
        + ")",
    )
    b.add_argument(
        "--peers",
        action="store_true",
        help="also time the installed peer libraries (pip install -e '.[peers]': polars-talib, "
        "polars-talib-fast, tulipy, ta-numba, talipp) and check them against TA-Lib",
    )
    b.add_argument("--quiet", action="store_true", help="no progress bar or notes, just the table")


def _add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    recorded = RECORDED_SWEEP.parent.relative_to(RECORDED_SWEEP.parents[2])
    sw = add_command(
        sub,
        "sweep",
        _cmd_sweep,
        help="time backends against panel size (when does the GPU win?), write sweep.json/.csv/.png",
        description="Time CPU backends and the gpu backend (float64 and float32 storage, each "
        "call split into host layout, host -> device copy, kernel and device -> host copy) on "
        "synthetic panels of growing symbol counts, check each against TA-Lib and write "
        f"sweep.json/.csv/.png. A sweep recorded on a real GPU belongs in {recorded}/ "
        "(notebook 08 charts it).",
    )
    sw.add_argument(
        "--symbols",
        type=int_list,
        default=[100, 300, 1000, 3000, 10000],
        metavar="S1,S2,...",
        help="symbol counts (default 100,300,1000,3000,10000)",
    )
    sw.add_argument(
        "--days", type=positive_int, default=2500, metavar="T", help="days per symbol (2500)"
    )
    sw.add_argument(
        "--backends",
        metavar="A,B,...",
        help="comma-separated (default: numba_parallel,talib, plus gpu when a GPU is found)",
    )
    sw.add_argument(
        "--repeat", type=positive_int, default=5, metavar="N", help="timed repeats (default 5)"
    )
    sw.add_argument("--seed", type=int, default=0, metavar="K", help="synthetic seed (default 0)")
    sw.add_argument("--no-float32", action="store_true", help="gpu in float64 only")
    sw.add_argument(
        "--no-check", action="store_true", help="skip the TA-Lib comparison (one TA-Lib run/size)"
    )
    sw.add_argument(
        "--out",
        type=Path,
        default=Path("sweep-results"),
        metavar="DIR",
        help=f"output directory (default sweep-results/; a real-GPU record: {recorded}/)",
    )
    sw.add_argument("--quiet", action="store_true", help="no progress lines, just the table")


def _bench_prices(args: argparse.Namespace, say) -> tuple[pd.DataFrame, str]:
    """The prices ``bench`` times (``--input``, ``--symbols/--days`` or ``--size``) and a label."""
    synthetic = args.symbols is not None or args.days is not None
    if sum([args.size is not None, synthetic, args.input is not None]) > 1:
        raise UsageError("choose one of --size, --symbols/--days or --input")
    if synthetic and (args.symbols is None or args.days is None):
        raise UsageError("--symbols and --days go together")
    if args.adjust and args.input is None:
        raise UsageError("--adjust needs --input")
    if (args.columns or args.date_format) and args.input is None:
        raise UsageError("--columns and --date-format need --input")
    if args.input is not None:
        say(f"loading {args.input} ...")
        prices = load_input(
            args.input,
            adjust=args.adjust,
            columns=args.columns,
            date_format=args.date_format,
            say=say,
        )
        return prices, f"input {args.input}"
    if synthetic:
        n_symbols, n_days = args.symbols, args.days
        label = "custom"
    else:
        label = args.size or DEFAULT_SIZE
        n_symbols, n_days = SIZES[label]
    say(f"generating synthetic prices: {n_symbols:,} symbols x {n_days:,} days ...")
    with usage_errors():
        prices = synthetic_prices(n_symbols, n_days, seed=args.seed)
    return prices, f"synthetic {label} {n_symbols:,}x{n_days:,} (seed {args.seed})"


def _cmd_bench(args: argparse.Namespace) -> int:
    backends = parse_backends(args.backends)
    say = progress_printer(args.quiet)
    prices, dataset = _bench_prices(args, say)
    with usage_errors():
        panel = panel_from_frame(prices)
    if panel.n_rows == 0:
        raise UsageError("no price rows to benchmark")

    say(f"measuring memory bandwidth ({args.bandwidth_mib:g} MiB arrays) ...")
    bandwidth = memory_bandwidth(args.bandwidth_mib)
    results = run_benchmark(
        prices,
        backends,
        args.repeat,
        bandwidth=bandwidth,
        progress=False if args.quiet else None,
        dataset=dataset,
        panel=panel,
        peers=args.peers,
    )
    if args.input is not None:
        say(f"timing load_prices({args.input}), {LOAD_REPEAT} calls ...")
        results.attrs["notes"].append(_load_line(args, prices))
    info = machine_info()
    print(format_header(results, info))
    print()
    print(format_table(results))
    if not args.quiet:
        print()
        for note in results.attrs["notes"]:
            print(f"note: {note}")
    try:
        paths = write_reports(results, info, args.out)
    except OSError as exc:
        return report_error("bench", f"cannot write reports to {args.out}: {exc}")
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return _bench_scaling(args, bandwidth, say) if args.scaling else 0


def _load_line(args: argparse.Namespace, prices: pd.DataFrame) -> str:
    """The report's line on how long ``load_prices`` of ``--input`` takes (median of calls).

    Timed after the load that gave ``prices`` (so the files are in the page cache), with the
    options ``bench`` loaded them with; the 1-minute load average says how busy the machine was.
    """
    timing = measure(
        lambda: load_prices(
            args.input, adjust=args.adjust, columns=args.columns, date_format=args.date_format
        ),
        repeat=LOAD_REPEAT,
        warmup=0,
    )
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"load: load_prices({args.input}) median {format_seconds(timing.median)} of "
        f"{LOAD_REPEAT} calls (best {format_seconds(timing.best)}) for {len(prices):,} rows, "
        f"{prices['symbol'].nunique():,} symbols; 1-minute load average {busy:.1f} on "
        f"{os.cpu_count()} CPUs"
    )


def _bench_scaling(args: argparse.Namespace, bandwidth: Bandwidth, say) -> int:
    """``bench --scaling``: time the scaling backend against rows and threads, write scaling.*."""
    say(f"timing {SCALING_BACKEND} against rows and threads ...")
    scaling = thread_scaling(args.scaling_rows, repeat=args.repeat, bandwidth=bandwidth)
    print()
    print(f"{SCALING_BACKEND}, median (IQR) and x bandwidth bound, by rows and threads:")
    print(scaling_summary(scaling).to_string())
    try:
        spaths = write_scaling(scaling, args.out)
    except OSError as exc:
        return report_error("bench", f"cannot write to {args.out}: {exc}")
    say("wrote " + ", ".join(str(p) for p in spaths.values()))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    backends = parse_backends(args.backends)
    say = progress_printer(args.quiet)
    try:  # fail now, not after the sweep, if the reports cannot be written
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return report_error("sweep", f"cannot write to {args.out}: {exc}")

    def save(partial: pd.DataFrame) -> None:  # after every size: a run cut short keeps it
        write_sweep(partial, args.out)
        say(f"saved {partial['n_symbols'].nunique()} size(s) to {args.out}")

    results = panel_size_sweep(
        args.symbols,
        args.days,
        backends,
        args.repeat,
        seed=args.seed,
        gpu_float32=not args.no_float32,
        check=not args.no_check,
        progress=say,
        on_size=save,
    )
    attrs = results.attrs
    gpu = attrs["gpu"] or {}
    print(
        f"device: {attrs['device'] or 'no GPU'}"
        + "".join(f", {k} {gpu[k]}" for k in ("compute_capability", "driver") if k in gpu)
        + f"; {attrs['n_days']:,} days per symbol; median of {attrs['repeat']} calls; "
        f"{attrs['date']}"
    )
    print(format_sweep(results))
    failed = sorted(set(results.loc[results["check"] == "FAIL", "label"]))
    if failed:
        print(f"TA-Lib check FAILED for: {', '.join(failed)}")
    say("wrote " + ", ".join(str(args.out / f"sweep.{x}") for x in ("json", "csv", "png")))
    return 0
