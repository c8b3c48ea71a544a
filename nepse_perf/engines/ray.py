"""The pipeline on Ray: tasks over batches of whole symbols reading one panel from the object store.

The driver loads the prices (``load_prices``, so a bad file is named exactly as in one
process), builds the sorted panel once and ``ray.put``\\ s it: the three float64 price
arrays go into the shared-memory object store once, and every task on the same node maps
them read-only, without a copy (Ray deserialises NumPy arrays zero-copy). Each task gets
the object reference plus a range of symbols, runs the single-threaded fused Numba kernel
on that slice and returns its 10 x rows block. The driver collects blocks with ``ray.wait``
as they finish (never ``ray.get`` in a loop, which would wait in submission order) and puts
them in place, so the frame equals ``compute_indicators`` to the last bit.

Granularity is the lesson: ``batch_symbols=1`` is one task per symbol (the chapter's
shape), the default is about ``TASKS_PER_CPU`` tasks per CPU. Fault tolerance is Ray's:
a task whose worker process dies is retried (``max_retries``); a symbol whose kernel raises
is retried alone inside its task and named in the :class:`~nepse_perf.engines.pool.ParallelError`.

:func:`ray_session` connects to ``$RAY_ADDRESS`` (or ``address``) or starts a local Ray on
127.0.0.1 with 2 CPUs, no dashboard, usage statistics off (``RAY_USAGE_STATS_ENABLED=0``).
Security: Ray 2.60 turns token authentication on for new local clusters and warns about it
unless ``RAY_AUTH_MODE`` is set. We keep it on deliberately (``RAY_AUTH_MODE=token``): even a
loopback-only cluster runs arbitrary code for any local user who can reach its ports, so
:func:`configure_environment` gives this process (and the Ray processes it starts) a fresh
random token in ``RAY_AUTH_TOKEN`` instead of writing one to ``~/.ray``. A cluster started
elsewhere needs its own token in the environment, as Ray documents.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from os import PathLike

import numpy as np
import pandas as pd
from tqdm import TqdmWarning

from nepse_perf._infra.checks import positive_int
from nepse_perf.data import prices_from
from nepse_perf.engines.pool import (
    ComputeFn,
    ParallelResult,
    chunk_bounds,
    single_thread_compute,
    sub_panel,
)
from nepse_perf.indicators.layout import N_OUT
from nepse_perf.indicators.panel import Panel, panel_from_frame
from nepse_perf.indicators.params import IndicatorParams
from nepse_perf.pipeline import DEFAULT_BACKEND, frame_from_block, get_backend

# ``import ray`` inside Jupyter without ipywidgets: Ray logs an INFO hint about rich widget
# output, and its tqdm_ray module imports ``tqdm.auto``, which warns that IProgress is
# missing. Plain-text output is all this project uses, so exactly those two are quietened.
logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
    import ray

__all__ = [
    "ADDRESS_ENV",
    "DEFAULT_CPUS",
    "TASKS_PER_CPU",
    "RayRun",
    "compute_indicators_ray",
    "configure_environment",
    "loopback_only",
    "noop_round_trip",
    "ray_session",
    "run_ray",
    "run_with_a_worker_killed",
]

#: Environment variable naming an existing cluster (``127.0.0.1:6379``, ``ray://host:10001``).
ADDRESS_ENV = "RAY_ADDRESS"

#: CPUs of a local Ray started by :func:`ray_session`.
DEFAULT_CPUS = 2

#: Tasks per CPU when ``batch_symbols`` is not given (balance vs per-task overhead).
TASKS_PER_CPU = 4

#: Retries of a task whose worker died (Ray's own default is 3 too; stated here on purpose).
MAX_RETRIES = 3

_LOCAL = "127.0.0.1"


def configure_environment() -> dict[str, str]:
    """Set the Ray variables this project relies on in ``os.environ``; returns them.

    ``RAY_USAGE_STATS_ENABLED=0`` (no usage report leaves the machine); ``RAY_AUTH_MODE=token``
    unless the user chose a mode; and, when no token is configured (neither ``RAY_AUTH_TOKEN``
    nor ``RAY_AUTH_TOKEN_PATH``), a random 256-bit ``RAY_AUTH_TOKEN`` for this process and the
    Ray processes it starts (``ray start`` subprocesses inherit it). Idempotent.
    """
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if os.environ["RAY_AUTH_MODE"].lower() == "token" and not (
        os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    ):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    # ``import ray`` already read the environment into Ray's C++ config and token cache:
    # refresh both, as Ray itself does when it turns token mode on (private API, Ray 2.60).
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    keys = ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    return {k: os.environ[k] for k in keys if k in os.environ}


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


#: Ray's switch for "single machine, loopback only" (its default on macOS and Windows).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def loopback_only() -> Iterator[dict[str, str]]:
    """Within the block, Ray processes started from here bind and advertise 127.0.0.1 only.

    On Linux Ray replaces a ``127.0.0.1`` node address by the machine's routable IP and
    binds its servers to all interfaces (so other machines can join). Its single-machine
    mode, the default on macOS and Windows, is selected by ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``;
    Ray reads that variable at import, so this sets it in the environment (for the GCS,
    raylet and workers started inside the block) and in the imported constant (for this
    process), restoring both on exit. Yields the environment to hand to ``ray start``.
    """
    from ray._private import ray_constants

    saved_env = os.environ.get(LOOPBACK_ENV)
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield dict(os.environ)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = saved_env


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int = DEFAULT_CPUS) -> Iterator[str]:
    """``with ray_session() as gcs:`` -- Ray connected on entry, shut down on exit.

    The cluster is ``address``, else ``$RAY_ADDRESS``; with neither, a local Ray starts with
    ``num_cpus`` CPUs, its processes bound to 127.0.0.1, no dashboard, logging at WARNING
    (so its start-up INFO lines stay off stderr). Yields the GCS address (``host:port``).
    Leaving the block disconnects; a local Ray is stopped, a remote cluster keeps running.
    Raises ``RuntimeError`` if Ray is already initialised in this process.
    """
    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; call ray.shutdown()")
    configure_environment()
    address = address or os.environ.get(ADDRESS_ENV) or None
    if address and not _is_loopback(address):
        ctx = ray.init(address=address, logging_level=logging.WARNING)
    elif address:  # a cluster on this machine (``ray start --head`` in loopback mode)
        with loopback_only():
            ctx = ray.init(address=address, logging_level=logging.WARNING)
    else:
        with loopback_only():
            ctx = ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                _node_ip_address=_LOCAL,
                logging_level=logging.WARNING,
            )
    try:
        yield str(ctx.address_info["gcs_address"])
    finally:
        ray.shutdown()


@ray.remote
def _batch(
    panel: Panel, first: int, end: int, backend: str | ComputeFn, params: IndicatorParams
) -> tuple[np.ndarray, dict[str, str]]:
    """Symbols ``first..end-1`` of the panel (mapped read-only from the object store).

    Returns the 10 x rows block and ``{symbol: "Type: message"}`` for symbols whose kernel
    raised: the batch runs in one kernel call, and only if that raises symbol by symbol.
    """
    part = sub_panel(panel, first, end)
    compute = single_thread_compute(backend)
    out = np.empty((N_OUT, part.n_rows), dtype=np.float64)
    try:
        compute(part, params, out)
        return out, {}
    except Exception:
        pass
    failed: dict[str, str] = {}
    for s in range(part.n_symbols):
        a, b = int(part.offsets[s]), int(part.offsets[s + 1])
        one = np.empty((N_OUT, b - a), dtype=np.float64)
        try:
            compute(sub_panel(part, s, s + 1), params, one)
        except Exception as exc:
            one.fill(np.nan)
            text = str(exc).strip()
            failed[part.symbols[s]] = (
                f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            )
        out[:, a:b] = one
    return out, failed


@ray.remote
def _noop() -> None:
    return None


@dataclass(frozen=True)
class RayRun:
    """What :func:`run_ray` returns: the result plus how it was computed.

    ``result`` is a :class:`~nepse_perf.engines.pool.ParallelResult` (indicators, failures per
    symbol, ``tasks``, ``workers`` = cluster CPUs, ``executor="ray"``); ``put_seconds`` is the
    time to place the panel in the object store and ``batch_symbols`` the symbols per task.
    """

    result: ParallelResult
    put_seconds: float
    batch_symbols: int


def run_ray(
    source: str | PathLike[str] | pd.DataFrame,
    *,
    backend: str | ComputeFn = DEFAULT_BACKEND,
    batch_symbols: int | None = None,
    max_retries: int = MAX_RETRIES,
    **params: float,
) -> RayRun:
    """Run the pipeline on the connected Ray cluster; failures are reported, not raised.

    ``source`` is a price frame or a path for ``load_prices`` (read in the driver: its
    ``DataError`` names the file and line). ``backend`` as in
    ``parallel.single_thread_compute`` (a callable is shipped by cloudpickle);
    ``batch_symbols`` symbols per task (default about ``TASKS_PER_CPU`` tasks per cluster
    CPU); ``max_retries`` retries of a task whose worker process died. Needs
    ``ray.is_initialized()`` (see :func:`ray_session`), else ``RuntimeError``.
    """
    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialised: use `with ray_session():` first")
    if isinstance(backend, str):
        get_backend(backend)
    elif not callable(backend):
        raise ValueError(f"backend must be a backend name or a callable, got {backend!r}")
    p = IndicatorParams.from_kwargs(**params)
    prices = prices_from(source)
    panel = panel_from_frame(prices)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if batch_symbols is None:
        batch_symbols = max(1, math.ceil(panel.n_symbols / (TASKS_PER_CPU * cpus)))
    bounds = chunk_bounds(panel.n_symbols, batch_symbols)
    out = np.empty((N_OUT, panel.n_rows), dtype=np.float64)
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    panel_ref = ray.put(replace(panel, order=None))  # the permutation stays in the driver
    put_seconds = time.perf_counter() - t0
    task = _batch.options(max_retries=max_retries)
    pending = {task.remote(panel_ref, a, b, backend, p): (a, b) for a, b in bounds}
    waiting = list(pending)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        for ref in done:
            a, b = pending[ref]
            r0, r1 = int(panel.offsets[a]), int(panel.offsets[b])
            try:
                block, batch_failed = ray.get(ref)
            except ray.exceptions.RayError as exc:  # retries exhausted, or the task could not run
                out[:, r0:r1] = np.nan
                reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
                failed.update(dict.fromkeys(panel.symbols[a:b], reason))
                continue
            out[:, r0:r1] = block
            failed.update(batch_failed)
    del panel_ref
    frame = frame_from_block(out, panel, prices.index)
    failed = {s: failed[s] for s in sorted(failed)}
    return RayRun(
        ParallelResult(frame, failed, len(bounds), cpus, "ray"), put_seconds, batch_symbols
    )


def compute_indicators_ray(
    path_or_prices: str | PathLike[str] | pd.DataFrame,
    *,
    backend: str | ComputeFn = DEFAULT_BACKEND,
    batch_symbols: int | None = None,
    max_retries: int = MAX_RETRIES,
    **params: float,
) -> pd.DataFrame:
    """``compute_indicators`` on Ray: the same frame (index, ten float64 columns, values).

    Runs on the connected cluster if Ray is initialised, otherwise inside a
    :func:`ray_session` of its own (start-up included: reuse a session to time work alone).
    Arguments as in :func:`run_ray`; if any symbol failed, raises
    :class:`~nepse_perf.engines.pool.ParallelError` naming the symbols (partial result attached).
    """
    if ray.is_initialized():
        run = run_ray(
            path_or_prices,
            backend=backend,
            batch_symbols=batch_symbols,
            max_retries=max_retries,
            **params,
        )
        return run.result.unwrap()
    with ray_session():
        return compute_indicators_ray(
            path_or_prices,
            backend=backend,
            batch_symbols=batch_symbols,
            max_retries=max_retries,
            **params,
        )


def noop_round_trip(n_tasks: int = 1000, *, one_at_a_time: bool = False) -> float:
    """Seconds per task for ``n_tasks`` empty tasks: Ray's fixed cost per call.

    ``one_at_a_time=False`` submits all then waits (pipelined, Ray's async throughput);
    ``True`` submits and ``ray.get``\\ s each before the next (the sync round trip, the
    ``ray.get``-in-a-loop anti-pattern). Needs an initialised Ray.
    """
    n_tasks = positive_int(n_tasks, "n_tasks")
    t0 = time.perf_counter()
    if one_at_a_time:
        for _ in range(n_tasks):
            ray.get(_noop.remote())
    else:
        ray.get([_noop.remote() for _ in range(n_tasks)])
    return (time.perf_counter() - t0) / n_tasks


def run_with_a_worker_killed(
    prices: pd.DataFrame, *, pause: float = 0.2, after: int = 2, timeout: float = 120.0
) -> tuple[RayRun, int, int]:
    """Fault tolerance, for real: SIGKILL a Ray worker process while it runs a task.

    Runs the pipeline one symbol per task, each task sleeping ``pause`` seconds first (so the
    run lasts long enough) and marking its worker's pid in a scratch directory. Once
    ``after`` tasks have finished, the worker process of a task still running is killed;
    Ray retries that task (``max_retries``) on a new worker. Returns ``(run, tasks finished
    at the kill, task executions in all)``: executions exceed ``run.result.tasks`` by the
    retried ones. Needs an initialised local Ray (the pid must be on this machine).
    """
    import signal
    import tempfile
    import threading
    import uuid
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="nepse-ray-kill-") as scratch:
        marks = Path(scratch)

        def slow(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
            run_id = f"{os.getpid()}.{uuid.uuid4().hex}"
            (marks / f"{run_id}.start").touch()
            time.sleep(pause)
            get_backend("numba_parallel").single_thread()(panel, params, out)
            (marks / f"{run_id}.done").touch()

        def running() -> list[str]:
            started = {p.name.rsplit(".", 1)[0] for p in marks.glob("*.start")}
            done = {p.name.rsplit(".", 1)[0] for p in marks.glob("*.done")}
            return sorted(started - done)

        box: dict[str, object] = {}

        def run() -> None:
            try:
                box["run"] = run_ray(prices, backend=slow, batch_symbols=1)
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=run, name="ray-run")
        thread.start()
        deadline = time.monotonic() + timeout
        while not (len(list(marks.glob("*.done"))) >= after and running()):
            if time.monotonic() > deadline or not thread.is_alive():
                thread.join(timeout)
                raise RuntimeError("the run ended (or stalled) before a worker could be killed")
            time.sleep(0.02)
        finished = len(list(marks.glob("*.done")))
        os.kill(int(running()[0].split(".")[0]), signal.SIGKILL)
        thread.join(timeout)
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        executions = len(list(marks.glob("*.start")))
    return box["run"], finished, executions  # type: ignore[return-value]
