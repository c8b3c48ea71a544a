"""The ``nepse-perf`` command line: ``bench`` (race the backends), ``sweep`` (time against panel
size, CPU vs GPU), ``indicators`` (compute) and the commands of the other modules of
:data:`COMMAND_MODULES` (``train``, ``bench-model``, ``batch``, ``serve``, ``loadtest``,
``bench-all``).

User errors (unknown backend, bad size, unreadable input, unsupported output suffix) print
one message to stderr and return exit status 2, never a traceback; a failure to write the
output returns 1. What the command modules share (argument types, input loading, error
reporting) is in :mod:`nepse_perf.cli.args`.
"""

from __future__ import annotations

import argparse
from types import ModuleType

from nepse_perf import __version__
from nepse_perf.cli import bench, bench_all, cloud, indicators, model, serve
from nepse_perf.cli.args import PROG, dispatch

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: The command modules, in ``--help`` order. Each has ``add_parsers(sub)``, which registers
#: its parsers with :func:`nepse_perf.cli.args.add_command`; a handler returns the exit
#: status and raises ``UsageError`` for a user error. Heavy imports belong inside the
#: handlers, so ``nepse-perf --help`` stays fast.
COMMAND_MODULES: tuple[ModuleType, ...] = (bench, indicators, model, cloud, serve, bench_all)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with the subcommands of every module of :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fast NEPSE stock indicators (SMA, EMA, RSI, MACD, Bollinger, ATR): "
        "benchmark the backends or compute the indicators for a price file.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    0 on success, 2 on a usage or input error (message on stderr, no traceback), 1 when the
    output cannot be written, 130 on Ctrl-C.
    """
    return dispatch(build_parser(), argv)
