"""The pipeline over a pool of processes or threads, one task per chunk of symbols.

``compute_indicators_parallel(prices, backend, workers=..., executor="process"|"thread")``
splits the sorted panel into contiguous chunks of whole symbols, runs the backend on each
chunk in a worker and puts the ten output rows back in place, so the result is the same
frame, to the last bit, that ``compute_indicators(prices, backend)`` returns. Indicators of
one symbol never depend on another symbol, which is what makes the split safe.

Processes sidestep the GIL but pay for it: each task's prices are pickled to the worker and
its 10 x rows output block pickled back. Threads share memory and pay nothing, but only run
at the same time while the kernel releases the GIL; the fused Numba kernel does
(``nogil=True``), so with ``executor="thread"`` the ``numba_parallel`` backend runs its
single-threaded nogil version, each thread writing its own column range of one shared output
block (the ``numba`` backend's kernels run the same way but hold the GIL).

Failures are isolated per symbol: a chunk that raises is retried symbol by symbol in the
worker, and every symbol that still fails (or whose worker process died) is named in
:attr:`ParallelResult.failed`, with its rows NaN, while the other symbols' results are kept.
The chunk's own failure is never swallowed: it is kept in :attr:`ParallelResult.chunk_failures`
with the chunk's symbols and its cause, even when every symbol then succeeds on its own;
:meth:`ParallelResult.unwrap` turns failures into a :class:`ParallelError` that carries the
partial result. :func:`process_pool` and :func:`thread_pool` make reusable pools with every
worker started; :func:`nepse_perf.bench.timing.measure_interleaved` times variants in alternation, which is how the
notebooks compare them on a shared machine.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from os import PathLike
from typing import Literal

import numpy as np
import pandas as pd

from nepse_perf._infra.checks import positive_int
from nepse_perf.data import load_prices
from nepse_perf.data.errors import describe_failures
from nepse_perf.indicators.panel import Panel, panel_from_frame
from nepse_perf.indicators.params import IndicatorParams
from nepse_perf.pipeline import (
    ComputeFn,
    PanelKernel,
    check_out,
    compute_frame,
    frame_from_block,
    get_backend,
    new_block,
)

__all__ = [
    "ChunkFailure",
    "ComputeFn",
    "ParallelError",
    "ParallelResult",
    "chunk_bounds",
    "compute_indicators_parallel",
    "compute_indicators_with",
    "compute_panel_parallel",
    "default_workers",
    "indicators_for_file",
    "process_pool",
    "single_thread_compute",
    "sub_panel",
    "thread_pool",
]


#: Chunks per worker when ``chunk_symbols`` is not given: enough to balance uneven
#: symbol lengths, few enough that per-task overhead stays small.
CHUNKS_PER_WORKER = 4


class ParallelError(RuntimeError):
    """Raised by :meth:`ParallelResult.unwrap` when symbols failed; carries the partial result.

    ``failed`` maps each failed symbol to its error message, ``result`` is the whole
    :class:`ParallelResult` (the other symbols' indicators are in ``result.indicators``).
    """

    def __init__(self, result: ParallelResult) -> None:
        self.result = result
        self.failed = dict(result.failed)
        super().__init__(describe_failures(self.failed, "failed"))


@dataclass(frozen=True)
class ChunkFailure:
    """A chunk whose single call raised before it was retried symbol by symbol.

    ``symbols`` are the chunk's symbols in panel order, ``cause`` is
    ``"ExceptionType: message"``. The symbols that still failed alone are in
    :attr:`ParallelResult.failed`; the others were computed by the retry.
    """

    symbols: tuple[str, ...]
    cause: str

    def __str__(self) -> str:
        first, last = self.symbols[0], self.symbols[-1]
        span = first if len(self.symbols) == 1 else f"{first}..{last}"
        return f"chunk {span} ({len(self.symbols)} symbols): {self.cause}"


@dataclass(frozen=True)
class ParallelResult:
    """What :func:`compute_indicators_parallel` returns: the indicators plus the failures.

    ``indicators`` has the index of the input prices and the ten output columns; rows of a
    symbol listed in ``failed`` (symbol -> ``"ExceptionType: message"``) are NaN.
    ``tasks`` is the number of chunks submitted, ``workers`` the pool size and ``executor``
    ``"process"``, ``"thread"`` or the executor's class name. ``chunk_failures`` lists every
    chunk whose whole-chunk call raised (its symbols and cause) before the per-symbol retry.
    ``ok`` is True when no symbol failed; ``unwrap()`` returns the frame or raises
    :class:`ParallelError`.
    """

    indicators: pd.DataFrame
    failed: dict[str, str] = field(default_factory=dict)
    tasks: int = 0
    workers: int = 1
    executor: str = "process"
    chunk_failures: tuple[ChunkFailure, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every symbol was computed."""
        return not self.failed

    def unwrap(self) -> pd.DataFrame:
        """The indicators if every symbol succeeded, else raise :class:`ParallelError`."""
        if self.failed:
            raise ParallelError(self)
        return self.indicators


def default_workers() -> int:
    """Number of CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def single_thread_compute(backend: str | ComputeFn) -> ComputeFn:
    """The kernel a worker runs for ``backend``: one thread only, so pools do not oversubscribe.

    A name maps to its backend's :meth:`~nepse_perf.pipeline.Backend.single_thread` variant
    (``numba_parallel``: the fused kernel without ``prange``, the same arithmetic, hence
    identical results); a callable is returned as is (it must be importable to reach
    processes).
    """
    if callable(backend):
        return backend
    return get_backend(backend).single_thread()


def chunk_bounds(n_symbols: int, chunk_symbols: int) -> list[tuple[int, int]]:
    """``[(first, end), ...]`` symbol ranges of at most ``chunk_symbols`` symbols each."""
    chunk_symbols = positive_int(chunk_symbols, "chunk_symbols")
    return [(a, min(a + chunk_symbols, n_symbols)) for a in range(0, n_symbols, chunk_symbols)]


def sub_panel(panel: Panel, first: int, end: int) -> Panel:
    """Symbols ``first..end-1`` of a sorted panel as a panel of their own (rows from 0).

    The price arrays are views (no copy here; pickling copies only these rows); offsets and
    first-valid rows are shifted so the sub-panel starts at row 0.
    """
    r0, r1 = int(panel.offsets[first]), int(panel.offsets[end])
    return Panel(
        panel.close[r0:r1],
        panel.high[r0:r1],
        panel.low[r0:r1],
        panel.offsets[first : end + 1] - r0,
        panel.starts[first:end] - r0,
        panel.symbols[first:end],
        None,
    )


def _run_chunk(
    backend: str | ComputeFn, panel: Panel, params: IndicatorParams
) -> tuple[np.ndarray, dict[str, str], str | None]:
    """Worker task: the chunk's 10 x rows block, ``{symbol: error}`` and the chunk's own error.

    The whole chunk runs in one call; only if that raises is it redone symbol by symbol, so
    one bad symbol costs its neighbours nothing but the retry. The third item is the
    whole-chunk call's error (``None`` if it succeeded), reported even if the retry succeeds.
    """
    compute = single_thread_compute(backend)
    out = new_block(panel.n_rows)
    try:
        compute(panel, params, out)
        return out, {}, None
    except Exception as exc:  # recorded below, then retried symbol by symbol
        chunk_error = _describe(exc)
    failed: dict[str, str] = {}
    for s in range(panel.n_symbols):
        a, b = int(panel.offsets[s]), int(panel.offsets[s + 1])
        one = new_block(b - a)
        try:
            compute(sub_panel(panel, s, s + 1), params, one)
        except Exception as exc:
            one.fill(np.nan)
            failed[panel.symbols[s]] = _describe(exc)
        out[:, a:b] = one
    return out, failed, chunk_error


def _in_place_kernel(backend: str | ComputeFn) -> PanelKernel | None:
    """The backend's panel kernel (writes only its own symbols' rows), or None.

    Only a backend given by name can say it has one (``Backend.panel_kernel``); the fused
    one releases the GIL, the per-indicator one (backend ``numba``) does not, which makes
    them a fair pair to compare.
    """
    return None if callable(backend) else get_backend(backend).panel_kernel


def _run_in_place(
    kernel: PanelKernel,
    panel: Panel,
    first: int,
    end: int,
    params: IndicatorParams,
    out: np.ndarray,
) -> tuple[dict[str, str], str | None]:
    """Thread task: symbols ``first..end-1`` written by a compiled kernel straight into ``out``.

    The full arrays are passed with this chunk's offsets, so the kernel writes only its own
    rows of the shared block: no copy in, no copy out. If the chunk raises, it is redone
    symbol by symbol; returns ``{symbol: error}`` for those that fail (rows NaN) and the
    whole-chunk call's error (``None`` if it succeeded).
    """
    p = params.kernel_args()

    def run(a: int, b: int) -> None:
        kernel(
            panel.close, panel.high, panel.low, panel.offsets[a : b + 1], panel.starts[a:b], p, out
        )

    try:
        run(first, end)
        return {}, None
    except Exception as exc:  # recorded below, then retried symbol by symbol
        chunk_error = _describe(exc)
    failed: dict[str, str] = {}
    for s in range(first, end):
        try:
            run(s, s + 1)
        except Exception as exc:
            out[:, panel.offsets[s] : panel.offsets[s + 1]] = np.nan
            failed[panel.symbols[s]] = _describe(exc)
    return failed, chunk_error


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def process_pool(
    workers: int | None = None, start_method: str | None = None
) -> ProcessPoolExecutor:
    """A process pool whose workers can run the pipeline, all started now (reuse it across calls).

    ``start_method`` defaults to ``"forkserver"`` where it exists (Linux, macOS; Python
    3.14's default on Linux): workers are forked from a clean server process that has
    imported this module once, which is both safe in a multi-threaded parent (Jupyter,
    Numba's thread pool) and quick to start. ``"spawn"`` is the portable fallback. With
    these methods ``ProcessPoolExecutor`` starts workers lazily, so this function starts all
    ``workers`` at once: the first timed call does not pay for it.
    """
    if start_method is None:
        methods = multiprocessing.get_all_start_methods()
        start_method = "forkserver" if "forkserver" in methods else "spawn"
    ctx = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        ctx.set_forkserver_preload([__name__])
    n = workers or default_workers()
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx)
    # Each submit finds no finished task yet, so each starts a new worker process.
    for fut in [pool.submit(os.getpid) for _ in range(n)]:
        fut.result()
    return pool


def thread_pool(workers: int | None = None) -> ThreadPoolExecutor:
    """A thread pool with all ``workers`` threads started now (reuse it across calls).

    ``ThreadPoolExecutor`` starts a new thread only when no earlier task has finished since
    (it counts finished tasks, not idle threads), so a pool fed sub-millisecond tasks can run
    everything on one thread for a long time. Here ``workers`` tasks wait on a barrier until
    every thread exists.
    """
    n = workers or default_workers()
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="nepse")
    barrier = threading.Barrier(n)
    for fut in [pool.submit(barrier.wait, 10.0) for _ in range(n)]:
        fut.result()
    return pool


def _validate(backend: str | ComputeFn, workers: int | None, executor: object = None) -> int:
    """The worker count: ``workers``, else the given pool's size, else the usable CPUs."""
    if isinstance(backend, str):
        get_backend(backend)  # unknown name: ValueError now, not in every worker
    elif not callable(backend):
        raise ValueError(f"backend must be a backend name or a callable, got {backend!r}")
    if workers is not None:
        workers = positive_int(workers, "workers")
    pool_size = getattr(executor, "_max_workers", None)  # ProcessPool/ThreadPoolExecutor
    return workers or (pool_size if isinstance(pool_size, int) else default_workers())


def compute_panel_parallel(
    panel: Panel,
    backend: str | ComputeFn = "pandas",
    params: IndicatorParams | None = None,
    *,
    workers: int | None = None,
    chunk_symbols: int | None = None,
    executor: Literal["process", "thread"] | Executor = "process",
    out: np.ndarray | None = None,
    chunk_failures: list[ChunkFailure] | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """The parallel engine on a prepared panel: returns ``(out, failed)``.

    ``out`` is the 10 x n_rows block in panel order (allocated unless given; reuse one to
    time the kernels alone), ``failed`` maps symbol -> error message (those rows are NaN).
    A :class:`ChunkFailure` for every chunk whose whole-chunk call raised is appended to
    ``chunk_failures`` when a list is given.
    Arguments as in :func:`compute_indicators_parallel`; the number of tasks is
    ``len(chunk_bounds(panel.n_symbols, chunk_symbols))``.
    """
    p = params or IndicatorParams()
    n_workers = _validate(backend, workers, executor)
    if chunk_symbols is None:
        chunk_symbols = max(1, math.ceil(panel.n_symbols / (CHUNKS_PER_WORKER * n_workers)))
    bounds = chunk_bounds(panel.n_symbols, chunk_symbols)
    out = new_block(panel.n_rows) if out is None else check_out(out, panel.n_rows)

    own: Executor | None = None
    if executor == "process":
        own = process_pool(n_workers)
    elif executor == "thread":
        own = thread_pool(n_workers)
    elif not isinstance(executor, Executor):
        raise ValueError(f"executor must be 'process', 'thread' or an Executor, got {executor!r}")
    pool: Executor = own if own is not None else executor
    kernel = _in_place_kernel(backend)
    in_place = kernel is not None and isinstance(pool, ThreadPoolExecutor)

    failed: dict[str, str] = {}
    try:
        futures: dict[Future, tuple[int, int]] = {}
        for a, b in bounds:
            if in_place:
                fut = pool.submit(_run_in_place, kernel, panel, a, b, p, out)
            else:
                fut = pool.submit(_run_chunk, backend, sub_panel(panel, a, b), p)
            futures[fut] = (a, b)
        for fut, (a, b) in futures.items():
            r0, r1 = int(panel.offsets[a]), int(panel.offsets[b])
            try:
                result = fut.result()
            except Exception as exc:  # the worker died, or the task could not be sent
                out[:, r0:r1] = np.nan
                failed.update(dict.fromkeys(panel.symbols[a:b], _describe(exc)))
                continue
            if len(result) == 2:  # written in place by a thread
                chunk_failed, chunk_error = result
            else:
                block, chunk_failed, chunk_error = result
                out[:, r0:r1] = block
            failed.update(chunk_failed)
            if chunk_error is not None and chunk_failures is not None:
                chunk_failures.append(ChunkFailure(tuple(panel.symbols[a:b]), chunk_error))
    finally:
        if own is not None:
            own.shutdown(wait=True, cancel_futures=True)
    return out, {s: failed[s] for s in sorted(failed)}


def compute_indicators_parallel(
    prices: pd.DataFrame,
    backend: str | ComputeFn = "pandas",
    *,
    workers: int | None = None,
    chunk_symbols: int | None = None,
    executor: Literal["process", "thread"] | Executor = "process",
    **params: float,
) -> ParallelResult:
    """Compute the indicators with a pool of workers, one task per chunk of whole symbols.

    ``backend`` is a name from ``BACKENDS`` (``"numba_parallel"`` runs single-threaded in
    each worker) or a kernel ``compute(panel, params, out)``; ``workers`` defaults to the
    size of the pool passed as ``executor``, else the CPUs available; ``chunk_symbols`` (symbols per task) defaults to about
    ``CHUNKS_PER_WORKER`` tasks per worker. ``executor`` is ``"process"`` (a fresh process
    pool, closed afterwards: pass a pool from :func:`process_pool` to reuse one),
    ``"thread"`` (a thread pool sharing the arrays; only kernels that release the GIL run at
    the same time) or any ``concurrent.futures.Executor`` (e.g. :func:`thread_pool`). Returns a
    :class:`ParallelResult` whose frame equals ``compute_indicators(prices, backend)``; a
    symbol whose kernel raised, or whose worker died, is named in ``failed`` and its rows
    are NaN. Bad prices or parameters raise ``ValueError`` before any task starts.
    """
    p = IndicatorParams.from_kwargs(**params)
    n_workers = _validate(backend, workers, executor)
    panel = panel_from_frame(prices)
    if chunk_symbols is None:
        chunk_symbols = max(1, math.ceil(panel.n_symbols / (CHUNKS_PER_WORKER * n_workers)))
    tasks = len(chunk_bounds(panel.n_symbols, chunk_symbols))
    chunk_failures: list[ChunkFailure] = []
    out, failed = compute_panel_parallel(
        panel,
        backend,
        p,
        workers=n_workers,
        chunk_symbols=chunk_symbols,
        executor=executor,
        chunk_failures=chunk_failures,
    )
    frame = frame_from_block(out, panel, prices.index)
    kind = executor if isinstance(executor, str) else type(executor).__name__
    return ParallelResult(frame, failed, tasks, n_workers, kind, tuple(chunk_failures))


def compute_indicators_with(
    prices: pd.DataFrame, compute: ComputeFn, params: IndicatorParams | None = None
) -> pd.DataFrame:
    """``compute_indicators`` with an explicit kernel (e.g. a single-threaded one) in this process.

    Same contract as :func:`nepse_perf.compute_indicators`: any row order, the result has
    the index of ``prices`` and the ten float64 output columns.
    """
    return compute_frame(prices, compute, params or IndicatorParams())


def indicators_for_file(
    path: str | PathLike[str], backend: str = "pandas", **params: float
) -> pd.DataFrame:
    """Load one per-symbol CSV and return its prices with the ten indicator columns appended.

    The chapter's ``process_symbol`` done right: a module-level (importable, hence picklable)
    function that receives only a file name, so a pool ships a short string to each worker
    instead of the data, and the reading and parsing run in parallel too. ``numba_parallel``
    runs single-threaded here, like in every pool worker.
    """
    prices = load_prices(path)
    p = IndicatorParams.from_kwargs(**params)
    return prices.join(compute_indicators_with(prices, single_thread_compute(backend), p))
