"""The ``nepse-perf`` command line: ``bench`` (race the backends), ``sweep`` (time against panel
size, CPU vs GPU) and ``indicators`` (compute).

User errors (unknown backend, bad size, unreadable input, unsupported output suffix) print
one message to stderr and return exit status 2, never a traceback; a failure to write the
output returns 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import pandas as pd

from . import __version__
from .bench.machine import machine_info, memory_bandwidth
from .bench.report import format_header, format_table, write_reports
from .bench.runner import run_benchmark, select_backends
from .bench.scaling import SCALING_ROWS, scaling_summary, thread_scaling, write_scaling
from .bench.sweep import RECORDED_SWEEP, format_sweep, panel_size_sweep, write_sweep
from .data import DataError, load_prices, synthetic_prices
from .data.formats import parse_column_mapping
from .data.synthetic import SIZES
from .indicators.panel import panel_from_frame
from .indicators.params import IndicatorParams
from .pipeline import BACKENDS, compute_indicators

__all__ = [
    "add_command",
    "build_parser",
    "main",
    "progress_printer",
    "report_error",
    "usage_errors",
]

PROG = "nepse-perf"
DEFAULT_SIZE = "medium"
OUTPUT_SUFFIXES = (".parquet", ".csv")


class UsageError(Exception):
    """A user error: reported as one line on stderr with exit status 2."""


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    func: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """Register the subcommand ``name`` with its ``help`` line, ``description`` and handler.

    The one way every command module adds a parser: ``sub.add_parser`` plus
    ``set_defaults(func=func)``, so :func:`main` calls ``func(args)`` for the exit status.
    Returns the new parser for the command's own options.
    """
    parser = sub.add_parser(name, help=help, description=description)
    parser.set_defaults(func=func)
    return parser


@contextlib.contextmanager
def usage_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Turn the exceptions ``kinds`` (default ``ValueError``) raised inside into UsageError.

    For handlers whose library calls validate their arguments: ``with usage_errors(): ...``
    reports the library's message as the one-line usage error (exit status 2) instead of a
    traceback; other exceptions pass through unchanged.
    """
    caught = kinds or (ValueError,)
    try:
        yield
    except caught as exc:
        raise UsageError(str(exc)) from None


def report_error(command: str, message: str, status: int = 1) -> int:
    """Print ``nepse-perf COMMAND: error: MESSAGE`` on stderr and return ``status``.

    A handler's way to fail without a traceback, e.g. ``return report_error("train",
    f"cannot write {path}: {exc}")`` when the output cannot be written (status 1).
    """
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return status


def progress_printer(quiet: bool, *, flush: bool = False) -> Callable[[str], None]:
    """The ``say`` of a command: print each progress line on stderr, or nothing if ``quiet``.

    ``flush=True`` flushes after every line, for a caller that may be killed mid-run.
    """
    if quiet:
        return lambda msg: None
    return lambda msg: print(msg, file=sys.stderr, flush=flush)


#: Modules that add more subcommands beside the code they drive. Each has
#: ``add_parsers(sub)``, which registers its parsers with ``set_defaults(func=...)``; a handler
#: returns the exit status and raises ``UsageError`` for a user error. Heavy imports belong
#: inside the handlers, so ``nepse-perf --help`` stays fast.
COMMAND_MODULES: tuple[str, ...] = (
    "nepse_perf.model.cli",
    "nepse_perf.cloud.cli",
    "nepse_perf.serving.cli",
    "nepse_perf.bench.bench_all",
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _int_list(text: str) -> list[int]:
    values = [_positive_int(part.strip()) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}")
    return values


def _column_mapping(text: str) -> dict[str, str]:
    try:
        return parse_column_mapping(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_input_format_options(group, prefix: str = "") -> None:
    """``--columns`` and ``--date-format``: how load_prices reads an input of another layout."""
    group.add_argument(
        "--columns",
        type=_column_mapping,
        metavar="OUT=SRC,...",
        help=f"{prefix}source column of each price column, e.g. close=LTP,date=Day (the rest "
        "by their usual names: date, open, high, low, close, volume, turnover, symbol)",
    )
    group.add_argument(
        "--date-format",
        metavar="FMT",
        help=f"{prefix}strftime pattern of text dates, e.g. %%d/%%m/%%Y (default %%Y-%%m-%%d)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with the ``bench``, ``sweep`` and ``indicators`` subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fast NEPSE stock indicators (SMA, EMA, RSI, MACD, Bollinger, ATR): "
        "benchmark the backends or compute the indicators for a price file.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    src.add_argument("--symbols", type=_positive_int, metavar="S", help="synthetic: symbols")
    src.add_argument("--days", type=_positive_int, metavar="T", help="synthetic: days per symbol")
    src.add_argument(
        "--input",
        type=Path,
        metavar="PATH",
        help="a price file (CSV or Parquet) or a directory of them",
    )
    src.add_argument(
        "--adjust", action="store_true", help="with --input: adjust for corporate actions"
    )
    _add_input_format_options(src, "with --input: ")
    src.add_argument("--seed", type=int, default=0, metavar="K", help="synthetic seed (default 0)")
    b.add_argument(
        "--backends",
        metavar="A,B,...",
        help=f"comma-separated, from: {', '.join(BACKENDS)} (default: all; python only up "
        "to 2M rows unless named)",
    )
    b.add_argument(
        "--repeat", type=_positive_int, default=5, metavar="N", help="timed repeats (default 5)"
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
        type=_positive_float,
        default=256.0,
        metavar="MIB",
        help="array size of the bandwidth measurement (default 256 MiB)",
    )
    b.add_argument(
        "--scaling",
        action="store_true",
        help="also time numba_parallel at 1e4..1e7 rows with 1 and 2 threads and write "
        "scaling.csv/.json/.png (reused, pooled and np.empty output blocks)",
    )
    b.add_argument(
        "--scaling-rows",
        type=_int_list,
        default=list(SCALING_ROWS),
        metavar="R1,R2,...",
        help="with --scaling: panel sizes in rows (default "
        + ",".join(str(r) for r in SCALING_ROWS)
        + ")",
    )
    b.add_argument("--quiet", action="store_true", help="no progress bar or notes, just the table")

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
        type=_int_list,
        default=[100, 300, 1000, 3000, 10000],
        metavar="S1,S2,...",
        help="symbol counts (default 100,300,1000,3000,10000)",
    )
    sw.add_argument(
        "--days", type=_positive_int, default=2500, metavar="T", help="days per symbol (2500)"
    )
    sw.add_argument(
        "--backends",
        metavar="A,B,...",
        help="comma-separated (default: numba_parallel,talib, plus gpu when a GPU is found)",
    )
    sw.add_argument(
        "--repeat", type=_positive_int, default=5, metavar="N", help="timed repeats (default 5)"
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

    ind = add_command(
        sub,
        "indicators",
        _cmd_indicators,
        help="compute the ten indicator columns for a price file or directory",
        description="Load INPUT with load_prices, compute the indicators and write prices "
        "plus indicators to a .parquet or .csv file.",
    )
    ind.add_argument(
        "input",
        type=Path,
        metavar="INPUT",
        help="a price file (CSV or Parquet) or a directory of them",
    )
    ind.add_argument(
        "--backend",
        default="numba_parallel",
        metavar="B",
        help=f"one of: {', '.join(BACKENDS)} (default numba_parallel)",
    )
    ind.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="output .parquet or .csv"
    )
    ind.add_argument("--adjust", action="store_true", help="adjust for corporate-action gaps")
    ind.add_argument("--strict", action="store_true", help="fail on any price anomaly")
    _add_input_format_options(ind)
    defaults = IndicatorParams()
    params = ind.add_argument_group("indicator parameters (TA-Lib defaults)")
    for f in fields(IndicatorParams):
        kind = float if f.name == "bb_nbdev" else int
        params.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            default=None,
            metavar="X" if kind is float else "N",
            help=f"default {getattr(defaults, f.name)}",
        )
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parsers(sub)
    return parser


def _load(
    path: Path,
    *,
    adjust: bool = False,
    strict: bool = False,
    columns=None,
    date_format=None,
    say=None,
):
    try:
        prices = load_prices(
            path, adjust=adjust, strict=strict, columns=columns, date_format=date_format
        )
    except (DataError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except FileNotFoundError as exc:
        raise UsageError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for note in prices.attrs.get("load_notes", []):  # e.g. which column is the close
        (say or (lambda msg: print(msg, file=sys.stderr)))(f"note: {note}")
    return prices


def _parse_backends(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    with usage_errors():
        select_backends(names, 0)
    return names


def _cmd_bench(args: argparse.Namespace) -> int:
    backends = _parse_backends(args.backends)
    synthetic = args.symbols is not None or args.days is not None
    if sum([args.size is not None, synthetic, args.input is not None]) > 1:
        raise UsageError("choose one of --size, --symbols/--days or --input")
    if synthetic and (args.symbols is None or args.days is None):
        raise UsageError("--symbols and --days go together")
    if args.adjust and args.input is None:
        raise UsageError("--adjust needs --input")
    if (args.columns or args.date_format) and args.input is None:
        raise UsageError("--columns and --date-format need --input")
    say = progress_printer(args.quiet)

    if args.input is not None:
        say(f"loading {args.input} ...")
        prices = _load(
            args.input,
            adjust=args.adjust,
            columns=args.columns,
            date_format=args.date_format,
            say=say,
        )
        dataset = f"input {args.input}"
    else:
        if synthetic:
            n_symbols, n_days = args.symbols, args.days
            label = "custom"
        else:
            label = args.size or DEFAULT_SIZE
            n_symbols, n_days = SIZES[label]
        say(f"generating synthetic prices: {n_symbols:,} symbols x {n_days:,} days ...")
        with usage_errors():
            prices = synthetic_prices(n_symbols, n_days, seed=args.seed)
        dataset = f"synthetic {label} {n_symbols:,}x{n_days:,} (seed {args.seed})"
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
    )
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
    if args.scaling:
        say("timing numba_parallel against rows and threads ...")
        scaling = thread_scaling(args.scaling_rows, repeat=args.repeat, bandwidth=bandwidth)
        print()
        print("numba_parallel, median (IQR) and x bandwidth bound, by rows and threads:")
        print(scaling_summary(scaling).to_string())
        try:
            spaths = write_scaling(scaling, args.out)
        except OSError as exc:
            return report_error("bench", f"cannot write to {args.out}: {exc}")
        say("wrote " + ", ".join(str(p) for p in spaths.values()))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    backends = _parse_backends(args.backends)
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


def _cmd_indicators(args: argparse.Namespace) -> int:
    if args.backend not in BACKENDS:
        raise UsageError(f"unknown backend {args.backend!r}; valid backends: {', '.join(BACKENDS)}")
    suffix = args.out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(
            f"--out {args.out}: unsupported suffix {args.out.suffix or '(none)'!r}; "
            f"use {' or '.join(OUTPUT_SUFFIXES)}"
        )
    given = {f.name: getattr(args, f.name) for f in fields(IndicatorParams)}
    given = {k: v for k, v in given.items() if v is not None}
    with usage_errors():
        IndicatorParams.from_kwargs(**given)

    t0 = time.perf_counter()
    prices = _load(
        args.input,
        adjust=args.adjust,
        strict=args.strict,
        columns=args.columns,
        date_format=args.date_format,
    )
    t1 = time.perf_counter()
    try:
        ind = compute_indicators(prices, args.backend, **given)
    except ValueError as exc:
        raise UsageError(f"{args.input}: {exc}") from None
    t2 = time.perf_counter()
    clash = sorted(set(prices.columns) & set(ind.columns))
    if clash:
        raise UsageError(f"{args.input}: price columns clash with indicator names: {clash}")
    table = prices.join(ind)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".parquet":
            table.to_parquet(args.out, index=False)
        else:
            table.to_csv(args.out, index=False)
    except (OSError, ImportError, ValueError) as exc:
        return report_error("indicators", f"cannot write {args.out}: {exc}")
    t3 = time.perf_counter()
    n_symbols = prices["symbol"].nunique() if "symbol" in prices else 0
    print(
        f"{len(table):,} rows, {n_symbols:,} symbols, {table.shape[1]} columns -> {args.out} "
        f"(load {t1 - t0:.2f} s, indicators {t2 - t1:.3f} s with {args.backend}, "
        f"write {t3 - t2:.2f} s)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    0 on success, 2 on a usage or input error (message on stderr, no traceback), 1 when the
    output cannot be written, 130 on Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or an argparse usage error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except UsageError as exc:
        return report_error(args.command, str(exc), 2)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
