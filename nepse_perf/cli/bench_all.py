"""``nepse-perf bench-all``: the instructors' record of one machine (``make bench-all``).

Runs ``nepse-perf bench`` at every synthetic size (small, medium, large; medium with
``--scaling``, the fused kernel against rows and threads) and ``nepse-perf sweep`` (median
seconds per call against the number of symbols), writing everything under
``results/<machine>/``: one folder per size (``bench.md``, ``.csv``, ``.png``, ``.json``;
``scaling.*`` beside medium's),
``sweep/`` and ``index.json`` (when, how long, the machine's details and load average, what
ran). The site (``make site``) shows the newest such folder on its landing page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nepse_perf.cli.args import PROG, UsageError, add_command, dispatch, int_list, positive_int

__all__ = ["add_parsers", "machine_slug", "run_bench_all"]

SIZE_ORDER = ("small", "medium", "large")
_NOISE = {"r", "tm", "cpu", "processor", "with", "radeon", "graphics", "core"}


def machine_slug(info: Mapping[str, Any]) -> str:
    """A folder name for a machine: its CPU model and usable core count, e.g. ``amd-epyc-2c``.

    ``info`` is :func:`nepse_perf.bench.machine.machine_info`'s dict. Lower case ASCII letters,
    digits and dashes only; clock speeds and trademark marks are dropped.
    """
    model = re.sub(r"@.*$", "", str(info.get("cpu_model") or "unknown"))
    words = [w for w in re.split(r"[^a-z0-9]+", model.lower()) if w and w not in _NOISE]
    words = [w for w in words if not re.fullmatch(r"\d+(\.\d+)?ghz", w)]
    return "-".join([*words[:6], f"{info.get('usable_cores') or 0}c"])


def run_bench_all(
    out_root: Path,
    sizes: Sequence[str] = SIZE_ORDER,
    sweep_symbols: Sequence[int] | None = None,
    repeat: int = 5,
    machine: str | None = None,
    quiet: bool = False,
) -> Path:
    """Run the benchmark at each size and the size sweep; returns ``out_root/<machine>``.

    Each step is the ordinary ``nepse-perf bench --size S`` / ``nepse-perf sweep`` command
    (all CPU backends; ``gpu`` too when a GPU is found), so the files are the usual reports.
    ``sweep_symbols=[]`` skips the sweep, ``None`` uses its default sizes. Seconds in
    ``index.json`` are wall-clock per step, including data generation and checks. Raises
    ``RuntimeError`` naming the step when one fails.
    """
    from nepse_perf.bench.machine import machine_info

    info = machine_info()
    name = machine or machine_slug(info)
    folder = Path(out_root) / name
    folder.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    steps: list[dict[str, Any]] = []
    quiet_flag = ["--quiet"] if quiet else []
    commands = [
        (
            size,
            ["bench", "--size", size, "--repeat", str(repeat), "--out", str(folder / size)]
            + (["--scaling"] if size == "medium" else []),
        )
        for size in sizes
    ]
    if sweep_symbols is None or len(sweep_symbols) > 0:
        sweep = ["sweep", "--repeat", str(repeat), "--out", str(folder / "sweep")]
        if sweep_symbols:
            sweep += ["--symbols", ",".join(map(str, sweep_symbols))]
        commands.append(("sweep", sweep))
    parser = _step_parser()
    for label, argv in commands:
        t0 = time.perf_counter()
        status = dispatch(parser, [*argv, *quiet_flag])
        seconds = time.perf_counter() - t0
        if status != 0:
            raise RuntimeError(f"bench-all: `nepse-perf {' '.join(argv)}` exited {status}")
        steps.append({"step": label, "command": "nepse-perf " + " ".join(argv), "seconds": seconds})
    index = {
        "machine_name": name,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "sizes": list(sizes),
        "sweep": "sweep" if any(s["step"] == "sweep" for s in steps) else None,
        "repeat": repeat,
        # other work on the machine inflates timings: 1/5/15-minute load averages (Unix)
        "load_average_start": [round(x, 2) for x in load_before],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "steps": steps,
    }
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return folder


def _step_parser() -> argparse.ArgumentParser:
    """A ``nepse-perf`` parser with the ``bench`` and ``sweep`` commands: what the steps run."""
    from nepse_perf.cli.bench import add_parsers

    parser = argparse.ArgumentParser(prog=PROG)
    add_parsers(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def _cmd_bench_all(args: argparse.Namespace) -> int:
    from nepse_perf.data.synthetic import SIZES

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise UsageError(f"--sizes: expected some of {', '.join(SIZES)}, got {args.sizes!r}")
    try:
        folder = run_bench_all(
            args.out,
            sizes,
            [] if args.no_sweep else args.sweep_symbols,
            args.repeat,
            args.machine,
            args.quiet,
        )
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"wrote {folder}/ ({', '.join(sizes)}{'' if args.no_sweep else ', sweep'}, index.json)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``bench-all`` with the ``nepse-perf`` parser."""
    p = add_command(
        sub,
        "bench-all",
        _cmd_bench_all,
        help="benchmark at every size plus the size sweep into results/<machine>/",
        description="Run `bench` at the small, medium and large synthetic sizes and the "
        "panel-size `sweep`, writing results/<machine>/<size>/bench.*, results/<machine>/sweep/ "
        "and results/<machine>/index.json (date, machine details, seconds per step). "
        "CPU heavy: large is 2,000 symbols x 5,000 days.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="parent folder (default results/)",
    )
    p.add_argument(
        "--machine",
        metavar="NAME",
        help="folder name (default: CPU model and cores, e.g. amd-epyc-2c)",
    )
    p.add_argument(
        "--sizes",
        default=",".join(SIZE_ORDER),
        metavar="S1,S2",
        help="sizes to benchmark (default small,medium,large)",
    )
    p.add_argument(
        "--sweep-symbols",
        type=int_list,
        metavar="N1,N2",
        help="symbol counts of the sweep (default: sweep's own)",
    )
    p.add_argument("--no-sweep", action="store_true", help="skip the size sweep")
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=5,
        metavar="N",
        help="timed repeats per measurement (default 5)",
    )
    p.add_argument("--quiet", action="store_true", help="tables only, no progress")
