"""Where one request's time goes: py-spy on the running prediction service, stacks -> stages.

`py-spy <https://github.com/benfred/py-spy>`_ is a sampling profiler that attaches to a
running Python process (it reads the process's memory, so it needs ptrace rights: root,
``CAP_SYS_PTRACE``, or ``kernel.yama.ptrace_scope`` 0 for a child of the same user). While
the project's open-loop generator (:func:`nepse_perf.bench.loadtest.run_loadtest`) drives
the service, ``py-spy record --format raw`` samples every thread's Python stack ``rate``
times a second and writes *collapsed stacks*: one line per distinct stack, frames from the
root to the leaf separated by ``;``, then the number of samples. :data:`STAGE_RULES` maps
each stack to one stage of a request (the event loop, HTTP parsing, the ASGI framework,
JSON decoding, validation, queueing, the ONNX call, the indicator pipeline, JSON encoding)
and :func:`frame_share` counts the samples per stage.

Idle samples are left out: py-spy records only the samples in which it sees a thread
active (its own heuristic; ``--idle`` is not passed), so the shares are shares of the
process's busy time, not of wall time. py-spy runs ``--nonblocking`` (it reads the stacks
without stopping the process): stopped at each sample, the service's worker threads read
back as waiting in their pool's queue while they computed (checked against the process's
CPU time on the cache-miss path), and the stops add latency. The absolute cost comes from the process's CPU
time (``/proc``) over the run, divided by the requests answered.

``compare_fix`` (also ``python -m nepse_perf.bench.profile``) measures the cache-miss cost of
``/v1/predict`` for two checkouts of the package, interleaved, with the answers compared
byte for byte; ``NEPSE_PERF_PROFILE_S`` sets the default recording length (3 s).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nepse_perf.bench.loadtest import LoadResult, run_loadtest

__all__ = [
    "PROFILE_ENV",
    "STAGE_RULES",
    "Profile",
    "answers",
    "compare_fix",
    "frame_share",
    "inclusive_share",
    "main",
    "miss_run",
    "parse_collapsed",
    "process_cpu_s",
    "profile_duration",
    "profile_service",
    "record",
    "stage_of",
    "symbol_bodies",
]

PROFILE_ENV = "NEPSE_PERF_PROFILE_S"
DEFAULT_PROFILE_S = 3.0


def profile_duration(default: float = DEFAULT_PROFILE_S) -> float:
    """Seconds to record: ``NEPSE_PERF_PROFILE_S`` if set (a number > 0), else ``default``."""
    text = os.environ.get(PROFILE_ENV)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{PROFILE_ENV}={text!r}: not a number of seconds") from None
    if not 0 < value <= 600:
        raise ValueError(f"{PROFILE_ENV}={text!r}: must be within 0-600 s")
    return value


def _decode_lines() -> str:
    """The line numbers of BodyDecoder's msgspec ``.decode(body)`` calls, as a regex group:
    the samples whose leaf is one of them are JSON decoding (msgspec's C code has no frame)."""
    from nepse_perf.serving.request_bodies import BodyDecoder

    lines = []
    for method in (BodyDecoder.rows, BodyDecoder.symbols):
        source, first = inspect.getsourcelines(method)
        lines += [first + i for i, text in enumerate(source) if ".decode(body)" in text]
    return "|".join(map(str, lines))


_DECODE = _decode_lines()

#: Ordered (stage, patterns): a stack belongs to the first stage with a pattern (a regex,
#: searched in each frame ``function (file:line)``) that matches any of its frames; a stack
#: no pattern matches is ``"other"``. The most specific stages come first: every stack of the
#: main thread runs under the event loop, every handler under the ASGI framework.
STAGE_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("ONNX run", (r"onnxruntime/", r"onnx_block_predictor", r"MicroBatcher\._predict_chunks")),
    (
        "indicator pipeline",
        (
            r"^SymbolFeatures\.",
            r"^feature_frame ",
            r"^compute_indicators ",
            r"\(nepse_perf/(pipeline|_blocks)\.py",
            r"\(nepse_perf/(indicators|data)/",
        ),
    ),
    (
        "JSON encode",
        (r"\(json/encoder\.py", r"^dumps \(json/", r"^json_answer ", r"^JSONResponse\.render "),
    ),
    (
        "JSON decode",
        (r"\(json/decoder\.py", r"^loads \(json/", rf"^BodyDecoder\.\w+ \(.*:({_DECODE})\)$"),
    ),
    ("validation", (r"\(nepse_perf/serving/request_bodies\.py", r"\(pydantic")),
    (
        "queueing (batcher, threads)",
        (
            r"\(nepse_perf/serving/batcher\.py",
            r"^to_thread ",
            r"run_in_executor",
            r"\(concurrent/futures/",
            r"\(asyncio/(futures|queues|threads)\.py",
        ),
    ),
    (
        "HTTP parsing",
        (
            r"HttpToolsProtocol\.",
            r"^H11Protocol\.",
            r"\(h11/",
            r"\(nepse_perf/serving/protocol\.py",
            r"^RequestResponseCycle\.(send|receive) ",
        ),
    ),
    (
        "ASGI, middleware, routing",
        (
            r"\((starlette|fastapi|prometheus_client)/",
            r"\(uvicorn/middleware/",
            r"run_asgi",
            r"\(nepse_perf/serving/(gate|app)\.py",
        ),
    ),
    ("accept, event loop", (r"\(asyncio/", r"\(uvloop/", r"\(uvicorn/", r"\(selectors\.py")),
]

#: Every stage :func:`frame_share` reports, in order (the rules', then ``"other"``).
STAGES: tuple[str, ...] = (*(name for name, _ in STAGE_RULES), "other")


def parse_collapsed(collapsed: str) -> list[tuple[list[str], int]]:
    """``(frames root -> leaf, samples)`` per line of py-spy's raw (collapsed) output.

    The thread and process labels ``--threads`` adds (``thread (0x...)``, ``process ...``)
    are dropped; blank lines are skipped; a line without a trailing sample count raises
    ``ValueError``.
    """
    out = []
    for line in collapsed.splitlines():
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            raise ValueError(f"not a collapsed stack line (frames;... count): {line[:120]!r}")
        frames = [f for f in stack.split(";") if not f.startswith(("thread (", "process ")) and f]
        out.append((frames, int(count)))
    return out


def stage_of(
    frames: Sequence[str], rules: Sequence[tuple[str, Sequence[str]]] = STAGE_RULES
) -> str:
    """The stage of one stack: the first rule with a pattern matching any frame, else other."""
    for name, patterns in rules:
        for pattern in patterns:
            rx = re.compile(pattern)
            if any(rx.search(f) for f in frames):
                return name
    return "other"


def frame_share(
    collapsed: str, rules: Sequence[tuple[str, Sequence[str]]] = STAGE_RULES
) -> pd.DataFrame:
    """Samples and share per stage of py-spy's collapsed stacks (``collapsed`` text).

    One row per stage of ``rules`` and ``"other"``, in that order (zero-sample stages kept),
    columns ``samples`` and ``share`` (of all the samples given: py-spy's active samples
    when recorded by :func:`record`, so the shares sum to 1 over the busy time). An empty
    profile raises ``ValueError``.
    """
    counts = dict.fromkeys([*(name for name, _ in rules), "other"], 0)
    for frames, n in parse_collapsed(collapsed):
        counts[stage_of(frames, rules)] += n
    total = sum(counts.values())
    if not total:
        raise ValueError("the profile has no samples (was the service busy while recorded?)")
    table = pd.DataFrame({"stage": list(counts), "samples": list(counts.values())})
    table["share"] = table["samples"] / total
    return table.set_index("stage")


def inclusive_share(collapsed: str, pattern: str) -> float:
    """Share of the samples whose stack has a frame matching ``pattern`` (a regex) anywhere:
    the cost of a function with everything it calls (e.g. ``r"^deepcopy "``)."""
    rx = re.compile(pattern)
    stacks = parse_collapsed(collapsed)
    total = sum(n for _, n in stacks)
    if not total:
        raise ValueError("the profile has no samples")
    return sum(n for frames, n in stacks if any(rx.search(f) for f in frames)) / total


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) process ``pid`` has used so far (Linux)."""
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def _py_spy() -> str:
    """The py-spy executable: on PATH, or beside this Python (a venv not activated)."""
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy; the serving extra)")
    return found


def _py_spy_failed(proc: subprocess.Popen, err: str) -> RuntimeError:
    return RuntimeError(
        f"py-spy could not sample pid (exit {proc.returncode}): {err.strip()[-800:]}\n"
        "py-spy needs ptrace rights on the target: run as root, grant CAP_SYS_PTRACE, or "
        "set kernel.yama.ptrace_scope to 0 (docker: --cap-add SYS_PTRACE)"
    )


def record(
    pid: int,
    run: Callable[[], Any],
    *,
    rate: int = 250,
    idle: bool = False,
    timeout_s: float = 600.0,
) -> tuple[str, Any]:
    """``py-spy record`` on ``pid`` while ``run()`` runs: (collapsed stacks, what run returned).

    py-spy is started with ``--format raw --threads --nonblocking --rate rate`` (active
    samples only unless ``idle``, see the module docstring); ``run`` starts once py-spy reports that it is sampling, and py-spy
    is stopped with SIGINT (it then writes its output) when ``run`` returns. Raises
    ``RuntimeError`` with py-spy's message when it cannot attach (e.g. no ptrace rights) or
    writes nothing.
    """
    with tempfile.TemporaryDirectory(prefix="nepse-pyspy-") as tmp:
        out = Path(tmp) / "stacks.txt"
        cmd = [_py_spy(), "record", "--pid", str(pid), "--format", "raw", "--threads"]
        cmd += ["--rate", str(int(rate)), "--duration", str(int(timeout_s)), "-o", str(out)]
        cmd += ["--nonblocking"] + (["--idle"] if idle else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        banner = proc.stdout.readline()  # "py-spy> Sampling process ..." once attached
        if "Sampling process" not in banner:
            stdout, stderr = proc.communicate(timeout=30)
            raise _py_spy_failed(proc, banner + stdout + stderr)
        try:
            result = run()
        finally:
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
        if not out.exists():
            raise _py_spy_failed(proc, banner + stderr + stdout)
        return out.read_text(), result


@dataclass
class Profile:
    """One profiled load run: the collapsed stacks, the load result, the server's CPU time.

    ``cpu_s`` is the server process's CPU time during the load (profiler attached);
    ``cpu_ms_per_request`` divides it by the requests answered.
    """

    path: str
    collapsed: str
    load: LoadResult
    cpu_s: float
    duration_s: float
    sample_rate: int
    notes: dict = field(default_factory=dict)

    @property
    def answered(self) -> int:
        """Requests answered (any status)."""
        return self.load.scheduled - sum(
            self.load.errors.get(k, 0) for k in ("timeout", "connection")
        )

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU milliseconds per answered request."""
        return 1000.0 * self.cpu_s / max(self.answered, 1)

    def split(self, rules: Sequence[tuple[str, Sequence[str]]] = STAGE_RULES) -> pd.DataFrame:
        """:func:`frame_share` of this profile, with ``cpu_ms_per_request`` split by share."""
        table = frame_share(self.collapsed, rules)
        table["cpu_ms_per_request"] = table["share"] * self.cpu_ms_per_request
        return table


def symbol_bodies(symbols: Sequence[str]) -> list[bytes]:
    """One ``/v1/predict`` body per symbol, ``{"symbols": [symbol]}``."""
    return [json.dumps({"symbols": [s]}).encode() for s in symbols]


def profile_service(
    service: Any,
    *,
    path: str = "/v1/predict/features",
    body: bytes | None = None,
    bodies: Sequence[bytes] | None = None,
    rate: float = 300.0,
    duration_s: float | None = None,
    sample_rate: int = 250,
    warmup_s: float = 0.3,
) -> Profile:
    """py-spy on a running service while the open-loop generator offers ``rate`` req/s.

    ``service`` is a started :class:`~nepse_perf.serving.process.ServiceProcess` or a
    ``(url, pid)`` pair. Each request posts ``body`` (default: one real feature row) or the
    next of ``bodies`` to ``path``; ``duration_s`` defaults to :func:`profile_duration`.
    With ``bodies`` there is no warm-up (a warm-up would fill the cache a miss profile needs
    cold); otherwise ``warmup_s`` of the same load runs first, unrecorded.
    """
    url, pid = service if isinstance(service, tuple) else (service.url, service.proc.pid)
    duration = profile_duration() if duration_s is None else duration_s
    target = url.rstrip("/") + path
    if bodies is None and warmup_s > 0:
        run_loadtest(target, rate=rate, duration=warmup_s, body=body)
    cpu0 = [0.0]

    def drive() -> LoadResult:
        cpu0[0] = process_cpu_s(pid)
        return run_loadtest(target, rate=rate, duration=duration, body=body, bodies=bodies)

    collapsed, load = record(pid, drive, rate=sample_rate, timeout_s=duration + 60)
    cpu = process_cpu_s(pid) - cpu0[0]
    return Profile(path, collapsed, load, cpu, duration, sample_rate)


def _market_symbols() -> list[str]:
    """Every symbol of the shipped market, sorted (what a default service serves)."""
    from nepse_perf.data import load_prices, market_path

    return sorted(load_prices(market_path())["symbol"].astype(str).unique())


def _env(root: str | os.PathLike[str]) -> dict[str, str]:
    """This process's environment with ``PYTHONPATH`` set to the checkout ``root``."""
    return {**os.environ, "PYTHONPATH": str(Path(root).resolve())}


def miss_run(
    model_dir: str | os.PathLike[str],
    symbols: Sequence[str],
    *,
    root: str | os.PathLike[str],
    rate: float,
    duration_s: float,
) -> dict:
    """One cold service from checkout ``root``, ``/v1/predict`` one new symbol per request.

    Open loop at ``rate`` for ``duration_s`` (``rate x duration_s`` must not exceed the
    symbols, so every request is a cache miss); returns the server's CPU ms per answered
    request (``/proc``, no profiler attached), p50/p99/max latency (ms) and the counts.
    """
    from nepse_perf.serving.process import ServiceProcess

    n = round(rate * duration_s)
    if n > len(symbols):
        raise ValueError(f"{n} requests but {len(symbols)} symbols: some would hit the cache")
    with ServiceProcess(model_dir, env=_env(root), cwd=root) as svc:
        pid = svc.proc.pid
        cpu0 = process_cpu_s(pid)
        r = run_loadtest(
            svc.url + "/v1/predict", rate=rate, duration=duration_s, bodies=symbol_bodies(symbols)
        )
        cpu = process_cpu_s(pid) - cpu0
    answered = r.scheduled - sum(r.errors.get(k, 0) for k in ("timeout", "connection"))
    return {
        "cpu_ms_per_request": 1000.0 * cpu / max(answered, 1),
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "max_ms": r.max_ms,
        "answered": answered,
        "errors": r.errors,
    }


def answers(
    model_dir: str | os.PathLike[str], symbols: Sequence[str], *, root: str | os.PathLike[str]
) -> list[bytes]:
    """The raw response bodies of a cold service from checkout ``root``: one ``/v1/predict``
    per symbol, then one request of the first 50 symbols together (cache hits)."""
    import httpx

    from nepse_perf.serving.process import ServiceProcess

    with (
        ServiceProcess(model_dir, env=_env(root), cwd=root) as svc,
        httpx.Client(base_url=svc.url) as c,
    ):
        bodies = [*symbol_bodies(symbols), json.dumps({"symbols": list(symbols[:50])}).encode()]
        headers = {"content-type": "application/json"}
        return [c.post("/v1/predict", content=b, headers=headers).content for b in bodies]


def _commit(root: str | os.PathLike[str]) -> str:
    """``git rev-parse HEAD`` of ``root``, with ``+dirty`` when its tracked files differ."""
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD"], capture_output=True).returncode
    return head.strip() + ("+dirty" if dirty else "")


def _summary(values: Sequence[float]) -> dict:
    """Median, min, max and every value of one measure."""
    s = pd.Series(list(values), dtype=float)
    return {
        "median": float(s.median()),
        "min": float(s.min()),
        "max": float(s.max()),
        "runs": [float(v) for v in s],
    }


def compare_fix(
    model_dir: str | os.PathLike[str],
    old_root: str | os.PathLike[str],
    new_root: str | os.PathLike[str],
    *,
    runs: int = 4,
    rate: float = 40.0,
    duration_s: float | None = None,
    out: str | os.PathLike[str] | None = None,
) -> dict:
    """Cache-miss cost of ``/v1/predict``, checkout ``old_root`` vs ``new_root``, interleaved.

    ``runs`` cold services of each, alternating old, new, old, ... (each :func:`miss_run`,
    the market's symbols after the first five, ``duration_s`` default
    :func:`profile_duration`); before them, the answers of both to every market symbol are
    compared byte for byte (:func:`answers`). Returns (and writes to ``out`` as JSON) the
    per-run figures, their median/min/max, the commits compared, the durations and the
    1-minute load average before and after.
    """
    duration = profile_duration() if duration_s is None else duration_s
    symbols = _market_symbols()
    same = answers(model_dir, symbols, root=old_root) == answers(model_dir, symbols, root=new_root)
    load_before = os.getloadavg()[0]
    per: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(runs):
        for name, root in (("old", old_root), ("new", new_root)):
            per[name].append(
                miss_run(model_dir, symbols[5:], root=root, rate=rate, duration_s=duration)
            )
    result = {
        "what": "POST /v1/predict, one new symbol per request (every request a cache miss)",
        "commits": {"old": _commit(old_root), "new": _commit(new_root)},
        "answers_identical": same,
        "answers_compared": len(symbols) + 1,
        "rate_per_s": rate,
        "duration_s": duration,
        "runs_each": runs,
        "order": "interleaved: old, new, old, new, ...",
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "cpus": os.cpu_count(),
    }
    for name, rows in per.items():
        result[name] = {
            k: _summary([r[k] for r in rows]) for k in ("cpu_ms_per_request", "p50_ms", "p99_ms")
        }
        result[name]["errors"] = [r["errors"] for r in rows]
    if out is not None:
        from nepse_perf._infra.files import atomic_write_text

        atomic_write_text(Path(out), json.dumps(result, indent=2) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nepse_perf.bench.profile --old REV``: :func:`compare_fix` of the checkout
    at git revision ``REV`` (a temporary ``git worktree``) against this one, with a small
    model trained on the sample; writes ``--out`` (default results/serving/profile_fix.json).
    """
    import argparse

    from nepse_perf.data import load_prices, sample_path
    from nepse_perf.model import make_dataset, save, train

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m nepse_perf.bench.profile")
    parser.add_argument("--old", required=True, metavar="REV", help="the code before the fix")
    parser.add_argument("--runs", type=int, default=4, help="cold services of each (4)")
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s (40)")
    parser.add_argument("--out", type=Path, default=root / "results/serving/profile_fix.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nepse-profile-fix-") as tmp:
        old = Path(tmp) / "old"
        git = ["git", "-C", str(root), "worktree"]
        subprocess.run([*git, "add", "--detach", str(old), args.old], check=True)
        try:
            model = train(
                make_dataset(load_prices(sample_path())), kind="hgb", n_splits=2, max_iter=20
            )
            model_dir = save(model, Path(tmp) / "model")
            result = compare_fix(model_dir, old, root, runs=args.runs, rate=args.rate, out=args.out)
        finally:
            subprocess.run([*git, "remove", "--force", str(old)], check=False)
    print(json.dumps({k: result[k] for k in ("commits", "answers_identical", "old", "new")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
