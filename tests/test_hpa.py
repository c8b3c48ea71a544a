"""The HPA simulator against the worked examples of the Kubernetes documentation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nepse_perf.data.calendar import (
    MONDAY_FRIDAY,
    SUNDAY_THURSDAY,
    is_trading_weekday,
    trading_weekdays,
)
from nepse_perf.lessons.hpa import (
    HPAConfig,
    HPAController,
    ScalingPolicy,
    desired_replicas,
    nepse_trading_day_load,
    pod_from_capacity,
    replica_recommendation,
    simulate,
    summarise,
)


def test_formula_doubles_halves_and_respects_the_tolerance() -> None:
    # "200m against a 100m target doubles the replicas; 50m halves them"
    assert desired_replicas(3, 200, 100) == 6
    assert desired_replicas(4, 50, 100) == 2
    # within 0.1 of 1.0: no change
    assert desired_replicas(5, 105, 100) == 5
    assert desired_replicas(5, 91, 100) == 5
    assert desired_replicas(5, 111, 100) == 6  # ceil(5.55)
    assert desired_replicas(5, 111, 100, tolerance=0.2) == 5


def test_walkthrough_305_percent_against_50_percent() -> None:
    # php-apache walkthrough: one pod at 305 % CPU, target 50 % -> ceil(6.1) = 7 replicas
    assert replica_recommendation([3.05], 0, 0.5) == 7
    # the default scale-up policy (max of 4 pods, 100 % per 15 s) lets 1 become 5 first
    ctrl = HPAController(HPAConfig(min_replicas=1, max_replicas=10, target=0.5))
    assert ctrl.step(0.0, 1, 7) == 5
    assert ctrl.step(15.0, 5, 7) == 7


def test_not_ready_pods_count_zero_on_scale_up() -> None:
    # two ready pods at 100 % of the request, target 50 %: ratio 2.0, but two pods are still
    # starting: counted at 0 the ratio is 1.0 -> within the tolerance, no change
    assert replica_recommendation([1.0, 1.0], 2, 0.5) == 4
    # with one starting pod: 2 / 3 / 0.5 = 1.33 -> ceil(1.33 x 3) = 4
    assert replica_recommendation([1.0, 1.0], 1, 0.5) == 4
    # without starting pods: ceil(2.0 x 2) = 4, and a scale-down ignores starting pods
    assert replica_recommendation([1.0, 1.0], 0, 0.5) == 4
    assert replica_recommendation([0.1, 0.1], 2, 0.5) == 1


def test_scale_down_policies_example() -> None:
    # behavior docs: Pods 4 / 60 s and Percent 10 / 60 s, the larger change wins; from 80
    # replicas to a target of 10: 8 go first (10 % of 80), then 8 of 72 (7.2 rounded up)
    cfg = HPAConfig(
        min_replicas=1,
        max_replicas=100,
        scale_down_window_s=0,
        scale_down_policies=(ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 10, 60)),
    )
    ctrl = HPAController(cfg)
    assert ctrl.step(0.0, 80, 10) == 72
    assert ctrl.step(15.0, 72, 10) == 72  # the period's budget is spent
    assert ctrl.step(60.0, 72, 10) == 64
    # below 40 replicas the Pods policy (4) removes more than 10 %
    assert HPAController(cfg).step(0.0, 30, 10) == 26


def test_scale_down_stabilisation_window() -> None:
    # the highest recommendation of the last 300 s wins: no scale-down before it expires
    ctrl = HPAController(HPAConfig(min_replicas=1, max_replicas=20))
    assert ctrl.step(0.0, 10, 10) == 10
    for t in range(15, 300, 15):
        assert ctrl.step(float(t), 10, 2) == 10
    assert ctrl.step(300.0, 10, 2) == 2


def test_min_and_max_clamp() -> None:
    ctrl = HPAController(HPAConfig(min_replicas=2, max_replicas=6, scale_down_window_s=0))
    assert ctrl.step(0.0, 4, 50) == 6
    assert ctrl.step(15.0, 6, 0) == 2


def test_trading_day_load_shape() -> None:
    load = nepse_trading_day_load(1000.0, seed=1)
    assert len(load) == 5 * 3600
    assert str(load.index.tz) == "Asia/Kathmandu"
    hour = load.index.hour + load.index.minute / 60
    before, after = load[hour < 11].mean(), load[hour >= 15].mean()
    opening = load[(hour >= 11.0) & (hour < 11.1)].mean()
    assert opening > 10 * before and opening > 10 * after
    assert load.idxmax().hour == 11
    pd.testing.assert_series_equal(load, nepse_trading_day_load(1000.0, seed=1))


def test_trading_day_follows_the_calendar_of_its_date() -> None:
    # Sunday-Thursday until the switch of 2026-04-10, Monday-Friday since
    assert len(nepse_trading_day_load(1000.0, date="2026-03-29")) == 5 * 3600  # a Sunday
    assert len(nepse_trading_day_load(1000.0, date="2026-11-27")) == 5 * 3600  # a Friday
    with pytest.raises(ValueError, match="Friday; NEPSE trades Sunday-Thursday"):
        nepse_trading_day_load(1000.0, date="2026-03-27")
    with pytest.raises(ValueError, match="Sunday; NEPSE trades Monday-Friday"):
        nepse_trading_day_load(1000.0, date="2026-11-29")
    assert trading_weekdays("2026-04-09") == SUNDAY_THURSDAY
    assert trading_weekdays(pd.Timestamp("2026-04-10 11:00", tz="Asia/Kathmandu")) == MONDAY_FRIDAY
    assert is_trading_weekday("2026-04-05") and not is_trading_weekday("2026-04-12")


def test_pod_from_the_capacity_record(tmp_path) -> None:
    from nepse_perf.lessons.serving_experiments import capacity_summary, write_capacity

    def sweep(points):
        return pd.DataFrame(
            [{"offered_rps": o, "achieved_rps": a, "p99_ms": p, "errors": 0} for o, a, p in points]
        )

    sweeps = {
        "w1": sweep([(200, 200, 5), (800, 795, 20), (1600, 1200, 300)]),
        "w2": sweep([(200, 200, 4), (800, 798, 9), (1600, 1590, 24), (2400, 1800, 400)]),
    }
    s = capacity_summary(sweeps, "w1", cores=2, p99_target_ms=25)
    path = write_capacity(
        tmp_path / "capacity.json",
        configuration={
            "per_core_from": s.pop("per_core_from"),
            "per_core_cores": s.pop("per_core_cores"),
        },
        machine={"usable_cores": 2},
        sweeps=sweeps,
        **s,
    )
    pod = pod_from_capacity(path)
    assert pod.capacity_rps == 1590 / 2 and pod.meets_p99_target  # notebook 11's figure
    # w2's points per core over the capacity; the saturated 2,400/s point is left out
    assert pod.latency_curve == ((0.0, 4.0), (100 / 795, 4.0), (399 / 795, 9.0), (1.0, 24.0))
    run = simulate(
        nepse_trading_day_load(4000.0), pod.capacity_rps, latency_curve=pod.latency_curve
    )
    assert run["p99_ms"].max() == 1000.0 and run["p99_ms"].min() >= 4.0
    with pytest.raises(ValueError, match="no capacity record"):
        pod_from_capacity(tmp_path / "missing.json")


def test_simulation_scales_for_the_opening_and_back_down() -> None:
    load = nepse_trading_day_load(4000.0, seed=0)
    cfg = HPAConfig(min_replicas=2, max_replicas=8, target=0.6)
    run = simulate(load, 1000.0, config=cfg, pod_start_s=30)
    assert run["pods"].between(2, 8).all()
    assert (run["ready"] <= run["pods"]).all()
    hour = run.index.hour + run.index.minute / 60
    assert run.loc[hour < 11, "pods"].max() == 2  # quiet pre-open: the minimum
    assert run.loc[(hour >= 11) & (hour < 11.5), "pods"].max() == 8  # the opening spike
    assert run["pods"].iloc[-1] == 2  # back to the minimum after the close + 300 s
    first_up = int(np.argmax(run["pods"].to_numpy() > 2))
    assert run["ready"].iloc[first_up] == 2  # new pods are not ready at once
    assert run["served_rps"].add(run["shed_rps"]).sub(run["offered_rps"]).abs().max() < 1e-6
    s = summarise(run)
    assert s["max_pods"] == 8 and s["min_pods"] == 2
    assert 0 < s["share_shed"] < 1 and s["cost"] == pytest.approx(s["pod_hours"] * 0.05)


def test_constant_load_below_target_keeps_the_minimum() -> None:
    idx = pd.date_range("2026-11-29 11:00", periods=600, freq="1s", tz="Asia/Kathmandu")
    run = simulate(pd.Series(500.0, index=idx), 1000.0, config=HPAConfig(target=0.6))
    assert (run["pods"] == 2).all() and run["shed_rps"].sum() == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        HPAConfig(min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError):
        ScalingPolicy("Nodes", 1, 15)
    idx = pd.date_range("2026-11-29 11:00", periods=10, freq="1s")
    with pytest.raises(ValueError, match="pod_capacity_rps"):
        simulate(pd.Series(1.0, index=idx), 0.0)
