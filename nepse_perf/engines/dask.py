"""The pipeline on Dask: one partition per file of whole symbols, the Numba kernel per partition.

Indicators are per-symbol recurrences, so the one thing a distributed version must get
right is that no symbol is split across partitions. The readers here guarantee it by
construction: :func:`read_prices_dask` makes one partition per per-symbol CSV (each read by
``load_prices``, with all its quirk handling, on a worker), :func:`write_parquet_by_symbol`
writes files of whole symbols and :func:`read_parquet_dask` reads one partition per file.
:func:`compute_indicators_dask` then runs the single-threaded fused kernel on each
partition with ``map_partitions``: no shuffle, no communication between partitions, and
bit-for-bit the numbers ``compute_indicators`` gives in one process.

:func:`connect` returns a ``distributed.Client``: to the scheduler at ``address`` or
``$DASK_SCHEDULER_ADDRESS`` when one is given (a laptop becomes a cluster client by
setting one variable), otherwise to a fresh ``LocalCluster`` of worker processes bound to
127.0.0.1, dashboard included, logging silenced to errors. :func:`disconnect` closes what
:func:`connect` opened; :func:`dask_client` does both around a ``with`` block.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.utils import key_split
from distributed import Client, LocalCluster

from nepse_perf._infra.checks import positive_int
from nepse_perf.data import load_prices, sample_path
from nepse_perf.data.schema import PRICE_COLUMNS, VALUE_COLUMNS
from nepse_perf.data.unpublished import RECORD_FIELDS, sort_records
from nepse_perf.engines.pool import ComputeFn, compute_indicators_with, single_thread_compute
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams
from nepse_perf.pipeline import DEFAULT_BACKEND

__all__ = [
    "SCHEDULER_ENV",
    "bad_prices_dask",
    "compute_indicators_dask",
    "connect",
    "dask_client",
    "disconnect",
    "price_files",
    "read_parquet_dask",
    "read_prices_dask",
    "run_pipeline",
    "split_symbols",
    "task_counts",
    "write_parquet_by_symbol",
]

#: Environment variable naming an existing scheduler, e.g. ``tcp://10.0.0.5:8786``.
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"

_LOCAL = "127.0.0.1"


# --------------------------------------------------------------------------- reading


def price_files(path: str | PathLike[str] | None = None) -> list[Path]:
    """The CSV files ``load_prices(path)`` would read, in its order (by symbol).

    ``path`` is a directory (its non-hidden ``*.csv`` files, not recursive) or one file;
    ``None`` means the shipped sample. Raises ``FileNotFoundError`` if nothing is there.
    """
    root = Path(path) if path is not None else sample_path()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or directory")
    files = sorted(
        (p for p in root.iterdir() if p.suffix.lower() == ".csv" and not p.name.startswith(".")),
        key=lambda p: (p.stem, p.name),
    )
    if not files:
        raise FileNotFoundError(f"{root}: directory holds no .csv files")
    return files


def _prices_meta(categories: Sequence[str]) -> pd.DataFrame:
    """An empty frame with ``load_prices``' columns and dtypes (symbol categories given)."""
    data: dict[str, object] = {
        "symbol": pd.Categorical([], categories=list(categories)),
        "date": np.array([], dtype="datetime64[ns]"),
    }
    for col in VALUE_COLUMNS:
        data[col] = np.array([], dtype=np.float64)
    return pd.DataFrame(data, columns=list(PRICE_COLUMNS), index=pd.RangeIndex(0))


def _load_partition(path: str, categories: Sequence[str]) -> pd.DataFrame:
    """One file via ``load_prices``, its symbol recoded to the shared categories.

    Of the loader's ``attrs`` only ``bad_prices`` stays (what :func:`bad_prices_dask`
    reads): pandas deep-copies ``attrs`` in every operation, so the rest is dropped.
    """
    prices = load_prices(path)
    prices["symbol"] = prices["symbol"].cat.set_categories(list(categories))
    bad = prices.attrs.get("bad_prices", [])
    prices.attrs.clear()
    if bad:
        prices.attrs["bad_prices"] = bad
    return prices


def read_prices_dask(path: str | PathLike[str] | None = None) -> dd.DataFrame:
    """A lazy Dask DataFrame of the price files, one partition per file (so per symbol).

    Each partition is ``load_prices(file)`` run where the task runs (every quirk handled as
    in one process), with ``symbol`` recoded to one Categorical shared by all partitions
    (known categories: the file stems). Rows within a partition are sorted by date; the
    index restarts at 0 in every partition. ``path`` as in :func:`price_files`. Every call
    makes new task keys, so a cluster never hands back results of an earlier read (the files
    may have changed since).
    """
    files = price_files(path)
    categories = [p.stem for p in files]
    load = dask.delayed(_load_partition, pure=False)
    parts = [load(str(p), categories) for p in files]
    return dd.from_delayed(parts, meta=_prices_meta(categories), prefix="prices")


#: The dtypes of a bad-price record frame (one column per ``RECORD_FIELDS``).
_BAD_PRICE_DTYPES = {
    "symbol": object, "date": object, "column": object, "value": np.float64,
    "action": object, "file": object, "line": np.int64, "where": object,
}  # fmt: skip


def _bad_price_frame(part: pd.DataFrame) -> pd.DataFrame:
    """The ``attrs["bad_prices"]`` records of one partition, as a frame (RECORD_FIELDS)."""
    records = part.attrs.get("bad_prices") or []
    frame = pd.DataFrame.from_records(records, columns=list(RECORD_FIELDS))
    return frame.astype(_BAD_PRICE_DTYPES)


def bad_prices_dask(ddf: dd.DataFrame) -> dd.DataFrame:
    """Lazy: each unpublished price cell the partitions' loaders reported, one row per cell.

    The records of ``load_prices(...).attrs["bad_prices"]`` (columns ``RECORD_FIELDS``),
    read from each partition of :func:`read_prices_dask` where it was loaded: a lazy frame
    cannot carry ``attrs``, so without this the report would be lost. Compute it together
    with the indicators (``dask.compute(ind, bad)``) and the files are read once. A frame
    built otherwise (``from_pandas``, Parquet) has no records: the result is empty.
    """
    meta = _bad_price_frame(ddf._meta.iloc[:0])
    return ddf.map_partitions(_bad_price_frame, meta=meta, enforce_metadata=False)


def write_parquet_by_symbol(
    prices: pd.DataFrame, directory: str | PathLike[str], *, symbols_per_file: int = 10
) -> list[Path]:
    """Write ``prices`` as Parquet files of whole symbols: ``part-00000.parquet``, ...

    Rows are written sorted by symbol then date, ``symbols_per_file`` symbols per file, the
    index dropped; the directory is created if needed. Returns the files in order. Reading
    them with :func:`read_parquet_dask` gives one partition per file, none splitting a symbol.
    """
    symbols_per_file = positive_int(symbols_per_file, "symbols_per_file")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ordered = prices.sort_values(["symbol", "date"], kind="stable", ignore_index=True)
    codes, _ = pd.factorize(ordered["symbol"], sort=True)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    bounds = [*starts[::symbols_per_file].tolist(), len(ordered)]
    files = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        path = out / f"part-{i:05d}.parquet"
        ordered.iloc[a:b].to_parquet(path, index=False)
        files.append(path)
    return files


def _read_parquet_file(path: str, read_id: str) -> pd.DataFrame:
    """One Parquet file; ``read_id`` only makes the task keys of each read call unique."""
    return pd.read_parquet(path)


def read_parquet_dask(directory: str | PathLike[str]) -> dd.DataFrame:
    """Parquet files of whole symbols (see :func:`write_parquet_by_symbol`), one partition each.

    ``dd.from_map`` makes exactly one partition per file, in file-name order, whatever the
    file size (``dd.read_parquet`` may split a large file by row groups, which could cut a
    symbol in two). Each file is read with ``pandas.read_parquet`` on a worker; as with
    :func:`read_prices_dask`, every call makes new task keys.
    """
    files = sorted(str(p) for p in Path(directory).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{directory}: no .parquet files")
    meta = pd.read_parquet(files[0]).iloc[:0]
    read_id = uuid.uuid4().hex
    return dd.from_map(
        _read_parquet_file,
        files,
        args=(read_id,),
        meta=meta,
        label="read-parquet",
        enforce_metadata=False,
    )


def _unique_symbols(symbol: pd.Series) -> pd.Series:
    return pd.Series(pd.unique(symbol.astype(str)), dtype=object)


def split_symbols(ddf: dd.DataFrame) -> list[str]:
    """Symbols found in more than one partition (must be empty for the per-partition kernel).

    Reads only the ``symbol`` column (cheap for Parquet, a full read for CSV).
    """
    per_partition = ddf["symbol"].map_partitions(_unique_symbols, meta=("symbol", object))
    counts = per_partition.compute().value_counts()
    return sorted(str(s) for s in counts[counts > 1].index)


def task_counts(collection: object) -> pd.Series:
    """How many tasks of each kind a Dask collection's graph holds (a text view of the graph).

    Kinds are the key names without their hash tokens (``dask.utils.key_split``), sorted by
    name, so the output is stable from run to run.
    """
    graph = dict(collection.__dask_graph__())  # type: ignore[attr-defined]
    kinds = pd.Series([key_split(k) for k in graph], dtype=object)
    return kinds.value_counts().sort_index().rename("tasks").rename_axis("kind")


# --------------------------------------------------------------------------- computing


def _partition_indicators(
    part: pd.DataFrame, compute: ComputeFn, params: IndicatorParams
) -> pd.DataFrame:
    """The ten indicator columns of one partition (whole symbols), index kept."""
    return compute_indicators_with(part, compute, params)


def compute_indicators_dask(
    ddf: dd.DataFrame, backend: str | ComputeFn = DEFAULT_BACKEND, **params: float
) -> dd.DataFrame:
    """Lazy indicators for a Dask price frame whose partitions each hold whole symbols.

    ``map_partitions`` runs the backend's single-threaded kernel (see
    ``parallel.single_thread_compute``) on each partition, so worker threads do not
    oversubscribe the cores; the result has the ten float64 ``OUTPUT_COLUMNS`` and each
    partition's index. Nothing checks the partitioning (that would cost a pass over the
    data): use the readers of this module, or :func:`split_symbols` to verify.
    """
    p = IndicatorParams.from_kwargs(**params)
    compute = single_thread_compute(backend)
    meta = pd.DataFrame(
        {c: np.array([], dtype=np.float64) for c in OUTPUT_COLUMNS},
        index=ddf._meta.index,
    )
    return ddf.map_partitions(_partition_indicators, compute, p, meta=meta)


def run_pipeline(
    source: str | PathLike[str] | dd.DataFrame | None = None,
    backend: str | ComputeFn = DEFAULT_BACKEND,
    *,
    client: Client | None = None,
    **params: float,
) -> pd.DataFrame:
    """Compute the indicators on Dask and return them as one pandas frame.

    ``source`` is a directory of per-symbol CSVs (default: the shipped sample) or a Dask
    price frame with whole symbols per partition. Runs on ``client`` if given, otherwise
    on Dask's current default (an active ``Client``, else the local threaded scheduler).
    Rows come back in partition order with a fresh RangeIndex, so for a directory the
    frame equals ``compute_indicators(load_prices(directory), backend)`` exactly.
    """
    ddf = source if isinstance(source, dd.DataFrame) else read_prices_dask(source)
    ind = compute_indicators_dask(ddf, backend, **params)
    bad = bad_prices_dask(ddf)
    if client is not None:
        result, bad_cells = client.compute([ind, bad], sync=True)
    else:
        result, bad_cells = dask.compute(ind, bad)
    result = result.reset_index(drop=True)
    result.attrs["bad_prices"] = sort_records(bad_cells.to_dict("records"))
    return result


# --------------------------------------------------------------------------- clusters


def connect(
    address: str | None = None,
    *,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    dashboard: bool = True,
    silence_logs: int = logging.ERROR,
) -> Client:
    """A Dask client: to an existing scheduler, or to a new local cluster of processes.

    The scheduler is ``address``, else ``$DASK_SCHEDULER_ADDRESS`` (read at call time);
    with neither, a ``LocalCluster`` starts ``n_workers`` worker processes of
    ``threads_per_worker`` threads, scheduler, workers and dashboard (a free port, if
    ``dashboard``) bound to 127.0.0.1 only, logging below ``silence_logs`` dropped so that
    nothing reaches stderr. Close it with :func:`disconnect` (closes the local cluster too).
    """
    address = address or os.environ.get(SCHEDULER_ENV) or None
    if address:
        return Client(address, set_as_default=True)
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        host=_LOCAL,
        scheduler_port=0,
        dashboard_address=f"{_LOCAL}:0" if dashboard else None,
        worker_dashboard_address=None,
        silence_logs=silence_logs,
    )
    try:
        return Client(cluster, set_as_default=True)
    except BaseException:
        cluster.close()
        raise


def disconnect(client: Client) -> None:
    """Close ``client`` and, if it runs a ``LocalCluster`` (one :func:`connect` started), that too.

    A remote cluster reached by address is left running: it is not this process's to stop.
    """
    cluster = client.cluster
    client.close()
    if isinstance(cluster, LocalCluster):
        cluster.close()


@contextmanager
def dask_client(address: str | None = None, **options: object) -> Iterator[Client]:
    """``with dask_client() as client:`` -- :func:`connect` on entry, :func:`disconnect` on exit."""
    client = connect(address, **options)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        disconnect(client)
