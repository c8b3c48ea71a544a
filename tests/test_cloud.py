"""Cloud module: price tables, cost model, Young/Daly vs simulation, the handler, cold starts."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nepse_perf import synthetic_prices
from nepse_perf.cloud.handler import MAX_ROWS, MODEL_ENV, reset
from nepse_perf.lessons import checkpoint as ck
from nepse_perf.lessons import costs

# --- price tables and the cost model --------------------------------------------------------


def test_shipped_tables_are_dated_and_sourced() -> None:
    inst = costs.load_instances()
    assert len(inst) >= 8 and set(inst["family"]) >= {"compute", "memory", "gpu"}
    quoted = inst["spot_basis"] != "none"
    assert (inst["spot_usd_h"][quoted] < inst["on_demand_usd_h"][quoted]).all()
    assert inst.loc[~quoted, "spot_usd_h"].isna().all()
    assert set(inst["spot_basis"]) <= {"ratio", "none"}
    assert inst.loc[inst["provider"] == "gcp", "spot_basis"].eq("none").all()  # no AWS ratio
    assert inst["source"].str.startswith("https://").all()
    assert pd.to_datetime(inst["price_date"]).notna().all()
    gpu = inst[inst["family"] == "gpu"]
    assert gpu["gpu_mem_bw_gbs"].gt(0).all() and gpu["gpu"].ne("").all()
    assert len(costs.load_managed()) == 3
    sls = costs.load_serverless().iloc[0]
    assert sls["per_million_requests_usd"] == 0.20 and sls["zip_limit_mb"] == 250


def test_bad_price_table_names_line_and_column(tmp_path: Path) -> None:
    text = (costs.DATA_DIR / "instances.csv").read_text().splitlines()
    assert text[4].startswith("aws,c5.large,")  # file line 5
    bad = [*text[:4], text[4].replace("0.085,", "cheap,", 1), *text[5:]]
    path = tmp_path / "instances.csv"
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(ValueError, match=r"instances\.csv: line 5: on_demand_usd_h = 'cheap'"):
        costs.load_instances(path)
    path.write_text(text[0].replace("price_date,", "") + "\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['price_date'\]"):
        costs.load_instances(path)
    with pytest.raises(FileNotFoundError, match=r"nope\.csv: no such price table"):
        costs.load_instances(tmp_path / "nope.csv")


def _throughput() -> costs.Throughput:
    return costs.Throughput(
        predictions_per_s=100_000.0,
        p99_ms=None,
        indicator_rows_per_s=2_000_000.0,
        job_rows_per_s=500_000.0,
        basis="test",
        date="2026-11-30",
    )


def test_cost_table_arithmetic_and_gpu_label() -> None:
    inst = costs.load_instances()
    table = costs.cost_table(inst, _throughput(), market_rows=1_000_000)
    row = table.set_index("instance").loc["c7i.large"]
    assert row["predictions_per_s"] == 200_000.0
    assert math.isclose(row["usd_per_million_on_demand"], 0.08925 / (200_000 * 3600) * 1e6)
    assert math.isclose(row["nightly_s"], 1_000_000 / 1_000_000.0)
    assert math.isclose(row["nightly_usd_on_demand"], 0.08925 * 60 / 3600)  # 60 s minimum
    quoted = (inst["spot_basis"] != "none").to_numpy()
    spot = table["usd_per_million_spot"].to_numpy()
    assert (spot[quoted] < table["usd_per_million_on_demand"].to_numpy()[quoted]).all()
    assert np.isnan(spot[~quoted]).all()  # no spot price quoted, none derived
    gpu = table[table["family"] == "gpu"]
    assert gpu["throughput_basis"].str.startswith("estimate (GPU specification").all()
    cpu = table[table["family"] != "gpu"]
    assert cpu["throughput_basis"].str.startswith("measured").all()
    assert list(table["price_date"]) == list(inst["price_date"])


def test_right_size_picks_the_cheapest_and_states_p99() -> None:
    table = costs.cost_table(costs.load_instances(), _throughput(), market_rows=10)
    sized = costs.right_size(table, 1_000_000, utilisation=0.5)
    assert sized["usd_h"].is_monotonic_increasing
    assert (sized["count"] * sized["predictions_per_s"] * 0.5 >= 1_000_000).all()
    assert sized["meets_p99"].isna().all()  # in-process rate: no latency measured
    assert "gpu" not in set(sized["family"])
    ok = costs.right_size(table, 1000, p99_target_ms=25, measured_p99_ms=12)
    assert ok["meets_p99"].all()
    missed = costs.right_size(table, 1000, p99_target_ms=25, meets_p99_target=False)
    assert not missed["meets_p99"].any()
    with pytest.raises(ValueError, match="demand_per_s"):
        costs.right_size(table, 0)


def test_break_even_shapes() -> None:
    sls = costs.load_serverless().iloc[0]
    rates = np.array([0.01, 1.0, 100.0, 10_000.0])
    be = costs.break_even(
        rates,
        request_s=0.0031,
        memory_gb=1.0,
        serverless=sls,
        instance_usd_h=0.1,
        instance_capacity_per_s=1000.0,
    )
    # serverless is linear in the rate, billed per started millisecond
    per_request = 0.2e-6 + 0.004 * 1.0 * 0.0000166667
    np.testing.assert_allclose(be["serverless_usd"], rates * 730 * 3600 * per_request)
    assert be["always_on_usd"].iloc[:3].eq(73.0).all() and np.isnan(be["always_on_usd"].iloc[3])
    # ceil(10,000 / (1,000 x 0.6)): the fleet runs at the HPA target of deploy/k8s/hpa.yaml
    assert list(be["fleet_replicas"]) == [1, 1, 1, 17]


def test_billed_duration_and_the_front_end() -> None:
    sls = costs.load_serverless().iloc[0]
    assert sls["price_date"] == "2020-12-01" and sls["source"].startswith("https://aws.amazon.com/")
    # Lambda bills per started millisecond, and a handler of microseconds a whole one
    assert costs.billed_duration_s(33e-6, sls) == 0.001
    assert costs.billed_duration_s(0.0, sls) == 0.001
    assert math.isclose(costs.billed_duration_s(0.0031, sls), 0.004)
    with pytest.raises(ValueError, match="request_s"):
        costs.billed_duration_s(-1.0, sls)
    fronts = costs.load_frontends().set_index("frontend")["per_million_requests_usd"]
    assert fronts["Lambda function URL"] == 0.0 and fronts["API Gateway HTTP API"] == 1.0
    assert costs.load_frontends()["date_basis"].str.startswith("as listed on https://").all()
    kw = {"request_s": 33e-6, "memory_gb": 1.0, "serverless": sls, "instance_usd_h": 0.085}
    url = costs.break_even_rate(**kw)
    api = costs.break_even_rate(**kw, frontend_per_million_usd=1.0)
    per_request = (0.2 + 1.0) / 1e6 + 0.001 * 0.0000166667
    assert math.isclose(api, 0.085 / 3600 / per_request) and api < url
    be = costs.break_even(
        np.array([1.0]), **kw, instance_capacity_per_s=100.0, frontend_per_million_usd=1.0
    )
    assert math.isclose(be["serverless_usd"].iloc[0], 730 * 3600 * per_request)


def test_serving_capacity_file(tmp_path: Path) -> None:
    assert costs.serving_throughput(tmp_path / "absent.json") is None
    good = tmp_path / "capacity.json"
    good.write_text(json.dumps({"per_core_predictions_per_s": 1500, "p99_ms": 20, "date": "x"}))
    got = costs.serving_throughput(good)
    assert got["predictions_per_s"] == 1500 and got["p99_ms"] == 20 and "HTTP" in got["basis"]
    good.write_text(json.dumps({"rate": 3}))
    with pytest.raises(ValueError, match=r"capacity\.json: holds none of"):
        costs.serving_throughput(good)
    # the service's layout: a null per-worker rate, the target not met at the peak rate
    good.write_text(
        json.dumps(
            {
                "per_worker_predictions_per_s": None,
                "per_core_predictions_per_s": 400.0,
                "p99_ms": None,
                "p99_target_ms": 25.0,
                "meets_p99_target": False,
            }
        )
    )
    got = costs.serving_throughput(good)
    assert got["predictions_per_s"] == 400.0 and got["meets_p99_target"] is False
    assert "p99 target 25 ms NOT met" in got["basis"]
    good.write_text(json.dumps({"per_core_predictions_per_s": "fast"}))
    with pytest.raises(ValueError, match=r"per_core_predictions_per_s = 'fast' is not a number"):
        costs.serving_throughput(good)


def test_measured_throughput_is_positive(serving_model_dir: Path) -> None:
    from nepse_perf.model import load

    t = costs.measure_throughput(
        load(serving_model_dir), synthetic_prices(10, 300, seed=1), batch=2000, repeat=2
    )
    assert t.predictions_per_s > 0 and t.indicator_rows_per_s > 0 and t.job_rows_per_s > 0
    assert t.basis


# --- Young/Daly against the simulation ------------------------------------------------------


def test_young_daly_and_mtbf() -> None:
    assert ck.young_daly_interval(2.0, 100.0) == pytest.approx(20.0)
    m = ck.mtbf_from_monthly_rate(0.05)
    assert m == pytest.approx(730 * 3600 / -math.log(0.95))
    with pytest.raises(ValueError):
        ck.mtbf_from_monthly_rate(1.0)
    assert ck.expected_completion(100, 10, 1, math.inf) == pytest.approx(110)


@pytest.mark.parametrize("mtbf", [1800.0, 7200.0])
def test_simulation_matches_the_formula(mtbf: float) -> None:
    work, c, r = 8 * 3600.0, 5.0, 60.0
    yd = ck.young_daly_interval(c, mtbf)
    for tau in (yd / 4, yd, 4 * yd):
        sims = ck.simulate_completion(work, tau, c, mtbf, r, n_runs=3000, seed=1)
        expected = ck.expected_completion(work, tau, c, mtbf, r)
        se = sims.std(ddof=1) / math.sqrt(len(sims))
        assert abs(sims.mean() - expected) < 4 * se + 1e-9 * expected


def test_young_daly_is_near_the_simulated_optimum() -> None:
    work, c, r, mtbf = 8 * 3600.0, 5.0, 60.0, 3600.0
    grid = np.geomspace(20, 5000, 25)
    means = [ck.simulate_completion(work, t, c, mtbf, r, n_runs=800, seed=2).mean() for t in grid]
    yd = ck.young_daly_interval(c, mtbf)
    at_yd = ck.simulate_completion(work, yd, c, mtbf, r, n_runs=800, seed=2).mean()
    assert at_yd <= min(means) * 1.01


def test_lifetime_limit_stops_long_segments() -> None:
    day = ck.GCP_PREEMPTIBLE_LIFETIME_S
    never = ck.simulate_completion(
        30 * 3600, 30 * 3600, 1, math.inf, 0, lifetime_s=day, n_runs=5, max_attempts=20
    )
    assert np.isinf(never).all()
    chunked = ck.simulate_completion(30 * 3600, 3600, 1, math.inf, 60, lifetime_s=day, n_runs=5)
    assert np.isfinite(chunked).all() and (chunked > 30 * 3600).all()


# --- the handler ------------------------------------------------------------------------------


@pytest.fixture()
def handler_env(serving_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from nepse_perf.cloud import handler

    monkeypatch.setenv(MODEL_ENV, str(serving_model_dir))
    reset()
    yield handler
    reset()


def _body(resp: dict) -> dict:
    return json.loads(resp["body"])


def _event_rows(n_days: int = 80):
    from nepse_perf.model import FEATURES, feature_frame

    p = synthetic_prices(1, n_days, seed=5)
    feats = feature_frame(p)
    bars = [
        {"date": str(d.date()), "open": o, "high": h, "low": lo, "close": c, "volume": v}
        for d, o, h, lo, c, v in zip(
            p["date"], p["open"], p["high"], p["low"], p["close"], p["volume"], strict=True
        )
    ]
    return p, feats[list(FEATURES)], bars


def test_handler_predicts_like_the_model(handler_env, serving_model_dir: Path) -> None:
    from nepse_perf.model import load, predict_proba

    model = load(serving_model_dir)
    _, feats, bars = _event_rows()
    X = feats.dropna().tail(3)
    want = predict_proba(model, X)
    resp = handler_env({"features": X.to_numpy().tolist()}, None)
    assert resp["statusCode"] == 200
    np.testing.assert_allclose(_body(resp)["p_up"], want, rtol=1e-12)
    as_objects = [dict(zip(X.columns, row, strict=True)) for row in X.to_numpy().tolist()]
    np.testing.assert_allclose(_body(handler_env({"features": as_objects}))["p_up"], want)
    from_prices = handler_env({"prices": bars})
    assert from_prices["statusCode"] == 200
    np.testing.assert_allclose(_body(from_prices)["p_up"], want[-1:], rtol=1e-12)
    proxy = {"headers": {}, "body": json.dumps({"prices": bars})}
    assert _body(handler_env(proxy))["p_up"] == _body(from_prices)["p_up"]
    b64 = {
        "body": base64.b64encode(json.dumps({"prices": bars}).encode()).decode(),
        "isBase64Encoded": True,
    }
    assert _body(handler_env(b64))["p_up"] == _body(from_prices)["p_up"]


def test_handler_bad_input(handler_env) -> None:
    from nepse_perf.model import FEATURES

    _, feats, bars = _event_rows()
    row = feats.dropna().iloc[-1].tolist()
    cases = [
        ({"body": "{not json"}, 400, "body: not valid JSON"),
        ([1, 2], 400, "event: expected a JSON object, got list"),
        ({"foo": 1}, 422, "give exactly one of 'features' or 'prices'"),
        ({"features": [row], "prices": bars}, 422, "(got both)"),
        ({"features": []}, 422, "features: expected a non-empty list"),
        ({"features": [row[:-1]]}, 422, f"features[0]: {len(FEATURES) - 1} values, expected"),
        ({"features": [[*row[:-1], "x"]]}, 422, "features[0].range_pct: expected a number"),
        ({"features": [[*row[:-1], None]]}, 422, "features[0].range_pct: expected a number"),
        ({"features": [[*row[:-1], True]]}, 422, "features[0].range_pct: expected a number"),
        ({"features": [{"sma": 1.0}]}, 422, "features[0]: missing"),
        ({"features": [row] * (MAX_ROWS + 1)}, 413, "at most 10,000 per request"),
        ({"prices": bars[:10]}, 422, "prices: 10 bars, the features need at least"),
        (
            {"prices": [*bars[:-1], {**bars[-1], "close": -1.0}]},
            422,
            "prices[79].close: must be > 0",
        ),
        (
            {"prices": [*bars[:-1], {**bars[-1], "date": "yesterday"}]},
            422,
            "prices[79].date: not a date",
        ),
        ({"prices": [*bars[:-1], dict(bars[0])]}, 422, "dates must be strictly increasing"),
        (
            {"prices": [*bars[:-1], {k: v for k, v in bars[-1].items() if k != "high"}]},
            422,
            "prices[79].high: missing",
        ),
    ]
    for event, status, message in cases:
        resp = handler_env(event)
        assert resp["statusCode"] == status, (
            event if not isinstance(event, dict) else list(event),
            resp,
        )
        assert message in _body(resp)["error"], _body(resp)["error"]
    big = float("inf")
    resp = handler_env({"features": [[*row[:-1], big]]})
    assert resp["statusCode"] == 422 and "must be finite" in _body(resp)["error"]


def test_handler_answers_every_hostile_event_with_a_4xx(handler_env) -> None:
    _, feats, bars = _event_rows()
    row = feats.dropna().iloc[-1].tolist()
    deep = "[" * 100_000 + "]" * 100_000
    last = bars[-1]
    cases = [
        ({"features": [[*row[:-1], 10**400]]}, 422, "too large for a float64"),
        ({"body": '{"features": [[' + "9" * 5000 + "]]}"}, 400, "body: not valid JSON"),
        ({"body": b'{"features": "\xff"}'}, 400, "body: not UTF-8"),
        ({"body": b"\xff\xfe{\x00}\x00"}, 400, "body: not UTF-8"),  # UTF-16: JSON is UTF-8
        ({"body": deep}, 400, "nested too deeply"),
        ({"body": 123, "isBase64Encoded": True}, 400, "base64 text expected"),
        ({"body": "not base64!", "isBase64Encoded": True}, 400, "not base64-encoded"),
        ({"prices": [*bars[:-1], {**last, "date": "now"}]}, 422, "not a date"),
        ({"prices": [*bars[:-1], {**last, "date": 20260102}]}, 422, "YYYY-MM-DD string"),
        ({"prices": [*bars[:-1], {**last, "date": "9999-12-31"}]}, 422, "not a date"),
        ({"prices": [*bars[:-1], {**last, "date": "2026-1-2"}]}, 422, "not a date"),
        ({"prices": [*bars[:-1], {**last, "close": 10**400}]}, 422, "too large for a float64"),
        ({"features": [[*row[:-1], "x" * 10_000]]}, 422, "expected a number"),
        ({1: "a", "b": 2}, 422, "give exactly one of"),
    ]
    for event, status, message in cases:
        resp = handler_env(event)
        assert resp["statusCode"] == status, (message, resp)
        error = _body(resp)["error"]
        assert message in error, error
        assert len(error) < 300, error  # never the whole input echoed back


def test_handler_missing_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nepse_perf.cloud import handler

    reset()
    monkeypatch.delenv(MODEL_ENV, raising=False)
    resp = handler({"features": [[0.0]]})
    assert resp["statusCode"] == 503 and MODEL_ENV in _body(resp)["error"]
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "gone"))
    resp = handler({"features": [[0.0]]})
    assert resp["statusCode"] == 503 and "gone: no such model directory" in _body(resp)["error"]
    reset()


def test_handler_is_importable_by_its_dotted_name() -> None:
    import importlib

    import nepse_perf.cloud

    assert callable(nepse_perf.cloud.handler)
    assert importlib.import_module("nepse_perf.cloud.handler").handler is nepse_perf.cloud.handler


# --- cold starts ------------------------------------------------------------------------------


def test_cold_start_measurements_run(serving_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from nepse_perf.lessons import coldstart as cs

    cache = tmp_path / "numba-cache"
    cold = cs.measure_cold_start(serving_model_dir, cache)
    assert cold["ok"], cold
    assert cold["status"] == [200, 200]
    assert set(cs.PHASES) <= set(cold)
    assert any(cache.rglob("*.nbi")), "the cold start wrote a Numba cache"
    warm = cs.measure_cold_start(serving_model_dir, cache)
    assert warm["ok"] and warm["status"] == [200, 200]
    if cs.unshare_available():  # the read-only layer trap, where this machine can mount
        trap = cs.measure_cold_start(serving_model_dir, cache, read_only=True)
        assert not trap["ok"] and "no locator available" in trap["error"]
        copy = tmp_path / "tmp-copy"
        shutil.copytree(cache, copy)
        assert cs.measure_cold_start(serving_model_dir, copy)["ok"]
    else:
        with pytest.raises(ValueError, match="needs 'unshare -rm'"):
            cs.measure_cold_start(serving_model_dir, cache, read_only=True)
    assert cs.interpreter_start(repeat=1) > 0
    size = cs.deployable_size(serving_model_dir)
    assert {"numpy", "pandas", "numba", "onnxruntime"} <= set(size["distributions"])
    assert size["total_bytes"] == sum(size["distributions"].values())
