"""One comparison of every engine on the same prices: start-up cost apart from work.

"Work" is the same job for each engine: from a price frame in the driver's memory to the
ten indicator columns in the driver's memory, computed by the same single-threaded fused
Numba kernel on 2 CPUs. How the data travels is each engine's own: a process pool pickles
chunks of the panel, Dask and Spark read Parquet files of whole symbols written for them
(the write is inside the timed work), Ray maps one copy of the panel from its object store.
"Start-up" is starting the engine once (pool processes, a Dask LocalCluster, Ray, the JVM);
it is paid once per session, the work once per job.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from pathlib import Path

import pandas as pd

from nepse_perf.bench.timing import Timing
from nepse_perf.engines.dask import read_parquet_dask, run_pipeline, write_parquet_by_symbol
from nepse_perf.engines.pool import compute_indicators_parallel, compute_indicators_with
from nepse_perf.pipeline import get_backend

__all__ = ["ENGINES", "comparison_table", "engine_jobs"]

#: Row order of the comparison table.
ENGINES: tuple[str, ...] = ("single process", "multiprocessing", "Dask", "Ray", "Spark")


def engine_jobs(
    prices: pd.DataFrame,
    *,
    pool: Executor | None = None,
    dask_client: object | None = None,
    ray_ready: bool = False,
    spark: object | None = None,
    scratch: str | Path | None = None,
) -> dict[str, Callable[[], pd.DataFrame]]:
    """``{engine: job}``: zero-argument calls that each return the indicator frame of ``prices``.

    ``prices`` must be sorted by symbol then date with a RangeIndex (as ``load_prices`` and
    ``synthetic_prices`` return it), so every engine's frame is comparable with
    ``assert_frame_equal``. An engine is included when its handle is given (a process pool,
    a Dask client, ``ray_ready=True`` inside a Ray session, a SparkSession); the single
    process always is. Dask gets Parquet files of whole symbols (about 8 partitions) in a
    fresh directory under ``scratch`` (default: a temporary directory) on every call.
    """
    base = Path(scratch) if scratch is not None else Path(tempfile.mkdtemp(prefix="nepse-cmp-"))
    n_symbols = int(prices["symbol"].nunique())
    per_file = max(1, math.ceil(n_symbols / 8))
    serial = get_backend("numba_parallel").single_thread()
    jobs: dict[str, Callable[[], pd.DataFrame]] = {
        "single process": lambda: compute_indicators_with(prices, serial)
    }
    if pool is not None:
        jobs["multiprocessing"] = lambda: compute_indicators_parallel(
            prices, "numba_parallel", executor=pool
        ).unwrap()
    if dask_client is not None:

        def dask_job() -> pd.DataFrame:
            directory = base / f"dask-{uuid.uuid4().hex}"
            write_parquet_by_symbol(prices, directory, symbols_per_file=per_file)
            return run_pipeline(read_parquet_dask(directory), client=dask_client)

        jobs["Dask"] = dask_job
    if ray_ready:
        from nepse_perf.engines.ray import compute_indicators_ray

        jobs["Ray"] = lambda: compute_indicators_ray(prices)
    if spark is not None:
        from nepse_perf.engines.spark import compute_indicators_spark

        jobs["Spark"] = lambda: compute_indicators_spark(prices, spark=spark)
    return jobs


def comparison_table(
    startup: Mapping[str, float],
    work: Mapping[str, Mapping[str, Timing]],
    *,
    baseline: str = "Dask",
) -> pd.DataFrame:
    """The closing table: one row per engine, start-up once, then work per data size.

    ``startup`` maps engine -> seconds (0 for the single process); ``work`` maps a size label
    -> engine -> :class:`Timing` of the job. Columns: ``start-up [s]`` and, per size,
    ``<size> work median [s]``, ``<size> IQR [s]`` and ``<size> vs <baseline>`` (median work
    over the baseline's, measured in the same run). Seconds rounded to 3 decimals.
    """
    rows = []
    for engine in ENGINES:
        if engine not in startup and not any(engine in t for t in work.values()):
            continue
        row: dict[str, object] = {"engine": engine, "start-up [s]": startup.get(engine, math.nan)}
        for size, timings in work.items():
            t = timings.get(engine)
            base = timings.get(baseline)
            row[f"{size} work median [s]"] = t.median if t else math.nan
            row[f"{size} IQR [s]"] = t.iqr if t else math.nan
            row[f"{size} vs {baseline}"] = t.median / base.median if t and base else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("engine").round(3)
