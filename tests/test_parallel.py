"""Process and thread pools give exactly the serial results; failures are named, not lost."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest
from conftest import talib_reference

from nepse_perf import compute_indicators
from nepse_perf.bench.timing import measure_interleaved
from nepse_perf.data import sample_path
from nepse_perf.engines.pool import (
    CHUNKS_PER_WORKER,
    ChunkFailure,
    ParallelError,
    ParallelResult,
    chunk_bounds,
    compute_indicators_parallel,
    compute_panel_parallel,
    indicators_for_file,
    process_pool,
    single_thread_compute,
    sub_panel,
    thread_pool,
)
from nepse_perf.indicators.backends import numba_parallel
from nepse_perf.indicators.panel import Panel, panel_from_frame
from nepse_perf.indicators.params import IndicatorParams
from nepse_perf.lessons.workbook import agrees

BAD = "NABIL"


def fails_on_bad_symbol(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Test kernel (module level, so process workers can import it): raises for ``BAD``."""
    if BAD in panel.symbols:
        raise ValueError(f"injected failure for {BAD}")
    numba_parallel.compute_serial(panel, params, out)


def fails_on_whole_chunks(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Test kernel: raises on any chunk holding ``BAD`` and another symbol, works per symbol."""
    if BAD in panel.symbols and panel.n_symbols > 1:
        raise MemoryError(f"chunk of {panel.n_symbols} symbols too large")
    numba_parallel.compute_serial(panel, params, out)


def dies_on_bad_symbol(panel: Panel, params: IndicatorParams, out: np.ndarray) -> None:
    """Test kernel: the worker process exits abruptly (like a segfault) on ``BAD``."""
    if BAD in panel.symbols:
        os._exit(3)
    numba_parallel.compute_serial(panel, params, out)


@pytest.fixture(scope="module")
def shuffled(sample_prices: pd.DataFrame) -> pd.DataFrame:
    """The real sample in random row order with a non-default index (exercises the scatter)."""
    out = sample_prices.sample(frac=1.0, random_state=1)
    out.index = out.index * 3 + 7
    return out


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with process_pool(2) as executor:
        yield executor


def _in_chunks_of_five(
    prices: pd.DataFrame, kernel, executor: str, pool: ProcessPoolExecutor
) -> ParallelResult:
    """``kernel`` over two workers, five symbols a chunk, on threads or the shared ``pool``."""
    ex = pool if executor == "pool" else executor
    return compute_indicators_parallel(prices, kernel, workers=2, chunk_symbols=5, executor=ex)


@pytest.mark.parametrize(
    "backend", ["python", "pandas", "numpy", "numba", "numba_parallel", "talib"]
)
def test_threads_equal_serial(shuffled: pd.DataFrame, backend: str) -> None:
    got = compute_indicators_parallel(shuffled, backend, workers=2, executor="thread")
    assert isinstance(got, ParallelResult) and got.ok and got.executor == "thread"
    pd.testing.assert_frame_equal(got.indicators, compute_indicators(shuffled, backend))


@pytest.mark.parametrize("backend", ["python", "pandas", "numba_parallel"])
def test_processes_equal_serial(
    shuffled: pd.DataFrame, pool: ProcessPoolExecutor, backend: str
) -> None:
    got = compute_indicators_parallel(shuffled, backend, executor=pool, chunk_symbols=3)
    assert got.ok and got.tasks == 9 and got.executor == "ProcessPoolExecutor"
    pd.testing.assert_frame_equal(got.indicators, compute_indicators(shuffled, backend))


def test_fresh_process_pool_matches_talib(sample_prices: pd.DataFrame) -> None:
    got = compute_indicators_parallel(sample_prices, "pandas", workers=2, executor="process")
    assert got.ok and got.workers == 2
    assert agrees(got.indicators, talib_reference(sample_prices))


@pytest.mark.parametrize("chunk", [1, 2, 7, 1000])
def test_chunk_size_does_not_change_results(shuffled: pd.DataFrame, chunk: int) -> None:
    got = compute_indicators_parallel(
        shuffled, "numba_parallel", workers=3, chunk_symbols=chunk, executor="thread"
    )
    assert got.tasks == len(chunk_bounds(25, chunk))
    pd.testing.assert_frame_equal(got.indicators, compute_indicators(shuffled, "numba_parallel"))


def test_parameters_are_passed_to_workers(sample_prices: pd.DataFrame, pool) -> None:
    params = {"sma_period": 5, "rsi_period": 9, "bb_nbdev": 1.5}
    got = compute_indicators_parallel(sample_prices, "pandas", executor=pool, **params)
    pd.testing.assert_frame_equal(
        got.unwrap(), compute_indicators(sample_prices, "pandas", **params)
    )


@pytest.mark.parametrize("executor", ["thread", "pool"])
def test_failing_symbol_is_named_and_the_rest_kept(
    shuffled: pd.DataFrame, pool: ProcessPoolExecutor, executor: str
) -> None:
    got = _in_chunks_of_five(shuffled, fails_on_bad_symbol, executor, pool)
    assert not got.ok
    assert got.failed == {BAD: f"ValueError: injected failure for {BAD}"}
    # The whole-chunk failure that led to the retry is recorded too, with its symbols.
    assert len(got.chunk_failures) == 1
    assert BAD in got.chunk_failures[0].symbols and len(got.chunk_failures[0].symbols) == 5
    assert got.chunk_failures[0].cause == f"ValueError: injected failure for {BAD}"
    ref = compute_indicators(shuffled, "numba_parallel")
    bad = (shuffled["symbol"] == BAD).to_numpy()
    assert got.indicators[bad].isna().all().all()
    pd.testing.assert_frame_equal(got.indicators[~bad], ref[~bad])
    with pytest.raises(ParallelError, match=BAD) as info:
        got.unwrap()
    assert info.value.failed == got.failed
    assert info.value.result is got


@pytest.mark.parametrize("executor", ["thread", "pool"])
def test_chunk_failure_is_recorded_even_when_the_retry_succeeds(
    sample_prices: pd.DataFrame, pool: ProcessPoolExecutor, executor: str
) -> None:
    got = _in_chunks_of_five(sample_prices, fails_on_whole_chunks, executor, pool)
    assert got.ok and got.failed == {}
    pd.testing.assert_frame_equal(
        got.indicators, compute_indicators(sample_prices, "numba_parallel")
    )
    (failure,) = got.chunk_failures
    assert isinstance(failure, ChunkFailure) and BAD in failure.symbols
    assert failure.cause == "MemoryError: chunk of 5 symbols too large"
    assert str(failure).startswith(f"chunk {failure.symbols[0]}..{failure.symbols[-1]} (5 symbols)")


def test_dead_worker_reports_its_symbols(sample_prices: pd.DataFrame) -> None:
    got = compute_indicators_parallel(
        sample_prices, dies_on_bad_symbol, workers=2, chunk_symbols=5, executor="process"
    )
    assert BAD in got.failed
    assert all("BrokenProcessPool" in msg for msg in got.failed.values())
    done = ~sample_prices["symbol"].isin(list(got.failed)).to_numpy()
    ref = compute_indicators(sample_prices, "numba_parallel")
    pd.testing.assert_frame_equal(got.indicators[done], ref[done])
    assert got.indicators[~done].isna().all().all()


def test_bad_arguments_raise_before_work(sample_prices: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        compute_indicators_parallel(sample_prices, "nope", executor="thread")
    with pytest.raises(ValueError, match="workers"):
        compute_indicators_parallel(sample_prices, "pandas", workers=0, executor="thread")
    with pytest.raises(ValueError, match="chunk_symbols"):
        compute_indicators_parallel(sample_prices, "pandas", chunk_symbols=0, executor="thread")
    with pytest.raises(ValueError, match="executor"):
        compute_indicators_parallel(sample_prices, "pandas", executor="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown indicator parameter"):
        compute_indicators_parallel(sample_prices, "pandas", executor="thread", window=3)


def test_sub_panels_cover_the_panel(sample_prices: pd.DataFrame) -> None:
    panel = panel_from_frame(sample_prices)
    parts = [sub_panel(panel, a, b) for a, b in chunk_bounds(panel.n_symbols, 4)]
    assert sum(p.n_rows for p in parts) == panel.n_rows
    assert sum((p.symbols for p in parts), ()) == panel.symbols
    assert all(p.offsets[0] == 0 and p.offsets[-1] == p.n_rows for p in parts)
    assert np.shares_memory(parts[1].close, panel.close)


def test_numba_parallel_runs_single_threaded_in_workers() -> None:
    assert single_thread_compute("numba_parallel") is numba_parallel.compute_serial
    assert single_thread_compute(fails_on_bad_symbol) is fails_on_bad_symbol


def test_indicators_for_file_equals_the_pipeline() -> None:
    path = sample_path() / f"{BAD}.csv"
    got = indicators_for_file(path, "numba_parallel")
    prices = got.iloc[:, :8]
    pd.testing.assert_frame_equal(
        got.iloc[:, 8:], compute_indicators(prices, "numba_parallel"), check_names=True
    )


def test_empty_frame(sample_prices: pd.DataFrame) -> None:
    got = compute_indicators_parallel(sample_prices.iloc[:0], "pandas", executor="thread")
    assert got.ok and got.tasks == 0 and got.indicators.shape == (0, 10)


@pytest.mark.parametrize("backend", ["numba_parallel", "numba", "pandas"])
def test_panel_engine_writes_into_a_given_block(sample_prices: pd.DataFrame, backend: str) -> None:
    panel = panel_from_frame(sample_prices)
    out = np.full((10, panel.n_rows), -1.0)
    got, failed = compute_panel_parallel(
        panel, backend, workers=2, chunk_symbols=4, executor="thread", out=out
    )
    assert got is out and failed == {}
    expected = compute_indicators(sample_prices, backend).to_numpy().T
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="C-contiguous float64"):
        compute_panel_parallel(panel, backend, executor="thread", out=out[:, ::2])


def test_pools_start_every_worker_up_front() -> None:
    threads = thread_pool(3)
    try:
        assert len(threads._threads) == 3
    finally:
        threads.shutdown()
    with process_pool(2) as processes:
        assert len(processes._processes) == 2


def test_measure_interleaved_alternates_calls() -> None:
    calls: list[str] = []
    timings = measure_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1
    )
    assert calls == ["a", "b"] * 4
    assert [t.repeat for t in timings.values()] == [3, 3]
    assert all(t.first is not None and t.best <= t.median <= t.worst for t in timings.values())
    with pytest.raises(ValueError, match="rounds"):
        measure_interleaved({}, rounds=0)


def test_speedup_table_reports_spread_and_runs() -> None:
    from nepse_perf.bench.timing import Timing, speedup_table

    runs = {"base": Timing((0.010, 0.012, 0.014, 0.016, 0.018)), "fast": Timing((0.004, 0.005))}
    table = speedup_table(runs, "base")
    assert list(table.columns) == [
        "median (ms)",
        "IQR (ms)",
        "best (ms)",
        "runs",
        "speed-up (median)",
        "speed-up (best)",
    ]
    assert table.loc["base", "IQR (ms)"] == 4.0 and table.loc["base", "runs"] == 5
    assert table.loc["fast", "speed-up (median)"] == round(14 / 4.5, 2)


def test_in_place_thread_chunks_isolate_a_failing_symbol(
    sample_prices: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nepse_perf.engines.pool as parallel

    panel = panel_from_frame(sample_prices)
    bad_row = int(panel.offsets[panel.symbols.index(BAD)])

    def kernel(*args: object) -> None:
        if bad_row in np.asarray(args[3])[:-1]:
            raise FloatingPointError("injected")
        numba_parallel.fused_panel_serial(*args)

    monkeypatch.setattr(parallel, "_in_place_kernel", lambda compute: kernel)
    got = compute_indicators_parallel(
        sample_prices, "numba_parallel", workers=2, chunk_symbols=6, executor="thread"
    )
    assert got.failed == {BAD: "FloatingPointError: injected"}
    (failure,) = got.chunk_failures
    assert BAD in failure.symbols and failure.cause == "FloatingPointError: injected"
    bad = (sample_prices["symbol"] == BAD).to_numpy()
    ref = compute_indicators(sample_prices, "numba_parallel")
    assert got.indicators[bad].isna().all().all()
    pd.testing.assert_frame_equal(got.indicators[~bad], ref[~bad])


@pytest.mark.parametrize("size", [1, 3])
def test_a_given_pool_sets_the_worker_count(sample_prices: pd.DataFrame, size: int) -> None:
    """With ``workers=None`` the chunking follows the pool passed in, not this machine's cores,
    so notebook 04's task count is the same on a 2-core and a 16-core machine."""
    with thread_pool(size) as executor:
        result = compute_indicators_parallel(sample_prices, "numba", executor=executor)
    n_symbols = sample_prices["symbol"].nunique()
    chunk = -(-n_symbols // (CHUNKS_PER_WORKER * size))
    assert result.workers == size
    assert result.tasks == len(chunk_bounds(n_symbols, chunk))
