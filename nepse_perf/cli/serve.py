"""``nepse-perf serve`` (the prediction service under uvicorn) and ``nepse-perf loadtest``."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from nepse_perf.cli.args import (
    UsageError,
    add_command,
    cpu_list,
    positive_float,
    positive_int,
    report_error,
    usage_errors,
)

if TYPE_CHECKING:
    from nepse_perf.serving.app import ServeConfig

__all__ = ["DROPPED_EXIT", "add_parsers"]

#: ``nepse-perf serve``'s exit status when the drain ran out of time and requests got 503.
DROPPED_EXIT = 3


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``serve`` and ``loadtest`` with the ``nepse-perf`` parser."""
    s = add_command(
        sub,
        "serve",
        _cmd_serve,
        help="serve a saved model over HTTP (FastAPI + uvicorn, micro-batching)",
        description="Serve the model in --model with FastAPI under uvicorn: /healthz, /readyz, "
        "/v1/model, /v1/predict, /v1/predict/features, /metrics. Each of --workers processes "
        "loads the model once and batches concurrent requests into one ONNX Runtime call. "
        "Overload is shed early with 503 and Retry-After (--max-inflight admitted requests, "
        "--max-queue queued rows, --deadline-ms per request). SIGTERM stops accepting and "
        "finishes in-flight requests within --graceful-timeout: exit 0 when all finished, 3 "
        "when some had to be answered 503 unfinished.",
    )
    s.add_argument("--model", type=Path, required=True, metavar="DIR", help="model directory")
    s.add_argument("--prices", type=Path, metavar="PATH", help="price file/dir (the market)")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    s.add_argument("--workers", type=positive_int, default=1, metavar="N", help="processes")
    s.add_argument("--threads", type=positive_int, default=1, metavar="T", help="ORT threads")
    s.add_argument(
        "--max-batch", type=positive_int, default=8, metavar="B", help="rows/call (default 8)"
    )
    s.add_argument(
        "--max-wait-ms", type=float, default=0.0, metavar="W", help="batch wait (default 0)"
    )
    s.add_argument(
        "--max-queue", type=positive_int, default=2048, metavar="Q", help="rows before 503"
    )
    s.add_argument("--max-rows", type=positive_int, default=1024, help="rows per request")
    s.add_argument("--max-symbols", type=positive_int, default=256, help="symbols per request")
    s.add_argument(
        "--max-body-bytes", type=positive_int, default=1_048_576, help="request body limit"
    )
    s.add_argument(
        "--max-inflight",
        type=positive_int,
        default=32,
        metavar="N",
        help="requests admitted at once per worker; 503 beyond, before parsing (default 32)",
    )
    s.add_argument(
        "--deadline-ms",
        type=positive_float,
        default=1000.0,
        metavar="MS",
        help="an admitted request's work is dropped (503) after this long (default 1000)",
    )
    s.add_argument(
        "--read-timeout",
        type=positive_float,
        default=10.0,
        metavar="S",
        help="seconds for a request's headers, and for its body (408; default 10)",
    )
    s.add_argument(
        "--keep-alive-timeout",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="idle seconds before a keep-alive connection is closed (default 5)",
    )
    s.add_argument(
        "--max-connections",
        type=positive_int,
        default=1024,
        metavar="N",
        help="open connections per worker; beyond, 503 and close (default 1024)",
    )
    _add_cpus(s, "the server and its workers")
    s.add_argument(
        "--graceful-timeout",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="seconds to finish in-flight requests after SIGTERM (default 30)",
    )

    lt = add_command(
        sub,
        "loadtest",
        _cmd_loadtest,
        help="open-loop load test of a local service: offered vs achieved rate, p50-p99",
        description="Schedule POST requests at a fixed --rate for --duration seconds (open "
        "loop: latency from each scheduled send time, so a stalled server cannot hide its "
        "queue) and report achieved vs offered rate, p50/p95/p99/max and errors by status. "
        "Loopback URLs only.",
    )
    lt.add_argument(
        "url",
        metavar="URL",
        help="e.g. http://127.0.0.1:8000 (path defaults to /v1/predict/features)",
    )
    lt.add_argument("--rate", type=positive_float, required=True, metavar="R", help="req/s")
    lt.add_argument("--duration", type=positive_float, required=True, metavar="S", help="secs")
    lt.add_argument("--rows", type=positive_int, default=1, metavar="K", help="rows/request")
    lt.add_argument("--connections", type=positive_int, default=64, metavar="C")
    lt.add_argument("--timeout", type=positive_float, default=10.0, metavar="S")
    lt.add_argument("--out", type=Path, metavar="FILE.json", help="write the result as JSON")
    _add_cpus(lt, "the load generator")


def _add_cpus(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--cpus`` option: pin ``what`` to a list of CPUs (Linux)."""
    parser.add_argument(
        "--cpus",
        type=cpu_list,
        metavar="LIST",
        help=f"pin {what} to these CPUs, e.g. 0 or 0,1 (Linux; default: no pinning)",
    )


def _pin(cpus: list[int] | None) -> None:
    """Pin this process (and the children it starts) to ``cpus``; UsageError if impossible."""
    if not cpus:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise UsageError("--cpus needs Linux (os.sched_setaffinity)")
    try:
        os.sched_setaffinity(0, set(cpus))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--cpus {','.join(map(str, cpus))}: {exc}") from None


def _cmd_serve(args: argparse.Namespace) -> int:
    from nepse_perf.model import ModelFileError, load
    from nepse_perf.serving.app import ServeConfig

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be within 0-65535, got {args.port}")
    with usage_errors(ModelFileError, ValueError):
        config = ServeConfig(
            model_dir=str(args.model.resolve()),
            prices=str(args.prices.resolve()) if args.prices else None,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            max_rows=args.max_rows,
            max_symbols=args.max_symbols,
            max_body_bytes=args.max_body_bytes,
            threads=args.threads,
            max_inflight=args.max_inflight,
            deadline_ms=args.deadline_ms,
            read_timeout_s=args.read_timeout,
            keep_alive_s=args.keep_alive_timeout,
            max_connections=args.max_connections,
        )
        load(config.model_dir, threads=1)  # fail here, once, not in every worker
    if args.prices is not None and not args.prices.exists():
        raise UsageError(f"--prices {args.prices}: no such file or directory")
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"nepse-perf serve: note: listening on {args.host}, not loopback", file=sys.stderr)
    _pin(args.cpus)
    with tempfile.TemporaryDirectory(prefix="nepse-serve-drops-") as drop_log:
        config = dataclasses.replace(config, drop_log=drop_log)
        os.environ.update(config.to_env())  # worker processes inherit it; the factory reads it
        _run_uvicorn(args, config)
        dropped = sum(int(p.read_text() or 0) for p in Path(drop_log).glob("drops-*"))
    if dropped:
        print(
            f"nepse-perf serve: {dropped} request(s) could not finish within "
            f"--graceful-timeout {args.graceful_timeout:g} s and were answered 503",
            file=sys.stderr,
        )
        return DROPPED_EXIT
    return 0


def _run_uvicorn(args: argparse.Namespace, config: ServeConfig) -> None:
    """uvicorn on the app factory, with the guarded protocol (header timeout, connection
    cap); returns when it has drained after SIGTERM."""
    import uvicorn

    from nepse_perf.serving.protocol import PROTOCOL

    # uvicorn drains on SIGTERM, then re-raises the signal it caught so the default action
    # would kill the process (status -15); a no-op handler lets a drained stop exit 0.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        uvicorn.run(
            "nepse_perf.serving.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            http=PROTOCOL,
            timeout_keep_alive=config.keep_alive_s,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=args.graceful_timeout,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cmd_loadtest(args: argparse.Namespace) -> int:
    from nepse_perf.bench.loadtest import format_result, run_loadtest

    _pin(args.cpus)
    with usage_errors():
        result = run_loadtest(
            args.url,
            rate=args.rate,
            duration=args.duration,
            rows=args.rows,
            connections=args.connections,
            timeout=args.timeout,
        )
    print(format_result(result))
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        except OSError as exc:
            return report_error("loadtest", f"cannot write {args.out}: {exc}")
    if result.completed_ok == 0:
        print("nepse-perf loadtest: no request succeeded", file=sys.stderr)
        return 1
    return 0
