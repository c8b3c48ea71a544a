"""The chapter's code samples (48.1-48.7), run as printed, each against its recorded outcome.

The samples and their records are in ``chapter_samples.py`` (next to this file): the printed
code verbatim, the changes that let it run here (paths, imports and services that cannot exist
on this machine, each named), and the outcome with its measured numbers or error. Each test
below runs one record and asserts that outcome, so a sample that starts to behave differently
(a new pandas, Dask, Python...) fails here, and the errata page of the site must be updated.

Files the samples read are written into a temporary working directory in the chapter's layout
(``Symbol, Date, Open, High, Low, Close, Volume, Turnover``) from the real sample. Redis runs as
a private ``redis-server`` on 127.0.0.1; the HTTP samples talk to the workbook's local price
service. Ray's and Spark's start-up alone exceed this file's time budget, so by default their
samples get a cheaper check of the same outcome; ``NEPSE_PERF_CHAPTER_ENGINES=1`` runs them on a
local Ray and a local Spark.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import pickle
import re
import runpy
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from chapter_samples import BY_ID, CODE, ENGINES_VARIABLE, FAILS, OUTCOMES, RIGHT, SAMPLES, WRONG

from nepse_perf.data import DEFAULT_DATA_DIR, load_prices

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT.parent / "shared" / "reference" / "chapter-48-scalability.md"
CAPSTONE = ROOT / "data" / "nepse" / "capstone2020" / "nepse_index.csv"
#: The chapter's column names for the columns of ``data/nepse/nepal-market-data/*.csv``.
CHAPTER_NAMES = {
    "published_date": "Date",
    "open": "Open",
    "high": "High",
    "low": "Low",
    "close": "Close",
    "traded_quantity": "Volume",
    "traded_amount": "Turnover",
}
STOCKS = sorted(p.stem for p in DEFAULT_DATA_DIR.glob("*.csv") if p.stem != "NEPSE_INDEX")


def engines_wanted() -> bool:
    """True when ``NEPSE_PERF_CHAPTER_ENGINES`` asks for a real Ray and Spark."""
    return os.environ.get(ENGINES_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def chapter_frame(path: Path, symbol: str) -> pd.DataFrame:
    """One file of ``nepal-market-data`` with the chapter's column names and a ``Symbol``."""
    raw = pd.read_csv(path).rename(columns=CHAPTER_NAMES)[list(CHAPTER_NAMES.values())]
    raw.insert(0, "Symbol", symbol)
    return raw


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` (first line), as Python prints an uncaught exception's last line."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def last_line(text: str) -> str:
    """The last non-empty line of a traceback."""
    return [line for line in text.splitlines() if line.strip()][-1].strip()


def assert_recorded(sample_id: str, outcome: str, **measured: object) -> None:
    """The run's outcome and measurements equal the record's (floats to 0.2 %)."""
    rec = BY_ID[sample_id]
    assert outcome == rec.outcome, f"{sample_id}: {outcome!r}, recorded {rec.outcome!r}"
    assert set(measured) == set(rec.measured), f"{sample_id}: measured {sorted(measured)}"
    for key, got in measured.items():
        want = rec.measured[key]
        if isinstance(want, float):
            ok = math.isclose(float(got), want, rel_tol=2e-3, abs_tol=1e-12)  # type: ignore[arg-type]
        else:
            ok = got == want
        assert ok, f"{sample_id}: {key} = {got!r}, recorded {want!r} (all: {measured})"


def run_code(sample_id: str, ns: dict[str, Any] | None = None, **values: object) -> dict:
    """Execute the adapted code of a record in ``ns`` (a fresh namespace by default)."""
    ns = {"__name__": "__chapter__"} if ns is None else ns
    code = BY_ID[sample_id].adapted(**values)
    exec(compile(code, f"<chapter {sample_id}>", "exec"), ns)
    return ns


def with_np_pd(**more: object) -> dict[str, Any]:
    """A namespace with the imports the chapter's fragments assume."""
    return {"__name__": "__chapter__", "np": np, "pd": pd, **more}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """Every stock in the chapter's layout, by symbol."""
    return {s: chapter_frame(DEFAULT_DATA_DIR / f"{s}.csv", s) for s in STOCKS}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, frames: dict[str, pd.DataFrame]) -> Path:
    """The files the samples name, in the chapter's layout: ``data/<SYMBOL>.csv``,
    ``data/nepse_<SYMBOL>.csv``, ``data/nepse_all.csv``, ``nepse_all.csv``, ``nepse.csv``."""
    root = tmp_path_factory.mktemp("chapter")
    (root / "data").mkdir()
    for sym, frame in frames.items():
        frame.to_csv(root / "data" / f"{sym}.csv", index=False)
        frame.to_csv(root / "data" / f"nepse_{sym}.csv", index=False)
    every = pd.concat(frames.values(), ignore_index=True)
    every.to_csv(root / "data" / "nepse_all.csv", index=False)
    every.to_csv(root / "nepse_all.csv", index=False)
    chapter_frame(DEFAULT_DATA_DIR / "NEPSE_INDEX.csv", "NEPSE").to_csv(
        root / "nepse.csv", index=False
    )
    return root


@pytest.fixture
def here(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside the working directory."""
    monkeypatch.chdir(workdir)
    return workdir


@pytest.fixture
def nabil(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """NABIL in the chapter's layout, a fresh copy."""
    return frames["NABIL"].copy()


def per_symbol_sma(frame: pd.DataFrame, period: int = 20) -> np.ndarray:
    """``talib.SMA`` of ``Close`` per ``Symbol`` (rows in symbol blocks, as in the files)."""
    out = np.full(len(frame), np.nan)
    for _, rows in frame.groupby("Symbol", sort=False).indices.items():
        out[rows] = talib.SMA(frame["Close"].to_numpy(np.float64)[rows], period)
    return out


# --------------------------------------------------------------------------- the records


def test_records_are_consistent() -> None:
    assert len(BY_ID) == len(SAMPLES)
    for rec in SAMPLES:
        assert rec.outcome in OUTCOMES
        assert rec.code in CODE and rec.id.startswith(rec.subsection)
        rec.result_text()  # every placeholder has a measured value
        rec.adapted(data_dir="", path="", base_url="", port=0)  # every change applies
    assert set(CODE) == {r.code for r in SAMPLES}, "a printed sample has no record"
    missing = [r.id for r in SAMPLES if "test_" + re.sub(r"\W", "_", r.id) not in globals()]
    assert not missing, f"records without a test: {missing}"


def test_code_is_the_chapter_verbatim() -> None:
    """Every block of 48.1-48.7 in the chapter, in order, is in ``CODE`` unchanged."""
    if not CHAPTER.exists():
        pytest.skip(f"the chapter is not at {CHAPTER}")
    blocks, sub = [], None
    lines = CHAPTER.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines) and not lines[i].startswith("## 48.8"):
        if m := re.match(r"^### (48\.\d+\.\d+)", lines[i]):
            sub = m.group(1)
        if lines[i].startswith("```") and len(lines[i]) > 3:
            j = lines.index("```", i + 1)
            blocks.append((sub, "\n".join(lines[i + 1 : j]) + "\n"))
            i = j
        i += 1
    assert [(k.split(":")[0], v) for k, v in CODE.items()] == blocks


def test_fix_links_resolve() -> None:
    """Every record links a notebook that exists (the site falls back to it without a heading)."""
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        import errata_site
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    for rec in SAMPLES:
        link = errata_site.fix_link(rec.fix)
        assert (ROOT / "notebooks" / link.notebook).exists(), rec.id


# --------------------------------------------------------------------------- 48.1


def test_48_1_1_cprofile(here: Path) -> None:
    run_code("48.1.1-cprofile", data_dir=str(DEFAULT_DATA_DIR))
    text = (here / "profile_results.txt").read_text()
    listed = int(re.search(r"List reduced from \d+ to (\d+)", text).group(1))
    table = text.split("filename:lineno(function)\n", 1)[1]
    rows = [line.split(maxsplit=5) for line in table.splitlines() if line.strip()]
    cumulative = [float(r[3]) for r in rows]
    assert "Ordered by: cumulative time" in text
    assert len(rows) == listed and cumulative == sorted(cumulative, reverse=True)
    assert_recorded("48.1.1-cprofile", RIGHT, listed=listed)


def test_48_1_2_kernprof(here: Path) -> None:
    script = here / "my_script.py"
    script.write_text(BY_ID["48.1.2-kernprof"].adapted())
    kernprof = Path(sys.executable).with_name("kernprof")
    prof = subprocess.run(
        [str(kernprof), "-l", "-v", script.name], capture_output=True, text=True, timeout=120
    )
    assert prof.returncode == 0, prof.stderr
    total = re.search(r"Total time: .*", prof.stdout).group(0).strip()
    hits = sum(1 for line in prof.stdout.splitlines() if re.match(r"\s+\d+\s+\d+\s+[\d.]", line))
    plain = subprocess.run(
        [sys.executable, script.name], capture_output=True, text=True, timeout=120
    )
    assert plain.returncode != 0
    assert_recorded("48.1.2-kernprof", WRONG, total=total, hits=hits, plain=last_line(plain.stderr))


def test_48_1_2_rsi(nabil: pd.DataFrame) -> None:
    got = run_code("48.1.2-rsi")["compute_rsi"](nabil).to_numpy()
    ref = talib.RSI(nabil["Close"].to_numpy(np.float64), 14)
    both = ~np.isnan(got) & ~np.isnan(ref)
    diff = np.abs(got[both] - ref[both])
    assert_recorded(
        "48.1.2-rsi",
        WRONG,
        max_abs=round(float(diff.max()), 2),
        median_abs=round(float(np.median(diff)), 3),
        first=int(np.argmax(~np.isnan(got))),
        talib_first=int(np.argmax(~np.isnan(ref))),
    )


def test_48_1_3_as_printed(here: Path) -> None:
    script = here / "memory_as_printed.py"
    script.write_text(BY_ID["48.1.3-as-printed"].adapted())
    with pytest.raises(NameError) as exc:
        runpy.run_path(str(script))
    assert_recorded("48.1.3-as-printed", FAILS, error=error_text(exc.value))


def test_48_1_3_sma(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = here / "memory_with_pandas.py"
    script.write_text(BY_ID["48.1.3-sma"].adapted())
    ns = runpy.run_path(str(script))
    table = capsys.readouterr().out
    assert "Mem usage" in table and "rolling(20).mean()" in table
    df = ns["load_and_process"].__wrapped__()
    got, ref = df["SMA_20"].to_numpy(), per_symbol_sma(df)
    wrong = ~np.isclose(got, ref, rtol=1e-9, atol=0, equal_nan=True)
    assert (np.isnan(ref[wrong])).all()  # every wrong row is a value where TA-Lib has none
    assert_recorded("48.1.3-sma", WRONG, symbols=df["Symbol"].nunique(), wrong=int(wrong.sum()))


# --------------------------------------------------------------------------- 48.2


def test_48_2_1_loop(nabil: pd.DataFrame) -> None:
    got = np.array(run_code("48.2.1-loop", with_np_pd())["compute_sma_loop"](nabil, 20))
    ref = talib.SMA(nabil["Close"].to_numpy(np.float64), 20)
    lagged = bool(np.allclose(got[20:], ref[19:-1], rtol=1e-9, atol=0))
    same_row = np.abs(got - ref)
    assert_recorded(
        "48.2.1-loop",
        WRONG,
        window=20,
        lagged=lagged,
        max_abs=round(float(np.nanmax(same_row)), 2),
    )


def test_48_2_1_vectorised(nabil: pd.DataFrame) -> None:
    got = run_code("48.2.1-vectorised")["compute_sma_vectorised"](nabil, 20).to_numpy()
    ref = talib.SMA(nabil["Close"].to_numpy(np.float64), 20)
    equal = bool(np.allclose(got, ref, rtol=1e-9, atol=0, equal_nan=True))
    assert_recorded("48.2.1-vectorised", RIGHT, equal=equal)


def test_48_2_2_index_volume(here: Path) -> None:
    with pytest.raises(ValueError) as exc:
        run_code("48.2.2-index-volume", with_np_pd(), path=str(here / "nepse.csv"))
    assert_recorded("48.2.2-index-volume", FAILS, error=error_text(exc.value))


def test_48_2_2_float32() -> None:
    df = run_code("48.2.2-float32", with_np_pd(), path=str(CAPSTONE))["df"]
    exact = pd.read_csv(CAPSTONE)
    assert df["Close"].dtype == np.float32
    c32, c64 = df["Close"].to_numpy(np.float64), exact["Close"].to_numpy()
    sma32, sma64 = talib.SMA(c32, 20), talib.SMA(c64, 20)
    assert_recorded(
        "48.2.2-float32",
        WRONG,
        close_err=float(f"{np.max(np.abs(c32 - c64)):.4g}"),
        sma_rel=float(f"{np.nanmax(np.abs(sma32 - sma64) / np.abs(sma64)):.4g}"),
    )


def test_48_2_3_to_numpy(nabil: pd.DataFrame) -> None:
    result = run_code("48.2.3-to-numpy", with_np_pd(df=nabil))["result"]
    equal = bool(np.array_equal(result, nabil["Close"].values * 2))
    assert_recorded("48.2.3-to-numpy", RIGHT, equal=equal)


# --------------------------------------------------------------------------- 48.3


def _sums(nabil: pd.DataFrame) -> tuple[dict, np.ndarray, np.ndarray]:
    ns = run_code("48.3.1-naive", with_np_pd())
    run_code("48.3.1-fast", ns)
    arr = nabil["Close"].to_numpy(np.float64)
    return ns, arr, talib.SUM(arr, 20)


def test_48_3_1_naive(nabil: pd.DataFrame) -> None:
    ns, arr, ref = _sums(nabil)
    got = np.array(ns["rolling_sum_naive"](arr, 20))
    assert_recorded(
        "48.3.1-naive",
        WRONG,
        window=20,
        lagged=bool(np.allclose(got[20:], ref[19:-1], rtol=1e-9, atol=0)),
        first=int(np.argmax(~np.isnan(got))),
        talib_first=int(np.argmax(~np.isnan(ref))),
    )


def test_48_3_1_fast(nabil: pd.DataFrame) -> None:
    ns, arr, ref = _sums(nabil)
    got = np.array(ns["rolling_sum_fast"](arr, 20))
    naive = np.array(ns["rolling_sum_naive"](arr, 20))
    first = int(np.argmax(~np.isnan(got)))
    assert np.allclose(got[first:], ref[first:], rtol=1e-9, atol=0)
    missing = np.flatnonzero(np.isnan(got) & ~np.isnan(ref))
    both = ~np.isnan(got) & ~np.isnan(naive)
    disagree = int((~np.isclose(got[both], naive[both], rtol=1e-9, atol=0)).sum())
    assert len(missing) == 1
    assert_recorded(
        "48.3.1-fast",
        WRONG,
        first=first,
        missing=int(missing[0]),
        disagree=disagree,
        both=int(both.sum()),
    )


def test_48_3_2_fast_rsi(nabil: pd.DataFrame) -> None:
    close = nabil["Close"].to_numpy(np.float64)
    got = run_code("48.3.2-fast-rsi")["fast_rsi"](close)
    ref = talib.RSI(close, 14)
    equal = bool(np.allclose(got, ref, rtol=1e-9, atol=0, equal_nan=True))
    assert_recorded("48.3.2-fast-rsi", RIGHT, equal=equal, nans=int(np.isnan(got).sum()))


# --------------------------------------------------------------------------- 48.4


@pytest.fixture(scope="module")
def three_symbols() -> pd.DataFrame:
    """The three symbols of 48.4.2 and 48.4.3, as ``load_prices`` reads their files."""
    return pd.concat(
        [load_prices(DEFAULT_DATA_DIR / f"{s}.csv") for s in ("NABIL", "NTC", "SBI")],
        ignore_index=True,
    )


def _equal_to_files(results: list[dict]) -> bool:
    from nepse_perf.lessons.price_service import frame_from_json

    return all(
        frame_from_json(body).equals(load_prices(DEFAULT_DATA_DIR / f"{body['symbol']}.csv"))
        for body in results
    )


def test_48_4_1_pool(here: Path) -> None:
    script = here / "pool.py"
    script.write_text(BY_ID["48.4.1-pool"].adapted())
    proc = subprocess.run(
        [sys.executable, script.name], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode != 0
    assert_recorded("48.4.1-pool", FAILS, error=last_line(proc.stderr))


def test_48_4_2_threads(three_symbols: pd.DataFrame) -> None:
    from nepse_perf.lessons.price_service import serve_prices

    with serve_prices(three_symbols) as server:
        results = run_code("48.4.2-threads", base_url=server.url)["results"]
    assert [r["symbol"] for r in results] == ["NABIL", "NTC", "SBI"]
    assert_recorded("48.4.2-threads", RIGHT, n=len(results), equal=_equal_to_files(results))


def test_48_4_2_stalled(three_symbols: pd.DataFrame) -> None:
    import requests

    from nepse_perf.lessons.price_service import serve_prices

    caught: list[BaseException] = []

    def sample(url: str) -> None:
        try:
            run_code("48.4.2-stalled", base_url=url)
        except BaseException as exc:
            caught.append(exc)

    waited = 1.0
    with serve_prices(three_symbols, stall=["NTC"]) as server:
        worker = threading.Thread(target=sample, args=(server.url,), daemon=True)
        worker.start()
        worker.join(waited)
        waiting = worker.is_alive()
    worker.join(30)
    assert not worker.is_alive() and len(caught) == 1
    assert isinstance(caught[0], requests.exceptions.ConnectionError)
    assert_recorded(
        "48.4.2-stalled", FAILS, waited=waited, waiting=waiting, error=type(caught[0]).__name__
    )


def test_48_4_3_asyncio(here: Path, three_symbols: pd.DataFrame) -> None:
    from nepse_perf.lessons.price_service import serve_prices

    script = here / "fetch_async.py"
    with serve_prices(three_symbols) as server:
        harness = "\nimport json as _json\nopen('results.json', 'w').write(_json.dumps(results))\n"
        script.write_text(BY_ID["48.4.3-asyncio"].adapted(base_url=server.url) + harness)
        proc = subprocess.run(
            [sys.executable, "-W", "error::DeprecationWarning", script.name],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((here / "results.json").read_text())
    assert_recorded(
        "48.4.3-asyncio",
        RIGHT,
        n=len(results),
        equal=_equal_to_files(results),
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
    )


# --------------------------------------------------------------------------- 48.5


def test_48_5_1_dask(here: Path) -> None:
    with pytest.raises(ValueError) as exc:
        run_code("48.5.1-dask")
    assert_recorded("48.5.1-dask", FAILS, error=error_text(exc.value))


def test_48_5_2_ray(here: Path) -> None:
    import ray

    code = BY_ID["48.5.2-ray"].adapted()
    if engines_wanted():
        from nepse_perf.engines.ray import ray_session

        with ray_session(), pytest.raises(KeyError) as exc:
            exec(compile(code, "<chapter 48.5.2-ray>", "exec"), {"__name__": "__chapter__"})
        err = exc.value.cause if isinstance(exc.value, ray.exceptions.RayTaskError) else exc.value
    else:  # the task's own function, called here: Ray would re-raise what it raises
        by_hand = "results = [process_symbol._function(sym) for sym in symbols]\n"
        printed = "futures = [process_symbol.remote(sym) for sym in symbols]\nresults = ray.get(futures)\n"
        assert printed in code
        with pytest.raises(KeyError) as exc:
            exec(
                compile(code.replace(printed, by_hand), "<chapter 48.5.2-ray>", "exec"),
                {"__name__": "__chapter__"},
            )
        assert not ray.is_initialized()
        err = exc.value
    assert_recorded("48.5.2-ray", FAILS, error=error_text(err))


def test_48_5_3_spark(here: Path) -> None:
    if engines_wanted():
        from nepse_perf.engines.spark import spark_session

        with spark_session():
            ns = run_code("48.5.3-spark")
            groups, rows = ns["result"].count(), ns["df"].count()
    else:  # a tumbling one-day window holds one row exactly when (Symbol, Date) is unique
        df = pd.read_csv(here / "data" / "nepse_all.csv")
        groups, rows = len(df.groupby(["Symbol", "Date"])), len(df)
    assert groups == rows
    assert_recorded("48.5.3-spark", RIGHT, groups=groups, rows=rows)


# --------------------------------------------------------------------------- 48.6


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    """A private redis-server on 127.0.0.1 for this module."""
    from nepse_perf.cache import private_redis, redis_server_binary, require_redis

    if redis_server_binary() is None:
        if require_redis():
            pytest.fail("NEPSE_PERF_REQUIRE_REDIS is set but redis-server is not installed")
        pytest.skip("redis-server is not installed (and NEPSE_PERF_REQUIRE_REDIS is unset)")
    with private_redis() as url:
        yield int(url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
def redis_ns(redis_port: int) -> Iterator[dict]:
    """An empty db 0 for each test, and the namespace the sample will run in."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_port, db=0)
    client.flushdb()
    yield {"__name__": "__chapter__"}
    client.flushdb()
    client.close()


def test_48_6_1_redis(here: Path, redis_ns: dict, redis_port: int, nabil: pd.DataFrame) -> None:
    import redis

    ns = run_code("48.6.1-redis", redis_ns, port=redis_port)
    with pytest.warns(DeprecationWarning) as caught:
        first = ns["get_sma"]("NABIL", 20)
    assert ns["r"].exists("sma:NABIL:20")
    second = ns["get_sma"]("NABIL", 20)
    ref = talib.SMA(nabil["Close"].to_numpy(np.float64), 20)
    equal = bool(np.allclose(first, ref, rtol=1e-9, atol=0, equal_nan=True))
    assert_recorded(
        "48.6.1-redis",
        RIGHT,
        equal=equal and np.array_equal(first, second, True),
        redis=redis.__version__,
        warning=str(caught[0].message),
    )


class _Planted:
    """A pickle that writes a file when loaded (what a hostile value could do instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.write_text, (self.marker, "ran"))


def test_48_6_1_pickle(here: Path, redis_ns: dict, redis_port: int, tmp_path: Path) -> None:
    ns = run_code("48.6.1-pickle", redis_ns, port=redis_port)
    marker = tmp_path / "planted-code-ran"
    ns["r"].set("sma:NABIL:20", pickle.dumps(_Planted(marker)))  # another client of the server
    returned = ns["get_sma"]("NABIL", 20)
    assert_recorded("48.6.1-pickle", WRONG, ran=marker.exists(), returned=repr(returned))


def test_48_6_1_stale(
    workdir: Path, redis_ns: dict, redis_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    csv = tmp_path / "data" / "NABIL.csv"
    csv.write_bytes((workdir / "data" / "NABIL.csv").read_bytes())
    monkeypatch.chdir(tmp_path)
    ns = run_code("48.6.1-stale", redis_ns, port=redis_port)
    with pytest.warns(DeprecationWarning, match="setex"):  # recorded in 48.6.1-redis
        ns["get_sma"]("NABIL", 20)
    last = csv.read_text().splitlines()[-1].split(",")
    last[1] = "2026-08-24"  # the next session arrives
    with csv.open("a") as f:
        f.write(",".join(last) + "\n")
    cached = ns["get_sma"]("NABIL", 20)
    rows = len(pd.read_csv(csv))
    assert_recorded("48.6.1-stale", WRONG, cached=len(cached), rows=rows)


def _lru_ns(**more: object) -> dict[str, Any]:
    return with_np_pd(talib=talib, **more)


def test_48_6_2_as_printed(nabil: pd.DataFrame) -> None:
    with pytest.raises(NameError) as exc:
        run_code("48.6.2-as-printed", with_np_pd(df=nabil))
    assert_recorded("48.6.2-as-printed", FAILS, error=error_text(exc.value))


def test_48_6_2_frame(nabil: pd.DataFrame) -> None:
    ns = run_code("48.6.2-frame", _lru_ns(df=nabil))
    errors = []
    for arg in (nabil["Close"], nabil):
        with pytest.raises(TypeError) as exc:
            ns["compute_rsi"](arg)
        errors.append(error_text(exc.value))
    assert_recorded("48.6.2-frame", FAILS, series=errors[0], frame=errors[1])


def test_48_6_2_nan(frames: dict[str, pd.DataFrame]) -> None:
    nabil = frames["NABIL"]
    ns = run_code("48.6.2-nan", _lru_ns(df=nabil))
    compute_rsi = ns["compute_rsi"]
    sessions = sorted(set().union(*(f["Date"] for f in frames.values())))
    bbc = frames["BBC"].set_index("Date")["Close"].reindex(sessions)
    assert bbc.isna().any()

    def hits_on_repeat(series: pd.Series) -> int:
        compute_rsi.cache_clear()
        compute_rsi(tuple(series.values))
        compute_rsi(tuple(series.values))
        return compute_rsi.cache_info().hits

    assert_recorded(
        "48.6.2-nan", WRONG, nan_hits=hits_on_repeat(bbc), clean_hits=hits_on_repeat(nabil["Close"])
    )


def test_48_6_2_shared(nabil: pd.DataFrame) -> None:
    ns = run_code("48.6.2-shared", _lru_ns(df=nabil))
    first = ns["rsi"]
    first[:] = 0  # the caller edits its result
    again = ns["compute_rsi"](tuple(nabil["Close"].values))
    assert_recorded("48.6.2-shared", WRONG, same=again is first, changed=bool((again == 0).all()))


@pytest.fixture(scope="module")
def duck() -> Iterator[Any]:
    """DuckDB with a ``prices`` table (symbol, date, close) of the 24 stocks."""
    import duckdb

    prices = load_prices(DEFAULT_DATA_DIR)
    frame = prices.loc[prices["symbol"] != "NEPSE_INDEX", ["symbol", "date", "close"]]
    frame = frame.astype({"symbol": str}).reset_index(drop=True)
    con = duckdb.connect()
    con.register("prices_frame", frame)
    con.execute("CREATE TABLE prices AS SELECT * FROM prices_frame")
    con.unregister("prices_frame")
    yield con, frame
    con.close()


def test_48_6_3_view(duck: tuple) -> None:
    import duckdb

    con, _ = duck
    with pytest.raises(duckdb.ParserException) as exc:
        con.execute(BY_ID["48.6.3-view"].adapted())
    assert_recorded("48.6.3-view", FAILS, error=error_text(exc.value))


def test_48_6_3_select(duck: tuple) -> None:
    con, frame = duck
    got = con.execute(BY_ID["48.6.3-select"].adapted()).df()
    assert got[["symbol", "date"]].equals(frame[["symbol", "date"]])
    ref = per_symbol_sma(frame.rename(columns={"symbol": "Symbol", "close": "Close"}))
    sma = got["sma_20"].to_numpy()
    partial = np.isnan(ref) & ~np.isnan(sma)
    rest = ~np.isnan(ref)
    assert_recorded(
        "48.6.3-select",
        WRONG,
        partial=int(partial.sum()),
        symbols=frame["symbol"].nunique(),
        rest_equal=bool(np.allclose(sma[rest], ref[rest], rtol=1e-9, atol=0)),
    )


# --------------------------------------------------------------------------- 48.7


def test_48_7_1_floats(nabil: pd.DataFrame) -> None:
    before = nabil.copy()
    df = run_code("48.7.1-floats", with_np_pd())["optimise_floats"](nabil)
    columns = ", ".join(c for c in df.columns if df[c].dtype == np.float32)
    c32 = df["Close"].to_numpy(np.float64)
    c64 = before["Close"].to_numpy(np.float64)
    sma32, sma64 = talib.SMA(c32, 20), talib.SMA(c64, 20)
    assert_recorded(
        "48.7.1-floats",
        WRONG,
        columns=columns,
        close_err=float(f"{np.max(np.abs(c32 - c64)):.4g}"),
        sma_rel=float(f"{np.nanmax(np.abs(sma32 - sma64) / np.abs(sma64)):.4g}"),
    )


def test_48_7_1_ints(nabil: pd.DataFrame) -> None:
    before = nabil.memory_usage(deep=True).sum()
    ints = len(nabil.select_dtypes(include=["int64"]).columns)
    df = run_code("48.7.1-ints", with_np_pd())["optimise_ints"](nabil)
    saved = int(before - df.memory_usage(deep=True).sum())
    assert_recorded("48.7.1-ints", RIGHT, ints=ints, saved=saved)


def test_48_7_1_ints_index() -> None:
    exact = pd.read_csv(CAPSTONE)
    df = run_code("48.7.1-ints-index", with_np_pd())["optimise_ints"](exact.copy())
    changed = [c for c in df.columns if df[c].dtype != exact[c].dtype]
    assert all((df[c].astype(np.int64) == exact[c]).all() for c in changed)
    columns = ", ".join(f"{c} {exact[c].dtype} -> {df[c].dtype}" for c in changed)
    assert_recorded("48.7.1-ints-index", RIGHT, columns=columns)


def test_48_7_1_int32_wrap() -> None:
    exact = pd.read_csv(CAPSTONE)
    df = run_code("48.7.1-int32-wrap", with_np_pd())["optimise_ints"](exact.copy())
    wrapped = int((df["Volume"] * 1000 != exact["Volume"] * 1000).sum())
    assert_recorded("48.7.1-int32-wrap", WRONG, wrapped=wrapped, rows=len(df))


def test_48_7_2_categorical(here: Path) -> None:
    df = pd.read_csv("nepse_all.csv")
    before = df["Symbol"].copy()
    run_code("48.7.2-categorical", with_np_pd(df=df))
    assert isinstance(df["Symbol"].dtype, pd.CategoricalDtype)
    equal = bool((df["Symbol"].astype(str) == before).all())
    assert_recorded(
        "48.7.2-categorical", RIGHT, equal=equal, categories=len(df["Symbol"].cat.categories)
    )


def test_48_7_3_as_printed(here: Path) -> None:
    with pytest.raises(NameError) as exc:
        run_code("48.7.3-as-printed", with_np_pd())
    assert_recorded("48.7.3-as-printed", FAILS, error=error_text(exc.value))


def test_48_7_3_sma(here: Path) -> None:
    pieces: list[pd.DataFrame] = []

    def process_chunk(chunk: pd.DataFrame) -> None:
        chunk["SMA_20"] = chunk["Close"].rolling(20).mean()
        pieces.append(chunk)

    ns = run_code("48.7.3-sma", with_np_pd(process_chunk=process_chunk))
    df = pd.concat(pieces)
    assert df.index.equals(pd.RangeIndex(len(df)))
    wrong = ~np.isclose(df["SMA_20"], per_symbol_sma(df), rtol=1e-9, atol=0, equal_nan=True)
    at_chunk = (df.index.to_numpy() % ns["chunk_size"] < 19) & (df.index >= ns["chunk_size"])
    assert_recorded(
        "48.7.3-sma",
        WRONG,
        wrong=int(wrong.sum()),
        at_chunks=int((wrong & at_chunk).sum()),
        chunks=len(pieces),
        across=int((wrong & ~at_chunk).sum()),
    )
