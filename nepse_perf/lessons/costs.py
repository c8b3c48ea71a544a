"""What the measured throughput costs in the cloud: per million predictions, per nightly run.

Prices come from the dated tables in ``data/cloud/`` (``instances.csv``, ``managed.csv``,
``serverless.csv``, ``frontends.csv``; ``data/cloud/README.md`` gives each source); throughputs come from
measurements: the prediction service's ``results/serving/capacity.json`` when it exists, else
this machine's in-process ONNX Runtime rate per core (labelled "in-process, no HTTP"). An
instance's throughput is this machine's per-core rate times its vCPUs, a linear-scaling
assumption that every table states; a GPU row's indicator rate is an estimate from the
device's memory bandwidth (specification), never a measurement. All money is USD, rates are
per second, prices per hour (instances) or per request and GB-second (serverless).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "CAPACITY_FILE",
    "DATA_DIR",
    "Throughput",
    "billed_duration_s",
    "break_even",
    "break_even_rate",
    "cost_table",
    "load_frontends",
    "load_instances",
    "load_managed",
    "load_serverless",
    "measure_throughput",
    "right_size",
    "serving_throughput",
]

_ROOT = Path(__file__).resolve().parents[2]
#: The dated price tables.
DATA_DIR = _ROOT / "data" / "cloud"
#: Where the prediction service's load test records its measured capacity.
CAPACITY_FILE = _ROOT / "results" / "serving" / "capacity.json"
#: AWS bills Linux instances per second with a 60-second minimum.
MIN_BILLED_S = 60.0

_INSTANCE_COLUMNS = {
    "provider": str,
    "instance": str,
    "family": str,
    "arch": str,
    "vcpus": int,
    "memory_gib": float,
    "gpu": str,
    "gpu_mem_bw_gbs": float,
    "on_demand_usd_h": float,
    "spot_usd_h": float,
    "spot_basis": str,
    "region": str,
    "price_date": str,
    "source": str,
}


def _read_table(
    path: Path, columns: dict[str, type], *, optional: tuple[str, ...] = ()
) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such price table") from None
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    out = {}
    for col, kind in columns.items():
        values = raw[col].str.strip()
        if kind is str:
            if col not in optional and (values == "").any():
                row = int(np.argmax((values == "").to_numpy())) + 2
                raise ValueError(f"{path}: line {row}: {col} is empty")
            out[col] = values
            continue
        parsed = pd.to_numeric(values.replace("", "nan"), errors="coerce")
        bad = parsed.isna() & (values != "") | (parsed < 0)
        if col not in optional:
            bad |= parsed.isna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise ValueError(
                f"{path}: line {row + 2}: {col} = {raw[col].iloc[row]!r} is not a number >= 0"
            )
        out[col] = parsed.astype(kind) if kind is int else parsed.astype(np.float64)
    frame = pd.DataFrame(out)
    if "price_date" in frame:
        dates = pd.to_datetime(frame["price_date"], format="%Y-%m-%d", errors="coerce")
        if dates.isna().any():
            row = int(np.argmax(dates.isna().to_numpy()))
            raise ValueError(
                f"{path}: line {row + 2}: price_date {frame['price_date'].iloc[row]!r} is not YYYY-MM-DD"
            )
    return frame


def load_instances(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The instance price table (default ``data/cloud/instances.csv``), validated.

    One row per instance type: vCPUs, memory (GiB), GPU model and its memory bandwidth
    (GB/s, specification) where it has one, on-demand and spot price (USD per hour), how the
    spot price was obtained, region, ``price_date`` (YYYY-MM-DD) and ``source`` (URL).
    ``spot_basis`` is ``ratio`` (the on-demand price times AWS's published example ratio),
    or ``none`` with an empty ``spot_usd_h`` (NaN: no spot price is quoted, e.g. for GCP,
    whose Spot prices follow no AWS ratio and had no verifiable copy here). A missing column,
    an empty field (a spot price only with ``spot_basis`` ``none``) or a bad number raises
    ``ValueError`` naming the file, line and column.
    """
    path = Path(path) if path else DATA_DIR / "instances.csv"
    frame = _read_table(path, _INSTANCE_COLUMNS, optional=("gpu", "gpu_mem_bw_gbs", "spot_usd_h"))
    unquoted = frame["spot_basis"] == "none"
    bad = frame["spot_usd_h"].isna() != unquoted
    if bad.any():
        row = int(np.argmax(bad.to_numpy())) + 2
        raise ValueError(
            f"{path}: line {row}: spot_usd_h must be empty exactly when spot_basis is 'none'"
        )
    return frame


def load_managed(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Managed inference services (default ``data/cloud/managed.csv``): what each replaces
    here, the smallest comparable instance, its price (USD per hour), date and source."""
    cols = {
        "service": str,
        "replaces_here": str,
        "instance": str,
        "vcpus": int,
        "memory_gib": float,
        "usd_h": float,
        "price_date": str,
        "source": str,
    }
    return _read_table(Path(path) if path else DATA_DIR / "managed.csv", cols)


def load_serverless(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Serverless prices and limits (default ``data/cloud/serverless.csv``): USD per million
    requests and per GB-second, memory, zip (MB) and image (GB) limits, billing granularity
    (ms, also the least duration billed), ``price_date`` (YYYY-MM-DD), ``date_basis`` (what
    that date is: when the price was published, or that it is only as listed on the source)
    and ``source`` (the provider's pricing page)."""
    cols = {
        "service": str,
        "per_million_requests_usd": float,
        "per_gb_second_usd": float,
        "max_memory_gb": float,
        "zip_limit_mb": float,
        "image_limit_gb": float,
        "billing_ms": float,
        "price_date": str,
        "date_basis": str,
        "source": str,
    }
    return _read_table(Path(path) if path else DATA_DIR / "serverless.csv", cols)


def load_frontends(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The HTTP front ends a serverless function can sit behind (default
    ``data/cloud/frontends.csv``): USD per million requests on top of the function's own
    price (0 for a Lambda function URL), the volume tier that price holds for, ``source`` (the
    provider's pricing page) and ``date_basis`` (no verified date: "as listed on" the source)."""
    cols = {
        "frontend": str,
        "per_million_requests_usd": float,
        "tier": str,
        "source": str,
        "date_basis": str,
    }
    return _read_table(Path(path) if path else DATA_DIR / "frontends.csv", cols)


@dataclass(frozen=True)
class Throughput:
    """Per-core rates measured on this machine (or read from a measurement file).

    ``predictions_per_s`` model predictions per second per core; ``p99_ms`` the latency
    percentile it was measured at (``None`` in-process: no requests, no latency target);
    ``indicator_rows_per_s`` indicator rows per second per core; ``job_rows_per_s`` rows per
    second per core of the whole nightly job (features + predictions + Parquet);
    ``basis`` says where the prediction rate comes from, ``date`` when it was measured;
    ``p99_target_ms`` and ``meets_p99_target`` come from the service's file when it has them.
    """

    predictions_per_s: float
    p99_ms: float | None
    indicator_rows_per_s: float
    job_rows_per_s: float
    basis: str
    date: str
    p99_target_ms: float | None = None
    meets_p99_target: bool | None = None


_CAPACITY_KEYS = (
    "per_core_predictions_per_s",
    "predictions_per_s_per_core",
    "per_worker_predictions_per_s",
)


def serving_throughput(path: str | os.PathLike[str] | None = None) -> dict | None:
    """The service's measured capacity per core from ``results/serving/capacity.json``.

    Returns ``None`` when the file does not exist; else ``{"predictions_per_s", "p99_ms",
    "p99_target_ms", "meets_p99_target", "basis", "date"}``. The rate is the first non-null of
    ``per_core_predictions_per_s``, ``predictions_per_s_per_core`` and
    ``per_worker_predictions_per_s`` (ValueError naming the file when none is a number > 0);
    the others are read when present (``None`` otherwise).
    """
    p = Path(path) if path else CAPACITY_FILE
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: unreadable capacity file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object")
    key = next((k for k in _CAPACITY_KEYS if data.get(k) is not None), None)
    if key is None:
        raise ValueError(f"{p}: holds none of {list(_CAPACITY_KEYS)} (or all are null)")
    try:
        rate = float(data[key])
    except (TypeError, ValueError):
        rate = math.nan
    if not rate > 0:
        raise ValueError(f"{p}: {key} = {data[key]!r} is not a number > 0")
    p99 = data.get("p99_ms")
    target = data.get("p99_target_ms")
    meets = data.get("meets_p99_target")
    unit = "worker" if "worker" in key else "core"
    basis = f"service load test ({p.name}, HTTP, per {unit}"
    if target is not None:
        verdict = {True: "met", False: "NOT met: peak rate", None: "not stated"}[meets]
        basis += f"; p99 target {float(target):g} ms {verdict}"
    return {
        "predictions_per_s": rate,
        "p99_ms": float(p99) if p99 is not None else None,
        "p99_target_ms": float(target) if target is not None else None,
        "meets_p99_target": meets if isinstance(meets, bool) else None,
        "basis": basis + ")",
        "date": str(data.get("date", "")),
    }


def measure_throughput(
    model, prices: pd.DataFrame, *, batch: int = 10_000, repeat: int = 5
) -> Throughput:
    """Measure this machine's per-core rates on ``prices`` with ``model`` (a loaded model).

    One thread throughout (ONNX Runtime session of the model as loaded, Numba limited to
    one thread) so the rates are per core. Predictions: ``predict_proba`` on blocks of
    ``batch`` feature rows; indicators: ``compute_indicators(numba_parallel)``; the job:
    features + predictions for every row. Median of ``repeat`` timed calls, warm-up excluded.
    The prediction rate is replaced by the service's when ``serving_throughput()`` finds a
    measurement file.
    """
    import numba

    from nepse_perf.bench.timing import measure
    from nepse_perf.model import feature_frame, predict_proba
    from nepse_perf.pipeline import compute_indicators

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        feats = feature_frame(prices)
        X = feats.to_numpy()
        X = X[np.isfinite(X).all(axis=1)]
        reps = max(1, math.ceil(batch / len(X)))
        X = np.tile(X, (reps, 1))[:batch]
        t_pred = measure(lambda: predict_proba(model, X, engine="onnx"), repeat=repeat).median
        t_ind = measure(lambda: compute_indicators(prices, "numba_parallel"), repeat=repeat).median

        def job() -> None:
            f = feature_frame(prices).to_numpy()
            ok = np.isfinite(f).all(axis=1)
            predict_proba(model, f[ok], engine="onnx")

        t_job = measure(job, repeat=repeat).median
    finally:
        numba.set_num_threads(previous)
    pred = len(X) / t_pred
    basis = f"in-process ONNX Runtime, one thread, batch of {len(X):,} (no HTTP)"
    p99 = target = meets = None
    date = time.strftime("%Y-%m-%d")
    service = serving_throughput()
    if service is not None:
        pred, p99, basis = service["predictions_per_s"], service["p99_ms"], service["basis"]
        target, meets = service["p99_target_ms"], service["meets_p99_target"]
    return Throughput(
        predictions_per_s=pred,
        p99_ms=p99,
        indicator_rows_per_s=len(prices) / t_ind,
        job_rows_per_s=len(prices) / t_job,
        basis=basis,
        date=date,
        p99_target_ms=target,
        meets_p99_target=meets,
    )


def cost_table(
    instances: pd.DataFrame,
    throughput: Throughput,
    *,
    market_rows: int,
    bytes_per_row: int | None = None,
) -> pd.DataFrame:
    """Cost per million predictions and per nightly recompute, per instance, on-demand and spot.

    CPU rows: predictions/s = per-core rate x vCPUs; the nightly recompute of
    ``market_rows`` rows takes rows / (job rate per core x vCPUs) seconds, billed at least
    ``MIN_BILLED_S``. GPU rows: the indicator part is estimated from the GPU's memory
    bandwidth (``bytes_per_row`` bytes moved per row, default the pipeline's
    ``BYTES_PER_ROW``), the model still runs on the instance's vCPUs; ``basis`` says
    "estimate (GPU specification)". Returns one row per instance with the price's
    ``price_date`` and ``source`` beside every cost.
    """
    from nepse_perf.bench.machine import BYTES_PER_ROW

    bpr = bytes_per_row or BYTES_PER_ROW
    rows = []
    for r in instances.itertuples(index=False):
        pred_s = throughput.predictions_per_s * r.vcpus
        job_s = market_rows / (throughput.job_rows_per_s * r.vcpus)
        basis = f"measured per core x {r.vcpus} vCPUs"
        if r.family == "gpu" and r.gpu_mem_bw_gbs == r.gpu_mem_bw_gbs:  # not NaN
            # indicators on the GPU (bandwidth bound), the rest of the job on the vCPUs
            ind_cpu_s = market_rows / (throughput.indicator_rows_per_s * r.vcpus)
            ind_gpu_s = market_rows * bpr / (r.gpu_mem_bw_gbs * 1e9)
            job_s = max(job_s - ind_cpu_s, 0.0) + ind_gpu_s
            basis = (
                f"estimate (GPU specification: {r.gpu} {r.gpu_mem_bw_gbs:g} GB/s) + CPU measured"
            )
        billed = max(job_s, MIN_BILLED_S)
        rows.append(
            {
                "instance": r.instance,
                "family": r.family,
                "arch": r.arch,
                "vcpus": r.vcpus,
                "predictions_per_s": pred_s,
                "usd_per_million_on_demand": r.on_demand_usd_h / (pred_s * 3600) * 1e6,
                "usd_per_million_spot": r.spot_usd_h / (pred_s * 3600) * 1e6,
                "nightly_s": job_s,
                "nightly_usd_on_demand": r.on_demand_usd_h * billed / 3600,
                "nightly_usd_spot": r.spot_usd_h * billed / 3600,
                "throughput_basis": basis,
                "price_date": r.price_date,
                "source": r.source,
            }
        )
    return pd.DataFrame(rows)


def right_size(
    table: pd.DataFrame,
    demand_per_s: float,
    *,
    p99_target_ms: float | None = None,
    measured_p99_ms: float | None = None,
    meets_p99_target: bool | None = None,
    utilisation: float = 0.8,
) -> pd.DataFrame:
    """Instances of each type needed for ``demand_per_s`` predictions per second, cheapest first.

    Each instance is loaded to at most ``utilisation`` of its ``predictions_per_s``; the
    count is the ceiling of demand / usable capacity and the cost per hour is count x
    on-demand price. ``meets_p99`` is True when the capacity was measured at a p99 at or
    below ``p99_target_ms``, False when above or when ``meets_p99_target`` is False (the
    service's file says no measured rate met its target), and None when no latency was
    measured (an in-process rate has none: the table then sizes throughput only).
    """
    if not demand_per_s > 0:
        raise ValueError(f"demand_per_s must be > 0, got {demand_per_s}")
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation}")
    ok = None
    if p99_target_ms is not None and measured_p99_ms is not None:
        ok = bool(measured_p99_ms <= p99_target_ms)
    if meets_p99_target is False:
        ok = False
    out = table[["instance", "family", "vcpus", "predictions_per_s", "price_date", "source"]].copy()
    cpu = table["family"] != "gpu"
    out = out[cpu.to_numpy()]
    out["count"] = np.ceil(demand_per_s / (out["predictions_per_s"] * utilisation)).astype(int)
    prices = (
        table.loc[cpu, "usd_per_million_on_demand"]
        * table.loc[cpu, "predictions_per_s"]
        * 3600
        / 1e6
    )
    out["usd_h"] = out["count"] * prices.to_numpy()
    out["meets_p99"] = ok
    return out.sort_values(["usd_h", "count"], kind="stable").reset_index(drop=True)


def billed_duration_s(request_s: float, serverless: pd.Series) -> float:
    """The duration a serverless platform bills for one invocation of ``request_s`` seconds.

    Rounded up to the billing step (``serverless["billing_ms"]``, 1 ms on Lambda), and never
    less than one step: a handler that returns in microseconds is billed a whole millisecond.
    ``request_s`` should be the invocation's duration; a handler timed in-process leaves out
    what the runtime does around it, so on Lambda only the ``Billed Duration`` of its REPORT
    log line is the real figure. ``ValueError`` for a negative or non-finite duration.
    """
    if not (math.isfinite(request_s) and request_s >= 0):
        raise ValueError(f"request_s must be a finite number >= 0, got {request_s}")
    step = serverless["billing_ms"] / 1000
    return max(math.ceil(request_s / step - 1e-9), 1) * step


def _serverless_per_request(
    request_s: float, memory_gb: float, serverless: pd.Series, frontend_per_million_usd: float
) -> float:
    """USD of one request: the function's request price, its billed GB-seconds, the front end."""
    per_request = (serverless["per_million_requests_usd"] + frontend_per_million_usd) / 1e6
    duration = billed_duration_s(request_s, serverless) * memory_gb
    return per_request + duration * serverless["per_gb_second_usd"]


def break_even(
    rates_per_s: np.ndarray,
    *,
    request_s: float,
    memory_gb: float,
    serverless: pd.Series,
    instance_usd_h: float,
    instance_capacity_per_s: float,
    utilisation: float | None = None,
    min_replicas: int = 1,
    frontend_per_million_usd: float = 0.0,
) -> pd.DataFrame:
    """Monthly cost (USD, 730 hours) of serving ``rates_per_s`` single-prediction requests.

    * ``serverless``: requests x (per-request price + ``frontend_per_million_usd`` / 1e6, the
      HTTP front end's price: an API Gateway HTTP API has one, a Lambda function URL none) +
      requests x billed duration x ``memory_gb`` x GB-second price, the duration
      ``request_s`` billed as :func:`billed_duration_s` says (a row of :func:`load_serverless`);
    * ``always_on``: one instance all month; ``NaN`` where the rate exceeds its
      ``instance_capacity_per_s``;
    * ``fleet``: an HPA-managed fleet of such instances at ``utilisation`` of capacity,
      at least ``min_replicas`` (steady rate: ceil(rate / (capacity x utilisation)) replicas).
      ``utilisation`` defaults to the HPA target of ``deploy/k8s/hpa.yaml``
      (``nepse_perf.lessons.hpa.HPAConfig().target``; the tests keep the two equal).
    """
    if utilisation is None:
        from nepse_perf.lessons.hpa import HPAConfig

        utilisation = HPAConfig().target
    rates = np.asarray(rates_per_s, dtype=np.float64)
    requests = rates * 730 * 3600
    per_request = _serverless_per_request(
        request_s, memory_gb, serverless, frontend_per_million_usd
    )
    always = np.where(rates <= instance_capacity_per_s, instance_usd_h * 730, np.nan)
    replicas = np.maximum(np.ceil(rates / (instance_capacity_per_s * utilisation)), min_replicas)
    return pd.DataFrame(
        {
            "rate_per_s": rates,
            "serverless_usd": requests * per_request,
            "always_on_usd": always,
            "fleet_usd": replicas * instance_usd_h * 730,
            "fleet_replicas": replicas.astype(int),
        }
    )


def break_even_rate(
    *,
    request_s: float,
    memory_gb: float,
    serverless: pd.Series,
    instance_usd_h: float,
    frontend_per_million_usd: float = 0.0,
) -> float:
    """Steady request rate (per second) above which one always-on instance costs less than
    serverless: instance price per second / serverless price per request (the request's
    ``request_s`` billed as :func:`billed_duration_s` says, at ``memory_gb``, plus
    ``frontend_per_million_usd`` / 1e6 for the HTTP front end, 0 for a function URL)."""
    per_request = _serverless_per_request(
        request_s, memory_gb, serverless, frontend_per_million_usd
    )
    return instance_usd_h / 3600 / per_request
