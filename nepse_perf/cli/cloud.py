"""``nepse-perf batch``: the resumable nightly job (indicators, optionally predictions) per chunk.

Exit status: 0 finished, 2 usage or input error (one line on stderr), 75 (``EX_TEMPFAIL``,
"try again") stopped by SIGTERM (a shutdown, a node drain: a spot VM's end) after finishing or
abandoning the chunk in flight, or by a spot notice read from the instance metadata
(``--spot-notice aws|gcp``, polled every ``--spot-poll-s`` seconds) after finishing the chunk
in flight; rerun the same command to resume.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from nepse_perf.cli.args import (
    UsageError,
    add_command,
    positive_float,
    positive_int,
    progress_printer,
    usage_errors,
)
from nepse_perf.pipeline import DEFAULT_BACKEND

__all__ = ["EXIT_PREEMPTED", "add_parsers"]

#: Exit status after SIGTERM: the job stopped cleanly and can be resumed (sysexits EX_TEMPFAIL).
EXIT_PREEMPTED = 75


class _Abandon(BaseException):
    """Raised by the second SIGTERM: abandon the chunk in flight now (its temp file is removed)."""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``batch`` with the ``nepse-perf`` parser."""
    b = add_command(
        sub,
        "batch",
        _cmd_batch,
        help="resumable nightly job: indicators (and predictions) per chunk of symbols",
        description="Compute the indicators (with --predict also p_up, the model's probability "
        "that the close rises) for every symbol of INPUT and write one Parquet file per chunk "
        "of symbols into --out, atomically, with a manifest. Rerun the same command after a "
        "kill to resume: finished chunks are skipped (checked by SHA-256), the rest redone. "
        f"SIGTERM finishes the chunk in flight and exits {EXIT_PREEMPTED}; a second SIGTERM "
        "abandons it at once.",
    )
    b.add_argument(
        "input",
        type=Path,
        nargs="?",
        metavar="INPUT",
        help="price file or directory (default: the whole shipped market)",
    )
    b.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    b.add_argument(
        "--chunk-symbols",
        type=positive_int,
        default=50,
        metavar="N",
        help="symbols per chunk (default 50)",
    )
    b.add_argument(
        "--backend", default=DEFAULT_BACKEND, metavar="B", help=f"default {DEFAULT_BACKEND}"
    )
    b.add_argument("--predict", type=Path, metavar="MODEL", help="model directory: add p_up")
    b.add_argument(
        "--force", action="store_true", help="delete this job's files in --out and start over"
    )
    b.add_argument(
        "--spot-notice",
        choices=("aws", "gcp"),
        help="poll this cloud's instance metadata for a spot interruption notice and stop "
        "between chunks when one appears (AWS: spot/instance-action; GCP: instance/preempted)",
    )
    b.add_argument(
        "--metadata-url",
        metavar="URL",
        help="with --spot-notice: the metadata service's base URL (default: the cloud's own "
        "link-local address; a loopback stand-in in the tests)",
    )
    b.add_argument(
        "--spot-poll-s",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="with --spot-notice: seconds between polls (default 5)",
    )
    b.add_argument("--quiet", action="store_true", help="no progress lines")


class _NoWatcher:
    """What ``_cmd_batch`` uses without ``--spot-notice``: never a notice."""

    notice = None

    def should_stop(self) -> bool:
        return False

    def stop(self) -> None:
        return None


def _spot_watcher(args: argparse.Namespace):
    """A started :class:`~nepse_perf.cloud.spot.SpotNoticeWatcher` for ``--spot-notice``."""
    if args.spot_notice is None:
        if args.metadata_url is not None:
            raise UsageError("--metadata-url needs --spot-notice aws|gcp")
        return _NoWatcher()
    from nepse_perf.cloud.spot import SpotNoticeWatcher

    return SpotNoticeWatcher(args.spot_notice, args.metadata_url, args.spot_poll_s).start()


def _cmd_batch(args: argparse.Namespace) -> int:
    from nepse_perf.cloud.batch import BatchError, run_batch
    from nepse_perf.data import market_path

    say = progress_printer(args.quiet, flush=True)
    notices = []

    def on_term(signum, frame) -> None:
        notices.append(signum)
        if len(notices) > 1:
            raise _Abandon()

    watcher = _spot_watcher(args)
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with usage_errors(BatchError):
            result = run_batch(
                args.input if args.input is not None else market_path(),
                args.out,
                chunk_symbols=args.chunk_symbols,
                backend=args.backend,
                model_dir=args.predict,
                force=args.force,
                should_stop=lambda: bool(notices) or watcher.should_stop(),
                progress=say,
            )
    except _Abandon:
        print(
            f"nepse-perf batch: second SIGTERM: abandoned the chunk in flight; rerun to resume "
            f"(exit {EXIT_PREEMPTED})",
            file=sys.stderr,
        )
        return EXIT_PREEMPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        watcher.stop()
    if result.stopped and watcher.notice is not None and not notices:
        n = watcher.notice
        print(
            f"nepse-perf batch: spot notice ({n.provider}: {n.action}"
            + (f" at {n.time}" if n.time else "")
            + f"): stopped with {len(result.skipped) + len(result.done)} of {result.n_chunks} "
            f"chunks finished; rerun to resume (exit {EXIT_PREEMPTED})",
            file=sys.stderr,
        )
        return EXIT_PREEMPTED
    if result.stopped or (notices and not result.complete):
        print(
            f"nepse-perf batch: SIGTERM: stopped with {len(result.skipped) + len(result.done)} "
            f"of {result.n_chunks} chunks finished; rerun to resume (exit {EXIT_PREEMPTED})",
            file=sys.stderr,
        )
        return EXIT_PREEMPTED
    print(
        f"{result.n_symbols:,} symbols, {result.n_rows:,} rows, {result.n_chunks} chunks -> "
        f"{result.out} (written {len(result.done)}, skipped {len(result.skipped)}, redone "
        f"{len(result.redone)}; checkpointing {100 * result.checkpoint_share:.1f} % of the run)"
    )
    for i, why in sorted(result.redone.items()):
        print(f"redone chunk {i}: {why}", file=sys.stderr)
    return 0
