"""The chapter's code samples (sections 48.1-48.7), verbatim, and what each does when run here.

``CODE`` holds every fenced code block of sections 48.1-48.7 of chapter 48 exactly as printed
(key ``"48.x.y:name"``). ``SAMPLES`` records one run of a sample each: the changes made so that
it can run here (only paths, imports and services that cannot exist on this machine, each one
named; a *probe* also names the different input it feeds to the printed code), what the test
supplies around it, and the outcome: it runs and is right, it runs and is wrong (by how much,
against TA-Lib or the correct result), or it fails (with the error).
``tests/test_chapter_samples.py`` runs every record and asserts the recorded outcome and
numbers, so a sample that starts to behave differently fails the test.
``docs/_ext/errata_site.py`` builds the site's errata page from these records.

This module imports nothing outside the standard library: the site's extension loads it by path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: The three outcomes a record can have.
RIGHT = "runs and is right"
WRONG = "runs and is wrong"
FAILS = "fails"
OUTCOMES = (RIGHT, WRONG, FAILS)

#: Set to 1 to run the Ray and Spark samples on a real local Ray / Spark (slow start-up).
ENGINES_VARIABLE = "NEPSE_PERF_CHAPTER_ENGINES"

#: Every code block of sections 48.1-48.7, verbatim from the chapter.
CODE: dict[str, str] = {
    "48.1.1:cprofile": r"""import cProfile
import pstats
from nepse_pipeline import run_feature_engineering

# Profile the feature engineering function
profiler = cProfile.Profile()
profiler.enable()
run_feature_engineering('nepse_data.csv')
profiler.disable()

# Save stats to a file
with open('profile_results.txt', 'w') as f:
    stats = pstats.Stats(profiler, stream=f)
    stats.sort_stats('cumulative')  # Sort by cumulative time
    stats.print_stats(20)            # Print top 20
""",
    "48.1.2:line_profiler": r"""# First, decorate the function you want to profile
@profile
def compute_rsi(df, period=14):
    delta = df['Close'].diff()
    gain = delta.where(delta > 0, 0.0)
    loss = -delta.where(delta < 0, 0.0)
    avg_gain = gain.rolling(window=period).mean()
    avg_loss = loss.rolling(window=period).mean()
    rs = avg_gain / avg_loss
    rsi = 100 - (100 / (1 + rs))
    return rsi

# Then run: kernprof -l -v my_script.py
""",
    "48.1.3:memory_profiler": r"""from memory_profiler import profile

@profile
def load_and_process():
    df = pd.read_csv('nepse_all.csv')
    df['SMA_20'] = df['Close'].rolling(20).mean()
    return df

load_and_process()
""",
    "48.2.1:sma_loop": r"""def compute_sma_loop(df, window):
    sma = []
    for i in range(len(df)):
        if i < window:
            sma.append(np.nan)
        else:
            sma.append(df['Close'].iloc[i-window:i].mean())
    return sma
""",
    "48.2.1:sma_vectorised": r"""def compute_sma_vectorised(df, window):
    return df['Close'].rolling(window).mean()
""",
    "48.2.2:read_dtypes": r"""dtypes = {
    'Open': 'float32',
    'High': 'float32',
    'Low': 'float32',
    'Close': 'float32',
    'Volume': 'int32'
}
df = pd.read_csv('nepse.csv', dtype=dtypes)
""",
    "48.2.3:to_numpy": r"""# Instead of df['Close'].values * 2
arr = df['Close'].to_numpy()
result = arr * 2
""",
    "48.3.1:rolling_sum_naive": r"""def rolling_sum_naive(arr, window):
    result = []
    for i in range(len(arr)):
        if i < window:
            result.append(np.nan)
        else:
            result.append(np.sum(arr[i-window:i]))
    return result
""",
    "48.3.1:rolling_sum_fast": r"""def rolling_sum_fast(arr, window):
    result = [np.nan] * window
    cumsum = np.cumsum(arr)
    for i in range(window, len(arr)):
        result.append(cumsum[i] - cumsum[i-window])
    return result
""",
    "48.3.2:fast_rsi": r"""from numba import jit
import numpy as np

@jit(nopython=True)
def fast_rsi(prices, period=14):
    deltas = np.diff(prices)
    gain = np.where(deltas > 0, deltas, 0.0)
    loss = np.where(deltas < 0, -deltas, 0.0)
    avg_gain = np.zeros_like(prices)
    avg_loss = np.zeros_like(prices)
    avg_gain[period] = np.mean(gain[:period])
    avg_loss[period] = np.mean(loss[:period])
    for i in range(period+1, len(prices)):
        avg_gain[i] = (avg_gain[i-1] * (period-1) + gain[i-1]) / period
        avg_loss[i] = (avg_loss[i-1] * (period-1) + loss[i-1]) / period
    rs = avg_gain / avg_loss
    rsi = 100 - 100 / (1 + rs)
    return rsi
""",
    "48.4.1:multiprocessing": r'''import multiprocessing as mp
import pandas as pd

def process_symbol(symbol):
    """Load data for a single symbol and compute features."""
    df = pd.read_csv(f'data/{symbol}.csv')
    df['SMA_20'] = df['Close'].rolling(20).mean()
    df['RSI'] = compute_rsi(df['Close'])
    return df

if __name__ == '__main__':
    symbols = ['NABIL', 'NTC', 'SBI', 'HRL', 'NICA']
    with mp.Pool(processes=4) as pool:
        results = pool.map(process_symbol, symbols)
    # results is a list of DataFrames, one per symbol
''',
    "48.4.2:threads": r"""import concurrent.futures
import requests

def fetch_symbol_data(symbol):
    url = f"https://api.nepse.com/stock/{symbol}"
    response = requests.get(url)
    return response.json()

symbols = ['NABIL', 'NTC', 'SBI']
with concurrent.futures.ThreadPoolExecutor(max_workers=5) as executor:
    results = list(executor.map(fetch_symbol_data, symbols))
""",
    "48.4.3:asyncio": r"""import aiohttp
import asyncio

async def fetch_symbol(session, symbol):
    url = f"https://api.nepse.com/stock/{symbol}"
    async with session.get(url) as response:
        return await response.json()

async def fetch_all(symbols):
    async with aiohttp.ClientSession() as session:
        tasks = [fetch_symbol(session, sym) for sym in symbols]
        return await asyncio.gather(*tasks)

symbols = ['NABIL', 'NTC', 'SBI']
loop = asyncio.get_event_loop()
results = loop.run_until_complete(fetch_all(symbols))
""",
    "48.5.1:dask": r"""import dask.dataframe as dd

# Read multiple CSV files into a Dask DataFrame
df = dd.read_csv('data/nepse_*.csv', parse_dates=['Date'])

# Compute rolling mean (Dask handles partitioning)
df['SMA_20'] = df.groupby('Symbol')['Close'].rolling(20).mean().reset_index(drop=True)

# Trigger computation
result = df.compute()
""",
    "48.5.2:ray": r"""import ray
import pandas as pd

ray.init()

@ray.remote
def process_symbol(symbol):
    df = pd.read_csv(f'data/{symbol}.csv')
    df['SMA_20'] = df['Close'].rolling(20).mean()
    df['RSI'] = compute_rsi(df['Close'])
    return df

symbols = ['NABIL', 'NTC', 'SBI', 'HRL', 'NICA']
futures = [process_symbol.remote(sym) for sym in symbols]
results = ray.get(futures)
""",
    "48.5.3:spark": r"""from pyspark.sql import SparkSession
from pyspark.sql.functions import col, avg, window

spark = SparkSession.builder.appName("NEPSE").getOrCreate()

df = spark.read.option("header", "true").csv("data/nepse_all.csv")

# Compute daily average price per symbol
result = df.groupBy("Symbol", window("Date", "1 day")).agg(avg("Close").alias("avg_close"))
result.show()
""",
    "48.6.1:redis": r"""import redis
import pickle
import pandas as pd

r = redis.Redis(host='localhost', port=6379, db=0)

def get_sma(symbol, window, force_recompute=False):
    cache_key = f"sma:{symbol}:{window}"
    if not force_recompute:
        cached = r.get(cache_key)
        if cached:
            return pickle.loads(cached)
    # Compute if not cached
    df = pd.read_csv(f'data/{symbol}.csv')
    sma = df['Close'].rolling(window).mean().tolist()
    r.setex(cache_key, 3600, pickle.dumps(sma))  # Cache for 1 hour
    return sma
""",
    "48.6.2:lru_cache": r"""from functools import lru_cache

@lru_cache(maxsize=128)
def compute_rsi(series_tuple, period=14):
    # series_tuple is a tuple of prices (since lists are not hashable)
    prices = np.array(series_tuple)
    # ... RSI computation ...
    return rsi

# Usage
prices_tuple = tuple(df['Close'].values)
rsi = compute_rsi(prices_tuple)
""",
    "48.6.3:materialised_view": r"""CREATE MATERIALIZED VIEW sma_20 AS
SELECT symbol, date, AVG(close) OVER (PARTITION BY symbol ORDER BY date ROWS 19 PRECEDING) AS sma_20
FROM prices;

REFRESH MATERIALIZED VIEW sma_20;  -- Run daily
""",
    "48.7.1:downcast": r"""def optimise_floats(df):
    floats = df.select_dtypes(include=['float64']).columns
    for col in floats:
        df[col] = pd.to_numeric(df[col], downcast='float')
    return df

def optimise_ints(df):
    ints = df.select_dtypes(include=['int64']).columns
    for col in ints:
        df[col] = pd.to_numeric(df[col], downcast='integer')
    return df
""",
    "48.7.2:categorical": r"""df['Symbol'] = df['Symbol'].astype('category')
""",
    "48.7.3:chunking": r"""chunk_size = 10000
reader = pd.read_csv('nepse_all.csv', chunksize=chunk_size)
for chunk in reader:
    process_chunk(chunk)
""",
}


@dataclass(frozen=True)
class Change:
    """A replacement made in the printed code: ``old`` (text of the sample) -> ``new``.

    ``new`` may hold ``{placeholders}`` that the test fills at run time (a port, a path).
    """

    old: str
    new: str
    why: str


@dataclass(frozen=True)
class Fix:
    """Where the workbook shows the fix: a notebook (by prefix) and words of its heading.

    The site links the first heading of the notebook containing one of ``keywords``
    (case-insensitive), else the first citing ``subsection``, else the notebook itself.
    """

    notebook: str
    keywords: tuple[str, ...] = ()
    subsection: str | None = None


@dataclass(frozen=True)
class Sample:
    """One run of one chapter sample and its recorded outcome.

    ``result`` is a ``str.format`` template over ``measured`` (the numbers and error texts the
    test measures and asserts); ``setup`` says what the test supplies around the code;
    ``probe`` (if any) names the different input fed to the printed code.
    """

    id: str
    code: str
    name: str
    outcome: str
    result: str
    measured: Mapping[str, object]
    fix: Fix
    changes: tuple[Change, ...] = ()
    setup: str = ""
    probe: str = ""
    note: str = ""
    extra_code: tuple[str, ...] = field(default=())

    @property
    def subsection(self) -> str:
        """The chapter subsection, ``48.x.y``."""
        return self.code.split(":", 1)[0]

    def result_text(self) -> str:
        """``result`` with the measured values filled in (``True``/``False`` as yes/no)."""
        shown = {
            k: ("yes" if v else "no") if isinstance(v, bool) else v
            for k, v in self.measured.items()
        }
        return self.result.format(**shown)

    def adapted(self, **values: object) -> str:
        """The code as run: the printed code (after ``extra_code``) with ``changes`` applied.

        ``values`` fill the ``{placeholders}`` of each change's ``new``. Raises ``ValueError``
        when a change's ``old`` text is not in the code (the record no longer fits it).
        """
        text = "".join(CODE[k] + "\n" for k in self.extra_code) + CODE[self.code]
        for change in self.changes:
            if change.old not in text:
                raise ValueError(f"{self.id}: {change.old!r} is not in the printed code")
            text = text.replace(change.old, change.new.format(**values))
        return text


# --------------------------------------------------------------------------- shared changes

_CHAPTER_FILES = (
    "it reads files the test writes from `data/nepse/nepal-market-data/` in the chapter's "
    "columns (`Symbol, Date, Open, High, Low, Close, Volume, Turnover`), values unchanged"
)
_NP_PD = "`np` and `pd` are imported first (the fragment uses them and assumes the imports)"
_NABIL_DF = (
    "`df` is NABIL's file in the chapter's layout (`data/NABIL.csv`, read with `pd.read_csv`)"
)
_NO_PROFILE = Change(
    "@profile\n",
    "",
    "`@profile` exists only under `kernprof`, so the decorator line is dropped",
)
_CHAPTER_RSI = (
    "the chapter defines no `compute_rsi(series)`; the only `compute_rsi` it prints is "
    "48.1.2's, which is run first (without `@profile`)"
)
_PRICE_URL = Change(
    'f"https://api.nepse.com/stock/{symbol}"',
    'f"{base_url}/prices/{{symbol}}"',
    "`api.nepse.com` cannot be reached here: the workbook's local price service on "
    "127.0.0.1 (`nepse_perf.lessons.price_service`) serves the same symbols",
)
_RSI_BODY = Change(
    "    # ... RSI computation ...\n",
    "    rsi = talib.RSI(prices, period)\n",
    "the chapter leaves the body out; TA-Lib's RSI fills it (the caching does not depend on it)",
)

SAMPLES: tuple[Sample, ...] = (
    # ---------------------------------------------------------------- 48.1 profiling
    Sample(
        id="48.1.1-cprofile",
        code="48.1.1:cprofile",
        name="cProfile of the feature engineering",
        outcome=RIGHT,
        result="writes `profile_results.txt`: {listed} functions sorted by cumulative time",
        measured={"listed": 20},
        changes=(
            Change(
                "from nepse_pipeline import run_feature_engineering\n",
                "from nepse_perf import compute_indicators, load_prices\n\n"
                "def run_feature_engineering(path):\n"
                "    return compute_indicators(load_prices(path), 'talib')\n",
                "`nepse_pipeline` does not exist: the workbook's pipeline stands in for it",
            ),
            Change(
                "'nepse_data.csv'",
                "{data_dir!r}",
                "the real sample, `data/nepse/nepal-market-data/`",
            ),
        ),
        fix=Fix("01", ("cProfile",), "48.1.1"),
    ),
    Sample(
        id="48.1.2-kernprof",
        code="48.1.2:line_profiler",
        name="`kernprof -l -v my_script.py`",
        outcome=WRONG,
        result=(
            "the profile is empty: `{total}` and {hits} hits, because the script defines "
            "`compute_rsi` but never calls it; without kernprof, `python my_script.py` fails "
            "with `{plain}`"
        ),
        measured={
            "total": "Total time: 0 s",
            "hits": 0,
            "plain": "NameError: name 'profile' is not defined",
        },
        setup="the block is saved as `my_script.py` and run with the command it prints",
        fix=Fix("01", ("line_profiler",), "48.1.2"),
    ),
    Sample(
        id="48.1.2-rsi",
        code="48.1.2:line_profiler",
        name="`compute_rsi` with rolling means",
        outcome=WRONG,
        result=(
            "a rolling mean is not Wilder's smoothing: off `talib.RSI` by up to {max_abs:.2f} "
            "RSI points (median {median_abs:.2f}), and its first value is one row early "
            "(row {first}, TA-Lib's is row {talib_first})"
        ),
        measured={"max_abs": 41.97, "median_abs": 6.928, "first": 13, "talib_first": 14},
        changes=(_NO_PROFILE,),
        setup=_NABIL_DF,
        fix=Fix("03", ("Fast but wrong",), "48.3.2"),
    ),
    Sample(
        id="48.1.3-as-printed",
        code="48.1.3:memory_profiler",
        name="memory_profiler script",
        outcome=FAILS,
        result="`{error}`: the script never imports pandas",
        measured={"error": "NameError: name 'pd' is not defined"},
        setup="the block is saved as a script and run; " + _CHAPTER_FILES,
        fix=Fix("01", ("memory_profiler",), "48.1.3"),
    ),
    Sample(
        id="48.1.3-sma",
        code="48.1.3:memory_profiler",
        name="memory_profiler script, pandas imported",
        outcome=WRONG,
        result=(
            "the memory table prints, but `rolling(20)` runs over all {symbols} symbols as one "
            "series: {wrong} rows (the first 19 of each symbol after the first) get a mean "
            "that mixes two symbols where per-symbol `talib.SMA` is NaN"
        ),
        measured={"symbols": 24, "wrong": 437},
        changes=(
            Change(
                "from memory_profiler import profile\n",
                "import pandas as pd\nfrom memory_profiler import profile\n",
                "the missing import (see the row above)",
            ),
        ),
        setup="`nepse_all.csv` holds the 24 stocks one after another; " + _CHAPTER_FILES,
        fix=Fix("01", ("memory_profiler",), "48.1.3"),
    ),
    # ---------------------------------------------------------------- 48.2 code
    Sample(
        id="48.2.1-loop",
        code="48.2.1:sma_loop",
        name="`compute_sma_loop`",
        outcome=WRONG,
        result=(
            "each value is the mean of the {window} rows *before* the row: the SMA one row "
            "late (equal to `talib.SMA` shifted by one: {lagged}), off the same row's SMA by up "
            "to {max_abs:.2f} NPR"
        ),
        measured={"window": 20, "lagged": True, "max_abs": 39.5},
        setup=_NP_PD + "; " + _NABIL_DF + "; window 20",
        fix=Fix("02", ("chapter's SMA loop",), "48.2.1"),
    ),
    Sample(
        id="48.2.1-vectorised",
        code="48.2.1:sma_vectorised",
        name="`compute_sma_vectorised`",
        outcome=RIGHT,
        result="equals `talib.SMA` (rtol 1e-9, same NaN rows): {equal}",
        measured={"equal": True},
        setup=_NABIL_DF + "; window 20",
        fix=Fix("02", ("Seven ways",), "48.2.1"),
    ),
    Sample(
        id="48.2.2-index-volume",
        code="48.2.2:read_dtypes",
        name="`'Volume': 'int32'` on the NEPSE index",
        outcome=FAILS,
        result="`{error}`: the index file has no volume (every `traded_quantity` is blank)",
        measured={"error": "ValueError: Integer column has NA values in column 6"},
        changes=(Change("'nepse.csv'", "{path!r}", "the NEPSE index file"),),
        setup=(
            "`nepse.csv` is `data/nepse/nepal-market-data/NEPSE_INDEX.csv` with the chapter's "
            "column names; " + _NP_PD
        ),
        fix=Fix("02", ("dtypes at read time",), "48.2.2"),
    ),
    Sample(
        id="48.2.2-float32",
        code="48.2.2:read_dtypes",
        name="float32 prices at read time",
        outcome=WRONG,
        result=(
            "reads, but float32 moves each close by up to {close_err:.2g} points, and a 20-day "
            "SMA of it is off the float64 `talib.SMA` by up to {sma_rel:.1e} (relative), "
            "beyond the workbook's rtol 1e-9"
        ),
        measured={"close_err": 5.859e-05, "sma_rel": 2.125e-08},
        changes=(
            Change(
                "'nepse.csv'",
                "{path!r}",
                "the 1997-2019 index, which has the chapter's column names and a volume",
            ),
        ),
        setup=_NP_PD + "; the file is `data/nepse/capstone2020/nepse_index.csv` as shipped",
        fix=Fix("02", ("dtypes at read time",), "48.2.2"),
    ),
    Sample(
        id="48.2.3-to-numpy",
        code="48.2.3:to_numpy",
        name="`to_numpy()` then arithmetic",
        outcome=RIGHT,
        result="equals `df['Close'].values * 2` exactly: {equal}",
        measured={"equal": True},
        setup=_NABIL_DF,
        fix=Fix("02", ("48.2.3",), "48.2.3"),
    ),
    # ---------------------------------------------------------------- 48.3 algorithms
    Sample(
        id="48.3.1-naive",
        code="48.3.1:rolling_sum_naive",
        name="`rolling_sum_naive`",
        outcome=WRONG,
        result=(
            "sums the {window} values *before* each row: `talib.SUM` one row late (shifted "
            "equal: {lagged}), first value at row {first} instead of {talib_first}"
        ),
        measured={"window": 20, "lagged": True, "first": 20, "talib_first": 19},
        setup=_NP_PD + "; `arr` is NABIL's close as a NumPy array; window 20",
        fix=Fix("03", ("two rolling sums",), "48.3.1"),
    ),
    Sample(
        id="48.3.1-fast",
        code="48.3.1:rolling_sum_fast",
        name="`rolling_sum_fast`",
        outcome=WRONG,
        result=(
            "equals `talib.SUM` from row {first} on, but leaves row {missing} NaN where the "
            "window is already full; it disagrees with `rolling_sum_naive` on {disagree} of the "
            "{both} rows both fill (the two are not the same function)"
        ),
        measured={"first": 20, "missing": 19, "disagree": 3446, "both": 3464},
        setup=_NP_PD + "; `arr` is NABIL's close as a NumPy array; window 20",
        fix=Fix("03", ("two rolling sums",), "48.3.1"),
    ),
    Sample(
        id="48.3.2-fast-rsi",
        code="48.3.2:fast_rsi",
        name="Numba `fast_rsi`",
        outcome=RIGHT,
        result="equals `talib.RSI` (rtol 1e-9, the same {nans} leading NaNs): {equal}",
        measured={"equal": True, "nans": 14},
        setup="NABIL's close as a float64 array; period 14",
        fix=Fix("03", ("fast_rsi",), "48.3.2"),
    ),
    # ---------------------------------------------------------------- 48.4 parallel
    Sample(
        id="48.4.1-pool",
        code="48.4.1:multiprocessing",
        name="`Pool.map(process_symbol, symbols)`",
        outcome=FAILS,
        result=(
            "`{error}` from the worker: 48.1.2's `compute_rsi` takes a DataFrame and reads its "
            "`'Close'` column, and `process_symbol` passes it the column itself"
        ),
        measured={"error": "KeyError: 'Close'"},
        extra_code=("48.1.2:line_profiler",),
        changes=(_NO_PROFILE,),
        setup=_CHAPTER_RSI + "; saved as a script and run with `python`; " + _CHAPTER_FILES,
        fix=Fix("04", ("multiprocessing example",), "48.4.1"),
    ),
    Sample(
        id="48.4.2-threads",
        code="48.4.2:threads",
        name="threads + `requests`",
        outcome=RIGHT,
        result="returns the {n} symbols' prices, equal to their files: {equal}",
        measured={"n": 3, "equal": True},
        changes=(_PRICE_URL,),
        fix=Fix("04", ("I/O-bound",), "48.4.2"),
    ),
    Sample(
        id="48.4.2-stalled",
        code="48.4.2:threads",
        name="threads + `requests`, one server stalls",
        outcome=FAILS,
        result=(
            "`requests.get` has no timeout: still waiting after {waited:.0f} s (waiting: "
            "{waiting}), and it ends only when the server drops the connection, with `{error}`"
        ),
        measured={"waited": 1.0, "waiting": True, "error": "ConnectionError"},
        changes=(_PRICE_URL,),
        probe="the price service holds `NTC`'s answer (`stall=['NTC']`) until it closes",
        fix=Fix("04", ("Failures",), "48.4.2"),
    ),
    Sample(
        id="48.4.3-asyncio",
        code="48.4.3:asyncio",
        name="aiohttp + `asyncio.gather`",
        outcome=RIGHT,
        result=(
            "returns the {n} symbols' prices, equal to their files: {equal}; on Python "
            "{python} `asyncio.get_event_loop()` outside a running loop warns nothing "
            "(deprecated from 3.12, an error from 3.14: `asyncio.run` is the current way)"
        ),
        measured={"n": 3, "equal": True, "python": "3.11"},
        changes=(_PRICE_URL,),
        setup="saved as a script and run with `python -W error::DeprecationWarning`",
        fix=Fix("04", ("asyncio client",), "48.4.3"),
    ),
    # ---------------------------------------------------------------- 48.5 distributed
    Sample(
        id="48.5.1-dask",
        code="48.5.1:dask",
        name="Dask `groupby().rolling()`",
        outcome=FAILS,
        result="`{error}`",
        measured={"error": "ValueError: Can only rolling dataframes with known divisions"},
        setup="`data/nepse_<SYMBOL>.csv`, one file per stock; " + _CHAPTER_FILES,
        fix=Fix("05", ("rolling line",), "48.5.1"),
    ),
    Sample(
        id="48.5.2-ray",
        code="48.5.2:ray",
        name="Ray remote `process_symbol`",
        outcome=FAILS,
        result="`{error}` in the task (48.1.2's `compute_rsi` is passed a column), re-raised by `ray.get`",
        measured={"error": "KeyError: 'Close'"},
        extra_code=("48.1.2:line_profiler",),
        changes=(
            _NO_PROFILE,
            Change(
                "ray.init()\n",
                "",
                "Ray is started by the test (`nepse_perf.engines.ray.ray_session`: 2 CPUs, "
                "bound to 127.0.0.1, no dashboard) instead of a default `ray.init()`",
            ),
        ),
        setup=(
            _CHAPTER_RSI + "; " + _CHAPTER_FILES + ". By default the test calls the task's "
            "function without Ray (Ray's start-up alone exceeds the test's time budget); "
            f"`{ENGINES_VARIABLE}=1` runs it on a local Ray"
        ),
        fix=Fix("05b", ("Ray task",), "48.5.2"),
    ),
    Sample(
        id="48.5.3-spark",
        code="48.5.3:spark",
        name="Spark `window('Date', '1 day')`",
        outcome=RIGHT,
        result=(
            'runs, and the "daily average" of daily bars is each session\'s close: {groups} '
            "groups for {rows} rows, `avg_close` equal to `Close` in every one, nothing averaged"
        ),
        measured={"groups": 66647, "rows": 66647},
        setup=(
            "`data/nepse_all.csv` holds the 24 stocks; " + _CHAPTER_FILES + ". By default "
            "the test checks the fact the result follows from (every (Symbol, Date) is unique, "
            "so each one-day window holds one row) without starting a JVM; "
            f"`{ENGINES_VARIABLE}=1` runs the query on a local Spark, whose session the "
            "sample's `getOrCreate()` then returns"
        ),
        fix=Fix("05b", ('window("Date"', "window("), "48.5.3"),
    ),
    # ---------------------------------------------------------------- 48.6 caching
    Sample(
        id="48.6.1-redis",
        code="48.6.1:redis",
        name="Redis cache of `get_sma`",
        outcome=RIGHT,
        result=(
            "the second call comes from Redis and equals the first; both equal `talib.SMA` "
            "(NaN rows included): {equal}. redis-py {redis} warns on the first call: "
            "`DeprecationWarning: {warning}`"
        ),
        measured={
            "equal": True,
            "redis": "8.1.0",
            "warning": "Call to deprecated setex. (Use 'set' instead.) -- Deprecated since "
            "version 2.6.12.",
        },
        changes=(
            Change(
                "host='localhost', port=6379",
                "host='127.0.0.1', port={port}",
                "a private `redis-server` started by the test on 127.0.0.1 (a free port)",
            ),
        ),
        setup=_CHAPTER_FILES,
        note=(
            "`pickle.loads` runs whatever the stored bytes tell it to (next row): anyone who "
            "can write to the Redis server can run code in every reader. The workbook stores "
            "arrays as `.npy` bytes read with `allow_pickle=False` (`nepse_perf.cache.codec`) "
            "under content-addressed keys (`nepse_perf.cache.keys`: a hash of the input "
            "arrays, the parameters and the code version)."
        ),
        fix=Fix("06", ("Redis",), "48.6.1"),
    ),
    Sample(
        id="48.6.1-pickle",
        code="48.6.1:redis",
        name="`pickle.loads` of a planted value",
        outcome=WRONG,
        result=(
            "a value planted under `sma:NABIL:20` ran code inside `get_sma` (it wrote a file: "
            '{ran}) and came back as the "SMA": `{returned}` (what its call returned)'
        ),
        measured={"ran": True, "returned": "3"},
        changes=(
            Change(
                "host='localhost', port=6379",
                "host='127.0.0.1', port={port}",
                "a private `redis-server` started by the test on 127.0.0.1 (a free port)",
            ),
        ),
        probe=(
            "another client of the server stores a pickle whose `__reduce__` calls "
            "`pathlib.Path.write_text` (harmless here; it could call anything)"
        ),
        fix=Fix("06", ("pickle",), "48.6.1"),
    ),
    Sample(
        id="48.6.1-stale",
        code="48.6.1:redis",
        name="key without the data: a stale SMA",
        outcome=WRONG,
        result=(
            "after a new session is appended to `data/NABIL.csv`, `get_sma` returns the cached "
            "list: {cached} values for {rows} rows, for up to an hour (the key names the symbol "
            "and window, not the data)"
        ),
        measured={"cached": 3484, "rows": 3485},
        changes=(
            Change(
                "host='localhost', port=6379",
                "host='127.0.0.1', port={port}",
                "a private `redis-server` started by the test on 127.0.0.1 (a free port)",
            ),
        ),
        probe="one row is appended to the CSV between two calls",
        fix=Fix("06", ("One price changes", "Content-addressed"), "48.6.1"),
    ),
    Sample(
        id="48.6.2-as-printed",
        code="48.6.2:lru_cache",
        name="`lru_cache` RSI",
        outcome=FAILS,
        result="`{error}`: the body is elided, so nothing assigns `rsi`",
        measured={"error": "NameError: name 'rsi' is not defined"},
        setup=_NP_PD + "; " + _NABIL_DF,
        fix=Fix("06", ("lru_cache",), "48.6.2"),
    ),
    Sample(
        id="48.6.2-frame",
        code="48.6.2:lru_cache",
        name="`lru_cache` on a Series or DataFrame",
        outcome=FAILS,
        result="`{series}`; `{frame}`: the arguments must be hashable",
        measured={
            "series": "TypeError: unhashable type: 'Series'",
            "frame": "TypeError: unhashable type: 'DataFrame'",
        },
        changes=(_RSI_BODY,),
        probe="`compute_rsi(df['Close'])` and `compute_rsi(df)` instead of the tuple",
        setup=_NP_PD + "; " + _NABIL_DF,
        fix=Fix("06", ("lru_cache",), "48.6.2"),
    ),
    Sample(
        id="48.6.2-nan",
        code="48.6.2:lru_cache",
        name="`lru_cache` on prices with a NaN",
        outcome=WRONG,
        result=(
            "the same prices twice give {nan_hits} cache hits when they contain a NaN (a NaN "
            "equals nothing, so two tuples of them never match), {clean_hits} without one"
        ),
        measured={"nan_hits": 0, "clean_hits": 1},
        changes=(_RSI_BODY,),
        probe=(
            "BBC's close aligned to the market's sessions (NaN on the days BBC did not trade), "
            "then NABIL's own close; each passed twice as `tuple(....values)`"
        ),
        setup=_NP_PD,
        fix=Fix("06", ("lru_cache",), "48.6.2"),
    ),
    Sample(
        id="48.6.2-shared",
        code="48.6.2:lru_cache",
        name="`lru_cache` hands out one array",
        outcome=WRONG,
        result=(
            "every hit returns the same array object ({same}): a caller that edits its result "
            "(`rsi[:] = 0`) changes what the next call returns ({changed})"
        ),
        measured={"same": True, "changed": True},
        changes=(_RSI_BODY,),
        probe="the caller edits the returned array in place, then calls again",
        setup=_NP_PD + "; " + _NABIL_DF,
        fix=Fix("06", ("lru_cache",), "48.6.2"),
    ),
    Sample(
        id="48.6.3-view",
        code="48.6.3:materialised_view",
        name="`CREATE MATERIALIZED VIEW`",
        outcome=FAILS,
        result="`{error}`: DuckDB has no materialised views",
        measured={"error": 'ParserException: Parser Error: syntax error at or near "MATERIALIZED"'},
        setup=(
            "run in DuckDB (the workbook's SQL engine; PostgreSQL is not one of its "
            "dependencies) on a `prices` table of the 24 stocks (`symbol, date, close`)"
        ),
        fix=Fix("06", ("materialised view",), "48.6.3"),
    ),
    Sample(
        id="48.6.3-select",
        code="48.6.3:materialised_view",
        name="the view's `SELECT`",
        outcome=WRONG,
        result=(
            "`ROWS 19 PRECEDING` averages the rows it has: {partial} rows (the first 19 of each "
            "of the {symbols} symbols) get a partial mean where `talib.SMA` is NaN; the other "
            "rows equal it (rtol 1e-9): {rest_equal}"
        ),
        measured={"partial": 456, "symbols": 24, "rest_equal": True},
        changes=(
            Change(
                "CREATE MATERIALIZED VIEW sma_20 AS\n",
                "",
                "only the query runs (DuckDB has no materialised views)",
            ),
            Change(
                "prices;\n\nREFRESH MATERIALIZED VIEW sma_20;  -- Run daily\n",
                "prices ORDER BY symbol, date;\n",
                "no view to refresh; the rows come back in a fixed order",
            ),
        ),
        setup="DuckDB, the same `prices` table",
        fix=Fix("06", ("materialised view",), "48.6.3"),
    ),
    # ---------------------------------------------------------------- 48.7 memory
    Sample(
        id="48.7.1-floats",
        code="48.7.1:downcast",
        name="`optimise_floats`",
        outcome=WRONG,
        result=(
            "downcasts {columns} to float32 without a warning, "
            "moving the close by up to {close_err:.2g} NPR; a 20-day SMA of it is off "
            "`talib.SMA` by up to {sma_rel:.1e} (relative), beyond the workbook's rtol 1e-9"
        ),
        measured={
            "columns": "Open, High, Low, Close, Volume",
            "close_err": 4.883e-05,
            "sma_rel": 1.065e-08,
        },
        setup=_NP_PD + "; " + _NABIL_DF,
        fix=Fix("07", ("optimise_floats", "Downcasting"), "48.7.1"),
    ),
    Sample(
        id="48.7.1-ints",
        code="48.7.1:downcast",
        name="`optimise_ints` on the stock files",
        outcome=RIGHT,
        result=(
            "changes nothing: the stock files hold no int64 column ({ints} found; quantities "
            "are written `38.0`, so they load as float64), {saved} bytes saved"
        ),
        measured={"ints": 0, "saved": 0},
        setup=_NP_PD + "; " + _NABIL_DF,
        fix=Fix("07", ("Downcasting",), "48.7.1"),
    ),
    Sample(
        id="48.7.1-ints-index",
        code="48.7.1:downcast",
        name="`optimise_ints` on the 1997-2019 index",
        outcome=RIGHT,
        result="lossless: {columns}",
        measured={"columns": "S.N int64 -> int16, Volume int64 -> int32"},
        setup=_NP_PD + "; `df` is `data/nepse/capstone2020/nepse_index.csv` as shipped",
        fix=Fix("07", ("Downcasting",), "48.7.1"),
    ),
    Sample(
        id="48.7.1-int32-wrap",
        code="48.7.1:downcast",
        name="int32 arithmetic after `optimise_ints`",
        outcome=WRONG,
        result=(
            "arithmetic stays in int32 and wraps without a warning: `df['Volume'] * 1000` is "
            "wrong in {wrapped} of {rows} rows"
        ),
        measured={"wrapped": 148, "rows": 5173},
        probe="`df['Volume'] * 1000` after `optimise_ints` (the 1997-2019 index)",
        setup=_NP_PD + "; `df` is `data/nepse/capstone2020/nepse_index.csv` as shipped",
        fix=Fix("07", ("Downcasting",), "48.7.1"),
    ),
    Sample(
        id="48.7.2-categorical",
        code="48.7.2:categorical",
        name="`Symbol` as a categorical",
        outcome=RIGHT,
        result="same values ({equal}), {categories} categories",
        measured={"equal": True, "categories": 24},
        setup="`df` is `nepse_all.csv` (the 24 stocks) read with `pd.read_csv`",
        fix=Fix("07", ("Where the bytes go",), "48.7.2"),
    ),
    Sample(
        id="48.7.3-as-printed",
        code="48.7.3:chunking",
        name="chunked `read_csv`",
        outcome=FAILS,
        result="`{error}`: the chapter never defines it",
        measured={"error": "NameError: name 'process_chunk' is not defined"},
        setup=_NP_PD + "; `nepse_all.csv` holds the 24 stocks; " + _CHAPTER_FILES,
        fix=Fix("07", ("Chunked reading",), "48.7.3"),
    ),
    Sample(
        id="48.7.3-sma",
        code="48.7.3:chunking",
        name="chunks processed independently",
        outcome=WRONG,
        result=(
            "a 20-row SMA computed chunk by chunk is wrong in {wrong} rows against per-symbol "
            "`talib.SMA`: {at_chunks} at the {chunks} chunk starts (NaN where the window spans "
            "two chunks) and {across} where a window spans two symbols"
        ),
        measured={"wrong": 551, "at_chunks": 114, "chunks": 7, "across": 437},
        probe=(
            "`process_chunk` computes the chapter's own `chunk['Close'].rolling(20).mean()` "
            "(48.1.3's line) and keeps it"
        ),
        setup=_NP_PD + "; `nepse_all.csv` holds the 24 stocks; " + _CHAPTER_FILES,
        fix=Fix("07", ("Chunked reading",), "48.7.3"),
    ),
)

#: The records by id.
BY_ID: dict[str, Sample] = {s.id: s for s in SAMPLES}
