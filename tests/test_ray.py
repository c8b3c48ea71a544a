"""The pipeline on Ray equals the in-process one and TA-Lib: a local Ray on loopback, bad input,
a failing symbol named, and a cluster of separate processes (``ray start --head``) that loses a
worker process in the middle of a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import ray
from conftest import (
    assert_matches_talib,
    free_port,
    short_market_files,
    start_logged,
    talib_reference,
    wait_for,
)

from nepse_perf import compute_indicators
from nepse_perf.data import DataError, load_prices, sample_path
from nepse_perf.engines.pool import ParallelError
from nepse_perf.engines.ray import (
    ADDRESS_ENV,
    compute_indicators_ray,
    configure_environment,
    loopback_only,
    noop_round_trip,
    ray_session,
    run_ray,
)
from nepse_perf.indicators.backends import numba_parallel

#: Seconds each task sleeps in the fault-tolerance run (25 one-symbol tasks, 2 CPUs).
PAUSE = 0.4

RAY_BIN = Path(sys.executable).with_name("ray")


@pytest.fixture(scope="class")
def local_ray() -> Iterator[str]:
    """One local Ray (2 CPUs, 127.0.0.1) shared by the tests of a class; yields its GCS."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv(ADDRESS_ENV, raising=False)
        with ray_session() as gcs:
            yield gcs


@pytest.mark.usefixtures("local_ray")
class TestLocalRay:
    """Engine behaviour on a local Ray started once for the class."""

    def test_on_loopback_with_two_cpus(self, local_ray: str) -> None:
        assert local_ray.startswith("127.0.0.1:")
        assert ray.cluster_resources()["CPU"] == 2
        assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in ray.nodes())
        assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
        assert os.environ["RAY_AUTH_MODE"] == "token"

    def test_sample_equals_in_process_and_talib(
        self, sample_prices: pd.DataFrame, in_process: pd.DataFrame
    ) -> None:
        got = compute_indicators_ray(sample_path())
        pd.testing.assert_frame_equal(got, in_process)
        assert_matches_talib(got, talib_reference(sample_prices))

    def test_one_task_per_symbol_and_unsorted_input(
        self, sample_prices: pd.DataFrame, in_process: pd.DataFrame
    ) -> None:
        run = run_ray(sample_prices, batch_symbols=1)
        assert run.result.tasks == 25 and run.result.ok and run.batch_symbols == 1
        pd.testing.assert_frame_equal(run.result.indicators, in_process)
        shuffled = sample_prices.sample(frac=1.0, random_state=1)
        got = compute_indicators_ray(shuffled, backend="talib", sma_period=7)
        pd.testing.assert_frame_equal(got, compute_indicators(shuffled, "talib", sma_period=7))

    def test_failing_symbol_is_named(
        self, sample_prices: pd.DataFrame, in_process: pd.DataFrame
    ) -> None:
        def fails_on_nabil(panel, params, out) -> None:  # shipped by value (a closure)
            if "NABIL" in panel.symbols:
                raise ValueError("bad bar")
            numba_parallel.compute_serial(panel, params, out)

        with pytest.raises(
            ParallelError, match=r"1 symbol\(s\) failed: NABIL: ValueError: bad bar"
        ):
            compute_indicators_ray(sample_prices, backend=fails_on_nabil, batch_symbols=5)
        result = run_ray(sample_prices, backend=fails_on_nabil, batch_symbols=5).result
        assert list(result.failed) == ["NABIL"]
        nabil = (sample_prices["symbol"] == "NABIL").to_numpy()
        assert result.indicators[nabil].isna().all().all()
        pd.testing.assert_frame_equal(result.indicators[~nabil], in_process[~nabil])

    def test_short_histories_of_the_market(self, tmp_path: Path) -> None:
        """The market's 54 files shorter than MACD's warm-up (16 of one row) equal TA-Lib."""
        prices = load_prices(short_market_files(tmp_path))
        assert prices["symbol"].nunique() == 54 and prices.groupby("symbol").size().min() == 1
        got = compute_indicators_ray(tmp_path, batch_symbols=7)
        pd.testing.assert_frame_equal(got, compute_indicators(prices, "numba_parallel"))
        assert_matches_talib(got, talib_reference(prices))

    def test_bad_input_names_the_file(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="no-such-dir"):
            compute_indicators_ray(tmp_path / "no-such-dir")
        bad = tmp_path / "BROKEN.csv"
        bad.write_text("Date,Open,High,Low,Close\n2020-01-01,1,2,0.5,oops\n")
        with pytest.raises(DataError, match=r"BROKEN\.csv"):
            compute_indicators_ray(tmp_path)
        with pytest.raises(ValueError, match="unknown backend"):
            compute_indicators_ray(sample_path(), backend="nope")

    def test_task_overhead_is_per_task(self) -> None:
        """The figure is seconds per task: n of them fit inside the call's own wall time."""
        for n, sync in ((20, False), (5, True)):
            t0 = time.perf_counter()
            per_task = noop_round_trip(n, one_at_a_time=sync)
            wall = time.perf_counter() - t0
            assert 0 < per_task * n <= wall
        with pytest.raises(ValueError, match="n_tasks"):
            noop_round_trip(0)


# --------------------------------------------------------------------------- a real cluster


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``ray start ... --block`` in its own process group (its GCS/raylet/workers with it)."""
    return start_logged([str(RAY_BIN), "start", "--block", *args], log, env)


def _stop(proc: subprocess.Popen) -> None:
    """Kill the ``ray start`` process group: its GCS, raylet and workers (SIGTERM drains 30 s)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


@pytest.fixture
def ray_cluster(tmp_path: Path) -> Iterator[str]:
    """``ray start --head`` (2 CPUs) as its own processes on loopback; yields its address.

    One node only: Ray 2.60 on Linux refuses a second node in its loopback-only mode, and in
    multi-node mode rewrites 127.0.0.1 to the machine's routable IP and binds every
    interface (``services.resolve_ip_for_localhost``), which this project does not allow.
    """
    assert not ray.is_initialized()
    configure_environment()  # the token the cluster and this driver share
    port = free_port()
    log = tmp_path / "head.log"
    args = ["--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    args += ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    with loopback_only() as env:
        proc = _start(args, env, log)
    try:
        wait_for(lambda: "Ray runtime started" in log.read_text(), 120, "ray start --head", 0.1)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


def test_cluster_survives_a_killed_worker_process(
    ray_cluster: str,
    monkeypatch: pytest.MonkeyPatch,
    sample_prices: pd.DataFrame,
    in_process: pd.DataFrame,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(ADDRESS_ENV, ray_cluster)
    marks = tmp_path / "marks"
    marks.mkdir()

    def slow(panel, params, out) -> None:  # marks its worker's pid while it runs
        run_id = uuid.uuid4().hex
        (marks / f"{os.getpid()}.{run_id}.start").touch()
        time.sleep(PAUSE)
        numba_parallel.compute_serial(panel, params, out)
        (marks / f"{os.getpid()}.{run_id}.done").touch()

    with ray_session() as gcs:  # picks the cluster up from RAY_ADDRESS
        assert gcs == ray_cluster
        assert ray.cluster_resources()["CPU"] == 2
        nodes = [n for n in ray.nodes() if n["Alive"]]
        assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]

        # 1. same numbers as in one process
        pd.testing.assert_frame_equal(compute_indicators_ray(sample_prices), in_process)

        # 2. kill a worker process while it runs a task: Ray retries the task elsewhere
        box: dict[str, object] = {}

        def run() -> None:
            try:
                box["run"] = run_ray(sample_prices, backend=slow, batch_symbols=1)
            except BaseException as exc:  # surfaced below
                box["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()

        def running() -> list[str]:
            started = {p.name.rsplit(".", 1)[0] for p in marks.glob("*.start")}
            done = {p.name.rsplit(".", 1)[0] for p in marks.glob("*.done")}
            return sorted(started - done)

        wait_for(lambda: len(list(marks.glob("*.done"))) >= 2 and running(), 90, "a busy task", 0.1)
        victim = int(running()[0].split(".")[0])
        finished_at_kill = len(list(marks.glob("*.done")))
        os.kill(victim, signal.SIGKILL)
        thread.join(120)
        assert not thread.is_alive()
        assert "error" not in box, box.get("error")
        result = box["run"].result  # type: ignore[attr-defined]
        assert finished_at_kill < result.tasks == 25  # killed mid-run
        assert result.ok
        assert len(list(marks.glob("*.start"))) > result.tasks  # the killed task ran again
        pd.testing.assert_frame_equal(result.indicators, in_process)
    assert not ray.is_initialized()
