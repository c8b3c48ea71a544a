"""``nepse-perf indicators``: compute the ten indicator columns for a price file or directory."""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from pathlib import Path

import pandas as pd

from nepse_perf.cli.args import (
    UsageError,
    add_command,
    add_input_format_options,
    load_input,
    report_error,
    usage_errors,
)
from nepse_perf.indicators.params import IndicatorParams
from nepse_perf.pipeline import BACKENDS, DEFAULT_BACKEND, compute_indicators

__all__ = ["OUTPUT_SUFFIXES", "add_parsers"]

#: The output formats, by the suffix of ``--out``.
OUTPUT_SUFFIXES = (".parquet", ".csv")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``indicators`` with the ``nepse-perf`` parser."""
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
        default=DEFAULT_BACKEND,
        metavar="B",
        help=f"one of: {', '.join(BACKENDS)} (default {DEFAULT_BACKEND})",
    )
    ind.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="output .parquet or .csv"
    )
    ind.add_argument("--adjust", action="store_true", help="adjust for corporate-action gaps")
    ind.add_argument("--strict", action="store_true", help="fail on any price anomaly")
    add_input_format_options(ind)
    defaults = IndicatorParams()
    params = ind.add_argument_group("indicator parameters (the workbook's defaults)")
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


def _checked_params(args: argparse.Namespace) -> dict[str, float]:
    """The indicator parameters given on the command line, after checking backend and --out."""
    if args.backend not in BACKENDS:
        raise UsageError(f"unknown backend {args.backend!r}; valid backends: {', '.join(BACKENDS)}")
    if args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(
            f"--out {args.out}: unsupported suffix {args.out.suffix or '(none)'!r}; "
            f"use {' or '.join(OUTPUT_SUFFIXES)}"
        )
    given = {f.name: getattr(args, f.name) for f in fields(IndicatorParams)}
    given = {k: v for k, v in given.items() if v is not None}
    with usage_errors():
        IndicatorParams.from_kwargs(**given)
    return given


def _write_table(table: pd.DataFrame, out: Path) -> None:
    """Write ``table`` to ``out``, Parquet or CSV by its suffix (creating the folder)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        table.to_parquet(out, index=False)
    else:
        table.to_csv(out, index=False)


def _cmd_indicators(args: argparse.Namespace) -> int:
    given = _checked_params(args)
    t0 = time.perf_counter()
    prices = load_input(
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
        _write_table(table, args.out)
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
