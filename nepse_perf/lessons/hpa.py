"""The Kubernetes Horizontal Pod Autoscaler's algorithm, simulated over a NEPSE trading day.

Kubernetes cannot run here, so its documented controller logic is reimplemented and driven
by the per-pod capacity measured on this machine (kubernetes.io, "Horizontal Pod
Autoscaling", and ``pkg/controller/podautoscaler`` of kubernetes/kubernetes):

* every ``sync_period_s`` (15 s) the controller reads the average utilization of the
  *ready* pods and computes ``desired = ceil(ready x utilization / target)``; no change
  when the ratio is within ``tolerance`` (0.1) of 1.0;
* on a scale-up with pods not yet ready, those count as 0 % and the ratio is recomputed;
  if that reverses the direction or falls within the tolerance, nothing changes;
* stabilisation: the recommendation is the lowest of the last ``scale_up_window_s`` (0 s)
  and the highest of the last ``scale_down_window_s`` (300 s);
* rate limits (``behavior`` defaults): scale up by at most max(4 pods, 100 %) per 15 s,
  scale down by at most 100 % per 15 s; then clamp to ``[min_replicas, max_replicas]``.

The simulated service: a pod becomes ready ``pod_start_s`` after it is created; its
utilization is offered requests per pod / ``pod_capacity_rps`` (the measured saturation
throughput of one pod, CPU-bound: 100 % CPU = capacity); load beyond the ready pods'
capacity is shed (503). p99 latency per second is interpolated from a measured
(utilization, p99) curve. Cost is pod-seconds (ready or starting) x ``price_per_pod_hour``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nepse_perf._infra.checks import positive_int
from nepse_perf.data.calendar import is_trading_weekday, weekdays_name

__all__ = [
    "HPAConfig",
    "HPAController",
    "PodModel",
    "ScalingPolicy",
    "desired_replicas",
    "nepse_trading_day_load",
    "pod_from_capacity",
    "replica_recommendation",
    "simulate",
    "summarise",
]

NPT = "Asia/Kathmandu"  # UTC+05:45


@dataclass(frozen=True)
class ScalingPolicy:
    """One HPA ``behavior`` policy: ``kind`` ``"Pods"`` or ``"Percent"``, per ``period_s``."""

    kind: str
    value: int
    period_s: int

    def __post_init__(self) -> None:
        if self.kind not in ("Pods", "Percent"):
            raise ValueError(f"policy kind must be 'Pods' or 'Percent', got {self.kind!r}")
        positive_int(self.value, "policy value")
        positive_int(self.period_s, "policy period_s")


@dataclass(frozen=True)
class HPAConfig:
    """An autoscaling/v2 HPA with one resource metric (average utilization, 0-1).

    Defaults are Kubernetes' (tolerance 0.1, 15 s sync, 300 s scale-down stabilisation,
    scale-up max(4 pods, 100 %) per 15 s, scale-down 100 % per 15 s); ``target`` is the
    ``averageUtilization`` as a fraction; ``select_policy`` ``"Max"`` picks the policy
    allowing the largest change (Kubernetes' default).
    """

    min_replicas: int = 2
    max_replicas: int = 10
    target: float = 0.6
    tolerance: float = 0.1
    sync_period_s: int = 15
    scale_up_window_s: int = 0
    scale_down_window_s: int = 300
    scale_up_policies: tuple[ScalingPolicy, ...] = (
        ScalingPolicy("Pods", 4, 15),
        ScalingPolicy("Percent", 100, 15),
    )
    scale_down_policies: tuple[ScalingPolicy, ...] = (ScalingPolicy("Percent", 100, 15),)
    select_policy: str = "Max"

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 1 <= min_replicas <= max_replicas")
        if not self.target > 0:
            raise ValueError(f"target must be > 0, got {self.target}")
        if self.select_policy not in ("Max", "Min"):
            raise ValueError("select_policy must be 'Max' or 'Min'")


def desired_replicas(
    current_replicas: int, current_metric: float, target_metric: float, tolerance: float = 0.1
) -> int:
    """``ceil(current_replicas x current_metric / target_metric)``, unchanged within tolerance.

    The formula of the HPA documentation: 200m measured against a 100m target doubles the
    replicas, 50m halves them; a ratio within ``tolerance`` of 1.0 keeps them.
    """
    ratio = current_metric / target_metric
    if abs(ratio - 1.0) <= tolerance:
        return current_replicas
    return math.ceil(current_replicas * ratio)


def replica_recommendation(
    ready_utilizations: Sequence[float],
    n_unready: int,
    target: float,
    tolerance: float = 0.1,
) -> int:
    """The replica calculator's answer for one resource metric (before behaviour limits).

    ``ready_utilizations`` per ready pod (fractions of the request), ``n_unready`` pods not
    yet ready. As in Kubernetes' ``GetResourceReplicas``: the ratio of the ready pods'
    mean to ``target``; on a scale-up with unready pods, those count as 0 and the ratio is
    recomputed; a reversed direction or a ratio within ``tolerance`` keeps the current
    count (ready + unready).
    """
    current = len(ready_utilizations) + n_unready
    if not ready_utilizations:
        return current
    ratio = float(np.mean(ready_utilizations)) / target
    if not (n_unready > 0 and ratio > 1.0):
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * len(ready_utilizations))
    new_ratio = float(np.sum(ready_utilizations)) / current / target
    if abs(1.0 - new_ratio) <= tolerance or new_ratio < 1.0:
        return current
    new = math.ceil(new_ratio * current)
    return max(new, current)


@dataclass
class HPAController:
    """The controller's state: recommendation history and scale events (for rate limits)."""

    config: HPAConfig
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_events: list[tuple[float, int]] = field(default_factory=list)  # (time, +/- change)

    def _change_in_period(self, now: float, period: int, sign: int) -> int:
        return sum(abs(c) for t, c in self.scale_events if t > now - period and c * sign > 0)

    def _limit(self, current: int, now: float, up: bool) -> int:
        cfg = self.config
        policies = cfg.scale_up_policies if up else cfg.scale_down_policies
        choose = max if (cfg.select_policy == "Max") == up else min
        result = None
        for p in policies:
            added = self._change_in_period(now, p.period_s, +1)
            removed = self._change_in_period(now, p.period_s, -1)
            start = current - added + removed
            if up:
                proposed = (
                    start + p.value if p.kind == "Pods" else math.ceil(start * (1 + p.value / 100))
                )
            else:
                proposed = start - p.value if p.kind == "Pods" else int(start * (1 - p.value / 100))
            result = proposed if result is None else choose(result, proposed)
        return current if result is None else result

    def step(self, now: float, current: int, recommendation: int) -> int:
        """The new replica count at time ``now`` (s) given the calculator's recommendation.

        Stabilises (lowest in the scale-up window, highest in the scale-down window),
        applies the rate limits and the min/max, and records the event.
        """
        cfg = self.config
        up_rec = down_rec = recommendation
        for t, rec in self.recommendations:
            if t > now - cfg.scale_up_window_s:
                up_rec = min(up_rec, rec)
            if t > now - cfg.scale_down_window_s:
                down_rec = max(down_rec, rec)
        self.recommendations = [
            (t, r)
            for t, r in self.recommendations
            if t > now - max(cfg.scale_up_window_s, cfg.scale_down_window_s)
        ]
        self.recommendations.append((now, recommendation))
        desired = current
        desired = max(desired, up_rec)
        desired = min(desired, down_rec)
        if desired > current:
            desired = min(desired, max(self._limit(current, now, True), current), cfg.max_replicas)
        elif desired < current:
            desired = max(desired, self._limit(current, now, False), cfg.min_replicas)
        desired = min(max(desired, cfg.min_replicas), cfg.max_replicas)
        if desired != current:
            self.scale_events.append((now, desired - current))
        return desired


def nepse_trading_day_load(
    peak_rps: float,
    *,
    date: str = "2026-11-30",
    base_fraction: float = 0.05,
    seed: int = 0,
) -> pd.Series:
    """Offered requests/s, one value per second, 10:30-15:30 Nepal time on ``date``.

    NEPSE trades 11:00-15:00 (UTC+05:45) on the regular weekdays in force on ``date``
    (:func:`nepse_perf.data.calendar.trading_weekdays`: Sunday-Thursday before 2026-04-10,
    Monday-Friday since); ``date`` must be one of them (``ValueError`` otherwise). The shape: ``base_fraction`` of ``peak_rps`` before the open and after the
    close, an opening spike to ``peak_rps`` within a minute of 11:00 decaying towards 40 %
    (20-minute time constant), a closing build-up to 70 % over the last half hour, and
    seeded multiplicative noise (5 %). Index: tz-aware timestamps (Asia/Kathmandu).
    """
    day = pd.Timestamp(date)
    if not is_trading_weekday(day):
        raise ValueError(
            f"{date} is a {day.day_name()}; NEPSE trades {weekdays_name(day)} on that date"
        )
    index = pd.date_range(f"{date} 10:30", f"{date} 15:30", freq="1s", inclusive="left", tz=NPT)
    t = (index - index[0]).total_seconds().to_numpy() / 60.0  # minutes since 10:30
    open_m, close_m = 30.0, 270.0
    rate = np.full(len(t), base_fraction)
    trading = (t >= open_m) & (t < close_m)
    since = t - open_m
    ramp = np.clip(since / 1.0, 0.0, 1.0)  # to the peak within a minute
    decay = 0.4 + 0.6 * np.exp(-np.clip(since - 1.0, 0.0, None) / 20.0)
    closing = np.where(t >= close_m - 30, 0.3 * (t - (close_m - 30)) / 30.0, 0.0)
    level = np.maximum(base_fraction, ramp * decay) + closing
    rate[trading] = level[trading]
    rng = np.random.default_rng(seed)
    rate *= 1.0 + 0.05 * rng.standard_normal(len(t))
    return pd.Series(np.clip(rate, 0.0, None) * peak_rps, index=index, name="offered_rps")


def simulate(
    load: pd.Series,
    pod_capacity_rps: float,
    *,
    config: HPAConfig | None = None,
    pod_start_s: int = 30,
    latency_curve: Sequence[tuple[float, float]] = ((0.0, 2.0), (0.5, 3.0), (0.9, 25.0)),
    overload_p99_ms: float = 1000.0,
    metric_window_s: int = 15,
    price_per_pod_hour: float = 0.05,
    initial_replicas: int | None = None,
) -> pd.DataFrame:
    """Run the HPA against ``load`` (offered requests/s per second, as from
    :func:`nepse_trading_day_load`) with pods of ``pod_capacity_rps`` each.

    Each second: ready pods share the load (beyond their total capacity it is shed);
    utilization = load per ready pod / capacity; p99 (ms) interpolated in
    ``latency_curve`` ((utilization, p99_ms) pairs, measured) and ``overload_p99_ms`` when
    shedding. Every ``sync_period_s`` the controller reads the mean utilization over the
    last ``metric_window_s`` seconds and scales. New pods are ready after ``pod_start_s``;
    removed pods go at once. Returns one row per second: ``offered_rps``, ``served_rps``,
    ``shed_rps``, ``ready``, ``pods`` (ready + starting), ``utilization``, ``p99_ms``,
    ``cost`` (cumulative, at ``price_per_pod_hour``).
    """
    cfg = config or HPAConfig()
    if pod_capacity_rps <= 0:
        raise ValueError(f"pod_capacity_rps must be > 0, got {pod_capacity_rps}")
    curve = np.asarray(latency_curve, dtype=np.float64)
    if curve.ndim != 2 or curve.shape[1] != 2 or len(curve) < 2:
        raise ValueError("latency_curve needs at least two (utilization, p99_ms) pairs")
    curve = curve[np.argsort(curve[:, 0])]
    ctrl = HPAController(cfg)
    n0 = initial_replicas or cfg.min_replicas
    pods = [-float(pod_start_s)] * n0  # creation times; the initial pods are ready
    offered = load.to_numpy(dtype=np.float64)
    n = len(offered)
    out = {k: np.zeros(n) for k in ("served_rps", "shed_rps", "ready", "pods", "utilization")}
    out["p99_ms"] = np.zeros(n)
    util_hist: list[float] = []
    for s in range(n):
        now = float(s)
        ready = sum(1 for c in pods if now - c >= pod_start_s)
        cap = ready * pod_capacity_rps
        served = min(offered[s], cap)
        util = served / cap if cap > 0 else 1.0
        shed = offered[s] - served
        p99 = (
            overload_p99_ms
            if shed > 1e-9
            else float(np.interp(util, curve[:, 0], curve[:, 1], right=overload_p99_ms))
        )
        util_hist.append(util)
        out["served_rps"][s], out["shed_rps"][s] = served, shed
        out["ready"][s], out["pods"][s], out["utilization"][s] = ready, len(pods), util
        out["p99_ms"][s] = p99
        if s > 0 and s % cfg.sync_period_s == 0:
            metric = float(np.mean(util_hist[-metric_window_s:]))
            unready = len(pods) - ready
            rec = replica_recommendation([metric] * ready, unready, cfg.target, cfg.tolerance)
            new = ctrl.step(now, len(pods), rec)
            if new > len(pods):
                pods += [now] * (new - len(pods))
            elif new < len(pods):
                pods.sort()  # remove the newest (still starting) pods first
                del pods[new:]
    frame = pd.DataFrame(out, index=load.index)
    frame.insert(0, "offered_rps", offered)
    frame["cost"] = np.cumsum(frame["pods"].to_numpy()) / 3600.0 * price_per_pod_hour
    return frame


def summarise(run: pd.DataFrame, p99_target_ms: float = 25.0) -> dict:
    """Key numbers of a :func:`simulate` run: pod-hours, cost, replicas, SLO misses, shed."""
    seconds = len(run)
    return {
        "pod_hours": float(run["pods"].sum() / 3600.0),
        "cost": float(run["cost"].iloc[-1]) if seconds else 0.0,
        "max_pods": int(run["pods"].max()) if seconds else 0,
        "min_pods": int(run["pods"].min()) if seconds else 0,
        "seconds_over_p99_target": int((run["p99_ms"] > p99_target_ms).sum()),
        "share_over_p99_target": float((run["p99_ms"] > p99_target_ms).mean()) if seconds else 0,
        "requests_shed": float(run["shed_rps"].sum()),
        "share_shed": float(run["shed_rps"].sum() / max(run["offered_rps"].sum(), 1e-12)),
    }


@dataclass(frozen=True)
class PodModel:
    """What :func:`simulate` needs to know of one pod, from the service's capacity record.

    ``capacity_rps``: the rate one pod (one core) sustains, the record's per-core figure;
    ``latency_curve``: (utilization, p99 ms) points measured up to that rate;
    ``meets_p99_target``: whether the rate was met within the record's p99 target (False:
    it is a peak throughput); ``basis``: where the figure comes from, in words.
    """

    capacity_rps: float
    latency_curve: tuple[tuple[float, float], ...]
    meets_p99_target: bool | None
    basis: str


def pod_from_capacity(path: str | os.PathLike[str] | None = None) -> PodModel:
    """The pod of the HPA simulation from ``results/serving/capacity.json`` (or ``path``).

    One figure feeds both the cost model of notebook 11 and this simulation: the capacity is
    :func:`nepse_perf.lessons.costs.serving_throughput`'s per-core rate (the manifests give a
    pod one worker and a CPU limit of one core). The latency curve comes from the record's
    sweep of the configuration that rate was taken from (``configuration.per_core_from``):
    each point's achieved rate per core (``configuration.per_core_cores``, the cores that
    configuration's servers had; else the machine's usable cores) over the capacity is its
    utilization, points
    above the capacity are left out, and ``(0, lowest p99)`` starts the curve. ``ValueError``
    when the file is missing or holds no sweep for that configuration.
    """
    from nepse_perf.lessons.costs import CAPACITY_FILE, serving_throughput

    p = Path(path) if path else CAPACITY_FILE
    rate = serving_throughput(p)
    if rate is None:
        raise ValueError(f"{p}: no capacity record (run notebook 10 to measure one)")
    record = json.loads(p.read_text(encoding="utf-8"))
    label = record.get("configuration", {}).get("per_core_from")
    cores = record.get("configuration", {}).get("per_core_cores") or (
        record.get("machine", {}).get("usable_cores") or 1
    )
    sweep = record.get("sweeps", {}).get(label)
    if not sweep:
        raise ValueError(f"{p}: no sweep for the configuration {label!r}")
    cap = rate["predictions_per_s"]
    points = sorted(
        (float(r["achieved_rps"]) / cores / cap, float(r["p99_ms"]))
        for r in sweep
        if r.get("p99_ms") is not None and float(r["achieved_rps"]) / cores <= cap * (1 + 1e-12)
    )
    if not points:
        raise ValueError(f"{p}: the sweep of {label!r} has no point up to the capacity")
    lowest = min(p99 for _, p99 in points)
    return PodModel(
        capacity_rps=cap,
        latency_curve=((0.0, lowest), *points),
        meets_p99_target=rate["meets_p99_target"],
        basis=rate["basis"],
    )
