"""The scaling experiments of notebook 10: rate sweeps per configuration, capacity, records.

Every measurement starts real processes (``nepse-perf serve``, nginx) on loopback, drives
them with the open-loop generator of :mod:`.loadtest` and stops them. On a small machine the
generator shares the cores with the servers: the numbers are this machine's, noisy, and
each is reported with its configuration.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
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
    "Placement",
    "capacity_at_p99",
    "capacity_or_peak",
    "capacity_spread",
    "capacity_summary",
    "choose_setting",
    "median_sweeps",
    "placement",
    "rate_sweep",
    "repeat_sweeps",
    "serve",
    "serve_many",
    "sweep_config",
    "sweep_spread",
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
    client_cpus: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One open-loop run per offered rate (ascending) against ``url``; one row per rate.

    A short warm-up run (``warmup_s`` at the lowest rate, not reported) opens connections
    and warms caches first. Columns: offered/achieved requests per second, p50/p95/p99/max
    latency (ms, from the scheduled send), the number of failed requests and the share
    answered 200. ``rows`` rows per request (achieved predictions/s = achieved x rows).
    Once the achieved rate falls below ``stop_below`` x offered (saturated), higher rates
    are skipped: they would only lengthen the queue. ``timeout`` per request (s).
    ``client_cpus``: run the generator in a thread pinned to these CPUs (Linux), apart
    from a server pinned elsewhere (see :func:`placement`); None leaves it unpinned.
    """
    if client_cpus:
        cpus = set(client_cpus)
        return _on_cpus(
            cpus,
            lambda: rate_sweep(
                url,
                rates,
                duration=duration,
                rows=rows,
                warmup_s=warmup_s,
                connections=connections,
                seed=seed,
                stop_below=stop_below,
                timeout=timeout,
            ),
        )
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


def _on_cpus(cpus: set[int], work: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``work()`` in a fresh thread pinned to ``cpus`` (Linux pins the calling thread only,
    so the caller's own affinity is left as it was)."""

    def pinned() -> pd.DataFrame:
        os.sched_setaffinity(0, cpus)
        return work()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(pinned).result()


@dataclass(frozen=True)
class Placement:
    """Where a configuration's servers and the load generator run.

    ``server`` is the ``--cpus`` value for the servers (None: unpinned), ``client`` the
    generator's CPUs (None: unpinned); ``apart`` says whether the two have separate cores.
    """

    server: str | None
    client: tuple[int, ...] | None
    apart: bool

    @property
    def label(self) -> str:
        """``"own core(s)"`` or ``"shares the servers' cores"``: the generator's place."""
        return "own core(s)" if self.apart else "shares the servers' cores"


def placement(server_processes: int, cores: Sequence[int] | None = None) -> Placement:
    """Pin ``server_processes`` single-thread servers apart from the generator if cores allow.

    With more usable ``cores`` (default: this process's affinity) than server processes,
    the servers get the first ``server_processes`` cores and the generator the rest.
    Otherwise neither is pinned and ``apart`` is False, so a table can say that the
    generator competed with the servers for the CPUs.
    """
    cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
    if len(cores) > server_processes >= 1:
        server = ",".join(str(c) for c in cores[:server_processes])
        return Placement(server, tuple(cores[server_processes:]), True)
    return Placement(None, None, False)


def repeat_sweeps(
    urls: dict[str, str],
    rates: Sequence[float],
    *,
    reps: int,
    client_cpus: dict[str, Sequence[int] | None] | None = None,
    **sweep: object,
) -> pd.DataFrame:
    """``reps`` rounds of :func:`rate_sweep` over every ``urls`` entry (label -> URL).

    Round-robin: each round sweeps every configuration once, so slow drifts of the machine
    spread over all of them instead of landing on one. ``client_cpus`` (label -> CPUs)
    pins the generator per configuration; ``sweep`` passes on (duration, warmup_s, ...).
    One row per configuration, round and offered rate, with ``config`` and ``rep`` columns.
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps!r}")
    frames = []
    for rep in range(reps):
        for label, url in urls.items():
            cpus = (client_cpus or {}).get(label)
            df = rate_sweep(url, rates, client_cpus=cpus, **sweep)  # type: ignore[arg-type]
            frames.append(df.assign(config=label, rep=rep))
    runs = pd.concat(frames, ignore_index=True)
    return runs[["config", "rep", *COLUMNS]]


def sweep_spread(runs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and offered rate: the median of the rounds and their min-max.

    ``runs`` is :func:`repeat_sweeps`' table. Columns: ``reps`` (rounds that reached the
    rate: a saturated round stops early), the median, min and max of the achieved rate and
    of p99, and the failed requests summed over the rounds.
    """
    g = runs.groupby(["config", "offered_rps"], sort=False)
    out = pd.DataFrame(
        {
            "reps": g.size(),
            "achieved_rps": g["achieved_rps"].median(),
            "achieved_min": g["achieved_rps"].min(),
            "achieved_max": g["achieved_rps"].max(),
            "p99_ms": g["p99_ms"].median(),
            "p99_min": g["p99_ms"].min(),
            "p99_max": g["p99_ms"].max(),
            "errors": g["errors"].sum(),
        }
    )
    return out


def median_sweeps(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One sweep per configuration (label -> :func:`rate_sweep`-shaped frame) of the rounds'
    medians at each offered rate; errors are summed. Feeds :func:`capacity_summary`."""
    out = {}
    for label, df in runs.groupby("config", sort=False):
        g = df.groupby("offered_rps", sort=True)
        med = g[[c for c in COLUMNS[1:] if c in df and c != "errors"]].median()
        med["errors"] = g["errors"].sum()
        out[str(label)] = med.reset_index()[[c for c in COLUMNS if c in df]]
    return out


def capacity_spread(
    runs: pd.DataFrame, p99_target_ms: float = 25.0, max_error_share: float = 0.0
) -> pd.DataFrame:
    """Per configuration: capacity within ``p99_target_ms`` and peak, median and min-max.

    Each round's capacity is :func:`capacity_at_p99` of that round alone (NaN when it met
    the target nowhere); ``capacity`` is their median and ``met`` the rounds that met it.
    ``peak`` is each round's highest achieved rate; ``saturated_at`` the lowest offered
    rate at which the rounds' median missed the objective (NaN: the grid never saturated
    this configuration). ``max_error_share`` as for :func:`capacity_at_p99`.
    """
    rows = {}
    for label, df in runs.groupby("config", sort=False):
        caps = [
            capacity_at_p99(r, p99_target_ms, 0.95, max_error_share).rps
            for _, r in df.groupby("rep")
        ]
        peaks = df.groupby("rep")["achieved_rps"].max()
        med = median_sweeps(df)[str(label)]
        bad = med[~_meets(med, p99_target_ms, 0.95, max_error_share)]
        rows[label] = {
            "capacity": float(np.nanmedian(caps)) if np.isfinite(caps).any() else float("nan"),
            "capacity_min": float(np.nanmin(caps)) if np.isfinite(caps).any() else float("nan"),
            "capacity_max": float(np.nanmax(caps)) if np.isfinite(caps).any() else float("nan"),
            "met": int(np.isfinite(caps).sum()),
            "reps": len(caps),
            "peak": float(peaks.median()),
            "peak_min": float(peaks.min()),
            "peak_max": float(peaks.max()),
            "saturated_at": float(bad["offered_rps"].min()) if len(bad) else float("nan"),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("config")


def choose_setting(
    runs: pd.DataFrame, p99_target_ms: float = 25.0, max_error_share: float = 0.0
) -> tuple[str, str, list[str]]:
    """The configuration to make the default, from rounds at one offered rate, and why.

    Each configuration is judged by the median of its rounds (p99, achieved rate, share
    not answered 200), as in :func:`capacity_at_p99`. Among those whose medians met the
    objective the pick has the lowest median p99, and every configuration that met it
    with a p99 range (min-max over the rounds) overlapping the pick's is *equivalent*: the
    rounds cannot tell them apart. When none met it: the highest median achieved rate,
    equivalents by overlapping achieved ranges. Returns ``(label, basis, equivalents)``,
    the basis in words and the equivalents including the pick.
    """
    g = runs.groupby("config", sort=False)
    med = g[["offered_rps", "achieved_rps", "p99_ms", "errors", "ok_share"]].median()
    ok = _meets(med, p99_target_ms, 0.95, max_error_share)
    col, basis = "p99_ms", "lowest median p99 among the settings that met the objective"
    pool = med[ok]
    if pool.empty:
        col, basis = "achieved_rps", "highest median achieved rate (none met the objective)"
        pool = med
    pick = pool[col].idxmin() if col == "p99_ms" else pool[col].idxmax()
    lo, hi = g[col].min(), g[col].max()
    same = [str(k) for k in pool.index if lo[k] <= hi[pick] and lo[pick] <= hi[k]]
    return str(pick), basis, same


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


def _meets(
    sweep: pd.DataFrame, p99_target_ms: float, keep_up: float, max_error_share: float
) -> pd.Series:
    """Which points met the objective: p99, kept up with the offered rate, few failures."""
    if max_error_share > 0:
        few_failures = (1 - sweep["ok_share"]) <= max_error_share
    else:
        few_failures = sweep["errors"] == 0
    return (
        (sweep["p99_ms"] <= p99_target_ms)
        & (sweep["achieved_rps"] >= keep_up * sweep["offered_rps"])
        & few_failures
    )


def capacity_at_p99(
    sweep: pd.DataFrame,
    p99_target_ms: float = 25.0,
    keep_up: float = 0.95,
    max_error_share: float = 0.0,
) -> Capacity:
    """Capacity of a configuration from its rate sweep.

    Among the points with p99 <= ``p99_target_ms``, an achieved rate of at least
    ``keep_up`` x offered (the server kept up) and no failed request (or, with
    ``max_error_share`` > 0, at most that share of requests not answered 200: shed, failed
    or timed out), the one with the highest achieved rate. NaN fields when none qualifies.
    """
    ok = sweep[_meets(sweep, p99_target_ms, keep_up, max_error_share)]
    if ok.empty:
        return Capacity(float("nan"), float("nan"), float("nan"))
    best = ok.loc[ok["achieved_rps"].idxmax()]
    return Capacity(float(best["achieved_rps"]), float(best["p99_ms"]), float(best["offered_rps"]))


def _peak(sweep: pd.DataFrame) -> Capacity:
    best = sweep.loc[sweep["achieved_rps"].idxmax()]
    return Capacity(float(best["achieved_rps"]), float(best["p99_ms"]), float(best["offered_rps"]))


def capacity_or_peak(
    sweep: pd.DataFrame,
    p99_target_ms: float = 25.0,
    keep_up: float = 0.95,
    max_error_share: float = 0.0,
) -> tuple[Capacity, bool]:
    """:func:`capacity_at_p99`, or, when no point met the target, the highest achieved rate
    with its p99; the flag says whether the p99 target was met."""
    cap = capacity_at_p99(sweep, p99_target_ms, keep_up, max_error_share)
    if np.isfinite(cap.rps):
        return cap, True
    return _peak(sweep), False


def capacity_summary(
    sweeps: dict[str, pd.DataFrame],
    worker_label: str,
    cores: int | dict[str, int],
    p99_target_ms: float = 25.0,
    max_error_share: float = 0.0,
) -> dict:
    """Per-worker and per-core capacity from a set of rate sweeps, on one consistent basis.

    Per worker: :func:`capacity_or_peak` of ``sweeps[worker_label]`` (one single-thread
    worker). When that met the p99 target, per core is the best capacity among the
    configurations that met it, each divided by its cores; when it did not, both are peak
    rates (per core: the best peak per core) and ``meets_p99_target`` is False, so the two
    numbers never mix a latency-bounded rate with a throughput. ``cores``: the cores the
    servers had, one number for all or one per label (a worker pinned to one core has one,
    an unpinned one the machine's). Returns the keyword arguments of :func:`write_capacity`
    (less path, configuration and machine) plus ``per_core_from`` (the configuration used)
    and ``per_core_cores`` (its cores). ``max_error_share`` as for :func:`capacity_at_p99`.
    """
    ncores = cores if isinstance(cores, dict) else dict.fromkeys(sweeps, cores)
    caps = {
        k: capacity_or_peak(df, p99_target_ms, 0.95, max_error_share) for k, df in sweeps.items()
    }
    worker, met = caps[worker_label]
    if met:
        pool = {k: c for k, (c, ok) in caps.items() if ok}
    else:  # throughput basis: each configuration's highest achieved rate
        pool = {k: _peak(df) for k, df in sweeps.items()}
        worker = pool[worker_label]
    best = max(pool, key=lambda k: pool[k].rps / ncores[k])
    peaks = {k: float(df["achieved_rps"].max()) for k, df in sweeps.items()}
    return {
        "per_worker_rps": worker.rps,
        "per_core_rps": pool[best].rps / ncores[best],
        "p99_ms": worker.p99_ms,
        "meets_p99_target": met,
        "peak_per_worker_rps": peaks[worker_label],
        "peak_per_core_rps": max(peaks[k] / ncores[k] for k in peaks),
        "p99_target_ms": p99_target_ms,
        "per_core_from": best,
        "per_core_cores": ncores[best],
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
