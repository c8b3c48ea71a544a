"""The pipeline on Dask equals the in-process one: sync scheduler, LocalCluster, and a real
cluster of separate scheduler/worker processes that loses a worker in the middle of a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dask
import pandas as pd
import pytest
from conftest import start_logged, wait_for
from distributed import futures_of

from nepse_perf import compute_indicators, synthetic_prices
from nepse_perf.data import PRICE_COLUMNS, sample_path
from nepse_perf.engines import (
    SCHEDULER_ENV,
    compute_indicators_dask,
    connect,
    dask_client,
    disconnect,
    price_files,
    read_parquet_dask,
    read_prices_dask,
    run_pipeline,
    split_symbols,
    write_parquet_by_symbol,
)

HERE = Path(__file__).resolve().parent

#: Seconds each partition sleeps in the fault-tolerance run (25 partitions, 2 workers).
PAUSE = 0.3


def slow_identity(part: pd.DataFrame) -> pd.DataFrame:
    """Pass a partition through after a pause, so a run lasts long enough to lose a worker."""
    time.sleep(PAUSE)
    return part


def test_one_partition_per_file() -> None:
    ddf = read_prices_dask()
    files = price_files()
    assert ddf.npartitions == len(files) == 25
    assert list(ddf.columns) == list(PRICE_COLUMNS)
    assert list(ddf["symbol"].cat.categories) == [p.stem for p in files]


@pytest.mark.parametrize("backend", ["numba_parallel", "pandas"])
def test_sync_scheduler_equals_in_process(sample_prices: pd.DataFrame, backend: str) -> None:
    with dask.config.set(scheduler="sync"):
        got = run_pipeline(sample_path(), backend)
    pd.testing.assert_frame_equal(got, compute_indicators(sample_prices, backend))


def test_prices_read_by_dask_equal_load_prices(sample_prices: pd.DataFrame) -> None:
    with dask.config.set(scheduler="sync"):
        got = read_prices_dask().compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, sample_prices, check_exact=True)


def test_parquet_files_of_whole_symbols(tmp_path: Path) -> None:
    prices = synthetic_prices(23, 300, seed=3)
    shuffled = prices.sample(frac=1.0, random_state=0)
    files = write_parquet_by_symbol(shuffled, tmp_path, symbols_per_file=5)
    assert [f.name for f in files] == [f"part-{i:05d}.parquet" for i in range(5)]
    ddf = read_parquet_dask(tmp_path)
    with dask.config.set(scheduler="sync"):
        assert ddf.npartitions == 5 and split_symbols(ddf) == []
        got = run_pipeline(ddf, "numba_parallel", sma_period=7)
    ordered = prices.sort_values(["symbol", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(got, compute_indicators(ordered, "numba_parallel", sma_period=7))


def test_split_symbols_detects_a_symbol_cut_in_two() -> None:
    import dask.dataframe as dd

    prices = synthetic_prices(3, 50, seed=0)
    ddf = dd.from_pandas(prices, npartitions=4, sort=False)
    with dask.config.set(scheduler="sync"):
        assert split_symbols(ddf) != []


def test_local_cluster_on_loopback(
    monkeypatch: pytest.MonkeyPatch, in_process: pd.DataFrame
) -> None:
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    with dask_client(n_workers=2) as client:
        cluster = client.cluster
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        for addr, info in workers.items():
            assert addr.startswith("tcp://127.0.0.1:")
            assert info["nanny"].startswith("tcp://127.0.0.1:")
        pd.testing.assert_frame_equal(run_pipeline(), in_process)
    assert cluster.status.name == "closed"


# --------------------------------------------------------------------------- a real cluster


def _start(args: list[str], log: Path) -> subprocess.Popen:
    """A Dask CLI process in its own process group, output to a log file.

    ``tests/`` goes on its ``PYTHONPATH`` so workers can import this module's
    ``slow_identity`` (Dask ships functions by reference, like any pickle).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return start_logged([sys.executable, "-m", *args], log, env)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a process group, then kill it if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture
def cli_cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, subprocess.Popen]]]:
    """``dask scheduler`` + two ``dask worker`` processes on 127.0.0.1, free ports, no nanny."""
    scheduler_file = tmp_path / "scheduler.json"
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["scheduler"] = _start(
            [
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            tmp_path / "scheduler.log",
        )
        wait_for(scheduler_file.exists, 60, "the scheduler file")
        wait_for(lambda: scheduler_file.stat().st_size > 0, 10, "the scheduler address")
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for name in ("w0", "w1"):
            procs[name] = _start(
                [
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(scheduler_file),
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    name,
                    "--local-directory",
                    str(tmp_path / name),
                ],
                tmp_path / f"{name}.log",
            )
        yield address, procs
    finally:
        for proc in reversed(list(procs.values())):
            _stop(proc)


def test_real_cluster_survives_losing_a_worker(
    cli_cluster: tuple[str, dict[str, subprocess.Popen]],
    monkeypatch: pytest.MonkeyPatch,
    in_process: pd.DataFrame,
) -> None:
    address, procs = cli_cluster
    monkeypatch.setenv(SCHEDULER_ENV, address)
    client = connect()  # picks the scheduler up from the environment
    try:
        assert client.cluster is None and client.scheduler.address == address
        client.wait_for_workers(2, timeout=60)
        workers = client.scheduler_info()["workers"]
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in workers)
        by_name = {info["name"]: addr for addr, info in workers.items()}

        # 1. same numbers as in one process
        pd.testing.assert_frame_equal(run_pipeline(client=client), in_process)

        # 2. kill one worker while tasks are pending; the result is still complete
        ind = compute_indicators_dask(read_prices_dask())
        slow = ind.map_partitions(slow_identity, meta=ind._meta)
        persisted = client.persist(slow)
        futures = futures_of(persisted)
        assert len(futures) == 25
        wait_for(lambda: sum(f.done() for f in futures) >= 3, 60, "3 finished partitions")
        assert all(f.status in ("pending", "finished") for f in futures)
        busy: list[str] = []

        def a_worker_is_busy() -> bool:  # processing() is a snapshot: poll until it shows work
            busy[:] = [w for w, keys in client.processing().items() if keys]
            return bool(busy)

        wait_for(a_worker_is_busy, 60, "a worker with tasks in hand")
        victim = next(name for name, addr in by_name.items() if addr in busy)
        pending_at_kill = sum(not f.done() for f in futures)
        os.killpg(procs[victim].pid, signal.SIGKILL)
        assert procs[victim].wait(10) == -signal.SIGKILL
        assert pending_at_kill > 0  # the kill happened mid-run, with work left to do
        result = persisted.compute().reset_index(drop=True)
        assert list(client.scheduler_info()["workers"]) == [
            by_name[{"w0": "w1", "w1": "w0"}[victim]]
        ]
        pd.testing.assert_frame_equal(result, in_process)
    finally:
        disconnect(client)
    assert procs["scheduler"].poll() is None  # disconnect leaves a remote cluster running
    assert client.status == "closed"
