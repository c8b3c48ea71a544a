"""The scaling experiments of notebook 10: rate sweeps per configuration, capacity, records.

Every measurement starts real processes (``nepse-perf serve``, nginx) on loopback, drives
them with the open-loop generator of :mod:`.loadtest` and stops them. On a small machine the
generator shares the cores with the servers: the numbers are this machine's, noisy, and
each is reported with its configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from nepse_perf.bench.loadtest import features_body, run_loadtest, sample_feature_rows
from nepse_perf.serving.nginx import NginxBalancer
from nepse_perf.serving.process import ServiceProcess

__all__ = [
    "Capacity",
    "capacity_at_p99",
    "capacity_or_peak",
    "capacity_summary",
    "rate_sweep",
    "serve",
    "serve_many",
    "sweep_config",
    "write_capacity",
]

COLUMNS = [
    "offered_rps",
    "achieved_rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "errors",
    "ok_share",
]


def rate_sweep(
    url: str,
    rates: Sequence[float],
    *,
    duration: float = 2.0,
    rows: int = 1,
    warmup_s: float = 0.5,
    connections: int = 64,
    seed: int = 0,
    stop_below: float | None = 0.7,
    timeout: float = 5.0,
) -> pd.DataFrame:
    """One open-loop run per offered rate (ascending) against ``url``; one row per rate.

    A short warm-up run (``warmup_s`` at the lowest rate, not reported) opens connections
    and warms caches first. Columns: offered/achieved requests per second, p50/p95/p99/max
    latency (ms, from the scheduled send), the number of failed requests and the share
    answered 200. ``rows`` rows per request (achieved predictions/s = achieved x rows).
    Once the achieved rate falls below ``stop_below`` x offered (saturated), higher rates
    are skipped: they would only lengthen the queue. ``timeout`` per request (s).
    """
    body = features_body(sample_feature_rows(max(rows, 1), seed=seed))
    if warmup_s > 0:
        run_loadtest(url, rate=min(rates), duration=warmup_s, rows=rows, body=body)
    records = []
    for rate in sorted(rates):
        if stop_below is not None and records:
            last = records[-1]
            if last["achieved_rps"] < stop_below * last["offered_rps"]:
                break
        r = run_loadtest(
            url,
            rate=rate,
            duration=duration,
            rows=rows,
            body=body,
            connections=connections,
            timeout=timeout,
        )
        records.append(
            {
                "offered_rps": r.offered_rps,
                "achieved_rps": r.achieved_rps,
                "p50_ms": r.p50_ms,
                "p95_ms": r.p95_ms,
                "p99_ms": r.p99_ms,
                "max_ms": r.max_ms,
                "errors": sum(r.errors.values()),
                "ok_share": r.completed_ok / r.scheduled,
            }
        )
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def sweep_prices() -> os.PathLike[str]:
    """The prices the load experiments' services load: the sample.

    The sweeps post feature rows (``/v1/predict/features``), which never read prices; the
    services only load them at start-up, and the sample loads in a fraction of the market's
    time, which a grid of a dozen services pays a dozen times.
    """
    from nepse_perf.data import sample_path

    return sample_path()


@contextlib.contextmanager
def serve_many(
    model_dir: str | os.PathLike[str], configs: dict[str, dict]
) -> Iterator[dict[str, str]]:
    """Start one service per ``configs`` entry (label -> serve options) at once; yield URLs.

    All processes start together (their start-up overlaps) and idle until measured, so a
    grid of configurations costs one start-up instead of one per configuration. Each is
    stopped on exit. Unless an entry names ``prices``, each serves the sample (see
    :func:`sweep_prices`).
    """
    procs = {
        label: ServiceProcess(model_dir, **{"prices": sweep_prices(), **opts})
        for label, opts in configs.items()
    }
    try:
        for p in procs.values():
            p.launch()
        for p in procs.values():
            p.wait_ready()
        yield {label: p.url for label, p in procs.items()}
    finally:
        for p in procs.values():
            p.close()


@contextlib.contextmanager
def serve(
    model_dir: str | os.PathLike[str], *, instances: int = 1, **options: object
) -> Iterator[str]:
    """Start ``instances`` services (``options`` as for ``nepse-perf serve``); yield a URL.

    One instance: its own URL. Several: each a separate process on its own port, behind a
    real nginx (least connections) whose URL is yielded. Everything is stopped on exit.
    Unless ``options`` name ``prices``, the services serve the sample (:func:`sweep_prices`).
    """
    options = {"prices": sweep_prices(), **options}
    procs = [ServiceProcess(model_dir, **options) for _ in range(instances)]
    balancer = None
    try:
        for p in procs:
            p.start()
        if instances == 1:
            yield procs[0].url
        else:
            balancer = NginxBalancer([(p.host, p.port) for p in procs]).start()
            yield balancer.url
    finally:
        if balancer is not None:
            balancer.stop()
        for p in procs:
            p.close()


def sweep_config(
    model_dir: str | os.PathLike[str],
    rates: Sequence[float],
    *,
    label: str,
    instances: int = 1,
    duration: float = 2.0,
    rows: int = 1,
    **options: object,
) -> pd.DataFrame:
    """:func:`rate_sweep` of one configuration, started and stopped here; adds ``label``."""
    with serve(model_dir, instances=instances, **options) as url:
        df = rate_sweep(url, rates, duration=duration, rows=rows)
    df.insert(0, "config", label)
    return df


@dataclass(frozen=True)
class Capacity:
    """The highest achieved rate that met the p99 target (and its p99), or NaN when none."""

    rps: float
    p99_ms: float
    offered_rps: float


def capacity_at_p99(
    sweep: pd.DataFrame, p99_target_ms: float = 25.0, keep_up: float = 0.95
) -> Capacity:
    """Capacity of a configuration from its rate sweep.

    Among the points with p99 <= ``p99_target_ms``, no failed request, and an achieved rate
    of at least ``keep_up`` x offered (the server kept up), the one with the highest
    achieved rate. NaN fields when no point qualifies.
    """
    ok = sweep[
        (sweep["p99_ms"] <= p99_target_ms)
        & (sweep["errors"] == 0)
        & (sweep["achieved_rps"] >= keep_up * sweep["offered_rps"])
    ]
    if ok.empty:
        return Capacity(float("nan"), float("nan"), float("nan"))
    best = ok.loc[ok["achieved_rps"].idxmax()]
    return Capacity(float(best["achieved_rps"]), float(best["p99_ms"]), float(best["offered_rps"]))


def _peak(sweep: pd.DataFrame) -> Capacity:
    best = sweep.loc[sweep["achieved_rps"].idxmax()]
    return Capacity(float(best["achieved_rps"]), float(best["p99_ms"]), float(best["offered_rps"]))


def capacity_or_peak(
    sweep: pd.DataFrame, p99_target_ms: float = 25.0, keep_up: float = 0.95
) -> tuple[Capacity, bool]:
    """:func:`capacity_at_p99`, or, when no point met the target, the highest achieved rate
    with its p99; the flag says whether the p99 target was met."""
    cap = capacity_at_p99(sweep, p99_target_ms, keep_up)
    if np.isfinite(cap.rps):
        return cap, True
    return _peak(sweep), False


def capacity_summary(
    sweeps: dict[str, pd.DataFrame],
    worker_label: str,
    cores: int,
    p99_target_ms: float = 25.0,
) -> dict:
    """Per-worker and per-core capacity from a set of rate sweeps, on one consistent basis.

    Per worker: :func:`capacity_or_peak` of ``sweeps[worker_label]`` (one single-thread
    worker). When that met the p99 target, per core is the best capacity among the
    configurations that met it, divided by ``cores``; when it did not, both are peak rates
    (per core: the best peak / ``cores``) and ``meets_p99_target`` is False, so the two
    numbers never mix a latency-bounded rate with a throughput. Returns the keyword
    arguments of :func:`write_capacity` (less path, configuration and machine) plus
    ``per_core_from`` (the configuration used).
    """
    caps = {k: capacity_or_peak(df, p99_target_ms) for k, df in sweeps.items()}
    worker, met = caps[worker_label]
    if met:
        pool = {k: c for k, (c, ok) in caps.items() if ok}
    else:  # throughput basis: each configuration's highest achieved rate
        pool = {k: _peak(df) for k, df in sweeps.items()}
        worker = pool[worker_label]
    best = max(pool, key=lambda k: pool[k].rps)
    peaks = {k: float(df["achieved_rps"].max()) for k, df in sweeps.items()}
    return {
        "per_worker_rps": worker.rps,
        "per_core_rps": pool[best].rps / cores,
        "p99_ms": worker.p99_ms,
        "meets_p99_target": met,
        "peak_per_worker_rps": peaks[worker_label],
        "peak_per_core_rps": max(peaks.values()) / cores,
        "p99_target_ms": p99_target_ms,
        "per_core_from": best,
    }


def write_capacity(
    path: str | os.PathLike[str],
    *,
    per_worker_rps: float,
    per_core_rps: float,
    p99_ms: float,
    meets_p99_target: bool,
    peak_per_worker_rps: float,
    peak_per_core_rps: float,
    p99_target_ms: float,
    configuration: dict,
    machine: dict,
    sweeps: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write the measured service capacity as JSON (read by the cost model of notebook 11).

    ``per_worker_rps`` and ``per_core_rps`` are predictions per second at the p99 target
    (from :func:`capacity_or_peak`: when no measured point met it, the peak rate, with
    ``meets_p99_target`` False and ``p99_ms`` the p99 measured there); ``peak_per_*`` the
    highest achieved rates whatever the latency. Rates must be > 0 (the cost model of
    notebook 11 divides by them);
    ``configuration`` says how they were measured (workers, threads, batching, rows per
    request, durations); ``machine`` is ``bench.machine.machine_info()``; ``sweeps`` (label
    -> rate sweep) are stored alongside for reference. Returns the path.
    """

    for name, value in (("per_worker_rps", per_worker_rps), ("per_core_rps", per_core_rps)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a measured rate > 0, got {value!r}")

    def clean(value: object) -> object:
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    record = {
        "what": "prediction service capacity (POST /v1/predict/features, open-loop load test)",
        "per_worker_predictions_per_s": clean(float(per_worker_rps)),
        "per_core_predictions_per_s": clean(float(per_core_rps)),
        "p99_ms": clean(float(p99_ms)),
        "meets_p99_target": bool(meets_p99_target),
        "peak_per_worker_predictions_per_s": clean(float(peak_per_worker_rps)),
        "peak_per_core_predictions_per_s": clean(float(peak_per_core_rps)),
        "p99_target_ms": float(p99_target_ms),
        "configuration": configuration,
        "machine": {k: machine.get(k) for k in sorted(machine)},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "sweeps": {
            label: [{k: clean(v) for k, v in row.items()} for row in df.to_dict("records")]
            for label, df in (sweeps or {}).items()
        },
        "note": "measured on a shared machine with the load generator on the same cores: a "
        "lower bound for a dedicated core; re-measure on the target hardware",
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return p
