"""The pipeline on Apache Spark: SQL windows where they fit, ``applyInPandas`` where they cannot.

SMA and Bollinger Bands are sliding-window aggregates, so Spark SQL computes them directly
(:func:`sma_bbands_sql`): ``Window.partitionBy("symbol").orderBy("date").rowsBetween(-(n-1), 0)``
with the window's row count blanking the warm-up as TA-Lib does. Spark evaluates each frame
by adding its ``n`` values afresh, while TA-Lib keeps a running sum, so values may differ in
the last bits (the first full window of each symbol adds the same values in the same order:
there they are identical). EMA, RSI, MACD and ATR are recursions over the whole history of
a symbol, which SQL windows cannot express, so the full pipeline
(:func:`compute_indicators_spark`) groups by symbol and runs the project's single-threaded
Numba kernel on each group with ``applyInPandas`` (Arrow batches in and out): the same
numbers as ``compute_indicators`` to the last bit. The chapter's ``window("Date", "1 day")``
is a *tumbling* time window: on daily bars each group holds one row
(:func:`tumbling_daily_average`).

:func:`spark_session` starts the JVM (``local[2]``, or ``$SPARK_MASTER`` / ``master``) with
the UI and console progress bar off, ``spark.sql.shuffle.partitions`` sized for the data,
Arrow on, UTC session time, driver bound to 127.0.0.1, Spark's Python workers on this
interpreter (``PYSPARK_PYTHON`` / ``PYSPARK_DRIVER_PYTHON`` = ``sys.executable``; otherwise
they start ``python3`` from ``PATH``) and a log4j2 configuration that keeps warnings but
drops INFO chatter. :func:`standalone_cluster` starts a standalone master and worker on
loopback with the scripts that ship inside pyspark.

pandas 3: PySpark 4.3 warns (``FutureWarning``) on pandas conversions that pandas >= 3 is
not fully supported. Found with pandas 3.1: ``toPandas`` calls ``astype(copy=False)``, which
pandas 3 deprecates (``Pandas4Warning``), so results come back with ``toArrow`` instead;
``createDataFrame`` from pandas embeds the data in the plan (multi-MB tasks, a Spark
warning), so the input goes through Parquet instead. ``applyInPandas`` with float and
integer columns round-trips exactly (the tests compare bit for bit), so
:func:`pandas3_checked` filters exactly that one message around the calls that raise it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyspark
from pyspark import SparkConf, SparkContext
from pyspark.java_gateway import launch_gateway
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from nepse_perf._infra.checks import positive_int
from nepse_perf._infra.files import atomic_write_text
from nepse_perf._infra.ports import free_port
from nepse_perf._infra.process import ChildProcess, stop_process
from nepse_perf.data import prices_from
from nepse_perf.engines.pool import ComputeFn, compute_indicators_with, single_thread_compute
from nepse_perf.indicators.params import OUTPUT_COLUMNS, IndicatorParams
from nepse_perf.pipeline import DEFAULT_BACKEND, get_backend

__all__ = [
    "MASTER_ENV",
    "PRICE_SCHEMA",
    "compute_indicators_spark",
    "indicators_spark",
    "pandas3_checked",
    "session_conf",
    "shuffle_partitions_for",
    "sma_bbands_spark",
    "sma_bbands_sql",
    "spark_environment",
    "spark_session",
    "standalone_cluster",
    "to_spark",
    "tumbling_daily_average",
]

#: Environment variable naming a cluster master, e.g. ``spark://10.0.0.5:7077``.
MASTER_ENV = "SPARK_MASTER"

_LOCAL = "127.0.0.1"

#: The columns the engine ships to Spark: the input row number (to put results back in the
#: caller's order), the symbol, the session date (UTC midnight) and the three prices (NPR).
PRICE_SCHEMA = StructType(
    [
        StructField("row", LongType(), False),
        StructField("symbol", StringType(), False),
        StructField("date", TimestampType(), False),
        StructField("high", DoubleType(), True),
        StructField("low", DoubleType(), True),
        StructField("close", DoubleType(), True),
    ]
)

_OUT_SCHEMA = StructType(
    [StructField("row", LongType(), False)]
    + [StructField(c, DoubleType(), True) for c in OUTPUT_COLUMNS]
)

#: log4j2 for the driver and executors: WARN and above, as Spark's own default profile, plus
#: one benign start-up warning lowered (no native Hadoop library: Spark uses its Java code).
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.nativecode.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativecode.level = error
"""

#: The one line the JVM prints at start because Spark's launcher always adds
#: ``--add-modules=jdk.incubator.vector`` (``JavaModuleOptions``): not a log message, so
#: log4j cannot configure it; :func:`spark_session` drops exactly this line.
_JVM_START_LINE = "WARNING: Using incubator modules: jdk.incubator.vector"

_STAGING_KEY = "spark.nepse_perf.staging_dir"

_PANDAS3 = r"PySpark does not yet fully support pandas >= 3\.0\.0"


@contextmanager
def pandas3_checked() -> Iterator[None]:
    """Filter PySpark's pandas >= 3 ``FutureWarning`` (only that one) inside the block.

    Scoped on purpose: the conversions this module makes were checked to round-trip exactly
    with pandas 3 (see the module docstring); any other warning still shows.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS3, category=FutureWarning)
        yield


def _log4j_file() -> Path:
    path = Path(tempfile.gettempdir()) / f"nepse-perf-log4j2-{os.getuid()}.properties"
    if not path.exists() or path.read_text() != LOG4J2:
        atomic_write_text(path, LOG4J2)
    return path


def spark_environment() -> dict[str, str]:
    """Set (in ``os.environ``) what Spark's JVM and Python workers need; returns those variables.

    ``PYSPARK_PYTHON`` and ``PYSPARK_DRIVER_PYTHON`` = this interpreter, and
    ``SPARK_LOCAL_IP=127.0.0.1`` unless already set (Spark otherwise warns that the host
    name resolves to loopback and binds the machine's routable address).
    """
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", _LOCAL)
    keys = ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_LOCAL_IP")
    return {k: os.environ[k] for k in keys}


def _forward_stderr(stream, sink: Callable[[str], object]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        if line.rstrip("\n") != _JVM_START_LINE:
            sink(line)
    stream.close()


def session_conf(
    master: str, *, shuffle_partitions: int, app_name: str = "nepse-perf"
) -> SparkConf:
    """The ``SparkConf`` :func:`spark_session` uses (see there); exposed for inspection."""
    java_opts = f"-Dlog4j2.configurationFile=file:{_log4j_file()}"
    return (
        SparkConf()
        .setMaster(master)
        .setAppName(app_name)
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.driver.host", _LOCAL)
        .set("spark.driver.bindAddress", _LOCAL)
        .set("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .set("spark.sql.execution.arrow.pyspark.enabled", "true")
        .set("spark.sql.execution.arrow.pyspark.fallback.enabled", "false")
        .set("spark.sql.session.timeZone", "UTC")
        .set("spark.pyspark.python", sys.executable)
        .set("spark.pyspark.driver.python", sys.executable)
        .set("spark.driver.extraJavaOptions", java_opts)
        .set("spark.executor.extraJavaOptions", java_opts)
        .set("spark.executor.memory", "1g")
    )


@contextmanager
def spark_session(
    master: str | None = None, *, cores: int = 2, shuffle_partitions: int | None = None
) -> Iterator[SparkSession]:
    """``with spark_session() as spark:`` -- a SparkSession on entry, stopped (JVM too) on exit.

    The master is ``master``, else ``$SPARK_MASTER``, else ``local[cores]``.
    ``spark.sql.shuffle.partitions`` defaults to ``2 * cores`` (Spark's 200 would make 200
    mostly empty tasks for a few dozen symbols). The JVM's stderr passes through this
    process's ``sys.stderr`` (so notebooks see real warnings) minus the one fixed start-up
    line described at ``_JVM_START_LINE``. Raises ``RuntimeError`` if a SparkContext is
    already running in this process.
    """
    if SparkContext._active_spark_context is not None:
        raise RuntimeError("a SparkContext is already running in this process; stop it first")
    cores = positive_int(cores, "cores")
    spark_environment()
    master = master or os.environ.get(MASTER_ENV) or f"local[{cores}]"
    conf = session_conf(master, shuffle_partitions=shuffle_partitions or 2 * cores)
    if master.startswith("spark://"):
        conf.set("spark.cores.max", str(cores))
    gateway = launch_gateway(conf, popen_kwargs={"stderr": subprocess.PIPE})
    forward = threading.Thread(
        target=_forward_stderr,
        args=(gateway.proc.stderr, lambda line: sys.stderr.write(line)),
        name="spark-jvm-stderr",
        daemon=True,
    )
    forward.start()
    try:
        with pandas3_checked():  # SparkContext() imports pyspark.testing, which checks pandas
            sc = SparkContext(conf=conf, gateway=gateway)
    except BaseException:
        gateway.shutdown()
        stop_process(gateway.proc, 0.0, stop_signals=())  # SIGKILL at once, and reap
        raise
    spark = SparkSession(sc)
    staging = tempfile.mkdtemp(prefix="nepse-spark-")
    spark.conf.set(_STAGING_KEY, staging)
    try:
        yield spark
    finally:
        spark.stop()
        shutil.rmtree(staging, ignore_errors=True)
        SparkContext._gateway = None
        SparkContext._jvm = None
        gateway.shutdown()
        gateway.proc.stdin.close()  # the JVM exits when its stdin closes: wait, then SIGKILL
        stop_process(gateway.proc, 30.0, stop_signals=())
        forward.join(5)


# --------------------------------------------------------------------------- data


def _staging_dir(spark: SparkSession) -> Path:
    """Where :func:`to_spark` writes its Parquet files: the session's own temporary directory.

    :func:`spark_session` creates it and removes it on exit; for a session made elsewhere a
    directory is created and removed when this process exits.
    """
    path = spark.conf.get(_STAGING_KEY, None)
    if not path:
        path = tempfile.mkdtemp(prefix="nepse-spark-")
        atexit.register(shutil.rmtree, path, True)
        spark.conf.set(_STAGING_KEY, path)
    return Path(path)


def to_spark(spark: SparkSession, prices: pd.DataFrame) -> DataFrame:
    """A Spark DataFrame of ``prices`` with :data:`PRICE_SCHEMA`, read by Spark from Parquet.

    ``row`` is the position of each row in ``prices`` (0-based), so results can be put
    back in the caller's order; ``symbol`` becomes a plain string, ``date`` a UTC
    timestamp. The frame is written to one Parquet file in the session's staging directory
    and read with ``spark.read.parquet``, as a cluster job reads its input: the data never
    travels inside tasks (``createDataFrame`` from pandas would embed it in the plan, and
    Spark warns about tasks of several MB). The file parsing stays with ``load_prices``
    (every quirk of the sample, bad files named by its ``DataError``).
    """
    missing = [c for c in ("symbol", "date", "high", "low", "close") if c not in prices.columns]
    if missing:
        raise ValueError(f"prices lack column(s) {missing}")
    dates = pd.to_datetime(prices["date"]).to_numpy(dtype="datetime64[us]")
    table = pa.table(
        {
            "row": pa.array(np.arange(len(prices), dtype=np.int64)),
            "symbol": pa.array(prices["symbol"].astype(str).to_numpy(dtype=object), pa.string()),
            "date": pa.array(dates, pa.timestamp("us", tz="UTC")),
            "high": pa.array(prices["high"].to_numpy(dtype=np.float64)),
            "low": pa.array(prices["low"].to_numpy(dtype=np.float64)),
            "close": pa.array(prices["close"].to_numpy(dtype=np.float64)),
        }
    )
    path = _staging_dir(spark) / f"prices-{uuid.uuid4().hex}.parquet"
    pq.write_table(table, path)
    return spark.read.schema(PRICE_SCHEMA).parquet(str(path))


def _collect(sdf: DataFrame, n_rows: int, columns: list[str], index: pd.Index) -> pd.DataFrame:
    """Rows of ``sdf`` (with ``row``) placed back at their input positions, as a pandas frame."""
    # toArrow, not toPandas: PySpark 4.3's toPandas calls ``astype(copy=False)``, which
    # pandas 3 deprecates (Pandas4Warning); Arrow columns go to NumPy without pandas.
    got = sdf.toArrow()
    rows = got.column("row").to_numpy()
    if len(rows) != n_rows or len(np.unique(rows)) != n_rows:
        raise RuntimeError(f"Spark returned {len(rows)} rows for {n_rows} input rows")
    block = np.empty((n_rows, len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        block[rows, j] = got.column(col).to_numpy(zero_copy_only=False)
    return pd.DataFrame(block, index=index, columns=columns)


# --------------------------------------------------------------------------- SQL windows


def sma_bbands_sql(
    prices: DataFrame,
    *,
    sma_period: int = 20,
    bb_period: int = 20,
    bb_nbdev: float = 2.0,
) -> DataFrame:
    """SMA and Bollinger Bands with Spark SQL window functions (lazy; columns row + five).

    Each window is the last ``n`` rows of the symbol by date
    (``rowsBetween(-(n - 1), 0)``); a value is produced only when the window holds ``n``
    rows, which blanks the warm-up exactly as TA-Lib does. The bands use the population
    standard deviation (``stddev_pop``) around the window mean. Columns: ``row``, ``sma``,
    ``bb_upper``, ``bb_middle``, ``bb_lower``.
    """
    p = IndicatorParams.from_kwargs(sma_period=sma_period, bb_period=bb_period, bb_nbdev=bb_nbdev)
    by_symbol = Window.partitionBy("symbol").orderBy("date")
    w_sma = by_symbol.rowsBetween(-(p.sma_period - 1), 0)
    w_bb = by_symbol.rowsBetween(-(p.bb_period - 1), 0)
    full_sma = F.count("close").over(w_sma) == p.sma_period
    full_bb = F.count("close").over(w_bb) == p.bb_period
    mid = F.when(full_bb, F.avg("close").over(w_bb))
    dev = F.when(full_bb, F.stddev_pop("close").over(w_bb)) * F.lit(float(p.bb_nbdev))
    return prices.select(
        "row",
        F.when(full_sma, F.avg("close").over(w_sma)).alias("sma"),
        (mid + dev).alias("bb_upper"),
        mid.alias("bb_middle"),
        (mid - dev).alias("bb_lower"),
    )


def tumbling_daily_average(prices: DataFrame) -> DataFrame:
    """The chapter's query: ``groupBy(symbol, window(date, "1 day")).avg(close)``, plus a count.

    A tumbling one-day window on daily bars puts each session in a group of its own, so
    ``avg_close`` is just ``close`` and nothing rolls. Columns: ``symbol``, ``day`` (window
    start), ``avg_close``, ``rows``.
    """
    return (
        prices.groupBy("symbol", F.window("date", "1 day").alias("w"))
        .agg(F.avg("close").alias("avg_close"), F.count(F.lit(1)).alias("rows"))
        .select("symbol", F.col("w.start").alias("day"), "avg_close", "rows")
    )


# --------------------------------------------------------------------------- the pipeline


def _per_group(
    compute: ComputeFn, params: IndicatorParams
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The ``applyInPandas`` function: one group's rows in, ``row`` + ten indicators out.

    A group is one symbol (``per_symbol=True``) or a bucket of whole symbols; the kernel
    runs once per group. An error names the group's symbol(s).
    """

    def indicators(pdf: pd.DataFrame) -> pd.DataFrame:
        try:
            ind = compute_indicators_with(pdf, compute, params)
        except Exception as exc:
            raise RuntimeError(_name_failures(pdf, compute, params, exc)) from exc
        ind.insert(0, "row", pdf["row"].to_numpy(dtype=np.int64))
        return ind

    return indicators


def _name_failures(
    pdf: pd.DataFrame, compute: ComputeFn, params: IndicatorParams, exc: Exception
) -> str:
    """The message for a failed group: the failing symbol(s) and the first cause.

    A bucket holds many symbols; each is retried alone to find which failed, as the
    process and thread pools of ``nepse_perf.engines.pool`` do.
    """
    symbols = [str(s) for s in pdf["symbol"].unique()]
    if len(symbols) <= 1:
        return f"symbol {symbols[0] if symbols else '?'}: {type(exc).__name__}: {exc}"
    failed: list[tuple[str, Exception]] = []
    for sym in symbols:
        try:
            compute_indicators_with(pdf[pdf["symbol"] == sym], compute, params)
        except Exception as one:
            failed.append((sym, one))
    if not failed:  # only the whole group fails: report it as such
        return f"symbols {', '.join(symbols)}: {type(exc).__name__}: {exc}"
    sym, cause = failed[0]
    more = (
        f" (and {len(failed) - 1} more: {', '.join(s for s, _ in failed[1:])})"
        if len(failed) > 1
        else ""
    )
    return f"symbol {sym}: {type(cause).__name__}: {cause}{more}"


def indicators_spark(
    prices: DataFrame,
    *,
    backend: str | ComputeFn = DEFAULT_BACKEND,
    per_symbol: bool = False,
    buckets: int | None = None,
    **params: float,
) -> DataFrame:
    """Lazy: the ten indicators per row of a :data:`PRICE_SCHEMA` frame (columns row + ten).

    ``applyInPandas`` shuffles each group's rows to one task and calls the backend's
    single-threaded kernel on them (``parallel.single_thread_compute``). A group is a
    *bucket* of whole symbols (``pmod(hash(symbol), buckets)``, default: the session's
    shuffle partitions), so the Python worker runs the kernel a few times per task instead
    of once per symbol; ``per_symbol=True`` is the chapter's granularity, one group (one
    pandas round trip) per symbol. Each symbol's rows stay in one group either way, so the
    result is the same. A failing kernel fails the job with a message naming the symbol(s).
    """
    if isinstance(backend, str):
        get_backend(backend)
    p = IndicatorParams.from_kwargs(**params)
    fn = _per_group(single_thread_compute(backend), p)
    with pandas3_checked():
        if per_symbol:
            return prices.groupBy("symbol").applyInPandas(fn, schema=_OUT_SCHEMA)
        spark = prices.sparkSession
        n = buckets or int(spark.conf.get("spark.sql.shuffle.partitions"))
        grouped = prices.withColumn("bucket", F.pmod(F.hash("symbol"), F.lit(int(n))))
        return grouped.groupBy("bucket").applyInPandas(fn, schema=_OUT_SCHEMA)


def compute_indicators_spark(
    path_or_prices: str | PathLike[str] | pd.DataFrame,
    *,
    backend: str | ComputeFn = DEFAULT_BACKEND,
    spark: SparkSession | None = None,
    per_symbol: bool = False,
    **params: float,
) -> pd.DataFrame:
    """``compute_indicators`` on Spark: the same frame (index, ten float64 columns, values).

    ``per_symbol=True`` runs one ``applyInPandas`` group per symbol (the chapter's
    granularity) instead of buckets of whole symbols; see :func:`indicators_spark`.
    ``path_or_prices`` is a price frame or a path for ``load_prices`` (its ``DataError``
    names a bad file). Runs on ``spark``, else the active session, else inside a
    :func:`spark_session` of its own (JVM start included). A failing symbol raises
    ``pyspark.errors.PythonException`` whose message names it.
    """
    prices = prices_from(path_or_prices)
    session = spark or SparkSession.getActiveSession()
    if session is None:
        with spark_session() as own:
            return compute_indicators_spark(
                prices, backend=backend, spark=own, per_symbol=per_symbol, **params
            )
    sdf = to_spark(session, prices)
    result = indicators_spark(sdf, backend=backend, per_symbol=per_symbol, **params)
    return _collect(result, len(prices), list(OUTPUT_COLUMNS), prices.index)


def sma_bbands_spark(prices: pd.DataFrame, spark: SparkSession, **params: float) -> pd.DataFrame:
    """:func:`sma_bbands_sql` on a pandas price frame, collected in its row order.

    Returns ``sma, bb_upper, bb_middle, bb_lower`` (float64, NaN in the warm-up) with
    ``prices``' index, to compare with the matching columns of ``compute_indicators``.
    """
    sdf = sma_bbands_sql(to_spark(spark, prices), **params)
    cols = ["sma", "bb_upper", "bb_middle", "bb_lower"]
    return _collect(sdf, len(prices), cols, prices.index)


# --------------------------------------------------------------------------- standalone


#: What the master's log says once it accepts workers.
_MASTER_READY = r"I have been elected leader|Starting Spark master"


def _spark_class() -> Path:
    return Path(pyspark.__file__).parent / "bin" / "spark-class"


@contextmanager
def standalone_cluster(
    workdir: str | PathLike[str], *, cores: int = 2, memory: str = "1g", timeout: float = 120.0
) -> Iterator[str]:
    """A standalone Spark master and one worker on 127.0.0.1; yields ``spark://127.0.0.1:port``.

    Both are ``spark-class org.apache.spark.deploy.{master.Master,worker.Worker}`` from the
    pyspark package (no separate Spark download), in their own process groups, logs in
    ``workdir``; the worker offers ``cores`` cores and ``memory``. Stopped (and their
    executors with them) on exit. ``TimeoutError`` if they do not come up in ``timeout`` s,
    ``RuntimeError`` if one exits first (both quote the end of its log).
    """
    cores = positive_int(cores, "cores")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **spark_environment())
    # daemons keep Spark's default INFO profile: their logs go to files in workdir
    env["SPARK_LOG_DIR"] = str(work)
    env["SPARK_WORKER_DIR"] = str(work / "worker")
    port = free_port(_LOCAL)
    url = f"spark://{_LOCAL}:{port}"
    daemons: list[ChildProcess] = []

    def start(role: str, args: list[str], ready: str) -> None:
        # own session, every signal to the group: the JVM and anything it forked go together
        daemon = ChildProcess(
            [str(_spark_class()), *args],
            name=f"spark-{role}",
            log=work / f"{role}.log",
            env=env,
            new_session=True,
            signal_group=True,
        )
        daemons.append(daemon)
        daemon.start().wait_ready(
            daemon.output_matches(ready), timeout, what=f"up ({ready!r})", poll=0.1
        )

    try:
        master = "org.apache.spark.deploy.master.Master"
        ports = ["--port", str(port), "--webui-port", str(free_port(_LOCAL))]
        start("master", [master, "--host", _LOCAL, *ports], _MASTER_READY)
        worker = ["org.apache.spark.deploy.worker.Worker", url, "--host", _LOCAL]
        worker += ["--cores", str(cores), "--memory", memory]
        worker += ["--webui-port", str(free_port(_LOCAL)), "--work-dir", str(work / "worker")]
        start("worker", worker, r"Successfully registered with master")
        yield url
    finally:
        for daemon in reversed(daemons):
            daemon.stop(grace=20.0)
        shutil.rmtree(work / "worker", ignore_errors=True)


def shuffle_partitions_for(n_symbols: int, cores: int = 2) -> int:
    """A shuffle partition count for ``n_symbols`` groups on ``cores``: a few tasks per core.

    ``min(n_symbols, 4 * cores)``, at least 1: more partitions than groups are empty tasks.
    """
    return max(1, min(int(n_symbols), 4 * cores)) if n_symbols else 1
