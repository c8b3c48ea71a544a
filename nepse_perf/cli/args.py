"""What every ``nepse-perf`` command module shares: argument types, input loading, errors.

A command module (``nepse_perf.cli.bench``, ``.indicators``, ``.model``, ...) has
``add_parsers(sub)``, which registers its subcommands with :func:`add_command`; a handler
returns the exit status and raises :class:`UsageError` for a user error, which
:func:`dispatch` reports as one line on stderr with exit status 2. The argparse types here
(:func:`positive_int`, :func:`positive_float`, :func:`int_list`, :func:`column_mapping`)
raise ``argparse.ArgumentTypeError``, so argparse names the option in its message.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nepse_perf._infra import checks

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PROG",
    "UsageError",
    "add_command",
    "add_input_format_options",
    "column_mapping",
    "cpu_list",
    "dispatch",
    "int_list",
    "load_input",
    "parse_backends",
    "positive_float",
    "positive_int",
    "progress_printer",
    "report_error",
    "usage_errors",
]

PROG = "nepse-perf"


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
    ``set_defaults(func=func)``, so :func:`dispatch` calls ``func(args)`` for the exit
    status. Returns the new parser for the command's own options.
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


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` and run the chosen command's handler; the exit status.

    0 on success, 2 on a usage or input error (message on stderr, no traceback; the bare
    program name prints the help on stderr), 1 when the output cannot be written, 130 on
    Ctrl-C. ``--help`` and ``--version`` return argparse's status (0).
    """
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


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, else ``argparse.ArgumentTypeError``.

    The text must read as an ``int``; the value then goes through
    :func:`nepse_perf._infra.checks.positive_int`, whose message argparse prefixes with the
    option's name (``argument --repeat: value must be an int >= 1, got 0``).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    try:
        return checks.positive_int(value, "value")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (``inf`` accepted), else ``argparse.ArgumentTypeError``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated whole numbers >= 1 (``"100,300"``), at least one."""
    values = [positive_int(part.strip()) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}")
    return values


def cpu_list(text: str) -> list[int]:
    """argparse type: comma-separated CPU numbers >= 0 (``"0"``, ``"0,1"``), at least one."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected CPU numbers such as 0 or 0,1, got {text!r}")
    return values


def column_mapping(text: str) -> dict[str, str]:
    """argparse type: ``OUT=SRC,...`` read by :func:`nepse_perf.data.formats.parse_column_mapping`."""
    from nepse_perf.data.formats import parse_column_mapping

    try:
        return parse_column_mapping(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_input_format_options(group: Any, prefix: str = "") -> None:
    """Add ``--columns`` and ``--date-format`` (how load_prices reads another layout) to ``group``.

    ``group`` is a parser or an argument group; ``prefix`` starts each help line (e.g.
    ``"with --input: "`` where the options only apply to one source).
    """
    group.add_argument(
        "--columns",
        type=column_mapping,
        metavar="OUT=SRC,...",
        help=f"{prefix}source column of each price column, e.g. close=LTP,date=Day (the rest "
        "by their usual names: date, open, high, low, close, volume, turnover, symbol)",
    )
    group.add_argument(
        "--date-format",
        metavar="FMT",
        help=f"{prefix}strftime pattern of text dates, e.g. %%d/%%m/%%Y (default %%Y-%%m-%%d)",
    )


def load_input(
    path: Path,
    *,
    adjust: bool = False,
    strict: bool = False,
    columns: Mapping[str, str] | None = None,
    date_format: str | None = None,
    say: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """:func:`nepse_perf.data.load_prices` of ``path``, its failures raised as UsageError.

    A data error, a missing path or an unreadable file becomes the one-line usage error
    (naming the path); each of the loader's notes (e.g. which column is the close) goes to
    ``say`` as ``note: ...`` (default: printed on stderr).
    """
    from nepse_perf.data import DataError, load_prices

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
    for note in prices.attrs.get("load_notes", []):
        (say or (lambda msg: print(msg, file=sys.stderr)))(f"note: {note}")
    return prices


def parse_backends(text: str | None) -> list[str] | None:
    """The names of a ``--backends A,B,...`` value (None when not given), checked now.

    An unknown or unavailable backend raises UsageError with
    :func:`nepse_perf.bench.runner.select_backends`'s message.
    """
    from nepse_perf.bench.runner import select_backends

    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    with usage_errors():
        select_backends(names, 0)
    return names
