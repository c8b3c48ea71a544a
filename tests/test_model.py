"""The prediction model: data set alignment, leak-free splits, ONNX parity, save/load, bad input."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nepse_perf import load_prices
from nepse_perf.bench.model import quantisation_table, threshold_flip_demo
from nepse_perf.cli import main
from nepse_perf.data import sample_path
from nepse_perf.model import (
    FEATURES,
    ModelFileError,
    feature_frame,
    load,
    make_dataset,
    predict_proba,
    save,
    to_onnx,
    train,
    validate_features,
    walk_forward_splits,
    warmup_rows,
)
from nepse_perf.model.onnx_export import ONNX_INPUT

SMALL = {"hgb": {"max_iter": 30}, "lightgbm": {"n_estimators": 30}, "mlp": {"epochs": 2}}


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return load_prices(sample_path())


@pytest.fixture(scope="module")
def dataset(prices):
    return make_dataset(prices)


@pytest.fixture(scope="module")
def models(dataset):
    return {kind: train(dataset, kind=kind, n_splits=2, **params) for kind, params in SMALL.items()}


# --- the data set ------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 3])
def test_target_is_the_same_symbols_close_horizon_sessions_later(prices, horizon):
    ds = make_dataset(prices, horizon=horizon)
    assert len(ds) + ds.dropped["warmup"] + ds.dropped["no_target"] == len(prices)
    # rebuild the target independently with pandas
    frame = prices.sort_values(["symbol", "date"]).copy()
    frame["future"] = frame.groupby("symbol", observed=True)["close"].shift(-horizon)
    frame["future_date"] = frame.groupby("symbol", observed=True)["date"].shift(-horizon)
    key = frame.set_index([frame["symbol"].astype(str), "date"])
    look = key.loc[list(zip(ds.symbol, ds.date, strict=True))]
    np.testing.assert_array_equal(ds.y.to_numpy(), (look["future"] > look["close"]).to_numpy())
    np.testing.assert_array_equal(ds.target_date.to_numpy(), look["future_date"].to_numpy())
    assert ds.dropped["no_target"] <= horizon * prices["symbol"].nunique()


def test_dataset_columns_order_and_finiteness(dataset):
    assert tuple(dataset.X.columns) == FEATURES
    assert (dataset.X.dtypes == np.float64).all()
    assert np.isfinite(dataset.X.to_numpy()).all()
    assert dataset.date.is_monotonic_increasing
    assert set(np.unique(dataset.y)) == {0, 1}


def test_warmup_rows_are_dropped_and_counted(prices):
    one = prices[prices["symbol"] == "NABIL"].reset_index(drop=True)
    ds = make_dataset(one)
    assert ds.dropped == {"warmup": warmup_rows(), "no_target": 1}
    assert warmup_rows() == 33  # MACD signal: 26 + 9 - 2


def test_features_use_no_future_prices(prices):
    cut = pd.Timestamp("2020-01-01")
    base = feature_frame(prices)
    changed = prices.copy()
    future = changed["date"] > cut
    changed.loc[future, ["high", "low", "close"]] *= 1.5
    after = feature_frame(changed)
    past = ~future.to_numpy()
    pd.testing.assert_frame_equal(base[past], after[past])


def test_short_series_yields_no_rows_but_counts_them(prices):
    short = prices[prices["symbol"] == "NABIL"].iloc[:20]
    ds = make_dataset(short)
    assert len(ds) == 0 and ds.dropped["warmup"] == 20


# --- splits ------------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 5])
def test_walk_forward_splits_do_not_leak(prices, horizon):
    ds = make_dataset(prices, horizon=horizon)
    splits = walk_forward_splits(ds.date, n_splits=5, embargo=horizon, target_dates=ds.target_date)
    assert len(splits) == 5
    unique = np.unique(ds.date)
    previous_test_end = None
    for train_rows, test_rows in splits:
        first_test = ds.date[test_rows].min()
        # no training target reaches the test period, no training row is inside it
        assert ds.target_date[train_rows].max() < first_test
        assert ds.date[train_rows].max() < first_test
        # the embargo: at least `horizon` distinct dates between training and test rows
        gap = np.sum((unique > ds.date[train_rows].max()) & (unique < first_test))
        assert gap >= horizon
        if previous_test_end is not None:  # expanding, consecutive, disjoint test blocks
            assert first_test > previous_test_end
        previous_test_end = ds.date[test_rows].max()
    sizes = [len(tr) for tr, _ in splits]
    assert sizes == sorted(sizes)


def test_splits_without_target_dates_still_embargo():
    dates = pd.date_range("2024-01-01", periods=60, freq="D").repeat(3)
    splits = walk_forward_splits(dates, n_splits=3, embargo=2)
    for train_rows, test_rows in splits:
        gap = (dates[test_rows].min() - dates[train_rows].max()).days
        assert gap == 3  # two embargoed dates in between


def test_splits_reject_bad_arguments():
    dates = pd.date_range("2024-01-01", periods=10, freq="D")
    with pytest.raises(ValueError, match="too few"):
        walk_forward_splits(dates, n_splits=5, embargo=1)
    with pytest.raises(ValueError, match="n_splits"):
        walk_forward_splits(dates, n_splits=0)
    with pytest.raises(ValueError, match="embargo"):
        walk_forward_splits(dates, n_splits=1, embargo=-1)


# --- training, metrics, version ------------------------------------------------------


def test_trained_model_records_metrics_and_baselines(models, dataset):
    m = models["hgb"]
    assert m.features == FEATURES
    assert (m.train_start, m.train_end) == dataset.date_range
    for name in ("model", "always_up", "majority", "yesterday"):
        assert set(m.metrics[name]) == {"accuracy", "roc_auc", "log_loss"}
    up_share = m.metrics["up_share"]
    assert m.metrics["always_up"]["accuracy"] == pytest.approx(up_share)
    assert m.metrics["majority"]["accuracy"] == pytest.approx(max(up_share, 1 - up_share))
    # one constant probability per fold: no ranking skill (pooled AUC is near, not at, 0.5)
    assert abs(m.metrics["always_up"]["roc_auc"] - 0.5) < 0.05


@pytest.mark.parametrize("kind", ["hgb", "lightgbm", "mlp"])
def test_training_is_deterministic(dataset, models, kind):
    again = train(dataset, kind=kind, n_splits=2, **SMALL[kind])
    assert again.version == models[kind].version
    X = dataset.X.iloc[:500]
    np.testing.assert_array_equal(predict_proba(again, X), predict_proba(models[kind], X))


def test_version_changes_with_data_and_parameters(dataset, models):
    v = models["hgb"].version
    changed = make_dataset(
        load_prices(sample_path()).assign(close=lambda f: f["close"].where(f.index != 5000, 1e4))
    )
    assert train(changed, kind="hgb", n_splits=2, max_iter=30).version != v
    assert train(dataset, kind="hgb", n_splits=2, max_iter=31).version != v
    assert train(dataset, kind="hgb", n_splits=2, max_iter=30, seed=1).version != v


def test_unknown_kind_is_refused(dataset):
    with pytest.raises(ValueError, match="unknown model kind 'xgb'"):
        train(dataset, kind="xgb")


# --- ONNX parity -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["hgb", "lightgbm"])
def test_float64_tree_export_equals_native(models, dataset, kind):
    X = dataset.X
    native = predict_proba(models[kind], X, engine="native")
    onnx = predict_proba(models[kind], X, engine="onnx")
    # the same trees, the same summation order, the same expit: bit for bit
    np.testing.assert_array_equal(onnx, native)


def test_random_forest_export_equals_native(dataset):
    small = dataset.subset(np.arange(20_000))
    rf = train(small, kind="rf", n_splits=2, n_estimators=10)
    native = predict_proba(rf, small.X, engine="native")
    onnx = predict_proba(rf, small.X, engine="onnx")
    np.testing.assert_allclose(onnx, native, rtol=0, atol=1e-14)


def test_lightgbm_export_agrees_with_onnxmltools(models, dataset):
    """Our float32 graph and onnxmltools' converter give the same probabilities."""
    import onnxruntime as ort
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = models["lightgbm"]
    theirs = convert_lightgbm(
        model.estimator,
        initial_types=[("X", FloatTensorType([None, len(FEATURES)]))],
        zipmap=False,
        target_opset=15,
    )
    sess = ort.InferenceSession(theirs.SerializeToString(), providers=["CPUExecutionProvider"])
    X32 = dataset.X.to_numpy(np.float32)[:20_000]
    p_theirs = sess.run(None, {"X": X32})[1][:, 1]
    ours = ort.InferenceSession(
        to_onnx(model, dtype=np.float32), providers=["CPUExecutionProvider"]
    )
    p_ours = ours.run(None, {ONNX_INPUT: X32})[0].ravel()
    np.testing.assert_allclose(p_ours, p_theirs, rtol=0, atol=2e-7)


def test_mlp_onnx_matches_torch(models, dataset):
    native = predict_proba(models["mlp"], dataset.X, engine="native")
    onnx = predict_proba(models["mlp"], dataset.X, engine="onnx")
    np.testing.assert_allclose(onnx, native, rtol=0, atol=1e-6)  # float32 network


def test_reduced_precision_variants_within_stated_tolerances(models, dataset):
    """Stated tolerances: float32 trees |dp| <= 0.02 and <= 0.5 % labels flipped; MLP float16
    |dp| <= 0.01 and <= 0.5 %; MLP int8 |dp| <= 0.25 and <= 10 % flipped."""
    X = dataset.X.to_numpy()[:20_000]
    y = dataset.y.to_numpy()[:20_000]
    table = quantisation_table(list(models.values()), X, y).set_index(["kind", "variant"])
    limits = {
        ("hgb", "float64"): (0.0, 0.0),
        ("lightgbm", "float64"): (0.0, 0.0),
        ("hgb", "float32"): (0.02, 0.005),
        ("lightgbm", "float32"): (0.02, 0.005),
        ("mlp", "float32"): (1e-6, 0.0),
        ("mlp", "float16"): (0.01, 0.005),
        ("mlp", "int8 dynamic"): (0.25, 0.10),
        ("mlp", "int8 dynamic, 7-bit"): (0.25, 0.10),
    }
    for key, (max_dp, max_share) in limits.items():
        row = table.loc[key]
        assert row["max_abs_dp"] <= max_dp, key
        assert row["flipped"] <= max_share * len(X), key


def test_threshold_flip_demo_finds_flips(models, dataset):
    demo = threshold_flip_demo(models["hgb"], dataset.X.to_numpy())
    assert demo["rows"] > 0
    assert 0 < demo["probability_changed"] <= demo["rows"]


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_batch_size_does_not_change_predictions(models, dataset, batch):
    X = dataset.X.iloc[:2500]
    for model in models.values():
        whole = predict_proba(model, X, engine="onnx")
        np.testing.assert_array_equal(
            predict_proba(model, X, engine="onnx", batch_size=batch), whole
        )


# --- save / load -------------------------------------------------------------------------


@pytest.fixture
def saved(models, tmp_path) -> Path:
    return save(models["hgb"], tmp_path / "model")


def test_save_load_round_trip(models, dataset, saved):
    loaded = load(saved)
    assert loaded.estimator is None and loaded.version == models["hgb"].version
    assert loaded.features == FEATURES and loaded.onnx_dtype == "float64"
    X = dataset.X.iloc[:3000]
    np.testing.assert_array_equal(
        predict_proba(loaded, X), predict_proba(models["hgb"], X, engine="onnx")
    )
    meta = json.loads((saved / "metadata.json").read_text())
    assert meta["version"] == models["hgb"].version and meta["kind"] == "hgb"
    for f in saved.iterdir():  # readable by a service user other than the owner
        assert f.stat().st_mode & stat.S_IROTH
    assert not list(saved.glob(".*")), "no temporary files left"


@pytest.mark.parametrize("kind", ["lightgbm", "mlp"])
def test_other_kinds_round_trip(models, dataset, tmp_path, kind):
    loaded = load(save(models[kind], tmp_path / kind))
    X = dataset.X.iloc[:1000]
    np.testing.assert_array_equal(
        predict_proba(loaded, X), predict_proba(models[kind], X, engine="onnx")
    )


def test_load_missing_directory_and_files(saved, tmp_path):
    with pytest.raises(ModelFileError, match="no such model directory"):
        load(tmp_path / "nowhere")
    (saved / "model.onnx").unlink()
    with pytest.raises(ModelFileError, match=r"model\.onnx: missing"):
        load(saved)


def test_load_truncated_or_changed_onnx(saved):
    onnx_path = saved / "model.onnx"
    data = onnx_path.read_bytes()
    onnx_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load(saved)
    flipped = bytearray(data)
    flipped[-10] ^= 0xFF
    onnx_path.write_bytes(bytes(flipped))
    with pytest.raises(ModelFileError, match="SHA-256"):
        load(saved)


def test_load_refuses_another_feature_list(saved):
    meta_path = saved / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["features"] = [*meta["features"][:-1], "volume_z"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"another feature list.*volume_z"):
        load(saved)


def test_load_bad_metadata(saved):
    (saved / "metadata.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"metadata\.json: not valid JSON"):
        load(saved)


# --- bad input to predict ------------------------------------------------------------


def test_predict_rejects_bad_features(models, dataset):
    m = models["hgb"]
    X = dataset.X.iloc[:10].copy()
    with pytest.raises(ValueError, match=r"missing feature column\(s\) \['atr'\]"):
        predict_proba(m, X.drop(columns="atr"))
    bad = X.copy()
    bad.iloc[3, bad.columns.get_loc("rsi")] = np.nan
    with pytest.raises(ValueError, match="column 'rsi' row 3 is nan"):
        predict_proba(m, bad)
    bad = X.copy()
    bad.iloc[0, 0] = np.inf
    with pytest.raises(ValueError, match="column 'sma' row 0 is inf"):
        predict_proba(m, bad)
    bad = X.copy()
    bad["ema"] = bad["ema"].astype(str)
    with pytest.raises(ValueError, match="column 'ema' has dtype"):
        predict_proba(m, bad)
    with pytest.raises(ValueError, match="no rows"):
        predict_proba(m, X.iloc[:0])
    with pytest.raises(ValueError, match="20 feature columns, got shape"):
        predict_proba(m, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="dtype <U1 is not numeric"):
        validate_features(np.full((2, len(FEATURES)), "a"))


def test_make_dataset_rejects_bad_input(prices):
    with pytest.raises(ValueError, match="empty"):
        make_dataset(prices.iloc[:0])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['close'\]"):
        make_dataset(prices.drop(columns="close"))
    with pytest.raises(ValueError, match="horizon"):
        make_dataset(prices, horizon=0)


# --- command line ------------------------------------------------------------------------


def test_cli_train_then_bench_model(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["train", "--out", str(out), "--n-splits", "2"]) == 0
    text = capsys.readouterr().out
    assert "majority class" in text and "saved to" in text
    assert load(out).kind == "hgb"
    bench = tmp_path / "bench"
    rc = main(
        [
            "bench-model",
            "--model",
            str(out),
            "--batch-sizes",
            "1,100",
            "--repeat",
            "2",
            "--out",
            str(bench),
        ]
    )
    assert rc == 0
    table = pd.read_csv(bench / "bench-model.csv")
    assert set(table["batch"]) == {1, 100} and (table["rows_per_s"] > 0).all()
    assert (bench / "bench-model.png").stat().st_size > 0


def test_cli_bad_arguments(tmp_path, capsys):
    assert main(["bench-model", "--kinds", "xgb", "--out", str(tmp_path)]) == 2
    assert "unknown model kind" in capsys.readouterr().err
    assert (
        main(["train", "--out", str(tmp_path / "m"), "--prices", str(tmp_path / "none.csv")]) == 2
    )
