"""Memory lessons' helpers: what a frame's columns cost, and out-of-core vs in-memory jobs.

:func:`frame_memory` breaks ``DataFrame.memory_usage(deep=True)`` down per column.
:func:`hot_days_in_memory` and :func:`hot_days_out_of_core` run the same small job on a
directory of Parquet files of whole symbols (see ``nepse_perf.engines.write_parquet_by_symbol``):
per symbol, the number of sessions with RSI above 70. The first reads everything into one
frame; the second reads one file at a time with Dask and reduces each to a few numbers, so its
peak memory follows one file, not the dataset. :func:`peak_memory_mb` measures a job's peak
resident memory in a fresh Python process, where no earlier allocation can hide it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nepse_perf.indicators.panel import REQUIRED_COLUMNS
from nepse_perf.pipeline import compute_indicators

__all__ = [
    "JOBS",
    "frame_memory",
    "hot_days",
    "hot_days_in_memory",
    "hot_days_out_of_core",
    "peak_memory_mb",
]

#: Only these columns are read by the jobs: the indicators need nothing else.
NEEDED_COLUMNS: list[str] = list(REQUIRED_COLUMNS)


def frame_memory(frame: pd.DataFrame) -> pd.DataFrame:
    """Per column (and the index): dtype, bytes (``memory_usage(deep=True)``), bytes per row.

    The last row, ``total``, sums the bytes. Strings and categories are counted deeply
    (their characters included), so the numbers are what the frame really holds.
    """
    usage = frame.memory_usage(deep=True, index=True)
    dtypes = {"Index": str(frame.index.dtype), **{c: str(t) for c, t in frame.dtypes.items()}}
    rows = max(len(frame), 1)
    table = pd.DataFrame(
        {
            "dtype": [dtypes[c] for c in usage.index],
            "bytes": usage.to_numpy(),
            "bytes/row": (usage.to_numpy() / rows).round(2),
        },
        index=pd.Index([str(c) for c in usage.index], name="column"),
    )
    total = pd.DataFrame(
        {"dtype": [""], "bytes": [int(usage.sum())], "bytes/row": [round(usage.sum() / rows, 2)]},
        index=pd.Index(["total"], name="column"),
    )
    return pd.concat([table, total])


def hot_days(prices: pd.DataFrame, threshold: float = 70.0) -> pd.Series:
    """Per symbol: sessions whose RSI(14) is above ``threshold`` (int64, indexed by symbol name)."""
    rsi = compute_indicators(prices, "numba")["rsi"].to_numpy()
    symbol = prices["symbol"].astype(str).to_numpy()
    counts = pd.Series(rsi > threshold).groupby(symbol).sum()
    counts.index.name = "symbol"
    return counts.astype(np.int64).rename("hot days")


def _files(directory: str | Path) -> list[str]:
    files = sorted(str(p) for p in Path(directory).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{directory}: no .parquet files")
    return files


def hot_days_in_memory(directory: str | Path) -> pd.Series:
    """:func:`hot_days` of every file in ``directory``, read into one frame (needed columns only)."""
    prices = pd.concat(
        [pd.read_parquet(f, columns=NEEDED_COLUMNS) for f in _files(directory)], ignore_index=True
    )
    return hot_days(prices).sort_index()


def _hot_days_of_file(path: str) -> pd.DataFrame:
    counts = hot_days(pd.read_parquet(path, columns=NEEDED_COLUMNS))
    return counts.reset_index()


def hot_days_out_of_core(directory: str | Path) -> pd.Series:
    """:func:`hot_days` computed file by file with Dask (one partition per file, sequentially).

    Each partition is read, reduced to its symbols' counts and dropped before the next one
    is read (Dask's synchronous scheduler: one partition in memory at a time, no threads).
    Correct because every file holds whole symbols.
    """
    import dask.dataframe as dd

    meta = pd.DataFrame(
        {"symbol": pd.Series([], dtype=object), "hot days": pd.Series([], dtype=np.int64)}
    )
    parts = dd.from_map(_hot_days_of_file, _files(directory), meta=meta, enforce_metadata=False)
    result = parts.compute(scheduler="synchronous")
    return result.set_index("symbol")["hot days"].sort_index()


#: The jobs :func:`peak_memory_mb` can run, by name.
JOBS = {"in_memory": hot_days_in_memory, "out_of_core": hot_days_out_of_core}


def peak_memory_mb(job: str, directory: str | Path, timeout: float = 300.0) -> dict[str, Any]:
    """Run ``JOBS[job](directory)`` in a fresh Python process; its peak memory and result digest.

    The child imports everything and warms Numba up first, then samples its own resident
    memory every 2 ms while the job runs (``memory_profiler.memory_usage``). Returns
    ``{"peak_mb": peak minus the memory before the job, "seconds": wall time of the job,
    "total": sum of the job's counts, "digest": a hash of the whole result}`` (equal digests:
    equal results). Raises ``RuntimeError`` with the child's stderr if
    it fails.
    """
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; choose one of {sorted(JOBS)}")
    run = subprocess.run(
        [sys.executable, "-m", "nepse_perf.lessons.memory", job, str(directory)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if run.returncode != 0:
        raise RuntimeError(f"memory job {job!r} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _main(argv: list[str]) -> None:
    import time

    import dask.dataframe  # noqa: F401  (imported before the baseline is taken)
    from memory_profiler import memory_usage

    from nepse_perf.cache.keys import hash_arrays
    from nepse_perf.data import synthetic_prices

    job, directory = JOBS[argv[0]], argv[1]
    hot_days(synthetic_prices(2, 60))  # load the compiled kernels before measuring
    before = memory_usage(-1, interval=0.01, timeout=0.05)[0]
    start = time.perf_counter()
    peak, result = memory_usage(
        (job, (directory,), {}), max_usage=True, retval=True, interval=0.002
    )
    seconds = time.perf_counter() - start
    digest = hash_arrays(result.to_numpy(), symbols=[str(s) for s in result.index])
    out = {
        "peak_mb": peak - before,
        "seconds": seconds,
        "total": int(result.sum()),
        "digest": digest,
    }
    print(json.dumps(out))


if __name__ == "__main__":  # pragma: no cover - run by peak_memory_mb
    _main(sys.argv[1:])
